"""Sharded event files: one file per block, a sidecar marking it finished, and the merge.

A sharded run (:func:`hepflows.generate.generate_sharded`) writes into one directory::

    shards/block-000017.h5     the events of block 17 (any event format; atomic)
    shards/block-000017.json   its sidecar, written atomically AFTER the events

The sidecar records the run id, the block, its event count and the block's
sums over **all** points it drew (calls, sum w, sum w^2), plus the run's
description (:class:`RunInfo`: seed, events, events per block, number of
blocks, w_max, format, header metadata). Its presence marks the block
finished: a restarted job skips it. :func:`merge_shards` pools the sums of all
blocks into one cross-section and error (plain Monte Carlo over every call of
the run) and rewrites the events, in block order, into one file whose header
carries that sigma and XWGTUP = sigma w_i / N, as :func:`~hepflows.io.write_events`
writes. It refuses shards of different runs and reports missing blocks.

The shard file's own header carries the block's plain-MC estimate; the merge
recovers each event weight w_i = XWGTUP n_b / sigma_b with the sidecar's exact
sigma_b (|w_i| within 1e-9 of 1 is set to exactly 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.io.atomic import atomic_write
from hepflows.io.events import Events
from hepflows.io.lhe import (
    SUFFIXES,
    Particles,
    _is_hdf5,
    _pylhe,
    check_event_path,
    write_events,
    write_lhe,
)
from hepflows.io.lheh5 import read_columns, write_lheh5

#: ``format`` entry of every sidecar.
FORMAT = "hepflows-shard"
#: Version of the sidecar layout.
VERSION = 1
#: Sidecar file names: ``block-<index>.json`` (the index has at least 6 digits).
SIDECAR = re.compile(r"^block-(\d+)\.json$")
#: |w_i| this close to 1 after recovery from a shard is exactly 1.
SNAP = 1e-9
#: Missing blocks listed by name in an error message (the rest are counted).
LISTED = 20


def pooled_sigma(sum_w: float, sum_w2: float, calls: int) -> tuple[float, float]:
    """Plain-MC integral and error from pooled weight sums (of any number of blocks or ranks).

    I = S1 / N and err = sqrt((S2 / N - I^2) / (N - 1)), with S1 = sum w and
    S2 = sum w^2 over all N points (not an average of per-block errors).

    Args:
        sum_w: S1.
        sum_w2: S2.
        calls: N >= 2.

    Returns:
        ``(value, error)``.
    """
    if calls < 2:
        raise ConfigError(f"an error needs at least 2 calls, got {calls}")
    mean = sum_w / calls
    return mean, math.sqrt(max(sum_w2 / calls - mean * mean, 0.0) / (calls - 1))


def _canonical(obj: Any) -> Any:
    """JSON-ready: tuples as lists, recursively (so a read-back RunInfo compares equal)."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    return obj


