"""generate_decay and `hepflows generate decay`: LHE decays that read back, saved integrators."""

from __future__ import annotations

import math

import pytest

from hepflows.errors import ConfigError
from hepflows.physics.decays import pi1800


def test_generate_decay_writes_lhe_that_reads_back(tmp_path):
    from hepflows.generate import generate_decay
    from hepflows.io import read_events

    f = pi1800()
    out = tmp_path / "pi.lhe"
    saved = tmp_path / "fab.safetensors"
    run = generate_decay(f, 500, out=out, train_calls=20_000, calls=20_000, seed=1,
                         integrator=saved, progress=False)  # fmt: skip
    assert run.trained and saved.exists()
    density, gradient = run.training_calls
    assert 0 < gradient <= density and density + gradient <= 20_000
    init, events = read_events(out)
    assert len(events) == 500
    assert init.initInfo.beamA == -9010211
    for ev in events[:50]:
        ids = [p.id for p in ev.particles]
        assert ids == [-9010211, -211, 211, -211]
        daughters = ev.particles[1:]
        assert sum(p.e for p in daughters) == pytest.approx(f.dalitz.M, rel=1e-7)
        assert abs(sum(p.px for p in daughters)) < 1e-7  # LHE keeps 9 digits
    # the saved integrator is loaded, not retrained, and gives the same integral
    again = generate_decay(f, 0, calls=20_000, seed=1, integrator=saved, progress=False)
    assert not again.trained and again.training_calls is None
    assert abs(again.result.value - run.result.value) < 5 * math.hypot(again.result.error,
                                                                        run.result.error)
    with pytest.raises(ConfigError, match="method"):
        generate_decay(f, 10, method="vegas", progress=False)


def test_cli_generate_decay(tmp_path):
    from typer.testing import CliRunner

    from hepflows.cli import app

    runner = CliRunner()
    out, png = tmp_path / "d.h5", tmp_path / "d.png"
    res = runner.invoke(app, ["generate", "decay", "pi1800", "--events", "300", "--train-calls",
                              "2e4", "--calls", "2e4", "--out", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert out.exists() and png.stat().st_size > 1000
    assert "gradient evaluations" in res.output


BAD = [(["omega"], "unknown decay 'omega'"), (["pi1800", "--method", "vegas"], "method must be"),
       (["pi1800", "--train-calls", "100"], "raise the training calls")]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD)
def test_cli_bad_input_exits_2_with_one_line(args, message, monkeypatch, capsys, tmp_path):
    import sys

    from hepflows.cli import run

    out = tmp_path / "never.lhe"
    monkeypatch.setattr(sys, "argv", ["hepflows", "generate", "decay", *args, "--events", "10",
                                      "--out", str(out)])  # fmt: skip
    with pytest.raises(SystemExit) as info:
        run()
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
