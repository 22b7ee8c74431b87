"""Probability density distillation: a one-pass IAF student learns a MAF teacher.

A MAF evaluates densities in one pass but samples in F passes per block; an
IAF of the same configuration does the opposite. CaloFlow II (Krause, Shih,
2110.11377) trains the student to reproduce the teacher's bijection block by
block, in both directions:

* **data path**: data ``x`` -> teacher -> ``z``; the student maps ``z`` back
  and must return ``x``, pass through the teacher's intermediate states and
  emit the teacher's conditioner outputs;
* **noise path**: base draws ``z`` -> student -> ``x'`` (with gradients);
  the teacher maps ``x'`` back and must return ``z``, with matching
  intermediate states and conditioner outputs.

The loss is the sum of the mean squared differences of all those pairs,
MSE(z, z') + MSE(x, x') + sum_i MSE(z_i, z'_i) + MSE(x_i, x'_i) + MSE(p_z, p'_z)
+ MSE(p_x, p'_x) in the notation of the seed talk. The teacher stays fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.flows.autoregressive import InverseAutoregressive, MaskedAutoregressive
from hepflows.flows.flows import IAF, MAF


def _blocks(flow: MAF) -> list:
    return list(flow.transform.transforms)


def check_pair(teacher: MAF, student: IAF) -> None:
    """Raise :class:`~hepflows.ConfigError` unless ``student`` mirrors ``teacher``."""
    if type(teacher) is not MAF or not isinstance(student, IAF):
        raise ConfigError(
            f"distillation needs a MAF teacher and an IAF student, got {type(teacher).__name__} "
            f"and {type(student).__name__}"
        )
    keys = ("features", "context", "transforms", "bins", "domain", "bound", "kind")
    diff = {k: (teacher.config[k], student.config[k]) for k in keys
            if teacher.config[k] != student.config[k]}  # fmt: skip
    if diff:
        raise ConfigError(
            f"student and teacher must share {keys}; they differ in {diff} (teacher, student): "
            "build the student as IAF(**teacher.config)"
        )


def teacher_trace(teacher: MAF, x: Tensor, context: Tensor | None) -> tuple[list, list]:
    """Run the teacher data -> latent and keep every block's output and conditioner output.

    Args:
        teacher: the MAF.
        x: (N, F) data.
        context: (N, C) or ``None``.

    Returns:
        ``(states, params)``: B + 1 tensors (N, F), the input and each
        autoregressive block's output (the last is z), and B conditioner
        outputs (P, F, N), in block order.
    """
    states, params, h = [x], [], x
    for t in _blocks(teacher):
        if isinstance(t, MaskedAutoregressive):
            p = t.made(h, context)
            ht, _ = t.elementwise(h.T, p)
            h = ht.T
            states.append(h)
            params.append(p)
        else:
            h, _ = t(h, context)  # a permutation: states are kept in block-output order
    return states, params


def student_trace(student: IAF, z: Tensor, context: Tensor | None) -> tuple[list, list]:
    """Run the student latent -> data (one pass per block), kept like :func:`teacher_trace`.

    Returns:
        ``(states, params)`` aligned with :func:`teacher_trace`: states[0] is
        the sample x, states[-1] the input z; params in block order.
    """
    states, params, h = [z], [], z
    for t in reversed(_blocks(student)):
        if isinstance(t, InverseAutoregressive):
            p = t.made(h, context)
            ht, _ = t.elementwise(h.T, p, inverse=True)
            params.append(p)
            h = ht.T
            states.append(h)
        else:
            h, _ = t.inverse(h, context)
            states[-1] = h  # undo the permutation: the teacher's block-output order
    return states[::-1], params[::-1]


@dataclass
class DistillationLoss:
    """The terms of the distillation loss (scalars).

    Attributes:
        total: the sum that is minimised.
        data_x: MSE(x, x') on the data path (how well the student reproduces data).
        noise_z: MSE(z, z') on the noise path.
        states: intermediate-state terms of both paths.
        params: conditioner-output terms of both paths.
    """

    total: Tensor
    data_x: Tensor
    noise_z: Tensor
    states: Tensor
    params: Tensor


def distillation_loss(
    teacher: MAF,
    student: IAF,
    x: Tensor,
    context: Tensor | None = None,
    z: Tensor | None = None,
    param_weight: float = 1.0,
) -> DistillationLoss:
    """The CaloFlow II distillation loss on one batch.

    Args:
        teacher: the fixed MAF (its parameters are frozen: ``requires_grad`` is set False).
        student: the IAF being trained.
        x: (N, F) data for the data path.
        context: (N, C) context of ``x`` (also used for the noise path), or ``None``.
        z: (N, F) base draws for the noise path; default: fresh draws.
        param_weight: weight of the conditioner-output terms.

    Returns:
        The loss and its parts.
    """
    check_pair(teacher, student)
    mse = torch.nn.functional.mse_loss
    teacher.requires_grad_(False)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    with torch.no_grad():
        t_states, t_params = teacher_trace(teacher, x, context)
    s_states, s_params = student_trace(student, t_states[-1], context)
    data_x = mse(s_states[0], x)
    states = sum((mse(a, b) for a, b in zip(s_states[1:-1], t_states[1:-1], strict=True)),
                 zero)  # fmt: skip
    params = sum((mse(a, b) for a, b in zip(s_params, t_params, strict=True)),
                 zero)  # fmt: skip

    if z is None:
        z = student.base.sample(len(x))
    n_states, n_params = student_trace(student, z, context)
    m_states, m_params = teacher_trace(teacher, n_states[0], context)
    noise_z = mse(m_states[-1], z)
    states = states + sum((mse(a, b) for a, b in zip(m_states[1:-1], n_states[1:-1],
                                                      strict=True)), zero)  # fmt: skip
    params = params + sum((mse(a, b) for a, b in zip(m_params, n_params, strict=True)),
                          zero)  # fmt: skip
    total = data_x + noise_z + states + param_weight * params
    return DistillationLoss(total, data_x, noise_z, states, params)