@dataclass(frozen=True)
class RunInfo:
    """What a sharded run is: everything that decides its events and its header.

    Attributes:
        run_id: 16 hex digits of a SHA-256 over all other fields; every shard carries it.
        seed: seed of the block streams.
        n_events: events of the whole run.
        events_per_block: events of every block but the last (which holds the rest).
        w_max: the one reference weight of the run.
        suffix: event format of the shards (``.lhe``, ``.lhe.gz``, ``.h5``, ``.hdf5``).
        rule: the w_max rule and its quantile (recorded, part of the id).
        quantile: see ``rule``.
        write: keyword arguments of :func:`~hepflows.io.write_events` (beams,
            pdf_set, process_id, scale, aqed): the LHE header of every file.
        extra: anything else that identifies the run (integrator fingerprint,
            batch size, process name); JSON values.
    """

    run_id: str
    seed: int
    n_events: int
    events_per_block: int
    w_max: float
    suffix: str
    rule: str = "quantile"
    quantile: float = 0.999
    write: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        seed: int,
        n_events: int,
        events_per_block: int,
        w_max: float,
        suffix: str,
        rule: str = "quantile",
        quantile: float = 0.999,
        write: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RunInfo:
        """A run description with its id computed from all fields (checked)."""
        if n_events < 1 or events_per_block < 1:
            raise ConfigError(
                f"n_events and events_per_block must be >= 1, got {n_events}, {events_per_block}"
            )
        if not (math.isfinite(w_max) and w_max > 0):
            raise ConfigError(f"w_max must be finite and > 0, got {w_max}")
        if suffix not in SUFFIXES:
            raise ConfigError(f"unknown shard format {suffix!r}: choose one of {SUFFIXES}")
        fields = dict(seed=int(seed), n_events=int(n_events),
                      events_per_block=int(events_per_block), w_max=float(w_max), suffix=suffix,
                      rule=rule, quantile=float(quantile), write=_canonical(write or {}),
                      extra=_canonical(extra or {}))  # fmt: skip
        text = json.dumps(fields, sort_keys=True, allow_nan=False)
        return cls(run_id=hashlib.sha256(text.encode()).hexdigest()[:16], **fields)

    @property
    def n_blocks(self) -> int:
        """Number of blocks of the run."""
        return math.ceil(self.n_events / self.events_per_block)

    def block_events(self, block: int) -> int:
        """Events of block ``block`` (the last block holds the remainder)."""
        if not 0 <= block < self.n_blocks:
            raise ConfigError(f"block {block} is outside the run's {self.n_blocks} blocks")
        return min(self.events_per_block, self.n_events - block * self.events_per_block)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return _canonical(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)

    def write_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~hepflows.io.write_events` (beams as a tuple)."""
        out = dict(self.write)
        if "beams" in out:
            out["beams"] = tuple(out["beams"])
        return out


@dataclass(frozen=True)
class Shard:
    """One finished block, as its sidecar describes it.

    Attributes:
        sidecar: the sidecar's path; ``path`` is the event file next to it.
        run_id, block, blocks: the run, this block's index, the run's number of blocks.
        events: events in the file.
        calls, sum_w, sum_w2: the block's sums over every point it drew.
        sigma: the block's plain-MC estimate, used for XWGTUP in the shard file.
        max_weight: the largest |w_i| of its events (1, or more with overweights).
        negative: whether some event weight is negative.
        run: the run's :class:`RunInfo` fields.
    """

    sidecar: Path
    path: Path
    run_id: str
    block: int
    blocks: int
    events: int
    calls: int
    sum_w: float
    sum_w2: float
    sigma: float
    max_weight: float
    negative: bool
    run: dict[str, Any]


def shard_paths(directory: str | os.PathLike, block: int, suffix: str) -> tuple[Path, Path]:
    """``(event file, sidecar)`` of block ``block`` in ``directory``."""
    directory = Path(directory)
    return directory / f"block-{block:06d}{suffix}", directory / f"block-{block:06d}.json"


def read_shard(sidecar: str | os.PathLike) -> Shard:
    """The :class:`Shard` a sidecar file describes.

    Raises:
        InputError: the file is not a readable hepflows shard sidecar.
    """
    path = Path(sidecar)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"no '{FORMAT}' format entry")
        return Shard(
            sidecar=path, path=path.parent / data["file"], run_id=data["run_id"],
            block=int(data["block"]), blocks=int(data["blocks"]), events=int(data["events"]),
            calls=int(data["calls"]), sum_w=float(data["sum_w"]), sum_w2=float(data["sum_w2"]),
            sigma=float(data["sigma"]), max_weight=float(data["max_weight"]),
            negative=bool(data["negative"]), run=data["run"],
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            f"{path} is not a readable shard sidecar ({err}): delete it and its event "
            "file, then re-run the same command to regenerate that block"
        ) from None


def read_shards(directory: str | os.PathLike) -> list[Shard]:
    """Every sidecar of ``directory`` (sorted by block, then name); none if it does not exist.

    Raises:
        InputError: a sidecar that is not a readable hepflows shard description.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    shards = [read_shard(p) for p in sorted(directory.iterdir()) if SIDECAR.match(p.name)]
    return sorted(shards, key=lambda s: (s.block, s.sidecar.name))


def finished_blocks(directory: str | os.PathLike, run: RunInfo) -> set[int]:
    """Blocks of ``run`` already finished in ``directory`` (sidecar and event file present).

    Raises:
        InputError: the directory holds blocks of another run.
    """
    shards = read_shards(directory)
    foreign = [s for s in shards if s.run_id != run.run_id]
    if foreign:
        names = ", ".join(s.sidecar.name for s in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise InputError(
            f"{directory} holds blocks of another run (run id {foreign[0].run_id}: {names}"
            f"{more}; this run is {run.run_id}): remove them (with their event files) or "
            "choose another output directory"
        )
    return {s.block for s in shards if s.path.is_file()}


def write_shard(
    directory: str | os.PathLike,
    run: RunInfo,
    block: int,
    x: Tensor,
    weights: Tensor,
    calls: int,
    sum_w: float,
    sum_w2: float,
    particles: Particles | None = None,
    scales: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
) -> Shard:
    """Write block ``block``'s events, then its sidecar (each atomically).

    Args:
        directory: the run's shard directory (created if needed).
        run: the run.
        block: the block index.
        x: (n, d) event points (of the full phase space when the integrand was folded).
        weights: (n,) event weights (+-1, or beyond for overweight events).
        calls: points the block drew (accepted or not).
        sum_w: sum of their weights.
        sum_w2: sum of their squared weights.
        particles: maps ``x`` to particle records (physics); ``None`` stores the coordinates.
        scales: per-event (SCALUP, AQCDUP) of the points, (n, d) -> two (n,) (processes
            with a dynamic scale); ``None``: the run's header values.

    Returns:
        The :class:`Shard` as :func:`read_shards` will read it.
    """
    n = len(weights)
    if n != run.block_events(block) or x.shape[0] != n:
        raise ConfigError(
            f"block {block} must hold {run.block_events(block)} events, got {x.shape[0]} "
            f"points and {n} weights"
        )
    sigma, error = pooled_sigma(sum_w, sum_w2, calls)
    if sigma == 0:
        raise ConfigError(f"block {block}: the weights sum to zero; the integrand vanishes")
    path, sidecar = shard_paths(directory, block, run.suffix)
    aw = weights.abs()
    events = Events(
        x=x, weights=weights, sigma=sigma, sigma_error=error, w_max=run.w_max, rule=run.rule,
        quantile=run.quantile, efficiency=n / calls,
        overweight_fraction=(aw > 1).to(torch.float64).mean().item(), calls=calls,
    )  # fmt: skip
    write_events(path, events, particles=particles, scales=scales, **run.write_kwargs())
    data = {
        "format": FORMAT, "version": VERSION, "run_id": run.run_id, "block": block,
        "blocks": run.n_blocks, "file": path.name, "events": n, "calls": int(calls),
        "sum_w": float(sum_w), "sum_w2": float(sum_w2), "sigma": sigma, "error": error,
        "w_max": run.w_max, "max_weight": aw.max().item(), "negative": bool((weights < 0).any()),
        "run": run.to_dict(),
    }  # fmt: skip
    text = json.dumps(data, indent=1, allow_nan=False)
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(text))
    return read_shard(sidecar)


@dataclass
class MergeReport:
    """What :func:`merge_shards` wrote.

    Attributes:
        path: the merged event file.
        run_id: the run.
        blocks: blocks merged.
        events: events written (N).
        calls: points drawn by all blocks.
        sigma: pooled plain-MC cross-section (header XSECUP).
        sigma_error: its error (XERRUP).
        w_max: the run's reference weight.
    """

    path: Path
    run_id: str
    blocks: int
    events: int
    calls: int
    sigma: float
    sigma_error: float
    w_max: float

    def summary(self) -> str:
        """A few lines a person reads."""
        return "\n".join([
            f"merged        = {self.blocks} blocks of run {self.run_id} -> {self.path}",
            f"events        = {self.events:,} unweighted",
            f"sigma         = {self.sigma:.6g} +- {self.sigma_error:.3g} "
            f"(pooled over {self.calls:,} calls)",
            f"w_max         = {self.w_max:.4g}",
        ])  # fmt: skip


def _list_blocks(blocks: Sequence[int]) -> str:
    shown = ", ".join(str(b) for b in blocks[:LISTED])
    return shown + (f" and {len(blocks) - LISTED} more" if len(blocks) > LISTED else "")


def _check_complete(directory: Path, shards: list[Shard], expected: int | None) -> int:
    """The run's number of blocks, after checking that every block is there exactly once."""
    runs: dict[str, list[str]] = {}
    for s in shards:
        runs.setdefault(s.run_id, []).append(s.sidecar.name)
    if len(runs) > 1:
        parts = "; ".join(f"run {rid}: {', '.join(names[:5])}"
                          + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                          for rid, names in runs.items())  # fmt: skip
        raise InputError(
            f"{directory} holds shards of {len(runs)} different runs ({parts}): merge one "
            "run at a time (move the other run's block-* files to another directory)"
        )
    totals = {s.blocks for s in shards}
    if len(totals) > 1:
        raise InputError(f"the sidecars in {directory} disagree on the number of blocks "
                         f"({sorted(totals)}): they were edited; regenerate the run")  # fmt: skip
    total = totals.pop()
    if expected is not None and expected != total:
        raise InputError(f"expected {expected} blocks but the run in {directory} has {total}: "
                         "check the directory or the expected count")  # fmt: skip
    seen = Counter(s.block for s in shards)
    beyond = sorted(b for b in seen if not 0 <= b < total)
    doubled = sorted(b for b, k in seen.items() if k > 1)
    if beyond or doubled:
        raise InputError(f"{directory}: sidecars for blocks {_list_blocks(beyond + doubled)} "
                         f"do not belong to a run of {total} blocks: delete them")  # fmt: skip
    lost = [s.block for s in shards if not s.path.is_file()]
    missing = sorted(set(range(total)) - set(seen) | set(lost))
    if missing:
        note = (f" (the event files of blocks {_list_blocks(lost)} are gone: delete their "
                "sidecars too)" if lost else "")  # fmt: skip
        raise InputError(
            f"blocks {_list_blocks(missing)} of {total} are missing in {directory}{note}: "
            "re-run the same command to finish them (finished blocks are skipped)"
        )
    return total


def merge_shards(
    directory: str | os.PathLike, out: str | os.PathLike, expected_blocks: int | None = None
) -> MergeReport:
    """Merge the shards of one run into one event file (atomically), in block order.

    The header's cross-section and error are the plain-MC estimate from the
    pooled sums of every block (:func:`pooled_sigma`); each event gets XWGTUP =
    sigma w_i / N over the N events of the run. Events are streamed, so the
    run need not fit in memory.

    Args:
        directory: the shard directory.
        out: the merged file (``.lhe``, ``.lhe.gz``, ``.h5``, ``.hdf5``; any format,
            whatever the shards' format).
        expected_blocks: the number of blocks the run must have (default: as
            recorded in every sidecar).

    Returns:
        A :class:`MergeReport`.

    Raises:
        InputError: no shards, shards of different runs, missing blocks (listed),
            or an event file that does not match its sidecar.
    """
    directory = Path(directory)
    out = check_event_path(out, "--out")
    if not directory.is_dir():
        raise InputError(f"no shard directory {directory}: check the path")
    shards = read_shards(directory)
    if not shards:
        raise InputError(f"no shards (block-*.json) in {directory}: generate the run first")
    blocks = _check_complete(directory, shards, expected_blocks)
    run = RunInfo.from_dict(shards[0].run)
    n = sum(s.events for s in shards)
    if n != run.n_events:
        raise InputError(f"the shards in {directory} hold {n} events, the run has "
                         f"{run.n_events}: they were edited; regenerate the run")  # fmt: skip
    calls = sum(s.calls for s in shards)
    sigma, error = pooled_sigma(math.fsum(s.sum_w for s in shards),
                                math.fsum(s.sum_w2 for s in shards), calls)  # fmt: skip
    first = _open(shards[0])
    init, header = first.init, first.header
    negative = any(s.negative for s in shards)
    init.initInfo.weightingStrategy = -4 if negative else 4
    init.procInfo = [dataclasses.replace(
        init.procInfo[0], xSection=sigma, error=error,
        unitWeight=abs(sigma) * max(s.max_weight for s in shards) / n,
    )]  # fmt: skip
    if _is_hdf5(out) and all(_is_hdf5(sh.path) for sh in shards):
        write_lheh5(out, init, _reweighted_columns(shards, sigma, n), header)
    else:
        write_lhe(out, init, _reweighted(shards, first.events, sigma, n), header)
    return MergeReport(out, run.run_id, blocks, n, calls, sigma, error, run.w_max)


def _open(shard: Shard) -> Any:
    """The shard's event file as a ``pylhe.LHEFile`` whose events are read lazily."""
    pylhe = _pylhe("Merging LHE event files")
    try:
        return pylhe.LHEFile.fromfile(str(shard.path), generator=True)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {shard.path} ({err}): delete it and "
                         f"{shard.sidecar.name}, then re-run the same command to regenerate "
                         "it") from None  # fmt: skip


def _reweighted(
    shards: list[Shard], first: Iterator[Any], sigma: float, n: int
) -> Iterator[Any]:
    """The events of every shard in block order, with XWGTUP = sigma w_i / n.

    ``first`` are the (lazily read) events of ``shards[0]``, already opened.
    """
    for k, s in enumerate(shards):
        events = first if k == 0 else _open(s).events
        count = 0
        for event in events:
            event.eventinfo.weight = float(_rescaled(event.eventinfo.weight, s, sigma, n))
            count += 1
            yield event
        _check_count(s, count)


def _rescaled(xwgtup: Any, shard: Shard, sigma: float, n: int) -> Any:
    """XWGTUP of a shard's events (a float or an array) rescaled to the merged run.

    The shard wrote sigma_b w_i / n_b; w_i is recovered (snapped to exactly +-1
    within :data:`SNAP`) and written as sigma w_i / n.
    """
    w = np.asarray(xwgtup, dtype=np.float64) * shard.events / shard.sigma
    w = np.where(np.abs(np.abs(w) - 1) < SNAP, np.sign(w), w)
    return sigma * w / n


def _check_count(shard: Shard, count: int) -> None:
    if count != shard.events:
        raise InputError(
            f"{shard.path} holds {count} events but its sidecar {shard.sidecar.name} says "
            f"{shard.events}: the file is truncated or was replaced; delete both and re-run "
            "the same command to regenerate the block"
        )


def _reweighted_columns(
    shards: list[Shard], sigma: float, n: int
) -> Iterator[tuple[dict[str, Any], Any]]:
    """Every LHEH5 shard's event columns and particle rows in block order, XWGTUP
    rescaled as :func:`_reweighted` does, the first particle rows recounted."""
    for s in shards:
        try:
            events, particles = read_columns(s.path)
        except (OSError, KeyError) as err:
            raise InputError(f"cannot read {s.path} ({err}): delete it and {s.sidecar.name}, "
                             "then re-run the same command to regenerate it") from None
        _check_count(s, len(events["NOMINAL"]))
        events["NOMINAL"] = _rescaled(events["NOMINAL"], s, sigma, n)
        del events["start"]  # the writer counts the rows of the merged table
        yield events, particles
