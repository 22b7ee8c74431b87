"""Bad input to the flows raises the right hepflows error, naming the problem and the fix.

Covers hepflows.errors and the checks in hepflows.flows.flow / .flows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hepflows import CheckpointError, ConfigError, HepflowsError, InputError, ShapeError
from hepflows.flows import IAF, MAF, CouplingFlow

F64 = torch.float64
ALL = [CouplingFlow, MAF, IAF]


def small(cls, **kwargs):
    return cls(3, transforms=2, bins=4, hidden=(8,), **kwargs)


def test_error_hierarchy():
    for err in (ShapeError, InputError, ConfigError, CheckpointError):
        assert issubclass(err, HepflowsError)
    # Shape, input and config errors are also ValueErrors, so generic handlers catch them.
    for err in (ShapeError, InputError, ConfigError):
        assert issubclass(err, ValueError)


# ----------------------------------------------------------------------- shapes


@pytest.mark.parametrize("cls", ALL)
def test_wrong_feature_count(cls):
    flow = small(cls)
    with pytest.raises(
        ShapeError, match=r"x must have shape \(N, 3\) \(last axis 3\), got \(5, 4\)"
    ):
        flow.log_prob(torch.zeros(5, 4))
    with pytest.raises(ShapeError, match=r"z must have shape \(N, 3\).*got \(5, 2\)"):
        flow.to_data(torch.zeros(5, 2))
    with pytest.raises(ShapeError, match=r"\(N, 3\).*got \(\)"):
        flow.log_prob(torch.tensor(0.5))


@pytest.mark.parametrize("cls", ALL)
def test_missing_context(cls):
    flow = small(cls, context=2)
    with pytest.raises(ShapeError, match=r"conditional: pass context of shape \(N, 2\)"):
        flow.log_prob(torch.zeros(5, 3))
    with pytest.raises(ShapeError, match=r"conditional: pass context of shape \(N, 2\)"):
        flow.sample(5)
    with pytest.raises(ShapeError, match="conditional"):
        flow.sample_and_log_prob(5)


@pytest.mark.parametrize("cls", ALL)
def test_extra_context(cls):
    flow = small(cls)
    with pytest.raises(ShapeError, match=r"takes no context.*pass context=None or build the flow"):
        flow.log_prob(torch.zeros(5, 3), torch.zeros(5, 1))
    with pytest.raises(ShapeError, match="takes no context"):
        flow.sample(5, torch.zeros(5, 1))


def test_context_with_wrong_rows():
    flow = small(CouplingFlow, context=2)
    with pytest.raises(
        ShapeError, match=r"context must have shape \(5, 2\) or \(2,\).*got \(4, 2\)"
    ):
        flow.log_prob(torch.zeros(5, 3), torch.zeros(4, 2))
    with pytest.raises(ShapeError, match=r"4 rows but 5 samples.*\(5, 2\) or \(2,\)"):
        flow.sample(5, torch.zeros(4, 2))
    with pytest.raises(ShapeError, match=r"context must have shape \(2, 5, 2\)"):
        flow.log_prob(torch.zeros(2, 5, 3), torch.zeros(10, 2))


def test_context_with_wrong_width():
    flow = small(MAF, context=2)
    with pytest.raises(ShapeError, match=r"context must have shape \(N, 2\).*got \(5, 3\)"):
        flow.log_prob(torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ShapeError, match=r"context must have shape \(N, 2\).*got \(3,\)"):
        flow.sample(5, torch.zeros(3))


@pytest.mark.parametrize("bad", [[[0.0, 1.0, 2.0]], np.zeros((4, 3)), 3.0, None])
def test_non_tensor_input(bad):
    flow = small(CouplingFlow)
    kind = type(bad).__name__
    with pytest.raises(ShapeError, match=rf"torch.Tensor of shape \(N, 3\), got {kind}.*as_tensor"):
        flow.log_prob(bad)


def test_non_tensor_context():
    flow = small(CouplingFlow, context=1)
    with pytest.raises(ShapeError, match=r"context must be a torch.Tensor of shape \(N, 1\)"):
        flow.log_prob(torch.zeros(4, 3), [[0.0]] * 4)


@pytest.mark.parametrize("n", [-1, 2.5, True, "10", None])
def test_bad_sample_count(n):
    with pytest.raises(ShapeError, match="n must be a non-negative int"):
        small(IAF).sample(n)


# ----------------------------------------------------------------------- values


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_input(cls, value):
    flow = small(cls)
    x = torch.zeros(5, 3)
    x[2, 1] = value
    with pytest.raises(InputError, match=r"x holds NaN or inf in 1 of 5 rows \(first at row 2\)"):
        flow.log_prob(x)
    with pytest.raises(InputError, match="z holds NaN or inf"):
        flow.to_data(x)


def test_nan_context():
    flow = small(CouplingFlow, context=1)
    c = torch.zeros(5, 1)
    c[3] = math.nan
    with pytest.raises(
        InputError, match=r"context holds NaN or inf in 1 of 5 rows \(first at row 3\)"
    ):
        flow.log_prob(torch.zeros(5, 3), c)


@pytest.mark.parametrize("cls", ALL)
def test_float64_input_to_float32_flow(cls):
    flow = small(cls)
    with pytest.raises(
        ShapeError,
        match=r"dtype torch.float64 but the flow is torch.float32.*\.to\(torch.float32\)"
        r".*\.to\(torch.float64\)",
    ):
        flow.log_prob(torch.zeros(5, 3, dtype=F64))
    with pytest.raises(ShapeError, match="dtype torch.float32 but the flow is torch.float64"):
        small(cls).to(F64).log_prob(torch.zeros(5, 3))
    with pytest.raises(ShapeError, match="context has dtype torch.float64"):
        small(cls, context=1).log_prob(torch.zeros(5, 3), torch.zeros(5, 1, dtype=F64))


def test_integer_input():
    with pytest.raises(ShapeError, match=r"dtype torch.int64.*\.to\(torch.float32\)"):
        small(CouplingFlow).log_prob(torch.zeros(5, 3, dtype=torch.long))


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("value", [-1e-7, 1.0 + 1e-6, 2.0, -3.0])
def test_unit_domain_input_outside_the_cube(cls, value):
    flow = small(cls, domain="unit")
    x = torch.full((4, 3), 0.5)
    x[1, 2] = value
    x[3, 0] = value
    with pytest.raises(
        InputError, match=r"2 rows outside the unit cube.*domain='unit'.*map the data"
    ):
        flow.log_prob(x)
    # The faces themselves are inside.
    assert torch.isfinite(flow.log_prob(torch.tensor([[0.0, 1.0, 0.5]]))).all()


def test_real_domain_accepts_any_finite_input():
    for cls in ALL:
        assert torch.isfinite(small(cls).log_prob(torch.full((2, 3), 1e15))).all()


# ----------------------------------------------------------------------- config


BAD_CONFIGS = [
    (CouplingFlow, dict(features=0), r"features must be an integer >= 2, got 0"),
    (CouplingFlow, dict(features=1), r"features must be an integer >= 2, got 1"),
    (MAF, dict(features=0), r"features must be an integer >= 1, got 0"),
    (IAF, dict(features=2.0), r"features must be an integer >= 1, got 2.0"),
    (CouplingFlow, dict(features=True), r"features must be an integer >= 2, got True"),
    (CouplingFlow, dict(bins=1), r"bins must be an integer >= 2, got 1"),
    (MAF, dict(bins=0), r"bins must be an integer >= 2, got 0"),
    (CouplingFlow, dict(domain="foo"), r"domain must be 'real' or 'unit', got 'foo'"),
    (MAF, dict(domain="Real"), r"domain must be 'real' or 'unit', got 'Real'"),
    (CouplingFlow, dict(kind="affine", domain="unit"), r"affine.*unit cube.*kind='rqs'"),
    (IAF, dict(kind="affine", domain="unit"), r"affine.*unit cube.*kind='rqs'"),
    (CouplingFlow, dict(kind="spline"), r"unknown element-wise map 'spline'.*'rqs' or 'affine'"),
    (CouplingFlow, dict(permutation="reverse"), r"permutation must be 'random' or 'swap'"),
    (CouplingFlow, dict(transforms=0), r"transforms must be an integer >= 1, got 0"),
    (MAF, dict(context=-1), r"context must be an integer >= 0, got -1"),
    (CouplingFlow, dict(hidden=(64, 0)), r"hidden must be a sequence of positive ints"),
    (MAF, dict(hidden=(64.0,)), r"hidden must be a sequence of positive ints"),
    (CouplingFlow, dict(bound=0.0), r"bound must be positive, got 0.0"),
    (IAF, dict(bound=-5.0), r"bound must be positive, got -5.0"),
    (CouplingFlow, dict(bound=math.nan), r"bound must be positive"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD_CONFIGS)
def test_bad_config(cls, kwargs, message):
    kwargs = {"features": 3, **kwargs}
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("cls", ALL)
def test_unknown_activation_is_a_config_error(cls):
    """An unknown option is a ConfigError (conventions: one hierarchy), listing the choices.

    The message is good, but it is a plain ValueError from nets.activation that
    the flow constructors do not convert.
    """
    with pytest.raises(ConfigError, match=r"unknown activation 'swish'.*relu"):
        cls(3, act="swish")


@pytest.mark.parametrize("cls", ALL)
def test_infinite_bound_is_a_config_error(cls):
    """bound=inf passes the 'positive' check but makes every log_prob NaN."""
    with pytest.raises(ConfigError, match="bound"):
        cls(3, bound=math.inf)
