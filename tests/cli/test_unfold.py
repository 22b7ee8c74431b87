"""The ``hepflows unfold`` commands: simulate -> train (cinn, spinup) -> apply, and clean errors.

One tiny chain (1500 Drell-Yan events with a small generator budget, one tiny
flow per stage) through the real command line; the files are read back.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import h5py
import pytest
import torch
from typer.testing import CliRunner

from hepflows.cli import app, run
from hepflows.inference import read_pairs
from hepflows.inference.unfolding import UnfoldingModel

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--steps", "150", "--batch-size", "256", "--transforms", "2", "--bins", "4",
        "--hidden", "16", "--efficiency-epochs", "3"]  # fmt: skip


def _cli(*args: object) -> str:
    result = runner.invoke(app, ["unfold", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("unfold")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        files = {"sim": d / "sim.h5", "data": d / "data.h5", "cinn": d / "cinn.safetensors",
                 "spinup": d / "spinup.safetensors", "out": d / "u.h5",
                 "json": d / "u.json", "spin_out": d / "s.h5"}  # fmt: skip
        calls = ["--train-calls", "4000"]
        files["sim_log"] = _cli("simulate", "--out", files["sim"], "--events", 1500, *calls)
        _cli("simulate", "--out", files["data"], "--events", 600, "--seed", 5, "--zprime", *calls)
        files["train_log"] = _cli("train", files["sim"], "--out", files["cinn"], "--ensemble",
                                  2, *TINY)  # fmt: skip
        _cli("train", files["sim"], "--method", "spinup", "--out", files["spinup"], *TINY)
        files["apply_log"] = _cli("apply", files["cinn"], files["data"], "--out", files["out"],
                                  "--samples", 10, "--bins", 5,
                                  "--summary", files["json"])  # fmt: skip
        _cli("apply", files["spinup"], files["data"], "--out", files["spin_out"], "--samples", 4,
             "--ensemble", 1, "--iterations", 1, "--em-steps", 20, "--refine", 3,
             "--bins", 5)  # fmt: skip
    finally:
        torch.set_num_threads(before)
    return files


def test_the_chain_writes_readable_files(chain) -> None:
    pairs = read_pairs(chain["sim"])
    assert len(pairs) == 1500 and pairs.observables == ("m_ll", "y_ll", "cos_cs")
    assert "Z' off" in chain["sim_log"] and "Z' on" not in chain["sim_log"]
    model = UnfoldingModel.load(chain["cinn"])
    assert model.method == "cinn" and len(model.posteriors) == 2
    assert UnfoldingModel.load(chain["spinup"]).forward is not None
    with h5py.File(chain["out"]) as f:
        assert f["events"].shape[1] == 3 and f.attrs["method"] == "cinn"
        assert f["histograms/m_ll/counts"].shape == (5,)
    summary = json.loads(chain["json"].read_text())
    assert set(summary["chi2_ndf"]) == {"m_ll", "y_ll", "cos_cs"}
    assert 0 <= summary["tarp_area"] <= 0.5
    for kind in ("histograms", "calibration", "tarp"):
        assert (chain["out"].parent / f"u_{kind}.png").read_bytes()[:8] == PNG
    with h5py.File(chain["spin_out"]) as f:
        assert f.attrs["method"] == "spinup" and f["events"].shape[1] == 3


def _run_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["hepflows", *argv])
    with pytest.raises(SystemExit) as info:
        run()
    return info.value.code, capsys.readouterr().err


def test_bad_input_is_one_line(chain, tmp_path, monkeypatch, capsys) -> None:
    cases = [
        (["train", str(chain["sim"]), "--method", "omnifold"], "--method must be one of"),
        (["train", str(tmp_path / "none.h5")], "no pairs file at"),
        (["simulate", "--observables", "m_ll,mass", "--out", str(tmp_path / "p.h5")],
         "observables must be distinct names"),
        (["apply", str(chain["cinn"]), str(chain["data"]), "--out", str(tmp_path / "u.txt")],
         "--out"),
        (["apply", str(tmp_path / "none.safetensors"), str(chain["data"]),
          "--out", str(tmp_path / "u.h5")], "no saved unfolding model"),
    ]  # fmt: skip
    for argv, message in cases:
        code, err = _run_main(["unfold", *argv], monkeypatch, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "u.h5").exists()


def test_a_model_refuses_data_with_other_observables(chain, tmp_path, monkeypatch, capsys):
    other = tmp_path / "other.h5"
    _cli("simulate", "--out", other, "--events", 300, "--observables", "m_ll,y_ll",
         "--train-calls", 2000)  # fmt: skip
    code, err = _run_main(["unfold", "apply", str(chain["cinn"]), str(other), "--out",
                           str(tmp_path / "u.h5")], monkeypatch, capsys)  # fmt: skip
    assert code == 2 and "trained on observables ['m_ll', 'y_ll', 'cos_cs']" in err


def test_likelihood_export_show_validate(chain, tmp_path, monkeypatch, capsys) -> None:
    """The spinup forward model T(reco | truth) as a likelihood file, validated on held-out
    pairs; ``validate`` exits 1 exactly when the checks fail and writes its report either
    way; a cINN member exports too."""
    lik = tmp_path / "t.safetensors"
    out = runner.invoke(app, ["likelihood", "export", str(chain["spinup"]), str(lik),
                              "--data", str(chain["data"])])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "r^2 vs chi^2(3)" in out.output and lik.is_file()
    shown = runner.invoke(app, ["likelihood", "show", str(lik)])
    assert shown.exit_code == 0 and "q(reco | truth)" in shown.output
    assert "m_ll [GeV]" in shown.output and "validation: r2 KS p" in shown.output
    report, plot = tmp_path / "v.json", tmp_path / "v.png"
    args = ["--plot", str(plot), "--json", str(report), "--bins", "10"]
    val = runner.invoke(app, ["likelihood", "validate", str(lik), str(chain["sim"]), *args])
    figures = json.loads(report.read_text())
    assert val.exit_code == (0 if figures["passed"] else 1)
    assert figures["dimension"] == 3 and figures["events"] > 500
    assert plot.read_bytes()[:8] == PNG
    cinn = tmp_path / "c.safetensors"
    assert runner.invoke(app, ["likelihood", "export", str(chain["cinn"]), str(cinn), "--part",
                               "cinn", "--member", "1"]).exit_code == 0  # fmt: skip
    assert "q(truth | reco)" in runner.invoke(app, ["likelihood", "show", str(cinn)]).output
    if importlib.util.find_spec("onnxruntime") is not None:
        graph = runner.invoke(app, ["likelihood", "onnx", str(lik), str(tmp_path / "t.onnx"),
                                    "--check", "300"])  # fmt: skip
        assert graph.exit_code == 0, graph.output
        assert "onnxruntime vs torch" in graph.output and (tmp_path / "t.onnx").is_file()
    # errors are one line, exit 2
    monkeypatch.setattr(sys, "argv", ["hepflows", "likelihood", "export", str(chain["cinn"]),
                                      str(tmp_path / "x.safetensors")])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 2
    assert "without a forward model" in capsys.readouterr().err
