"""Column-wise LHEH5 writing: the same file content as pylhe's own writer, checked input."""

import pylhe
import pytest
import torch

from hepflows import InputError, ShapeError
from hepflows.io import read_events, write_events
from hepflows.io.events import Events
from hepflows.io.lheh5 import write_lheh5
from hepflows.io.particles import PARTICLE_COLUMNS, particle_table, records
from hepflows.physics import DrellYan
from hepflows.physics.decays import get_decay


def _events(n, dims, seed=0):
    g = torch.Generator().manual_seed(seed)
    weights = torch.where(torch.rand(n, generator=g) < 0.1, 1.7, 1.0).to(torch.float64)
    return Events(x=torch.rand(n, dims, generator=g, dtype=torch.float64), weights=weights,
                  sigma=2.5, sigma_error=0.01, w_max=1.0, rule="quantile", quantile=0.999,
                  efficiency=0.5, overweight_fraction=0.1, calls=2 * n)  # fmt: skip


def _pylhe_copy(path, out):
    """The same events written by pylhe's object-per-event LHEH5 writer."""
    lhe = pylhe.LHEFile.fromfile(str(path))
    pylhe.LHEFile(init=lhe.init, header=lhe.header, events=list(lhe.events)).tofile(str(out))


@pytest.mark.parametrize("physics", [True, False], ids=["particles", "coordinates"])
def test_column_writer_matches_pylhes_writer(tmp_path, physics):
    dy = DrellYan(zprime=True)
    events = _events(300, dy.dims)
    table = dy.particle_table(events.x, torch.Generator().manual_seed(1)) if physics else None
    write_events(tmp_path / "a.h5", events, particles=(lambda x: table) if physics else None,
                 beams=(2212, 2212, 6500.0, 6500.0), scale=91.2, aqed=0.0078)  # fmt: skip
    _pylhe_copy(tmp_path / "a.h5", tmp_path / "b.h5")
    (init_a, ev_a), (init_b, ev_b) = read_events(tmp_path / "a.h5"), read_events(tmp_path / "b.h5")
    assert init_a == init_b and len(ev_a) == len(ev_b) == 300
    assert init_a.procInfo[0].xSection == 2.5 and init_a.initInfo.beamA == 2212
    for a, b in zip(ev_a, ev_b, strict=True):
        assert a.eventinfo == b.eventinfo and a.particles == b.particles and a.weights == b.weights
    xw = torch.tensor([e.eventinfo.weight for e in ev_a], dtype=torch.float64)
    assert torch.allclose(xw, 2.5 * events.weights / 300, rtol=1e-15)
    assert ev_a[0].eventinfo.scale == 91.2
    if physics:  # the records are the table's, and XML files get the same ones
        assert [e.particles for e in ev_a] == records(table)
        write_events(tmp_path / "a.lhe", events, particles=lambda x: table)
        assert [e.particles[0].id for e in read_events(tmp_path / "a.lhe")[1]] == \
            [e.particles[0].id for e in ev_a]  # fmt: skip
    else:
        x = torch.tensor([[e.weights[f"x{j + 1}"] for j in range(dy.dims)] for e in ev_a],
                         dtype=torch.float64)
        assert torch.equal(x, events.x)


def test_list_records_are_accepted_too(tmp_path):
    decay = get_decay("lambda-c")
    events = _events(50, 2)
    recs = decay.lhe_particles(events.x, torch.Generator().manual_seed(0))
    write_events(tmp_path / "d.h5", events, particles=lambda x: recs)
    assert [e.particles for e in read_events(tmp_path / "d.h5")[1]] == recs


def test_bad_blocks_are_refused_and_leave_no_file(tmp_path):
    init = pylhe.LHEInit(
        initInfo=pylhe.LHEInitInfo(beamA=1, beamB=1, energyA=1.0, energyB=1.0, PDFgroupA=0,
                                   PDFgroupB=0, PDFsetA=0, PDFsetB=0, weightingStrategy=4,
                                   numProcesses=1),
        procInfo=[pylhe.LHEProcInfo(xSection=1.0, error=0.1, unitWeight=1.0, procId=1)],
        generators=[],
    )  # fmt: skip
    ok = {"pid": [1.0], "nparticles": [2.0], "NOMINAL": [1.0], "scale": [0.0], "aqed": [0.0],
          "aqcd": [0.0]}  # fmt: skip
    rows = torch.zeros(2, 13).numpy()
    assert write_lheh5(tmp_path / "ok.h5", init, [(ok, rows)]) == 1
    cases = [({**ok, "weight": [1.0]}, rows, "unknown LHEH5 event columns"),
             ({k: v for k, v in ok.items() if k != "aqed"}, rows, "'aqed' is missing"),
             (ok, rows[:1], "the events count 2 particles, the block holds 1")]  # fmt: skip
    for columns, particles, message in cases:
        with pytest.raises(InputError, match=message):
            write_lheh5(tmp_path / "bad.h5", init, [(ok, rows), (columns, particles)])
        assert not (tmp_path / "bad.h5").exists()


def test_particle_tables():
    dy = DrellYan(zprime=True)
    u = torch.rand(200, dy.dims, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = dy.particle_table(u, torch.Generator().manual_seed(0))
    assert t.shape == (200, 4, len(PARTICLE_COLUMNS)) and t.dtype == torch.float64
    e, p = t[..., 9], t[..., 6:9]
    assert torch.allclose(e[:, 0] + e[:, 1], e[:, 2] + e[:, 3])
    assert torch.allclose(p[:, 0] + p[:, 1], p[:, 2] + p[:, 3], atol=1e-6)
    q = t[:, 0, 0] > 0  # the quark carries colour 501, the antiquark anticolour 501
    assert torch.equal(t[:, 0, 4], torch.where(q, 501.0, 0.0).double())
    assert torch.equal(t[:, 1, 5], torch.where(q, 501.0, 0.0).double())
    assert torch.equal(t[:, 0, 0], -t[:, 1, 0]) and set(t[:, 2, 0].tolist()) == {11.0}
    assert t[0, :, 1].tolist() == [-1, -1, 1, 1] and t[0, 2, 2:4].tolist() == [1, 2]
    d = get_decay("lambda-c")
    t = d.particle_table(u[:, :2], torch.Generator().manual_seed(0))
    assert torch.allclose(t[:, 1:, 6:10].sum(1), t[:, 0, 6:10], atol=1e-9)
    m2 = t[..., 9] ** 2 - (t[..., 6:9] ** 2).sum(-1)
    assert torch.allclose(m2.clamp_min(0).sqrt(), t[..., 10], atol=1e-6)
    with pytest.raises(ShapeError, match="momenta must be"):
        particle_table(torch.zeros(3, 2), (1, 1), ((0, 0), (0, 0)), torch.zeros(3, 3, 4), (0, 0))
