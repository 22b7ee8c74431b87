"""Saving and loading flows (hepflows.flows.saving): safetensors, atomic, clear errors."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import hepflows.flows.saving as flows_saving
from helpers import random_flow
from hepflows import CheckpointError
from hepflows.flows import IAF, MAF, CouplingFlow, Flow, StandardNormal, load, save
from hepflows.flows.transforms import Compose

F64 = torch.float64


def points(n=64, features=3, dtype=F64):
    return 1.5 * torch.randn(n, features, generator=torch.Generator().manual_seed(0), dtype=dtype)


@pytest.mark.parametrize("name", ["coupling", "maf", "iaf"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_round_trip_same_log_prob_and_dtype(tmp_path, name, dtype):
    flow = random_flow(name, context=2, dtype=dtype)
    path = tmp_path / "flow.safetensors"
    flow.save(path)
    loaded = type(flow).load(path)
    assert type(loaded) is type(flow)
    assert loaded.config == flow.config
    assert loaded.dtype == dtype and all(p.dtype == dtype for p in loaded.parameters())
    assert not loaded.training  # loaded in evaluation mode
    x, c = points(dtype=dtype), torch.rand(64, 2, dtype=dtype)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, c), flow.log_prob(x, c))
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(
            loaded.sample(16, c[0], generator=g1), flow.sample(16, c[0], generator=g2)
        )
    # Module-level load gives the same flow.
    again = load(path)
    assert type(again) is type(flow)
    for (k1, v1), (k2, v2) in zip(
        again.state_dict().items(), flow.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(domain="unit", bins=5, transforms=2, hidden=(8, 8)),
        dict(kind="affine", permutation="swap", seed=7, act="tanh"),
        dict(bound=3.0, bins=12),
    ],
)
def test_round_trip_keeps_every_option(tmp_path, kwargs):
    flow = random_flow("coupling", **kwargs)
    save(flow, tmp_path / "f.safetensors")
    loaded = load(tmp_path / "f.safetensors")
    assert loaded.config == flow.config
    x = torch.rand(32, 3, dtype=F64)  # inside the unit cube: valid for both domains
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), flow.log_prob(x))


def test_round_trip_bayesian_flow(tmp_path):
    flow = CouplingFlow(3, transforms=2, hidden=(8,), bayesian=True).to(F64)
    for p in flow.parameters():  # make the posterior widths differ from their init
        torch.nn.init.normal_(p, 0, 0.3)
    flow.save(tmp_path / "b.safetensors")
    loaded = CouplingFlow.load(tmp_path / "b.safetensors")
    assert torch.equal(loaded.kl(), flow.eval().kl())
    x = points()
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), flow.eval().log_prob(x))


def test_map_location(tmp_path):
    flow = random_flow("maf")
    flow.save(tmp_path / "m.safetensors")
    loaded = MAF.load(tmp_path / "m.safetensors", map_location="cpu")
    assert all(p.device.type == "cpu" for p in loaded.parameters())


# ------------------------------------------------------------------ atomic writes


def test_save_leaves_no_temporary_files_and_creates_folders(tmp_path):
    path = tmp_path / "deep" / "er" / "flow.safetensors"
    random_flow("coupling").save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["flow.safetensors"]


def test_saving_over_an_existing_file_replaces_it(tmp_path):
    path = tmp_path / "flow.safetensors"
    first, second = random_flow("coupling", seed=1), random_flow("coupling", seed=2)
    first.save(path)
    second.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.safetensors"]
    x = points()
    with torch.no_grad():
        assert torch.equal(CouplingFlow.load(path).log_prob(x), second.log_prob(x))
        assert not torch.equal(CouplingFlow.load(path).log_prob(x), first.log_prob(x))


def test_failed_save_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    """A crash half-way through writing leaves the previous file intact."""
    path = tmp_path / "flow.safetensors"
    old = random_flow("coupling", seed=1)
    old.save(path)
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(flows_saving, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        random_flow("coupling", seed=2).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.safetensors"]


# ------------------------------------------------------------------- file format


def test_file_is_safetensors_with_metadata(tmp_path):
    path = tmp_path / "flow.safetensors"
    flow = random_flow("iaf", context=1)
    flow.save(path)
    raw = path.read_bytes()
    # safetensors layout: u64 little-endian header length, then a JSON header.
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["format"] == "hepflows-flow"
    assert header["__metadata__"]["class"] == "IAF"
    assert json.loads(header["__metadata__"]["config"]) == flow.config
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(flow.state_dict())
    assert set(load_file(str(path))) == set(flow.state_dict())
    assert not raw.startswith(b"\x80")  # not a pickle stream
    assert not raw.startswith(b"PK")  # not a torch.save zip archive


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = tmp_path / "flow.safetensors"
    random_flow("maf").save(path)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle/torch.load used while loading a flow")

    for mod, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(mod, attr, forbidden)
    assert isinstance(load(path), MAF)


# ------------------------------------------------------------------------ errors


def test_loading_a_maf_file_as_coupling_flow_names_the_class(tmp_path):
    path = tmp_path / "maf.safetensors"
    random_flow("maf").save(path)
    with pytest.raises(CheckpointError, match=r"holds a MAF\(.*\), not a CouplingFlow.*MAF\.load"):
        CouplingFlow.load(path)
    with pytest.raises(CheckpointError, match="holds a MAF"):
        IAF.load(path)


def test_loading_an_iaf_file_as_maf_raises(tmp_path):
    """MAF.load must not hand back an IAF: the two are different architectures
    (CaloFlow keeps a MAF teacher and an IAF student side by side). IAF subclasses
    MAF in the code, and load() checks ``issubclass``, so the IAF slips through."""
    path = tmp_path / "iaf.safetensors"
    random_flow("iaf").save(path)
    with pytest.raises(CheckpointError, match="holds a IAF|holds an IAF"):
        MAF.load(path)


@pytest.mark.parametrize("keep", [0, 4, 8, 100, 0.5, -1])
def test_truncated_file_raises_checkpoint_error(tmp_path, keep):
    path = tmp_path / "flow.safetensors"
    random_flow("coupling").save(path)
    raw = path.read_bytes()
    cut = int(len(raw) * keep) if isinstance(keep, float) else keep % len(raw)
    path.write_bytes(raw[:cut])
    with pytest.raises(CheckpointError, match="not a readable safetensors file.*save it again"):
        load(path)


def test_garbage_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "flow.safetensors"
    path.write_bytes(b"this is not a flow" * 20)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load(path)


def test_torch_pickle_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "flow.pt"
    torch.save(random_flow("coupling").state_dict(), path)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        CouplingFlow.load(path)


def test_foreign_safetensors_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a saved hepflows flow"):
        load(path)
    save_file({"weight": torch.zeros(3)}, str(path))  # no metadata at all
    with pytest.raises(CheckpointError, match="not a saved hepflows flow"):
        load(path)


def test_missing_file_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no saved flow at .*nope.safetensors"):
        load(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="no saved flow"):
        CouplingFlow.load(tmp_path)  # a directory


def rewrite_metadata(path, **changes):
    """Rewrite a saved flow with some metadata entries changed (None deletes)."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    save_file(tensors, str(path), metadata=meta)


