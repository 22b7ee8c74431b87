"""generate_decay and `hepflows generate decay`: LHE decays that read back, saved integrators."""

from __future__ import annotations

import math

import pytest

from hepflows.errors import ConfigError
from hepflows.physics.decays import pi1800


def test_generate_decay_writes_lhe_that_reads_back(tmp_path):
    from hepflows.io import read_events
    from hepflows.physics.generation import generate_decay

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
    bad = runner.invoke(app, ["generate", "decay", "omega"])
    assert bad.exit_code != 0
