"""Training from a file, chunk by chunk: every row once per epoch, never the whole file."""

import numpy as np
import pytest
import torch

from calo_mini import MINI, spy_voxel_reads
from calo_mini import mini_showers as _showers
from hepflows import InputError
from hepflows.calo import Showers, ShowerWriter, iter_showers
from hepflows.calo.batches import FileBatches, MemoryBatches
from hepflows.calo.l2lflow import L2LFlow
from hepflows.calo.training import TrainingPlan, train


def _file(path, showers, chunk=100):
    with ShowerWriter(path, MINI) as out:
        for i in range(0, len(showers), chunk):
            out.append(showers[i : i + chunk])
        out.finish()
    return path


def _to_tensors(s):
    return (torch.as_tensor(s.voxels, dtype=torch.float32),
            torch.as_tensor(s.energy, dtype=torch.float32))  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    showers = _showers(900, seed=3)
    return showers, _file(tmp_path_factory.mktemp("f") / "mini.h5", showers)


def test_file_batches_visit_every_row_once_per_epoch(data):
    """Chunks of 130 (not a multiple of the batch of 50) and a range that starts mid-file:
    every shower of the range exactly once, every batch full but the last, the order
    reproducible from the generator and changed by another seed."""
    showers, path = data
    src = FileBatches(path, 40, 800, _to_tensors, MINI, chunk_size=130)
    assert len(src) == 760

    def epoch(seed):
        return list(src.epoch(50, torch.Generator().manual_seed(seed)))

    batches = epoch(0)
    sizes = [len(v) for v, _ in batches]
    assert sizes[:-1] == [50] * (len(sizes) - 1) and sum(sizes) == 760
    energies = torch.cat([e for _, e in batches]).double().numpy()
    np.testing.assert_allclose(np.sort(energies), np.sort(showers.energy[40:800]), rtol=1e-6)
    # rows stay whole: each batch row's voxels are those of the shower with its energy
    v, e = batches[3]
    row = int(np.argmin(abs(showers.energy - float(e[0]))))
    np.testing.assert_allclose(v[0].numpy(), showers.voxels[row], rtol=1e-5)
    again = torch.cat([e for _, e in epoch(0)])
    assert torch.equal(again, torch.cat([e for _, e in batches]))
    assert not torch.equal(torch.cat([e for _, e in epoch(1)]), again)
    blocks = torch.cat([e for _, e in src.blocks(64)]).double().numpy()
    np.testing.assert_allclose(blocks, showers.energy[40:800], rtol=1e-6)
    assert len(src.head(10)) == 10


def test_memory_batches_are_a_permutation():
    vox, e = torch.randn(23, 4), torch.arange(23.0)
    src = MemoryBatches(vox, e)
    got = torch.cat([b for _, b in src.epoch(5, torch.Generator().manual_seed(0))])
    assert sorted(got.tolist()) == e.tolist() and len(src) == 23


def test_training_from_a_file_reads_chunks_only_and_resumes(data, tmp_path, monkeypatch):
    """train(model, path): the voxel dataset is only ever sliced chunk_size rows at a time
    (the file is never loaded whole); the run checkpoints, and training again with the same
    checkpoint resumes (here: finds it done) with the same weights."""
    _, path = data
    seen = spy_voxel_reads(monkeypatch)

    def model():
        return L2LFlow(MINI, flow1=dict(transforms=1, hidden=[8]),
                       flow2=dict(transforms=1, hidden=[16]), moments=0, seed=0)  # fmt: skip

    plan = TrainingPlan(epochs={"flow1": 1, "teacher": 1, "student": 1}, batch_size=100)
    ckpt = tmp_path / "l2l.ckpt"
    m = model()
    history = train(m, path, plan, checkpoint=ckpt, progress=False, chunk_size=200,
                    fit_showers=300)  # fmt: skip
    assert set(history) == {"flow1", "teacher", "student"}
    assert all(np.isfinite(h["val"]).all() for h in history.values())
    assert seen and all(isinstance(k, slice) and k.stop - k.start <= 300 for k in seen)
    m2 = model()
    assert train(m2, path, plan, checkpoint=ckpt, progress=False, chunk_size=200) == history
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = m.sample(np.full(3, 2e4), model="student", generator=torch.Generator().manual_seed(0))
    assert x.voxels.shape == (3, MINI.n_voxels) and np.isfinite(x.voxels).all()


