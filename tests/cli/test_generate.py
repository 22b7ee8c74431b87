"""``hepflows generate drell-yan`` and ``hepflows generate decay``: defaults from the library,
options and outputs checked before any work, one-line errors that name the options.

The end-to-end runs (events written, read back, Dalitz plot) are in tests/test_generate.py and
tests/test_generate_decay.py, next to the workflow they run.
"""

from __future__ import annotations

import math
import sys

import pytest
import typer

from hepflows import cli
from hepflows.cli import generate as cli_generate
from hepflows.generate import DECAY_DEFAULTS, DEFAULTS, generate_events
from hepflows.physics.processes.drell_yan import LEPTONS, DrellYanParameters


def params(name: str) -> dict[str, object]:
    group = typer.main.get_command(cli_generate.app)
    command = group.get_command(typer.Context(group), name)
    return {p.name: p.default for p in command.params}


def run_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["hepflows", "generate", *argv])
    with pytest.raises(SystemExit) as info:
        cli.run()
    return info.value.code, capsys.readouterr().err


@pytest.fixture
def no_work(monkeypatch):
    """Make every expensive step fail: a check that comes too late fails the test."""
    import hepflows.generate
    import hepflows.physics
    import hepflows.physics.decays
    import hepflows.physics.processes

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(cli_generate, "generate_events", refuse)
    monkeypatch.setattr(cli_generate, "generate_sharded", refuse)
    monkeypatch.setattr(hepflows.generate, "generate_decay", refuse)
    monkeypatch.setattr(hepflows.physics, "DrellYan", refuse)
    monkeypatch.setattr(hepflows.physics.processes, "MultiJet", refuse)
    monkeypatch.setattr(hepflows.physics.processes, "DrellYanJets", refuse)
    monkeypatch.setattr(hepflows.physics.decays, "get_decay", refuse)


# ------------------------------------------------------------------ defaults
def test_drell_yan_defaults_are_the_librarys():
    p, dy = params("drell-yan"), DrellYanParameters()
    assert int(float(p["train_calls"])) == DEFAULTS["train_calls"]
    assert int(float(p["calls"])) == DEFAULTS["calls"]
    assert p["seed"] == DEFAULTS["seed"]
    assert p["multichannel"] is True and p["fold"] is True
    import inspect

    workflow = inspect.signature(generate_events).parameters
    assert (p["multichannel"], p["fold"]) == (workflow["multichannel"].default,
                                              workflow["fold"].default)  # fmt: skip
    assert p["channel_weights"] == workflow["channel_weights"].default == "mixture"
    assert LEPTONS[p["lepton"]] == dy.lepton
    assert (p["zprime"], p["pdf"]) == (dy.zprime, dy.pdf)
    assert (p["mll_min"], p["pt_min"]) == (dy.sqrt_s_hat_min, dy.lepton_pt_min)
    assert p["eta_max"] is None and math.isinf(dy.lepton_eta_max)


def test_decay_defaults_are_the_librarys():
    p = params("decay")
    assert int(float(p["train_calls"])) == DECAY_DEFAULTS["train_calls"]
    assert int(float(p["calls"])) == DECAY_DEFAULTS["calls"]
    assert p["seed"] == DECAY_DEFAULTS["seed"] and p["method"] == DECAY_DEFAULTS["method"]


