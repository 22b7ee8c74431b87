"""Event generation: LHE files with four-momenta read back, saved integrators, the CLI."""

import math

import pytest
import torch
from typer.testing import CliRunner

from hepflows import ConfigError
from hepflows.cli import app
from hepflows.generate import generate_events
from hepflows.io import read_events
from hepflows.physics import DrellYan
from hepflows.physics.kinematics import mass, pseudorapidity, pt


def test_generate_writes_lhe_with_particles_and_reloads(tmp_path):
    dy = DrellYan(zprime=True)
    out = tmp_path / "dy.lhe.gz"
    saved = tmp_path / "dy.safetensors"
    run = generate_events(dy, 1500, out=out, train_calls=20_000, calls=20_000, seed=1,
                          integrator=saved, progress=False)  # fmt: skip
    assert run.trained and saved.exists() and out.exists()
    init, events = read_events(out)
    assert len(events) == 1500
    info = init.initInfo
    assert (info.beamA, info.beamB) == (2212, 2212) and info.energyA == 6500.0
    assert info.PDFsetA == dy.pdf.lhapdf_id == 247000
    # One result per run: the events, the result and the file header agree.
    r = run.result
    assert run.events.result is r
    assert (run.events.sigma, run.events.sigma_error) == (r.value, r.error)
    assert math.isclose(init.procInfo[0].xSection, r.value, rel_tol=1e-6)
    assert math.isclose(init.procInfo[0].error, r.error, rel_tol=1e-4)
    assert run.events.efficiency == r.unweighting_efficiency_quantile  # the quantile rule's
    assert r.calls == run.events.calls >= 20_000  # the first sample and any further batches
    assert run.calls_per_event == pytest.approx((sum(run.training_calls) + r.calls) / 1500)
    for ev in events[:200]:
        ids = [p.id for p in ev.particles]
        assert ids[0] == -ids[1] and abs(ids[0]) in (1, 2, 3, 4) and ids[2:] == [11, -11]
        assert [p.status for p in ev.particles] == [-1, -1, 1, 1]
        p = torch.tensor([[q.e, q.px, q.py, q.pz] for q in ev.particles], dtype=torch.float64)
        assert torch.allclose(p[0] + p[1], p[2] + p[3], rtol=1e-6, atol=1e-3)
        m_ll = math.sqrt(max((p[2] + p[3])[0] ** 2 - ((p[2] + p[3])[1:] ** 2).sum(), 0))
        assert m_ll >= 15.0 * (1 - 1e-6)
        assert ev.eventinfo.scale == dy.params.mu_f
    again = generate_events(dy, 0, calls=20_000, integrator=saved, progress=False)
    assert not again.trained and again.events is None
    diff = abs(again.result.value - run.result.value)
    assert diff < 5 * math.hypot(again.result.error, run.result.error)


def test_cli_generate_drell_yan(tmp_path):
    out = tmp_path / "dy.h5"
    res = CliRunner().invoke(app, ["generate", "drell-yan", "--events", "300", "--train-calls",
                                   "1e4", "--calls", "1e4", "--out", str(out), "--no-zprime"])
    assert res.exit_code == 0, res.output
    assert out.exists() and "pb" in res.output and "photon" in res.output
    _, events = read_events(out)
    assert len(events) == 300


def test_cli_generate_with_cuts(tmp_path):
    """--mll-min, --pt-min and --eta-max reach the matrix element: every event passes them."""
    out = tmp_path / "cut.lhe"
    res = CliRunner().invoke(app, ["generate", "drell-yan", "--events", "400", "--train-calls",
                                   "1e4", "--calls", "1e4", "--out", str(out), "--mll-min", "60",
                                   "--pt-min", "25", "--eta-max", "2.4"])  # fmt: skip
    assert res.exit_code == 0, res.output
    _, events = read_events(out)
    assert len(events) == 400
    for ev in events:
        p = torch.tensor([[q.e, q.px, q.py, q.pz] for q in ev.particles[2:]], dtype=torch.float64)
        assert (pt(p) >= 25 * (1 - 1e-6)).all()
        assert (pseudorapidity(p).abs() <= 2.4 * (1 + 1e-6)).all()
        assert mass(p[0] + p[1]) >= 60 * (1 - 1e-6)


def test_cli_generate_rejects_bad_options():
    res = CliRunner().invoke(app, ["generate", "drell-yan", "--lepton", "tau"])
    assert res.exit_code != 0
    res = CliRunner().invoke(app, ["generate", "drell-yan", "--pt-min", "-5"])
    assert isinstance(res.exception, ConfigError) and "pt_min must be >= 0" in str(res.exception)