def test_training_from_a_missing_file_names_the_fix(tmp_path):
    m = L2LFlow(MINI, flow2=dict(transforms=1, hidden=[16]), seed=0)
    with pytest.raises(InputError, match="calo simulate"):
        train(m, tmp_path / "none.h5", progress=False)


def test_iter_showers_reads_the_mini_file(data):
    showers, path = data
    got = sum(len(c) for c in iter_showers(path, chunk_size=256, geometry=MINI))
    assert got == len(showers)


def test_evaluate_streams_files_and_agrees_with_memory(data, tmp_path, monkeypatch):
    """evaluate() on file paths: separation powers, FPD and KPD from every shower (equal to
    the in-memory evaluation of the same showers), classifiers on the first max_showers;
    the voxel dataset is only ever sliced chunk_size rows at a time."""
    from hepflows.calo import evaluate

    _, ref_path = data
    gen_path = _file(tmp_path / "gen.h5", _showers(600, seed=9))
    opts = dict(levels=("high",), gbdt=False, epochs=3, seed=0)

    def whole(path):  # the files' float32 values, in memory
        return Showers.concatenate(list(iter_showers(path, geometry=MINI)))

    in_memory = evaluate(whole(ref_path), {"m": whole(gen_path)}, **opts)
    seen = spy_voxel_reads(monkeypatch)
    streamed = evaluate(ref_path, {"m": gen_path}, chunk_size=128, geometry=MINI, **opts)
    assert seen and all(isinstance(k, slice) and k.stop - k.start <= 128 for k in seen)
    a, b = in_memory["models"]["m"], streamed["models"]["m"]
    assert streamed["reference"]["n_showers"] == 900 and b["n_showers"] == 600
    assert b["fpd"] == pytest.approx(a["fpd"], rel=1e-4)
    assert b["separation_mean"] == pytest.approx(a["separation_mean"], rel=1e-4)
    assert 0 <= b["classifier"]["high"]["auc"] <= 1
    capped = evaluate(ref_path, {"m": gen_path}, chunk_size=128, geometry=MINI,
                      max_showers=300, **opts)  # fmt: skip
    assert capped["models"]["m"]["classifier"]["high"]["n_test"] <= 2 * 300
    assert capped["models"]["m"]["n_showers"] == 600  # features still from every shower


def test_sample_to_file_is_chunk_seeded_and_resumes(data, tmp_path, monkeypatch):
    """Generation into a file: a run cut off after its first chunk resumes from the partial
    file and gives the showers of an uncut run (chunk k has its own seeded generator)."""
    from hepflows.calo.showerstream import partial_path

    showers, _ = data
    m = L2LFlow(MINI, flow1=dict(transforms=1, hidden=[8]), flow2=dict(transforms=1, hidden=[16]),
                moments=0, seed=0)  # fmt: skip
    m.fit_preprocessing(showers[:300])
    energies = np.geomspace(6e3, 4e4, 100)
    whole = m.sample_to_file(tmp_path / "a.h5", energies, "student", seed=3, chunk_size=40,
                             progress=False)  # fmt: skip
    original = L2LFlow.sample

    def cut_after_one(self, *args, **kwargs):
        if cut_after_one.calls == 1:
            raise KeyboardInterrupt
        cut_after_one.calls += 1
        return original(self, *args, **kwargs)

    cut_after_one.calls = 0
    monkeypatch.setattr(L2LFlow, "sample", cut_after_one)
    with pytest.raises(KeyboardInterrupt):
        m.sample_to_file(tmp_path / "b.h5", energies, "student", seed=3, chunk_size=40,
                         progress=False)  # fmt: skip
    assert partial_path(tmp_path / "b.h5").exists() and not (tmp_path / "b.h5").exists()
    monkeypatch.setattr(L2LFlow, "sample", original)
    resumed = m.sample_to_file(tmp_path / "b.h5", energies, "student", seed=3, chunk_size=40,
                               progress=False)  # fmt: skip
    a = Showers.concatenate(list(iter_showers(whole, geometry=MINI)))
    b = Showers.concatenate(list(iter_showers(resumed, geometry=MINI)))
    assert len(b) == 100
    np.testing.assert_allclose(b.energy, energies, rtol=1e-6)
    np.testing.assert_allclose(b.voxels, a.voxels, rtol=1e-6)
    other = Showers.concatenate(list(m.sample_chunks(energies, "student", seed=4, chunk_size=40)))
    assert not np.allclose(other.voxels, a.voxels)
