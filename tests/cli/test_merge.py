"""``hepflows generate drell-yan --shards`` and ``hepflows merge``: a sharded run through the
command line, its merged file equal to the one ``hepflows merge`` writes and to the one of two
workers under torchrun; one-line errors (exit 2) for a missing or incomplete shard directory.

The sharding itself (streams per block, pooled sigma, restarts, foreign runs) is tested in
tests/io/test_shards.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hepflows import cli
from hepflows.cli.generate import SHARD_INTEGRATOR
from hepflows.io import read_events

#: A tiny sharded Drell-Yan run: 200 events in blocks of 80 (the last holds 40).
TINY = ["--train-calls", "2000", "--calls", "2000", "--events", "200", "--events-per-block", "80"]


def sigma_of(output: str) -> tuple[float, float]:
    """The sigma and error of a printed merge summary."""
    found = re.search(r"sigma\s+= (\S+) \+- (\S+)", output)
    assert found is not None, output
    return float(found[1]), float(found[2])


def flat(output: str) -> str:
    """Printed text on one line (rich wraps lines at the terminal width)."""
    return " ".join(output.split())


def content(path: Path) -> tuple[float, float, list]:
    """(sigma, error, events as (XWGTUP, particle momenta)) of an event file."""
    init, events = read_events(path)
    records = [(e.eventinfo.weight, [(p.id, p.status, p.px, p.py, p.pz, p.e) for p in e.particles])
               for e in events]  # fmt: skip
    return init.procInfo[0].xSection, init.procInfo[0].error, records


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, Path, str]:
    """(shard directory, merged file, printed report) of a one-process sharded run."""
    tmp = tmp_path_factory.mktemp("sharded")
    shards, out = tmp / "shards", tmp / "dy.lhe.gz"
    argv = ["generate", "drell-yan", *TINY, "--shards", str(shards), "--out", str(out)]
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    return shards, out, flat(result.output)


def run_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["hepflows", *argv])
    with pytest.raises(SystemExit) as info:
        cli.run()
    return info.value.code, capsys.readouterr().err


def test_sharded_generation_writes_shards_and_the_merged_file_of_the_report(sharded):
    shards, out, output = sharded
    names = sorted(p.name for p in shards.iterdir())
    assert names == sorted([SHARD_INTEGRATOR, *(f"block-00000{b}{s}" for b in range(3)
                                                for s in (".json", ".lhe.gz"))])  # fmt: skip
    sigma, error, events = content(out)
    assert len(events) == 200 and "3 blocks of run" in output
    assert sigma_of(output) == (pytest.approx(sigma, rel=1e-5), pytest.approx(error, rel=1e-2))
    # XWGTUP = sigma w_i / N with w_i = 1 (or > 1: overweights); the header's sigma has 8 digits
    weights = [w / (sigma / 200) for w, _ in events]
    assert all(w > 1 - 1e-7 for w in weights) and sum(abs(w - 1) < 1e-7 for w in weights) > 190


def test_merge_rewrites_the_same_events(sharded, tmp_path):
    shards, out, _ = sharded
    again = tmp_path / "again.lhe"  # another format than the shards': the events are equal
    result = CliRunner().invoke(cli.app, ["merge", str(shards), "--out", str(again)])
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert sigma_of(output) == pytest.approx(sigma_of(sharded[2]))
    assert "events = 200 unweighted" in output and "merged = 3 blocks of run" in output
    assert content(again) == content(out)


def test_a_rerun_skips_the_finished_blocks_and_loads_the_integrator(sharded, tmp_path):
    shards, out, _ = sharded
    copy, merged = tmp_path / "shards", tmp_path / "dy.lhe.gz"
    shutil.copytree(shards, copy)
    (copy / "block-000001.json").unlink()  # block 1 unfinished: the only one regenerated
    argv = ["generate", "drell-yan", *TINY, "--shards", str(copy), "--out", str(merged)]
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert f"loadedfrom{copy / SHARD_INTEGRATOR}" in output.replace(" ", "")  # wrapped anywhere
    assert "1 generated, 2 already finished" in output
    assert content(merged) == content(out)


def test_no_merge_is_the_same_run_and_leaves_the_shards(sharded, tmp_path):
    shards, _, _ = sharded
    copy, out = tmp_path / "shards", tmp_path / "dy.lhe.gz"
    shutil.copytree(shards, copy)
    argv = ["generate", "drell-yan", *TINY, "--shards", str(copy), "--out", str(out),
            "--no-merge"]  # fmt: skip
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert "0 generated, 3 already finished" in output  # the same run: nothing to do
    assert f"hepflowsmerge{copy}--out" in output.replace(" ", "") and "sigma" not in output
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing", "file", "incomplete", "bad out"])
def test_merge_errors_exit_2_with_one_line(case, sharded, monkeypatch, capsys, tmp_path):
    shards, _, _ = sharded
    target, out, message = tmp_path / "nope", tmp_path / "all.lhe.gz", "no shard directory"
    if case == "file":
        target = tmp_path / "shards.txt"
        target.write_text("")
        message = "is a file: give the directory holding the shards"
    elif case == "incomplete":
        target = tmp_path / "shards"
        shutil.copytree(shards, target)
        for name in ("block-000001.json", "block-000001.lhe.gz"):
            (target / name).unlink()
        message = "blocks 1 of 3 are missing"
    elif case == "bad out":
        target, out, message = shards, tmp_path / "all.txt", "cannot tell the event file format"
    code, err = run_main(["merge", str(target), "--out", str(out)], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists()


def test_two_workers_under_torchrun_write_the_events_of_one_process(sharded, tmp_path):
    """--workers 2: trained once here, then two ranks (torchrun) load it; same merged file."""
    _, out, _ = sharded
    shards, merged = tmp_path / "shards", tmp_path / "dy.lhe.gz"
    cmd = [sys.executable, "-m", "hepflows", "generate", "drell-yan", *TINY,
           "--shards", str(shards), "--out", str(merged), "--workers", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = flat(done.stdout)
    # blocks are claimed by whichever rank is free: rank 0 made some of the 4, not a fixed 2
    assert "on 2 process(es)" in output and re.search(r"rank 0: [0-4] generated", output)
    assert output.count("merged = ") == 1  # only the main rank prints
    assert (shards / SHARD_INTEGRATOR).is_file()
    assert content(merged) == content(out)