def test_folded_and_unfolded_runs_agree_and_saved_integrators_must_match(tmp_path):
    """fold=False integrates the full 4-D integrand: the same sigma within errors; events
    of both cover both signs of y_ll; a saved integrator of the other kind is refused."""
    dy = DrellYan(zprime=False)
    saved = tmp_path / "folded.safetensors"
    runs = {
        fold: generate_events(dy, 2000, train_calls=20_000, calls=20_000, seed=2, fold=fold,
                              integrator=saved if fold else None, progress=False)
        for fold in (True, False)
    }  # fmt: skip
    a, b = runs[True].result, runs[False].result
    assert abs(a.value - b.value) < 4 * math.hypot(a.error, b.error), (a.value, b.value)
    assert runs[True].integrator.dims == 3 and runs[False].integrator.dims == 4
    for run in runs.values():
        _, _, lep, anti = dy.momenta(run.events.x)
        y = 0.5 * torch.log(((lep + anti)[:, 0] + (lep + anti)[:, 3])
                            / ((lep + anti)[:, 0] - (lep + anti)[:, 3]))  # fmt: skip
        assert abs((y > 0).double().mean().item() - 0.5) < 0.05
    with pytest.raises(ConfigError, match="3 dimensions.*--fold"):
        generate_events(dy, 0, calls=1000, fold=False, integrator=saved, progress=False)


def test_learned_channel_weights_give_the_same_sigma_and_saved_files_must_match(tmp_path):
    """channel_weights="learned" (MadNIS: one flow pass per point) trains a channel-weight
    network; its sigma agrees with the mixture's, its events pass the cuts, and a saved
    integrator with the other kind of weights is refused with the option to change."""
    from hepflows import CheckpointError

    dy = DrellYan(zprime=False)
    saved = tmp_path / "learned.safetensors"
    runs = {
        mode: generate_events(dy, 1000, train_calls=20_000, calls=20_000, seed=3,
                              channel_weights=mode, integrator=saved if mode == "learned" else None,
                              progress=False)
        for mode in ("mixture", "learned")
    }  # fmt: skip
    learned = runs["learned"].integrator
    assert learned.config["weights"] == "learned" and learned.channel_weights is not None
    assert runs["mixture"].integrator.channel_weights is None
    a, b = runs["mixture"].result, runs["learned"].result
    assert abs(a.value - b.value) < 4 * math.hypot(a.error, b.error), (a.value, b.value)
    _, _, lep, anti = dy.momenta(runs["learned"].events.x)
    assert (mass(lep + anti) >= dy.params.sqrt_s_hat_min * (1 - 1e-6)).all()
    with pytest.raises(CheckpointError, match="weights = learned.*--channel-weights learned"):
        generate_events(dy, 0, calls=1000, integrator=saved, progress=False)
    with pytest.raises(CheckpointError, match="transforms = 6.*--transforms 6"):
        generate_events(dy, 0, calls=1000, integrator=saved, channel_weights="learned",
                        transforms=3, progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="channel weights must be one of"):
        generate_events(dy, 0, calls=1000, channel_weights="prior", progress=False)


def test_an_unwritable_or_unknown_output_is_refused_before_any_work(tmp_path):
    from hepflows import InputError
    from hepflows.generate import run
    from hepflows.integrate import NeuralIntegrator, camel

    built = []

    def build():
        built.append(1)
        return NeuralIntegrator(camel(2), 2, seed=0)

    with pytest.raises(InputError, match="event file format"):
        run(camel(2), 10, build, out=tmp_path / "dy.txt", progress=False)
    with pytest.raises(InputError, match="cannot write"):
        run(camel(2), 10, build, out="/proc/x.lhe", progress=False)
    assert built == []  # nothing was built, trained or generated
    ok = run(camel(2), 10, build, out=tmp_path / "c.lhe", train_calls=2_000, calls=2_000,
             progress=False)  # fmt: skip
    assert built == [1] and ok.path.exists()


def test_expansion_and_particle_records_share_one_random_stream(tmp_path):
    """Two generators of one seed would give the mirror/phi draws and the record draws the
    same numbers (correlated); the records continue the expansion's stream instead."""
    import pylhe

    from hepflows.generate import run
    from hepflows.integrate import NeuralIntegrator, camel

    seen = []

    def expand(x, gen):
        seen.append(("expand", gen, torch.rand(len(x), generator=gen)))
        return x

    def particles(x, gen):
        seen.append(("particles", gen, torch.rand(len(x), generator=gen)))
        return [[pylhe.LHEParticle(id=22, status=1, mother1=0, mother2=0, color1=0, color2=0,
                                   px=0.0, py=0.0, pz=1.0, e=1.0, m=0.0, lifetime=0.0,
                                   spin=9.0)] for _ in range(len(x))]  # fmt: skip

    run(camel(2), 20, lambda: NeuralIntegrator(camel(2), 2, seed=0), out=tmp_path / "c.lhe",
        train_calls=2_000, calls=2_000, expand=expand, particles=particles,
        progress=False)  # fmt: skip
    (_, g1, r1), (_, g2, r2) = seen
    assert [k for k, _, _ in seen] == ["expand", "particles"] and g1 is g2
    assert not torch.equal(r1, r2)  # the records draw fresh numbers, not the same ones
