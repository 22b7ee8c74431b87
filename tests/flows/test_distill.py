"""Probability density distillation (hepflows.flows.distill): MAF teacher -> IAF student.

Tested: ``check_pair`` (types and configurations, with a message naming the fix), the
terms of ``distillation_loss`` against the flows' public bijections, a loss of zero for a
student that is an exact copy of its teacher, a frozen teacher, and a short distillation
after which the student's bijection and density match the teacher's. Teachers are
randomly initialised float64 flows (a fresh flow is the identity).
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import mse_loss

from helpers import random_flow, randomize
from hepflows.errors import ConfigError
from hepflows.flows import IAF, MAF, CouplingFlow
from hepflows.flows.distill import check_pair, distillation_loss, student_trace, teacher_trace

F64 = torch.float64
SMALL = {"transforms": 2, "bins": 4, "hidden": (16, 16)}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and two threads on a busy 2-core machine
    make every step ~100 times slower; the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _context(flow: MAF, n: int, seed: int) -> torch.Tensor | None:
    if not flow.context:
        return None
    return torch.randn(n, flow.context, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _teacher_and_data(ctx: int, n: int = 256, seed: int = 0, **kw):
    teacher = random_flow("maf", features=3, context=ctx, std=0.2, seed=seed, **{**SMALL, **kw})
    c = _context(teacher, n, seed + 1)
    with torch.no_grad():
        x = teacher.sample(n, c, generator=torch.Generator().manual_seed(seed + 2))
    return teacher, x, c


# ------------------------------------------------------------------ check_pair


def test_check_pair_accepts_the_student_built_from_the_teacher_config() -> None:
    teacher = MAF(3, context=2, **SMALL)
    check_pair(teacher, IAF(**teacher.config))  # no error
    # Only the listed keys must agree: the student's conditioner width is free.
    check_pair(teacher, IAF(**{**teacher.config, "hidden": [8]}))


@pytest.mark.parametrize(
    ("teacher", "student"),
    [
        (lambda: IAF(3, **SMALL), lambda: IAF(3, **SMALL)),  # an IAF is a MAF subclass
        (lambda: MAF(3, **SMALL), lambda: MAF(3, **SMALL)),
        (lambda: CouplingFlow(4, **SMALL), lambda: IAF(4, **SMALL)),
        (lambda: MAF(3, **SMALL), lambda: CouplingFlow(3, **SMALL)),
    ],
    ids=["iaf-iaf", "maf-maf", "coupling-iaf", "maf-coupling"],
)
def test_check_pair_rejects_wrong_types(teacher, student) -> None:
    with pytest.raises(ConfigError, match="MAF teacher and an IAF student"):
        check_pair(teacher(), student())


@pytest.mark.parametrize(
    ("key", "value"),
    [("features", 4), ("context", 1), ("transforms", 3), ("bins", 5), ("domain", "unit"),
     ("bound", 3.0), ("kind", "affine")],
)  # fmt: skip
def test_check_pair_rejects_mismatched_configs_and_names_the_fix(key, value) -> None:
    teacher = MAF(3, **SMALL)
    config = {**teacher.config, key: value}
    with pytest.raises(ConfigError) as info:
        check_pair(teacher, IAF(**config))
    message = str(info.value)
    assert f"'{key}'" in message  # the differing key, with both values
    assert repr(teacher.config[key]) in message and repr(value) in message
    assert "IAF(**teacher.config)" in message


# ------------------------------------------------------------------ loss terms


@pytest.mark.parametrize("ctx", [0, 2])
def test_loss_terms_agree_with_the_public_bijections(ctx) -> None:
    """data_x = MSE(student(teacher^-1(x)), x), noise_z = MSE(teacher^-1(student(z)), z),
    and the traces end in the flows' own to_latent / to_data outputs."""
    teacher, x, c = _teacher_and_data(ctx, n=128, transforms=3)
    student = random_flow("iaf", features=3, context=ctx, std=0.2, seed=7, **{**SMALL,
                          "transforms": 3})  # fmt: skip
    z = torch.randn(128, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    loss = distillation_loss(teacher, student, x, c, z)
    with torch.no_grad():
        zt, _ = teacher.to_latent(x, c)
        x_back, _ = student.to_data(zt, c)
        x_noise, _ = student.to_data(z, c)
        z_back, _ = teacher.to_latent(x_noise, c)
        t_states, t_params = teacher_trace(teacher, x, c)
        s_states, s_params = student_trace(student, z, c)
    torch.testing.assert_close(loss.data_x, mse_loss(x_back, x))
    torch.testing.assert_close(loss.noise_z, mse_loss(z_back, z))
    # B = 3 autoregressive blocks: B + 1 states (N, F) and B conditioner outputs (P, F, N).
    assert len(t_states) == len(s_states) == 4 and len(t_params) == len(s_params) == 3
    assert t_params[0].shape == (3 * 4 - 1, 3, 128)
    torch.testing.assert_close(t_states[0], x)
    torch.testing.assert_close(t_states[-1], zt)
    torch.testing.assert_close(s_states[-1], z)
    torch.testing.assert_close(s_states[0], x_noise)
    for part in (loss.data_x, loss.noise_z, loss.states, loss.params):
        assert part.ndim == 0 and part.item() > 1e-4  # a random student is far off


def test_total_is_the_documented_weighted_sum() -> None:
    teacher, x, c = _teacher_and_data(2, n=64)
    student = random_flow("iaf", features=3, context=2, std=0.2, seed=7, **SMALL)
    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    plain = distillation_loss(teacher, student, x, c, z, param_weight=0.0)
    weighted = distillation_loss(teacher, student, x, c, z, param_weight=3.0)
    torch.testing.assert_close(plain.total, plain.data_x + plain.noise_z + plain.states)
    torch.testing.assert_close(weighted.total - plain.total, 3.0 * plain.params)
    # Same z: the noise path is deterministic; z=None draws from the global RNG instead.
    again = distillation_loss(teacher, student, x, c, z, param_weight=3.0)
    assert again.total.item() == weighted.total.item()


@pytest.mark.parametrize(("domain", "kind"), [("real", "rqs"), ("real", "affine"), ("unit", "rqs")])
def test_loss_vanishes_for_an_exact_copy_and_not_for_a_random_student(domain, kind) -> None:
    """A teacher whose conditioners see only the context (the data columns of every
    MADE's first layer are zero) is inverted exactly by the IAF with the same weights:
    made_S(z_<i, c) = made_T(x_<i, c) = made(c). Every term must then be ~0, which
    also checks that the traces align blocks, permutations and states correctly."""
    kw = {**SMALL, "transforms": 3}
    teacher = random_flow("maf", features=3, context=2, domain=domain, kind=kind, std=0.3, **kw)
    with torch.no_grad():
        for block in teacher.transform.transforms:
            if hasattr(block, "made"):
                block.made.hidden[0].weight[:, :3] = 0.0
    n = 256
    c = _context(teacher, n, 1)
    with torch.no_grad():
        x = teacher.sample(n, c, generator=torch.Generator().manual_seed(2))
    z = teacher.base.sample(n, torch.Generator().manual_seed(3))
    copy = IAF(**teacher.config).to(F64)
    copy.load_state_dict(teacher.state_dict())
    exact = distillation_loss(teacher, copy, x, c, z)
    # The maps are not trivial: the teacher moves the points by O(0.1 - 1).
    assert mse_loss(teacher.to_latent(x, c)[0], x).item() > 1e-2
    for part in (exact.total, exact.data_x, exact.noise_z, exact.states, exact.params):
        assert part.item() < 1e-20
    random_student = randomize(IAF(**teacher.config).to(F64), std=0.3, seed=11)
    assert distillation_loss(teacher, random_student, x, c, z).total.item() > 1e-2


# ------------------------------------------------------------------ the teacher stays fixed


def test_teacher_gets_no_gradient_and_the_student_does() -> None:
    teacher, x, c = _teacher_and_data(2, n=64)
    student = random_flow("iaf", features=3, context=2, std=0.2, seed=7, **SMALL)
    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    loss = distillation_loss(teacher, student, x, c, z)
    loss.total.backward(retain_graph=True)
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # The noise path is differentiable through the student's samples x' (not only
    # through its conditioner outputs): MSE(z, z') alone moves the student.
    student.zero_grad()
    loss.noise_z.backward()
    assert sum(p.grad.abs().sum() for p in student.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in teacher.parameters())


# ------------------------------------------------------------------ distillation learns


def _mismatch(teacher: MAF, student: IAF, n: int = 2000) -> tuple[float, float]:
    """(RMS |x_student(z) - x_teacher(z)| over the same latent z,
    mean |log q_student - log q_teacher| on student samples)."""
    g = torch.Generator().manual_seed(5)
    c = _context(teacher, n, 6)
    with torch.no_grad():
        z = teacher.base.sample(n, g)
        x_teacher, _ = teacher.to_data(z, c)
        x_student, _ = student.to_data(z, c)
        xs, log_q = student.sample_and_log_prob(n, c, generator=g)
        log_t = teacher.log_prob(xs, c)
    rms = (x_student - x_teacher).norm(dim=1).pow(2).mean().sqrt().item()
    return rms, (log_q - log_t).abs().mean().item()


@pytest.mark.parametrize("ctx", [0, 1])
def test_distilled_student_reproduces_the_teacher(ctx) -> None:
    teacher, pool, cpool = _teacher_and_data(ctx, n=4096)
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = IAF(**teacher.config).to(F64)  # fresh: the identity map
    check_pair(teacher, student)
    rms0, dlogq0 = _mismatch(teacher, student)
    assert rms0 > 0.5 and dlogq0 > 0.5  # the problem is not trivial

    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(300):
        idx = torch.randint(len(pool), (128,), generator=g)
        c = None if cpool is None else cpool[idx]
        loss = distillation_loss(teacher, student, pool[idx], c, student.base.sample(128, g))
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        losses.append(loss.total.item())

    rms, dlogq = _mismatch(teacher, student)
    assert sum(losses[-20:]) / 20 < 0.01 * losses[0]
    assert rms < 0.15 and rms < 0.1 * rms0, (rms0, rms)
    assert dlogq < 0.1 and dlogq < 0.1 * dlogq0, (dlogq0, dlogq)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, frozen[k]), f"teacher tensor {k} changed during distillation"
