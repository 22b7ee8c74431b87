"""Simulators for amortised posteriors, by name: built-in ones or a user's ``module:function``.

A simulator is ``f(theta, generator) -> x``: (n, d) parameters and a
``torch.Generator`` to (n, ...) observations. A user's module may define
``PRIOR`` (a :class:`~hepflows.inference.priors.Prior`) beside it; otherwise
the prior is given separately (:func:`parse_prior`, the CLI's ``--prior``).

Built in:

* ``signal-strength``: :class:`~hepflows.inference.signal_strength.SignalStrength`
  (its own prior; x = the m_ll histogram).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from hepflows.errors import ConfigError, InputError
from hepflows.inference.priors import Normal, Prior, Uniform

#: The built-in simulators.
BUILT_IN = ("signal-strength",)


def load_simulator(spec: str) -> tuple[Callable[..., Any], Prior | None, Any]:
    """The simulator named ``spec``, its prior (``None`` when it brings none) and the
    problem object behind a built-in one (``None`` otherwise; e.g. for its exact posterior).

    Raises:
        ConfigError: an unknown name, a module that does not import, a missing function.
    """
    if spec == "signal-strength":
        from hepflows.inference.signal_strength import SignalStrength

        problem = SignalStrength()
        return problem.simulate, problem.prior, problem
    if ":" not in spec:
        raise ConfigError(f"unknown simulator {spec!r}: use one of {', '.join(BUILT_IN)} or a "
                          "Python 'module:function' taking (theta, generator)")  # fmt: skip
    module_name, func_name = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"cannot import {module_name!r} for simulator {spec!r} ({err}): "
                          "put it on PYTHONPATH or in the working directory") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"{module_name} has no function {func_name!r}")
    prior = getattr(module, "PRIOR", None)
    if prior is not None and not isinstance(prior, Prior):
        raise ConfigError(f"{module_name}.PRIOR must be a hepflows.inference.Prior, got "
                          f"{type(prior).__name__}")  # fmt: skip
    return func, prior, None


def parse_prior(specs: Sequence[str]) -> Prior:
    """A prior from ``name:uniform:low:high`` and ``name:normal:mean:std`` strings.

    Raises:
        InputError: a malformed entry (the message shows the form).
    """
    names, comps = [], []
    kinds = {"uniform": Uniform, "normal": Normal}
    for spec in specs:
        parts = spec.split(":")
        try:
            name, kind, a, b = parts
            comps.append(kinds[kind](float(a), float(b)))
        except (ValueError, KeyError):
            raise InputError(f"bad prior {spec!r}: write name:uniform:low:high or "
                             "name:normal:mean:std") from None  # fmt: skip
        names.append(name)
    if not names:
        raise InputError("give the prior: --prior name:uniform:low:high (one per parameter)")
    return Prior(names, comps)
