"""``hepflows generate pp-jets`` and ``drell-yan --jets``: LHE / LHEH5 events read back with
their flavours, leading-colour flows, per-event scales and alpha_s, and the cuts."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from helpers import conserves_colour
from hepflows.cli import app
from hepflows.io import read_events
from hepflows.physics.kinematics import mass, pt
from hepflows.physics.pdf import load_pdf


def _momenta(event) -> torch.Tensor:
    return torch.tensor([[q.e, q.px, q.py, q.pz] for q in event.particles], dtype=torch.float64)


def test_pp_jets_writes_colour_flows_and_event_scales(tmp_path):
    out = tmp_path / "jj.lhe"
    res = CliRunner().invoke(app, ["generate", "pp-jets", "--jets", "2", "--events", "200",
                                   "--train-calls", "4000", "--calls", "4000", "--pt-min", "50",
                                   "--scale", "ht/2", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "pp -> 2 jets" in res.output and "jets, parton 0 balancing" in res.output
    init, events = read_events(out)
    assert len(events) == 200 and init.procInfo[0].procId == 12
    assert conserves_colour([e.particles for e in events])
    pdf = load_pdf("NNPDF23_lo_as_0130_qed")
    for event in events:
        assert [q.status for q in event.particles] == [-1, -1, 1, 1]
        p = _momenta(event)
        jets = p[2:]
        assert bool((pt(jets) >= 50 * (1 - 1e-6)).all())
        ht2 = 0.5 * float(pt(jets).sum())
        assert abs(event.eventinfo.scale - ht2) < 1e-5 * ht2  # SCALUP: the event's H_T / 2
        a_s = float(pdf.alpha_s(torch.tensor([ht2**2], dtype=torch.float64)))
        assert abs(event.eventinfo.aqcd - a_s) < 1e-6
        assert torch.allclose(p[:2].sum(0), jets.sum(0), atol=1e-6 * float(p[:, 0].max()))
    gluon_in = sum(any(q.id == 21 for q in e.particles[:2]) for e in events)
    assert gluon_in > 100  # gg and qg dominate dijets at p_T > 50 GeV


def test_drell_yan_with_a_jet_writes_leptons_and_a_coloured_jet(tmp_path):
    out = tmp_path / "llj.h5"
    res = CliRunner().invoke(app, ["generate", "drell-yan", "--jets", "1", "--events", "100",
                                   "--train-calls", "3000", "--calls", "3000", "--mll-min",
                                   "60", "--jet-pt-min", "25", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "pp -> e+e- + 1 jet" in res.output
    init, events = read_events(out)
    assert len(events) == 100 and init.procInfo[0].procId == 21
    assert conserves_colour([e.particles for e in events])
    for event in events:
        ids = [q.id for q in event.particles]
        assert ids[2:4] == [11, -11] and len(ids) == 5
        p = _momenta(event)
        assert 60 * (1 - 1e-6) <= float(mass(p[2] + p[3])) <= 120 * (1 + 1e-6)
        assert float(pt(p[4])) >= 25 * (1 - 1e-6)
        assert abs(event.eventinfo.scale - 91.188) < 1e-9


@pytest.mark.parametrize("suffix", [".lhe", ".h5"])
def test_sharded_dijets_keep_their_event_scales_through_the_merge(tmp_path, suffix):
    """generate_sharded on a process with per-event scales: every shard and the merged file
    carry SCALUP = H_T / 2 and AQCDUP = alpha_s there, event by event."""
    from hepflows.generate import generate_sharded
    from hepflows.physics.processes import MultiJet

    torch.set_num_threads(1)
    mj = MultiJet(n_jets=2, pt_min=50.0, scale="ht/2")
    merged = tmp_path / f"jj{suffix}"
    generate_sharded(mj, 120, tmp_path / "shards", events_per_block=50, train_calls=3000,
                     calls=3000, seed=3, progress=False, fold=False,
                     merge_to=merged)  # fmt: skip
    pdf = load_pdf("NNPDF23_lo_as_0130_qed")
    _, events = read_events(merged)
    assert len(events) == 120 and conserves_colour([e.particles for e in events])
    scales = {round(e.eventinfo.scale, 3) for e in events}
    assert len(scales) > 100  # dynamic, not the header's one value
    for event in events:
        ht2 = 0.5 * float(pt(_momenta(event)[2:]).sum())
        assert abs(event.eventinfo.scale - ht2) < 1e-5 * ht2
        a_s = float(pdf.alpha_s(torch.tensor([ht2**2], dtype=torch.float64)))
        assert abs(event.eventinfo.aqcd - a_s) < 1e-6


def test_sharded_command_lines_of_the_jet_processes(tmp_path):
    """pp-jets --shards and drell-yan --jets 1 --shards: blocks, the merged file with per-event
    scales (H_T / 2) and the cuts, the integrator kept in the shard directory."""
    from hepflows.cli.generate import SHARD_INTEGRATOR

    torch.set_num_threads(1)
    tiny = ["--train-calls", "2000", "--calls", "2000", "--events", "120",
            "--events-per-block", "50"]  # fmt: skip
    merged, shards = tmp_path / "jj.h5", tmp_path / "jj-shards"
    res = CliRunner().invoke(app, ["generate", "pp-jets", "--jets", "2", "--pt-min", "50",
                                   "--scale", "ht/2", *tiny, "--shards", str(shards),
                                   "--out", str(merged)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3 blocks" in " ".join(res.output.split()) and (shards / SHARD_INTEGRATOR).is_file()
    _, events = read_events(merged)
    assert len(events) == 120 and conserves_colour([e.particles for e in events])
    for event in events:
        ht2 = 0.5 * float(pt(_momenta(event)[2:]).sum())
        assert abs(event.eventinfo.scale - ht2) < 1e-5 * ht2

    merged = tmp_path / "llj.lhe"
    res = CliRunner().invoke(app, ["generate", "drell-yan", "--jets", "1", "--mll-min", "60",
                                   "--jet-pt-min", "25", *tiny, "--shards",
                                   str(tmp_path / "llj-shards"), "--out", str(merged)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "l l + 1 jets" in res.output and "2 channels" in res.output
    init, events = read_events(merged)
    assert len(events) == 120 and init.procInfo[0].procId == 21
    for event in events:
        p = _momenta(event)
        assert [q.id for q in event.particles][2:4] == [11, -11]
        assert 60 * (1 - 1e-6) <= float(mass(p[2] + p[3])) <= 120 * (1 + 1e-6)
        assert float(pt(p[4])) >= 25 * (1 - 1e-6)