def test_unknown_class_raises_checkpoint_error(tmp_path):
    path = tmp_path / "f.safetensors"
    random_flow("coupling").save(path)
    rewrite_metadata(path, **{"class": "Glow"})
    with pytest.raises(CheckpointError, match="unknown flow class 'Glow'"):
        load(path)


def test_weights_of_another_architecture_raise_checkpoint_error(tmp_path):
    path = tmp_path / "f.safetensors"
    flow = random_flow("coupling")
    flow.save(path)
    config = dict(flow.config, hidden=[8, 8])
    rewrite_metadata(path, config=json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"weights do not fit a CouplingFlow\(.*hidden=\[8, 8\]"
    ):
        load(path)


@pytest.mark.parametrize(
    "meta",
    [
        {"config": None},  # no configuration stored
        {"config": "{not json"},  # corrupt configuration
        {"config": json.dumps({"transforms": 2})},  # incomplete configuration
        {"class": None},  # no class name
    ],
    ids=["no-config", "bad-json", "incomplete", "no-class"],
)
def test_corrupt_metadata_raises_checkpoint_error(tmp_path, meta):
    """A file with the hepflows header but an unusable configuration is a corrupt
    checkpoint: CheckpointError, not a KeyError/JSONDecodeError/TypeError."""
    path = tmp_path / "f.safetensors"
    random_flow("coupling").save(path)
    rewrite_metadata(path, **meta)
    with pytest.raises(CheckpointError):
        load(path)


def test_file_from_a_newer_version_with_an_extra_option(tmp_path):
    """A configuration key this version does not know (e.g. saved by a newer hepflows)
    must give a CheckpointError naming the key, not a TypeError from __init__."""
    path = tmp_path / "f.safetensors"
    flow = random_flow("coupling")
    flow.save(path)
    rewrite_metadata(path, config=json.dumps(dict(flow.config, new_option=1)))
    with pytest.raises(CheckpointError, match="new_option"):
        load(path)


def test_saving_a_flow_without_configuration_raises(tmp_path):
    flow = Flow(Compose([]), StandardNormal(2), features=2)
    with pytest.raises(CheckpointError, match="state_dict"):
        save(flow, tmp_path / "f.safetensors")
    assert list(tmp_path.iterdir()) == []
