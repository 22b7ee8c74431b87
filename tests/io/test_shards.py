"""Sharded generation: one shard per block, merge, 1 vs 2 ranks, mixed runs, missing blocks.

Two ranks are simulated in one process by running :func:`hepflows.generate.run_sharded`
as rank 0 and rank 1 of a world of 2 (its ``rank``/``world_size``/``is_main`` patched):
the very code path a ``torchrun`` job takes, the collectives being no-ops in one process.
"""

import json
import math
import shutil

import pytest
import torch

import hepflows.generate as generate
from helpers import randomize
from hepflows import ConfigError, InputError
from hepflows.generate import generate_sharded, run_sharded
from hepflows.integrate import NeuralIntegrator, camel
from hepflows.integrate.blocks import pooled_sigma
from hepflows.io import read_events, write_events
from hepflows.io.events import Events
from hepflows.io.lhe import coordinates
from hepflows.io.shards import RunInfo, merge_shards, read_shards

BATCH = 4096
N, PER_BLOCK = 1100, 250  # 5 blocks, the last one of 100 events


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small camel integrator with random flow weights, saved (every rank loads it)."""
    integ = NeuralIntegrator(camel(2), 2, seed=1, hidden=(16, 16), vegas=False)
    randomize(integ.flow, std=0.1, seed=3)
    path = tmp_path_factory.mktemp("integ") / "camel.safetensors"
    integ.save(path)
    return path


def _no_training():
    raise AssertionError("the saved integrator must be loaded, not a new one trained")


def _run(out_dir, saved, seed=0, **kwargs):
    return run_sharded(camel(2), N, _no_training, out_dir, events_per_block=PER_BLOCK,
                       calls=5000, seed=seed, integrator=saved, progress=False,
                       batch_size=BATCH, **kwargs)  # fmt: skip


def _as_rank(monkeypatch, r, size):
    monkeypatch.setattr(generate, "rank", lambda: r)
    monkeypatch.setattr(generate, "world_size", lambda: size)
    monkeypatch.setattr(generate, "is_main", lambda: r == 0)


def _content(path):
    """(init, (n, d) coordinates or momenta, (n,) XWGTUP) of an event file."""
    init, events = read_events(path)
    if events[0].particles:
        x = torch.tensor([[p.e, p.px, p.py, p.pz, p.id] for e in events for p in e.particles])
    else:
        x = coordinates(events)
    w = torch.tensor([e.eventinfo.weight for e in events], dtype=torch.float64)
    return init, x, w


@pytest.mark.parametrize("shards, merged", [(".h5", ".h5"), (".lhe.gz", ".lhe")])
def test_one_and_two_ranks_merge_to_the_same_events(tmp_path, saved, monkeypatch, shards, merged):
    one = _run(tmp_path / "one", saved, merge_to=tmp_path / f"one{merged}", shard_format=shards)
    assert one.generated == [0, 1, 2, 3, 4] and one.merged.events == N
    _as_rank(monkeypatch, 1, 2)  # rank 1 first: the order must not matter
    r1 = _run(tmp_path / "two", saved, merge_to=tmp_path / f"two{merged}", shard_format=shards)
    assert r1.generated == [1, 3] and r1.merged is None
    _as_rank(monkeypatch, 0, 2)
    r0 = _run(tmp_path / "two", saved, merge_to=tmp_path / f"two{merged}", shard_format=shards)
    assert r0.generated == [0, 2, 4] and r0.run == one.run
    init1, x1, w1 = _content(tmp_path / f"one{merged}")
    init2, x2, w2 = _content(tmp_path / f"two{merged}")
    assert len(x1) == N and torch.equal(x1, x2) and torch.equal(w1, w2)
    assert init1.procInfo[0] == init2.procInfo[0]
    # The header: sigma and error from the pooled sums of all blocks (every call).
    blocks = read_shards(tmp_path / "two")
    sigma, error = pooled_sigma(math.fsum(s.sum_w for s in blocks),
                                math.fsum(s.sum_w2 for s in blocks),
                                sum(s.calls for s in blocks))  # fmt: skip
    assert (one.merged.sigma, one.merged.sigma_error) == (sigma, error)
    assert init1.procInfo[0].xSection == pytest.approx(sigma, rel=1e-7)
    assert init1.procInfo[0].error == pytest.approx(error, rel=1e-7)
    assert abs(sigma - camel(2).exact) < 4 * error
    # XWGTUP = sigma w_i / N: unit event weights give sigma / N each.
    assert w1.sum().item() == pytest.approx(sigma, rel=0.05)
    assert torch.all(w1 >= sigma / N * (1 - 1e-9))
    assert torch.isclose(w1.min(), torch.tensor(sigma / N, dtype=torch.float64), rtol=1e-9)


def test_merge_converts_between_formats(tmp_path, saved):
    run = _run(tmp_path / "s", saved, shard_format=".h5")
    exact = torch.cat([coordinates(read_events(s.path)[1]) for s in read_shards(tmp_path / "s")])
    for suffix, rtol in ((".lhe.gz", 1e-4), (".hdf5", 0.0)):
        report = merge_shards(tmp_path / "s", tmp_path / f"all{suffix}", expected_blocks=5)
        assert report.blocks == 5 and report.run_id == run.run.run_id
        init, x, w = _content(tmp_path / f"all{suffix}")
        assert torch.allclose(x, exact, rtol=rtol, atol=0)
        assert init.initInfo.weightingStrategy == 4
        assert w.sum().item() == pytest.approx(report.sigma * run_weights(tmp_path / "s") / N)


def run_weights(directory):
    """Sum of the event weights w_i of a run, from its shard files."""
    total = 0.0
    for s in read_shards(directory):
        _, events = read_events(s.path)
        total += sum(e.eventinfo.weight for e in events) * s.events / s.sigma
    return total


def test_merge_refuses_shards_of_different_runs(tmp_path, saved):
    _run(tmp_path / "a", saved, seed=0)
    _run(tmp_path / "b", saved, seed=1)
    for name in ("block-000001.h5", "block-000001.json"):
        shutil.copy(tmp_path / "b" / name, tmp_path / "a" / name)
    with pytest.raises(InputError, match=r"2 different runs .*block-000001\.json"):
        merge_shards(tmp_path / "a", tmp_path / "all.h5")
    assert not (tmp_path / "all.h5").exists()
    # Generating into a directory of another run is refused too.
    with pytest.raises(InputError, match="blocks of another run"):
        _run(tmp_path / "b", saved, seed=2)


def test_missing_blocks_are_reported_not_skipped(tmp_path, saved):
    _run(tmp_path / "s", saved)
    (tmp_path / "s" / "block-000001.json").unlink()
    (tmp_path / "s" / "block-000004.json").unlink()  # the last block: found from the sidecars
    with pytest.raises(InputError, match=r"blocks 1, 4 of 5 are missing .* re-run the same"):
        merge_shards(tmp_path / "s", tmp_path / "all.h5")
    (tmp_path / "s" / "block-000002.h5").unlink()  # sidecar kept, events gone
    with pytest.raises(InputError, match=r"blocks 1, 2, 4 of 5 .*event files of blocks 2"):
        merge_shards(tmp_path / "s", tmp_path / "all.h5")
    with pytest.raises(InputError, match="expected 7 blocks"):
        merge_shards(tmp_path / "s", tmp_path / "all.h5", expected_blocks=7)
    with pytest.raises(InputError, match="no shards"):
        merge_shards(tmp_path, tmp_path / "all.h5")
    assert not (tmp_path / "all.h5").exists()


def test_a_restarted_job_skips_finished_blocks(tmp_path, saved):
    first = _run(tmp_path / "s", saved, merge_to=tmp_path / "first.h5")
    again = _run(tmp_path / "s", saved, merge_to=tmp_path / "again.h5")
    assert again.generated == [] and again.skipped == [0, 1, 2, 3, 4]
    # A job killed after writing block 3's events but before its sidecar redoes block 3 only.
    (tmp_path / "s" / "block-000003.json").unlink()
    (tmp_path / "s" / "block-000004.h5").unlink()
    (tmp_path / "s" / "block-000004.json").unlink()
    resumed = _run(tmp_path / "s", saved, merge_to=tmp_path / "resumed.h5")
    assert resumed.generated == [3, 4] and resumed.skipped == [0, 1, 2]
    ref = _content(tmp_path / "first.h5")
    for name in ("again.h5", "resumed.h5"):
        init, x, w = _content(tmp_path / name)
        assert torch.equal(x, ref[1]) and torch.equal(w, ref[2])
        assert init.procInfo[0] == ref[0].procInfo[0] and first.merged.events == N
    assert not list((tmp_path / "s").glob(".*"))  # no temporary files left


def test_a_truncated_shard_is_refused(tmp_path, saved):
    _run(tmp_path / "s", saved)
    sidecar = json.loads((tmp_path / "s" / "block-000002.json").read_text())
    two = Events(x=torch.full((2, 2), 0.5, dtype=torch.float64), weights=torch.ones(2),
                 sigma=sidecar["sigma"], sigma_error=0.1, w_max=1.0, rule="quantile",
                 quantile=0.999, efficiency=0.5, overweight_fraction=0.0, calls=4)  # fmt: skip
    write_events(tmp_path / "s" / "block-000002.h5", two)
    with pytest.raises(InputError, match="holds 2 events but its sidecar"):
        merge_shards(tmp_path / "s", tmp_path / "all.lhe")
    assert not (tmp_path / "all.lhe").exists()  # nothing half-written


def test_ranks_that_disagree_stop(tmp_path, saved, monkeypatch):
    monkeypatch.setattr(generate, "broadcast_object", lambda obj: "0" * 16)
    with pytest.raises(ConfigError, match="another run than rank 0"):
        _run(tmp_path / "s", saved)
    assert not (tmp_path / "s").exists()


def test_run_info():
    run = RunInfo.create(0, 1100, 250, 2.5, ".h5", write={"beams": (1, 2, 3.0, 4.0)})
    assert run.n_blocks == 5 and [run.block_events(b) for b in (0, 4)] == [250, 100]
    assert RunInfo.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    assert run.write_kwargs()["beams"] == (1, 2, 3.0, 4.0)
    others = [RunInfo.create(1, 1100, 250, 2.5, ".h5"), RunInfo.create(0, 1101, 250, 2.5, ".h5"),
              RunInfo.create(0, 1100, 251, 2.5, ".h5"), RunInfo.create(0, 1100, 250, 2.6, ".h5"),
              RunInfo.create(0, 1100, 250, 2.5, ".lhe"),
              RunInfo.create(0, 1100, 250, 2.5, ".h5", extra={"integrator": "x"})]  # fmt: skip
    assert len({run.run_id, *(o.run_id for o in others)}) == 7
    with pytest.raises(ConfigError, match="shard format"):
        RunInfo.create(0, 10, 5, 1.0, ".root")
    with pytest.raises(ConfigError, match="block 5 is outside"):
        run.block_events(5)


def test_drell_yan_one_and_two_ranks(tmp_path, monkeypatch):
    """The physics path: folded Drell-Yan, particle records, LHE header of the process."""
    from hepflows.physics import DrellYan

    dy = DrellYan()
    path = tmp_path / "dy.safetensors"
    folded = dy.folded()  # an untrained integrator: loading it is what matters here
    NeuralIntegrator(folded, 3, seed=0, channels=folded.channels(), loss=generate.LOSS).save(path)

    def run(out, merge_to):  # every rank runs the same command: the same merge_to
        return generate_sharded(dy, 120, out, events_per_block=50, calls=2000, integrator=path,
                                merge_to=merge_to, progress=False, batch_size=1024)  # fmt: skip

    one = run(tmp_path / "one", tmp_path / "one.lhe.gz")
    _as_rank(monkeypatch, 1, 2)
    run(tmp_path / "two", tmp_path / "two.lhe.gz")
    _as_rank(monkeypatch, 0, 2)
    two = run(tmp_path / "two", tmp_path / "two.lhe.gz")
    assert not one.trained and one.generated == [0, 1, 2] and two.generated == [0, 2]
    init, x1, w1 = _content(tmp_path / "one.lhe.gz")
    _, x2, w2 = _content(tmp_path / "two.lhe.gz")
    assert x1.shape == (120 * 4, 5) and torch.equal(x1, x2) and torch.equal(w1, w2)
    info = init.initInfo
    assert (info.beamA, info.beamB, info.energyA, info.PDFsetA) == (2212, 2212, 6500.0, 247000)
    assert init.procInfo[0].xSection == pytest.approx(one.merged.sigma, rel=1e-7)
    _, events = read_events(tmp_path / "one.lhe.gz")
    assert [p.status for p in events[0].particles] == [-1, -1, 1, 1]