# ------------------------------------------------------------------ checked before any work
BAD = [
    (["drell-yan", "--out", "/proc/x.lhe"], "cannot write the event file --out /proc/x.lhe"),
    (["drell-yan", "--out", "dy.txt"], "cannot tell the event file format of --out dy.txt"),
    (["drell-yan", "--integrator", "/proc/dy.safetensors"],
     "cannot write the integrator --integrator /proc/dy.safetensors"),
    (["drell-yan", "--events", "abc"], "--events must be a number"),
    (["drell-yan", "--calls", "0"], "--calls must lie between 1 and 1e13"),
    (["drell-yan", "--channel-weights", "prior"],
     "--channel-weights must be one of mixture, learned, got 'prior'"),
    (["drell-yan", "--workers", "2"], "--workers 2 splits a sharded run: add --shards DIR"),
    (["drell-yan", "--shards", "s", "--events", "0"], "--events must be >= 1 with --shards"),
    (["drell-yan", "--shards", "s", "--events-per-block", "0"],
     "--events-per-block must lie between 1 and 1e13"),
    (["drell-yan", "--shards", "/proc/s"], "cannot write shards into --shards /proc/s"),
    (["drell-yan", "--shards", "s", "--out", "dy.txt", "--no-merge"],
     "cannot tell the event file format of --out dy.txt"),
    (["decay", "pi1800", "--out", "d.txt"], "cannot tell the event file format of --out d.txt"),
    (["decay", "pi1800", "--out", "/proc/d.lhe"], "cannot write the event file --out"),
    (["decay", "pi1800", "--plot", "d.jpg"], "cannot tell the plot format of --plot d.jpg"),
    (["decay", "pi1800", "--plot", "/proc/d.png"], "cannot write the plot --plot /proc/d.png"),
    (["decay", "pi1800", "--method", "vegas"], "--method must be one of fab, variance, rkl"),
    (["decay", "pi1800", "--integrator", "/proc/d.safetensors"], "--integrator"),
    (["pp-jets", "--out", "j.txt"], "cannot tell the event file format of --out j.txt"),
    (["pp-jets", "--scale", "ht"], "--scale must be a positive number of GeV or ht/2"),
    (["pp-jets", "--scale", "-5"], "--scale must be a positive number of GeV or ht/2"),
    (["pp-jets", "--channel-weights", "prior"], "--channel-weights must be one of"),
    (["drell-yan", "--scale", "ht/2"], "--scale ht/2 needs jets"),
    (["drell-yan", "--jets", "1", "--pt-min", "20"], "with --jets the cuts are --jet-pt-min"),
    (["pp-jets", "--workers", "2"], "--workers 2 splits a sharded run: add --shards DIR"),
    (["pp-jets", "--shards", "/proc/s"], "cannot write shards into --shards /proc/s"),
    (["pp-jets", "--shards", "s", "--events", "0"], "--events must be >= 1 with --shards"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_options_exit_2_with_one_line_before_any_work(
    argv, message, no_work, monkeypatch, capsys, tmp_path
):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(argv, monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_shards_must_be_a_directory(no_work, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").write_text("")
    code, err = run_main(["drell-yan", "--shards", "s"], monkeypatch, capsys)
    assert code == 2 and "--shards s is a file: give a directory for the shards" in err


def test_workers_are_refused_under_torchrun(no_work, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "localhost"),
                        ("MASTER_PORT", "29500")):  # fmt: skip
        monkeypatch.setenv(name, value)
    code, err = run_main(["drell-yan", "--shards", "s", "--workers", "2"], monkeypatch, capsys)
    assert code == 2 and "under torchrun drop --workers" in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_lepton_names_the_choices(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["drell-yan", "--lepton", "tau"], monkeypatch, capsys)
    assert code == 2 and "unknown lepton 'tau': choose one of e, mu" in err


def test_unknown_decay_names_the_choices(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["decay", "omega", "--events", "0"], monkeypatch, capsys)
    assert code == 2 and "unknown decay 'omega': choose one of lambda-c, pi1800" in err


def test_a_restart_says_it_reuses_the_saved_integrator(no_work, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "integrator.safetensors").write_text("")
    monkeypatch.setattr(sys, "argv", ["hepflows", "generate", "drell-yan", "--shards", "s"])
    with pytest.raises(AssertionError, match="work started"):  # the no_work stop, after the note
        cli.run()
    out = capsys.readouterr().out
    assert "reusing the integrator s/integrator.safetensors" in out and "delete" in out
