"""The ``hepflows posterior`` commands: train -> sample -> check on a user's simulator given as
``module:function``, and clean errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hepflows.cli import app, run
from hepflows.inference.posterior import Posterior

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"

SIMULATOR = '''
import torch
from hepflows.inference import Normal, Prior

PRIOR = Prior(["m"], [Normal(0.0, 1.0)])


def gauss(theta, generator):
    """x = (theta + N(0, 0.5^2), theta + N(0, 0.5^2)): the posterior is N(0.8 xbar, 0.33^2)."""
    noise = torch.randn(len(theta), 2, generator=generator, dtype=torch.float64)
    return theta + 0.5 * noise
'''

NO_PRIOR = '''
def identity(theta, generator):
    return theta
'''


def _cli(*args: object, code: int = 0) -> str:
    result = runner.invoke(app, ["posterior", *map(str, args)])
    assert result.exit_code == code, (result.output, result.exception)
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("posterior")
    (d / "toy_simulator.py").write_text(SIMULATOR)
    (d / "bare_simulator.py").write_text(NO_PRIOR)
    sys.path.insert(0, str(d))
    model = d / "post.safetensors"
    out = _cli("train", "--simulator", "toy_simulator:gauss", "--simulations", 3000,
               "--steps", 250, "--out", model)  # fmt: skip
    assert "3000 simulations" in out
    yield {"dir": d, "model": model}
    sys.path.remove(str(d))


def test_train_writes_a_posterior(chain) -> None:
    post = Posterior.load(chain["model"])
    assert post.names == ("m",) and post.simulations == 3000
    assert post.info["simulator"] == "toy_simulator:gauss"


def test_sample_at_a_truth_and_from_a_file(chain) -> None:
    d = chain["dir"]
    out = _cli("sample", chain["model"], "--truth", "1.0", "--samples", 4000,
               "--out", d / "draws.npy", "--plot", d / "corner.png")  # fmt: skip
    assert "m:" in out and "(truth 1)" in out
    draws = np.load(d / "draws.npy")
    assert draws.shape == (4000, 1)
    (d / "x.json").write_text(json.dumps([1.0, 1.0]))
    _cli("sample", chain["model"], "--observation", d / "x.json", "--samples", 8000,
         "--out", d / "draws2.npy")  # fmt: skip
    draws = np.load(d / "draws2.npy")[:, 0]
    # exact posterior for xbar = 1: mean 0.8 * 1 / (1 + 0.125) * 1.125 = 0.889, std 0.333
    assert float(draws.mean()) == pytest.approx(1 / 1.125, abs=0.06)
    assert float(draws.std()) == pytest.approx((1 / 9) ** 0.5, rel=0.1)
    assert (d / "corner.png").read_bytes()[:8] == PNG


def test_check_passes_and_writes_plots(chain) -> None:
    d = chain["dir"]
    out = _cli("check", chain["model"], "--pairs", 200, "--samples", 300,
               "--plot", d / "sbc.png", "--json", d / "check.json")  # fmt: skip
    assert "passed" in out
    report = json.loads((d / "check.json").read_text())
    assert report["passed"] and report["sbc_p"]["m"] > 0.05
    assert (d / "sbc.png").read_bytes()[:8] == PNG
    assert (d / "sbc_coverage.png").read_bytes()[:8] == PNG


def test_clean_errors(chain, tmp_path, monkeypatch, capsys) -> None:
    model, out = str(chain["model"]), str(tmp_path / "p.safetensors")
    cases = [
        (["train", "--simulator", "nope", "--out", out], "unknown simulator"),
        (["train", "--simulator", "bare_simulator:identity", "--out", out],
         "brings no PRIOR"),
        (["train", "--simulator", "bare_simulator:identity", "--out", out, "--prior",
          "m:uniform:1"], "name:uniform:low:high"),
        (["train", "--simulator", "toy_simulator:missing", "--out", out], "no function"),
        (["sample", model], "--observation"),
        (["sample", model, "--truth", "1,2"], "(n, 1)"),
        (["train", "--out", str(tmp_path / "p.txt")], "safetensors"),
        (["sample", str(tmp_path / "none.safetensors"), "--truth", "1"], "no saved posterior"),
    ]  # fmt: skip
    for argv, message in cases:
        monkeypatch.setattr(sys, "argv", ["hepflows", "posterior", *argv])
        with pytest.raises(SystemExit) as info:
            run()
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in " ".join(err.split()), (argv, err)
        assert "Traceback" not in err
