"""Test integrands: exact values against quadrature, and the integrand checks."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate as sp_integrate

from hepflows import ConfigError
from hepflows.integrate import (
    IntegrandError,
    builtin,
    camel,
    evaluate,
    gaussian,
    polynomial,
    signed,
)


@pytest.mark.parametrize("make", [gaussian, camel, polynomial, signed])
def test_exact_values_match_quadrature_in_2d(make):
    f = make(2)

    def g(y, x):
        return float(f(torch.tensor([[x, y]], dtype=torch.float64))[0])

    value, err = sp_integrate.dblquad(g, 0, 1, 0, 1, epsabs=1e-11, epsrel=1e-11)
    assert value == pytest.approx(f.exact, rel=1e-8, abs=1e-10)


def test_known_values_from_the_design_note():
    assert gaussian(8).exact == pytest.approx(math.erf(2.5) ** 8, rel=1e-14)
    assert gaussian(8).exact == pytest.approx(0.99674, abs=1e-5)
    # the note quotes 0.99349 (truncated); erf(2.5)^16 = 0.993509
    assert gaussian(16).exact == pytest.approx(math.erf(2.5) ** 16, rel=1e-14)
    assert 1 - gaussian(16).exact > 6e-3  # not 1: many sigma at 1e6 calls
    assert polynomial(18).exact == 3.0


def test_camel_plain_monte_carlo_agrees():
    f = camel(4)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2_000_000, 4, generator=g, dtype=torch.float64)
    w = f(x)
    mean, err = w.mean().item(), w.std().item() / math.sqrt(len(w))
    assert abs(mean - f.exact) < 4 * err


def test_nan_from_integrand_names_count_and_place():
    def f(x):
        out = x.sum(-1)
        out[3] = math.nan
        out[5] = math.inf
        return out

    x = torch.rand(10, 2, dtype=torch.float64)
    with pytest.raises(IntegrandError, match="NaN or inf at 2 of 10 points"):
        evaluate(f, x)
    values, dropped = evaluate(f, x, drop_nonfinite=True)
    assert dropped == 2 and values[3] == 0 and values[5] == 0 and torch.isfinite(values).all()


def test_wrong_shape_from_integrand():
    with pytest.raises(IntegrandError, match=r"must return shape \(7,\)"):
        evaluate(lambda x: x, torch.rand(7, 3, dtype=torch.float64))


def test_numpy_output_is_accepted():
    values, _ = evaluate(lambda x: np.ones(len(x)), torch.rand(4, 2, dtype=torch.float64))
    assert values.dtype == torch.float64 and values.tolist() == [1.0] * 4


def test_unknown_builtin():
    with pytest.raises(ConfigError, match="unknown integrand 'nope'"):
        builtin("nope", 2)
