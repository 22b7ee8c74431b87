"""``hepflows mem fit``: Z' events simulated in lepton variables, a short exact-MEM scan."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from hepflows.cli import app, run

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def test_simulate_then_fit(tmp_path) -> None:
    data, plot, summary = tmp_path / "ev.h5", tmp_path / "scan.png", tmp_path / "fit.json"
    out = runner.invoke(app, ["unfold", "simulate", "--out", str(data), "--events", "800",
                              "--zprime", "--observables", "pt_minus,pt_plus,eta_minus,eta_plus",
                              "--train-calls", "20000", "--seed", "3"])  # fmt: skip
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["mem", "fit", "--data", str(data), "--param", "zprime_mass",
                              "--range", "397", "403", "--grid", "7", "--points", "128",
                              "--plot", str(plot), "--summary", str(summary)])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "mzp = " in out.output and plot.read_bytes()[:8] == PNG
    fig = json.loads(summary.read_text())
    assert fig["interval68"][0] < fig["best"] < fig["interval68"][1]
    assert abs(fig["best"] - 400) < 3 * fig["sigma"] and len(fig["nll2"]) == 7


def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    pairs = tmp_path / "p.h5"
    assert runner.invoke(app, ["unfold", "simulate", "--out", str(pairs), "--events", "100",
                               "--train-calls", "5000"]).exit_code == 0  # fmt: skip
    for args, message in ((["--param", "top_mass"], "--param must be one of"),
                          ([], "simulate with --observables pt_minus")):  # fmt: skip
        monkeypatch.setattr(sys, "argv", ["hepflows", "mem", "fit", "--data", str(pairs), *args])
        with pytest.raises(SystemExit) as exit_info:
            run()
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
