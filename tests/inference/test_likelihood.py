"""Portable likelihood files and their validation (nabu tests) on a Gaussian toy in parameters.

x = (a, b) ~ N(theta * (1, -2), diag(1, 0.25)), theta ~ U(-1, 1): the exact
likelihood is known, so a trained flow must pass the validation, an
under-trained one must fail it, and the file must reproduce the flow bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hepflows.errors import CheckpointError, ConfigError, InputError
from hepflows.inference.conditional import ConditionalDensity
from hepflows.inference.likelihood import data_hash, export_likelihood, load_likelihood
from hepflows.inference.validation import ks_weighted, plot_validation, validate

SIZE = {"transforms": 3, "bins": 8, "hidden": (32, 32)}
NAMES, THETA = ("a", "b"), ("theta",)


def toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.5])
    return noise + theta * torch.tensor([1.0, -2.0]), theta


@pytest.fixture(scope="module")
def trained() -> ConditionalDensity:
    x, theta = toy(20_000, 0)
    return ConditionalDensity(NAMES, context_names=THETA, **SIZE).fit(
        x, theta, steps=1500, batch_size=512
    )


def test_trained_flow_matches_the_exact_likelihood_and_passes(trained) -> None:
    """Held out: 10 % of the training size (at 4000 events one of the four tests of this
    flow, trained on 20k, has p = 0.003: the check sees its 0.05 mean |log q - log p|)."""
    x, theta = toy(2000, 1)
    mean = theta * torch.tensor([1.0, -2.0])
    exact = torch.distributions.Normal(mean, torch.tensor([1.0, 0.5])).log_prob(x).sum(-1)
    assert (trained.log_prob(x, theta) - exact).abs().mean() < 0.1
    report = validate(trained, x, theta)
    assert report.passed, report.summary()
    assert report.r2_ks_pvalue > 0.05 and report.names == ["z1", "z2"]


def test_under_trained_flow_fails() -> None:
    x, theta = toy(4000, 1)
    bad = ConditionalDensity(NAMES, context_names=THETA, **SIZE).fit(
        *toy(2000, 3), steps=15, batch_size=512
    )
    report = validate(bad, x, theta)
    assert not report.passed
    assert report.r2_ks_pvalue < 1e-6


def test_a_too_wide_latent_fails_the_r2_test() -> None:
    """The tests see a width error of 10 % in r^2 (and a shift in the pulls)."""

    class Scaled:
        names = ("u", "v")

        def __init__(self, z: torch.Tensor) -> None:
            self.z = z

        def latent(self, x, c):
            return self.z

    z = torch.randn(5000, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert validate(Scaled(z), z, z).passed
    assert not validate(Scaled(1.1 * z), z, z).passed
    assert not validate(Scaled(z + torch.tensor([0.1, 0.0])), z, z).passed


def test_weighted_ks_uses_the_effective_sample_size() -> None:
    rng = np.random.default_rng(5)
    v = rng.uniform(size=2000)
    d1, p1, ess1 = ks_weighted(v, np.ones(2000), lambda t: t)
    d2, p2, ess2 = ks_weighted(v, np.r_[np.ones(1000), np.zeros(1000)], lambda t: t)
    assert ess1 == pytest.approx(2000) and ess2 == pytest.approx(1000)
    assert p1 > 0.01 and p2 > 0.01
    # unweighted statistic agrees with scipy's
    from scipy import stats

    assert d1 == pytest.approx(stats.kstest(v, "uniform").statistic, abs=1e-12)


def test_export_load_is_bitwise_and_carries_its_metadata(trained, tmp_path) -> None:
    x, theta = toy(20_000, 0)
    hx, ht = toy(3000, 1)
    report = validate(trained, hx, ht)
    path = export_likelihood(trained, tmp_path / "lik.safetensors", units={"a": "GeV"},
                             x_ranges={"b": (-6, 6)}, training=(x, theta),
                             levels=("x", "theta"), validation=report.to_dict())  # fmt: skip
    lik = load_likelihood(path)
    assert torch.equal(lik.log_prob(hx, ht), trained.log_prob(hx, ht))
    out = lik.log_prob(hx.numpy(), ht.numpy())
    assert isinstance(out, np.ndarray) and np.array_equal(out, trained.log_prob(hx, ht).numpy())
    one = lik.log_prob(hx[:5], torch.tensor([0.3], dtype=torch.float64))  # one condition for all
    assert torch.equal(one, trained.log_prob(hx[:5], torch.full((5, 1), 0.3, dtype=torch.float64)))
    assert lik.metadata["training_data_sha256"] == data_hash(x, theta)
    assert lik.observables[0].unit == "GeV" and lik.observables[0].low == float(x[:, 0].min())
    assert (lik.observables[1].low, lik.observables[1].high) == (-6, 6)
    assert lik.conditions[0].high == float(theta.max())
    assert lik.levels == ("x", "theta") and lik.validation["passed"] == report.passed
    assert "theta" in lik.summary() and "GeV" in lik.summary()
    assert validate(lik, hx, ht).r2_ks_statistic == pytest.approx(report.r2_ks_statistic)


def test_loaded_file_refuses_bad_inputs(trained, tmp_path) -> None:
    path = export_likelihood(trained, tmp_path / "lik.safetensors",
                             x_ranges={"a": (-5, 5), "b": (-4, 4)},
                             c_ranges={"theta": (-1, 1)})  # fmt: skip
    lik = load_likelihood(path)
    x, theta = toy(10, 2)
    with pytest.raises(InputError, match=r"\(n, 2\) values of \['a', 'b'\]"):
        lik.log_prob(x[:, :1], theta)
    with pytest.raises(InputError, match="outside the declared range"):
        lik.log_prob(x * 100, theta)
    with pytest.raises(InputError, match="theta lie outside"):
        lik.log_prob(x, theta + 5)
    with pytest.raises(InputError, match="NaN"):
        lik.log_prob(x * float("nan"), theta)
    with pytest.raises(InputError, match="10 events but 3 conditions"):
        lik.log_prob(x, theta[:3])


def test_bad_files_and_exports(trained, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no saved likelihood"):
        load_likelihood(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_likelihood(junk)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something"})
    with pytest.raises(CheckpointError, match="not a saved hepflows likelihood"):
        load_likelihood(other)
    with pytest.raises(ConfigError, match="no range for the x 'a'"):
        export_likelihood(trained, tmp_path / "x.safetensors")
    # weights that do not fit the stored configuration
    path = export_likelihood(trained, tmp_path / "ok.safetensors", training=toy(100, 1))
    tensors = load_file(str(path))
    first = next(iter(tensors))
    tensors[first] = torch.zeros(3, 3)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        load_likelihood(path)
    assert json.loads(meta["levels"]) == ["x", "c"]


def test_validation_bad_input_and_plot(trained, tmp_path) -> None:
    x, theta = toy(200, 1)
    with pytest.raises(InputError, match="5 events per bin"):
        validate(trained, x[:50], theta[:50])
    with pytest.raises(InputError, match="weights"):
        validate(trained, x, theta, weights=-torch.ones(200))
    report = validate(trained, x, theta, bins=10)
    plot_validation(report, tmp_path / "v.png", title="toy")
    assert (tmp_path / "v.png").stat().st_size > 1000


@pytest.mark.parametrize("names", [NAMES, ("m_ll",), ("m_ll", "cos_cs", "y_ll")])
def test_onnx_export_reproduces_the_likelihood(trained, tmp_path, names) -> None:
    """Coupling flow (2-D toy; 3-D with the log and atanh maps) and MAF (1-D): onnxruntime
    agrees with torch to float32 precision, on a batch size the trace never saw."""
    pytest.importorskip("onnxruntime")
    from hepflows.inference.onnx import export_onnx

    if names == NAMES:
        density, training = trained, toy(2000, 5)
    else:
        g = torch.Generator().manual_seed(len(names))
        columns = {"m_ll": 150 + torch.rand(3000, generator=g, dtype=torch.float64) * 500,
                   "cos_cs": torch.rand(3000, generator=g, dtype=torch.float64) * 1.8 - 0.9,
                   "y_ll": torch.randn(3000, generator=g, dtype=torch.float64)}  # fmt: skip
        x = torch.stack([columns[n] for n in names], -1)
        theta = x[:, :1] / 650
        density = ConditionalDensity(names, context_names=THETA, **SIZE).fit(
            x, theta, steps=30, batch_size=512)  # fmt: skip
        training = (x, theta)
    file = export_likelihood(density, tmp_path / "q.safetensors", training=training)
    out = export_onnx(file, tmp_path / "q.onnx", check_events=777)
    assert out.path.exists() and out.checked_events > 500 and out.max_abs_diff < 1e-4

    import onnx
    import onnxruntime as ort

    props = {p.key: p.value for p in onnx.load(str(out.path)).metadata_props}
    assert [v["name"] for v in json.loads(props["hepflows.observables"])] == list(names)
    assert "NOT range-checked" in props["hepflows.note"]
    x, c = training[0][:3], training[1][:3]
    got = ort.InferenceSession(str(out.path)).run(None, {"x": x.numpy(), "c": c.numpy()})[0]
    assert got.shape == (3,) and got.dtype == np.float64
    np.testing.assert_allclose(got, load_likelihood(file).log_prob(x, c).numpy(), atol=1e-4)
    with pytest.raises(InputError, match=".onnx"):
        export_onnx(file, tmp_path / "q.txt")
