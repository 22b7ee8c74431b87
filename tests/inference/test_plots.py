"""Inference plots: each writes a PNG atomically and rejects mismatched shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hepflows.errors import InputError
from hepflows.inference import calibration_curve, calibration_deviation
from hepflows.inference.plots import plot_calibration, plot_tarp, plot_unfolded

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_plot_calibration_writes_a_png(tmp_path):
    q = torch.rand(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    levels, cdf = calibration_curve(q, 51)
    path = tmp_path / "calibration.png"
    plot_calibration(levels, cdf, ["$m$", "$y$"], path, "test", calibration_deviation(q))
    assert_png(path)


def test_plot_calibration_rejects_bad_shapes(tmp_path):
    levels, cdf = torch.linspace(0, 1, 11, dtype=torch.float64), torch.zeros(11, 2)
    with pytest.raises(InputError, match="names"):
        plot_calibration(levels, cdf, ["a"], tmp_path / "c.png")
    with pytest.raises(InputError, match="cdf"):
        plot_calibration(levels, cdf[:5], ["a", "b"], tmp_path / "c.png")
    with pytest.raises(InputError, match="deviation"):
        plot_calibration(levels, cdf, ["a", "b"], tmp_path / "c.png", deviation=torch.zeros(3))
    assert not list(tmp_path.iterdir())


def test_plot_tarp_writes_a_png(tmp_path):
    alpha = torch.linspace(0, 1, 101, dtype=torch.float64)
    path = tmp_path / "tarp.png"
    plot_tarp({"exact": (alpha, alpha, 0.0), "narrow": (alpha, alpha**2, 0.17)}, path, "test")
    assert_png(path)


def test_plot_tarp_rejects_bad_shapes(tmp_path):
    alpha = torch.linspace(0, 1, 11, dtype=torch.float64)
    with pytest.raises(InputError, match="narrow"):
        plot_tarp({"narrow": (alpha, alpha[:-1], 0.1)}, tmp_path / "t.png")
    with pytest.raises(InputError, match="at least one"):
        plot_tarp({}, tmp_path / "t.png")


def unfolded_inputs():
    rng = np.random.default_rng(0)
    edges = {"mll": np.geomspace(60.0, 400.0, 13), "yll": np.linspace(-2.5, 2.5, 11)}
    histograms: dict = {"truth": {}, "IBU": {}, "flow": {}}
    for name, e in edges.items():
        truth = rng.uniform(100, 1000, len(e) - 1)
        histograms["truth"][name] = (truth, np.sqrt(truth))
        for method in ("IBU", "flow"):
            counts = truth * rng.normal(1, 0.05, len(truth))
            histograms[method][name] = (counts, np.sqrt(counts))
    return edges, histograms


def test_plot_unfolded_writes_a_png(tmp_path):
    edges, histograms = unfolded_inputs()
    path = tmp_path / "unfolded.png"
    plot_unfolded(edges, histograms, path, "test", chi2={"IBU": {"mll": (12.3, 12)}},
                  labels={"mll": "$m_{\\ell\\ell}$ [GeV]"}, log=["mll"])  # fmt: skip
    assert_png(path)


def test_plot_unfolded_rejects_bad_inputs(tmp_path):
    edges, histograms = unfolded_inputs()
    bad = {**histograms, "IBU": {**histograms["IBU"], "yll": (np.ones(3), np.ones(3))}}
    with pytest.raises(InputError, match="'IBU'"):
        plot_unfolded(edges, bad, tmp_path / "u.png")
    with pytest.raises(InputError, match="truth"):
        plot_unfolded(edges, {"IBU": histograms["IBU"]}, tmp_path / "u.png")
    with pytest.raises(InputError, match="log"):
        plot_unfolded(edges, histograms, tmp_path / "u.png", log=["pt"])
    assert not list(tmp_path.iterdir())
