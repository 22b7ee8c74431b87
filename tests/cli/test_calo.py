"""The ``hepflows calo`` commands: simulate -> train -> generate -> evaluate, and clean errors.

One tiny chain (400 toy showers in the CaloGAN geometry, flow II with one block of
width 16, one epoch per stage) is run once per module through the real command
line (typer's CliRunner). The tests read the files back with
:func:`hepflows.calo.read_showers` and check layouts, shapes, energies and the
evaluation report. Bad input must end with exit code 2, a one-line ``error:`` on
stderr, no traceback and no file written.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hepflows.calo import CaloFlow, read_showers
from hepflows.calo.models import load_model
from hepflows.calo.showerfiles import detect_layout
from hepflows.cli import app, run

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
N_SIM = 400
TINY_TRAIN = ["--epochs-flow1", "1", "--epochs-teacher", "1", "--epochs-student", "1",
              "--batch-size", "100", "--transforms", "1", "--bins", "4",
              "--hidden", "16"]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks gain nothing from threads, and two threads on a busy 2-core machine
    are many times slower than one; the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cli(*args: str) -> str:
    """Run ``hepflows calo ARGS`` in-process; it must succeed.

    Returns:
        Its output with runs of white space as one space (rich wraps at the terminal width).
    """
    result = runner.invoke(app, ["calo", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return " ".join(result.output.split())


def test_calo_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["calo", "--help"])
    assert result.exit_code == 0
    for command in ("simulate", "train", "generate", "evaluate"):
        assert command in result.output


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path | str]:
    """simulate (CaloGAN layout) -> train -> generate (student and teacher), once (train's
    --seed, default 0, also seeds the flows' initial weights)."""
    d = tmp_path_factory.mktemp("calo_cli")
    p = {
        k: d / name
        for k, name in [
            ("sim", "sim.h5"),
            ("model", "model.safetensors"),
            ("student", "student.h5"),
            ("teacher", "teacher.h5"),
        ]
    }
    p["sim_output"] = _cli("simulate", "--out", p["sim"], "--events", N_SIM, "--layout", "calogan",
                           "--energy-min", 10, "--energy-max", 50, "--seed", 3)  # fmt: skip
    p["train_output"] = _cli("train", p["sim"], "--out", p["model"], *TINY_TRAIN)
    p["student_output"] = _cli("generate", p["model"], "--out", p["student"], "--events", 150,
                               "--energy-min", 20, "--energy-max", 40,
                               "--layout", "calochallenge", "--seed", 1)  # fmt: skip
    p["teacher_output"] = _cli("generate", p["model"], "--out", p["teacher"], "--model",
                               "teacher", "--like", p["sim"], "--seed", 2)  # fmt: skip
    return p


# ------------------------------------------------------------------ simulate


def test_simulate_writes_the_requested_layout_and_energy_range(chain, tmp_path) -> None:
    assert "wrote 400 showers" in chain["sim_output"] and "calogan layout" in chain["sim_output"]
    with h5py.File(chain["sim"]) as f:
        assert set(f) == {"energy", "layer_0", "layer_1", "layer_2", "overflow"}
        assert f["energy"].shape == (N_SIM, 1) and f["layer_1"].shape == (N_SIM, 12, 12)
        gev = f["energy"][:, 0]
        assert 10 <= gev.min() and gev.max() <= 50  # CaloGAN files store GeV
    sim = read_showers(chain["sim"])
    assert len(sim) == N_SIM and sim.geometry.name == "calogan"
    assert sim.voxels.shape == (N_SIM, 504)
    assert 1e4 <= sim.energy.min() and sim.energy.max() <= 5e4  # MeV
    assert sim.voxels.sum(1).min() > 0

    # Same seed, other layout: the same showers (up to float32 storage).
    cc = tmp_path / "cc.h5"
    _cli("simulate", "--out", cc, "--events", N_SIM, "--energy-min", 10, "--energy-max", 50,
         "--seed", 3)  # the default layout  # fmt: skip
    with h5py.File(cc) as f:
        assert set(f) == {"incident_energies", "showers"}
        assert f["showers"].shape == (N_SIM, 504)
    same = read_showers(cc)
    assert detect_layout(cc) == "calochallenge" and same.geometry.name == "calogan"
    np.testing.assert_allclose(same.energy, sim.energy, rtol=1e-6)
    np.testing.assert_allclose(same.voxels, sim.voxels, rtol=1e-6, atol=1e-6)


def test_simulate_other_geometry_and_seed(tmp_path) -> None:
    out = tmp_path / "ds1.h5"
    _cli("simulate", "--out", out, "--events", 50, "--geometry", "calochallenge-ds1-photon",
         "--distribution", "log-uniform", "--seed", 4)  # fmt: skip
    ds1 = read_showers(out)
    assert ds1.geometry.name == "calochallenge-ds1-photon" and ds1.voxels.shape == (50, 368)
    assert 1e3 <= ds1.energy.min() and ds1.energy.max() <= 1e5  # default 1-100 GeV
    other = tmp_path / "ds1_seed5.h5"
    _cli("simulate", "--out", other, "--events", 50, "--geometry", "calochallenge-ds1-photon",
         "--distribution", "log-uniform", "--seed", 5)  # fmt: skip
    assert not np.array_equal(read_showers(other).energy, ds1.energy)


def test_simulate_spot_options(tmp_path) -> None:
    """--max-spots caps the spots (fewer lit strips); --no-spot-fluctuations gives GFlash's
    equal spots, so voxels repeat one spot energy."""
    paths = {}
    for name, extra in (("full", ()), ("capped", ("--max-spots", 200)),
                        ("equal", ("--max-spots", 200, "--no-spot-fluctuations"))):  # fmt: skip
        paths[name] = tmp_path / f"{name}.h5"
        _cli("simulate", "--out", paths[name], "--events", 60, "--energy-min", 40,
             "--energy-max", 40.001, *extra)  # fmt: skip
    lit = {k: (read_showers(v).voxels > 0).sum(1).mean() for k, v in paths.items()}
    assert lit["capped"] < 0.6 * lit["full"], lit
    vox = read_showers(paths["equal"]).voxels
    values = np.round(vox[vox > 0], 6)
    assert len(np.unique(values)) < 0.95 * len(values)  # exact repeats of one spot energy
    vox = read_showers(paths["capped"]).voxels
    assert len(np.unique(np.round(vox[vox > 0], 6))) == (vox > 0).sum()


# ------------------------------------------------------------------ train


def test_train_writes_a_loadable_model_with_its_history(chain) -> None:
    out = chain["train_output"]
    assert "400 showers (calogan, 504 voxels)" in out and "CaloFlow training" in out
    assert chain["model"].is_file()
    assert chain["model"].with_name("model.safetensors.ckpt").is_file()  # default OUT.ckpt
    model, extra = CaloFlow.load(chain["model"])
    assert model.geometry.name == "calogan" and model.student is not None
    assert model.flow2_config == {"transforms": 1, "bins": 4, "hidden": [16]}
    assert model.teacher.config["features"] == 504 and model.teacher.config["context"] == 16
    assert model.moments == 2  # energy, 3 layer energies, 3 x (centre, width) in x and y
    assert bool(model.fitted)
    assert extra["layout"] == "calogan" and extra["training_file"] == str(chain["sim"])
    history = extra["history"]
    assert set(history) == {"flow1", "teacher", "student"}
    for stage in history.values():
        assert len(stage["train"]) == len(stage["val"]) == 1
        assert math.isfinite(stage["val"][0]) and stage["best_epoch"] == 0


# ------------------------------------------------------------------ generate


def test_generate_student_showers_in_the_requested_layout(chain, tmp_path) -> None:
    assert "wrote 150 showers (student, calochallenge layout)" in chain["student_output"]
    assert detect_layout(chain["student"]) == "calochallenge"
    gen = read_showers(chain["student"])
    assert len(gen) == 150 and gen.geometry.name == "calogan"
    assert gen.voxels.shape == (150, 504)
    assert 2e4 <= gen.energy.min() and gen.energy.max() <= 4e4  # --energy-min/max in GeV
    assert np.isfinite(gen.voxels).all() and (gen.voxels >= 0).all()
    deposited = gen.voxels.sum(1)
    assert (deposited > 0).all()
    # Flow I's u_0 < 1 bounds the deposited energy by u0_scale * E_inc.
    model, _ = CaloFlow.load(chain["model"])
    assert (deposited <= float(model.u0_scale) * gen.energy * (1 + 1e-5)).all()

    # The same seed gives the same showers; without --layout the training file's layout.
    # (`calo sample` is generate under the CaloChallenge's name.)
    again = tmp_path / "again.h5"
    _cli("sample", chain["model"], "--out", again, "--events", 150, "--energy-min", 20,
         "--energy-max", 40, "--seed", 1)  # fmt: skip
    assert detect_layout(again) == "calogan"
    same = read_showers(again)
    np.testing.assert_allclose(same.energy, gen.energy, rtol=1e-6)
    np.testing.assert_allclose(same.voxels, gen.voxels, rtol=1e-5, atol=1e-6)


def test_generate_teacher_like_a_file_takes_its_energies_and_layout(chain) -> None:
    assert "(teacher, calogan layout)" in chain["teacher_output"]
    assert detect_layout(chain["teacher"]) == "calogan"
    gen, sim = read_showers(chain["teacher"]), read_showers(chain["sim"])
    assert len(gen) == N_SIM and gen.voxels.shape == (N_SIM, 504)
    np.testing.assert_allclose(gen.energy, sim.energy, rtol=1e-6)
    assert np.isfinite(gen.voxels).all() and (gen.voxels >= 0).all()
    assert not np.allclose(gen.voxels, sim.voxels)  # generated, not copied


# ------------------------------------------------------------------ evaluate


def test_evaluate_writes_the_json_report_and_the_png(chain, tmp_path) -> None:
    report_path, plot = tmp_path / "eval.json", tmp_path / "features.png"
    out = _cli("evaluate", chain["sim"], f"student={chain['student']}", chain["teacher"],
               "--out", report_path, "--plot", plot, "--levels", "high", "--epochs", 2,
               "--max-showers", 200, "--lr-decay", 1)  # fmt: skip
    assert "wrote" in out and report_path.is_file()
    assert "classifiers:" in out and "GBDT" in out
    assert plot.read_bytes()[:8] == PNG
    report = json.loads(report_path.read_text())
    assert report["reference"] == {"n_showers": N_SIM, "geometry": "calogan"}
    assert report["settings"]["levels"] == ["high"] and report["settings"]["epochs"] == 2
    assert report["settings"]["max_showers"] == 200
    assert report["settings"]["lr_decay"] is None  # --lr-decay 1: a constant rate
    models = report["models"]
    assert set(models) == {"student", "teacher"}  # LABEL=FILE, or the file's stem
    assert models["student"]["n_showers"] == 150 and models["teacher"]["n_showers"] == N_SIM
    for r in models.values():
        assert set(r["classifier"]) == {"high", "gbdt"}  # the GBDT cross-check by default
        assert 0 <= r["classifier"]["high"]["auc"] <= 1 and 0 <= r["classifier"]["gbdt"]["auc"] <= 1
        assert math.isfinite(r["fpd"]) and r["fpd"] >= 0
        assert 0 <= r["separation_mean"] <= 1
        assert set(r["separation"]) >= {"E_inc", "E_dep"}
    # The teacher was given the reference's own energies: E_inc is not separable.
    assert models["teacher"]["separation"]["E_inc"] < 1e-6
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temporary file


def test_evaluate_without_classifier(chain, tmp_path) -> None:
    report_path = tmp_path / "eval.json"
    _cli("evaluate", chain["sim"], chain["student"], "--out", report_path, "--plot",
         tmp_path / "p.png", "--levels", "none", "--no-gbdt")  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["models"]["student"]["classifier"] == {}
    assert math.isfinite(report["models"]["student"]["fpd"])


# ------------------------------------------------------------------ bad input


def _run_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """Run the real entry point ``hepflows.cli.run`` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["hepflows", *argv])
    with pytest.raises(SystemExit) as info:
        run()
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


BAD = [
    # Neither a built-in name nor a file: the built-in choices are named.
    ("simulate --geometry nope --out {o}/s.h5", "unknown geometry 'nope'"),
    ("simulate --events abc --out {o}/s.h5", "--events must be a number"),
    ("simulate --events 0 --out {o}/s.h5", "--events must lie between 1 and 1e13"),
    ("simulate --events 10 --energy-min 50 --energy-max 10 --out {o}/s.h5", "--energy-min"),
    ("simulate --events 10 --energy-min -1 --out {o}/s.h5", "--energy-min"),
    ("simulate --events 10 --layout hdf --out {o}/s.h5", "unknown shower-file layout 'hdf'"),
    ("simulate --events 10 --particle muon --out {o}/s.h5", "unknown particle 'muon'"),
    ("train {o}/missing.h5 --out {o}/m.safetensors", "no shower file at"),
    ("train {model} --out {o}/m.safetensors", "not a readable HDF5 file"),
    ("train {sim} --geometry nope --out {o}/m.safetensors", "unknown geometry 'nope'"),
    ("train {sim} --geometry nope.xml --out {o}/m.safetensors", "no binning XML at nope.xml"),
    ("train {sim} --batch-size 1000 --out {o}/m.safetensors", "fewer than one batch of 1000"),
    ("train {sim} --transforms 0 --out {o}/m.safetensors", "transforms must be an integer >= 1"),
    ("train {sim} --epochs-flow1 -1 --out {o}/m.safetensors", "epochs['flow1'] must be >= 0"),
    ("train {sim} --noise-mev 0 --out {o}/m.safetensors", "noise_mev must be a positive energy"),
    ("train {sim} --alpha 0.5 --out {o}/m.safetensors", "alpha must lie in [1e-7, 0.5)"),
    ("generate {o}/missing.safetensors --out {o}/g.h5", "no saved shower model at"),
    ("generate {sim} --out {o}/g.h5", "not a readable safetensors file"),
    ("generate {model} --model gan --events 5 --energy-min 20 --energy-max 30 --out {o}/g.h5",
     "model must be 'teacher' or 'student'"),
    ("generate {model} --events 5 --energy-min 1 --energy-max 3 --out {o}/g.h5",
     "outside the training range"),
    ("generate {model} --events 5e-1 --energy-min 20 --energy-max 30 --out {o}/g.h5",
     "--events must lie between 1 and 1e13"),
    ("generate {model} --like {o}/missing.h5 --out {o}/g.h5", "no shower file at"),
    ("evaluate {sim} {o}/missing.h5 --out {o}/e.json --plot {o}/e.png", "no shower file at"),
    ("evaluate {sim} {student} --levels top --out {o}/e.json --plot {o}/e.png",
     "unknown classifier levels ['top']"),
    ("evaluate {sim} {student} --max-showers 0 --out {o}/e.json --plot {o}/e.png",
     "--max-showers must lie between 1 and 1e13"),
    ("evaluate {sim} {student} --lr-decay 0 --out {o}/e.json --plot {o}/e.png",
     "--lr-decay must be in (0, 1]"),
]  # fmt: skip
BAD += [
    ("generate {model} --events 5 --energy-min 20 --energy-max 30 --batch-size 0 --out {o}/g.h5",
     "batch_size must be a positive int"),
    ("generate {model} --events 5 --energy-min 20 --energy-max 30 --seed -1 --out {o}/g.h5",
     "--seed must be >= 0"),
    ("simulate --events 5 --seed -1 --out {o}/s.h5", "seed must be an int >= 0"),
    ("train {sim} --device nonsense --out {o}/m.safetensors", "unknown device 'nonsense'"),
    ("generate {model} --events 5 --energy-min 20 --energy-max 30 --device tpu --out {o}/g.h5",
     "unknown device 'tpu'"),
]  # fmt: skip
if not torch.cuda.is_available():
    BAD += [
        ("train {sim} --device cuda --out {o}/m.safetensors", "or use --device cpu"),
        ("generate {model} --events 5 --energy-min 20 --energy-max 30 --device cuda:1 "
         "--out {o}/g.h5", "or use --device cpu"),
    ]  # fmt: skip
CASES = [pytest.param(a, m, id=a.split(" --out")[0]) for a, m in BAD]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    chain, tmp_path, monkeypatch, capsys, args, message
) -> None:
    argv = args.format(o=tmp_path, **{k: v for k, v in chain.items() if isinstance(v, Path)})
    code, _, err = _run_main(["calo", *argv.split()], monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no output, no checkpoint, no temporary file


def test_option_of_the_wrong_type_is_a_usage_error(chain, monkeypatch, capsys) -> None:
    """Typed options (int, float) are checked by typer itself: exit 2, no traceback."""
    code, _, err = _run_main(["calo", "train", str(chain["sim"]), "--batch-size", "abc"],
                             monkeypatch, capsys)  # fmt: skip
    assert code == 2 and "--batch-size" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["train", "missing.h5"], "no shower file at missing.h5"),
     (["simulate", "--geometry", "nope", "--out", "s.h5"], "unknown geometry 'nope'")],
)  # fmt: skip
def test_bad_input_in_a_real_process_has_no_traceback(tmp_path, args, message) -> None:
    proc = subprocess.run([sys.executable, "-m", "hepflows.cli", "calo", *args],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ outputs, before any work


OUTPUTS = [
    ("simulate --out {o}/s.txt", "cannot tell the shower file format of --out"),
    ("simulate --out /proc/s.h5", "cannot write the shower file --out /proc/s.h5"),
    ("simulate --out {o}/d.h5", "is a directory"),
    ("train {o}/in.h5 --out {o}/m.pt", "cannot tell the model format of --out"),
    ("train {o}/in.h5 --out /proc/m.safetensors", "cannot write the model --out /proc/m"),
    ("train {o}/in.h5 --out {o}/m.safetensors --checkpoint /proc/m.ckpt",
     "cannot write the checkpoint --checkpoint /proc/m.ckpt"),
    ("generate {o}/m.safetensors --out {o}/g.txt", "cannot tell the shower file format of --out"),
    ("generate {o}/m.safetensors --out /proc/g.h5", "cannot write the shower file --out"),
    ("generate {o}/m.safetensors --out {o}/g.h5 --layout hdf",
     "unknown shower-file layout 'hdf' (--layout)"),
    ("evaluate {o}/r.h5 {o}/g.h5 --out {o}/e.txt", "cannot tell the report format of --out"),
    ("evaluate {o}/r.h5 {o}/g.h5 --out /proc/e.json", "cannot write the report --out"),
    ("evaluate {o}/r.h5 {o}/g.h5 --out {o}/e.json --plot {o}/e.jpg",
     "cannot tell the plot format of --plot"),
    ("evaluate {o}/r.h5 {o}/g.h5 --out {o}/e.json --plot /proc/e.png",
     "cannot write the plot --plot /proc/e.png"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), OUTPUTS, ids=[a for a, _ in OUTPUTS])
def test_outputs_are_checked_before_any_work(tmp_path, monkeypatch, capsys, args, message):
    """Unknown format, unwritable place or a directory: exit 2 with one line, before the
    simulator runs or any file is read."""
    import hepflows.calo
    from hepflows.cli import calo as calo_cli

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    for module, name in ((calo_cli, "ToySimulator"), (calo_cli, "CaloFlow"),
                         (hepflows.calo, "read_showers"), (calo_cli, "evaluate_showers")):
        monkeypatch.setattr(module, name, no_work)  # fmt: skip
    (tmp_path / "d.h5").mkdir()
    code, _, err = _run_main(["calo", *args.format(o=tmp_path).split()], monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


# ------------------------------------------------------------------ defaults and help


def _command(*path: str):
    import typer

    command = typer.main.get_command(app)
    for name in path:
        command = command.get_command(typer.Context(command), name)
    return command


def _params(*path: str) -> dict[str, object]:
    return {p.name: p.default for p in _command(*path).params}


def _helps(*path: str) -> dict[str, str]:
    return {p.name: getattr(p, "help", "") or "" for p in _command(*path).params}


def test_defaults_are_the_librarys() -> None:
    """Every default the calo commands show comes from the library."""
    import inspect

    from hepflows.calo import CaloFlow, ToySimulator, TrainingPlan, evaluate, write_showers
    from hepflows.calo.caloflow import FLOW2_DEFAULTS
    from hepflows.calo.l2lflow import LAYER_DEFAULTS

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    plan = TrainingPlan()
    train = _params("calo", "train")
    assert {k: train[f"epochs_{k}"] for k in plan.epochs} == plan.epochs
    assert (train["batch_size"], train["seed"]) == (plan.batch_size, plan.seed)
    # flow II sizes depend on --model: None, and the help names both models' defaults
    helps = _helps("calo", "train")
    for key in ("transforms", "bins", "hidden"):
        assert train[key] is None
        ours = {"caloflow": FLOW2_DEFAULTS[key], "l2l": LAYER_DEFAULTS[key]}
        ours = {k: v[0] if isinstance(v, list) else v for k, v in ours.items()}
        assert f"caloflow {ours['caloflow']}, l2l {ours['l2l']}" in helps[key], key
    # --moments depends on --model too: None (the model's own default), both in the help
    from hepflows.calo import L2LFlow

    assert train["moments"] is None
    assert (f"caloflow {default(CaloFlow, 'moments')}, l2l and conv-l2l "
            f"{default(L2LFlow, 'moments')}") in helps["moments"]  # fmt: skip
    assert train["model"] == "caloflow"
    # the voxels' noise and logit regulator: None (the model's), the value in the help
    assert (train["noise_mev"], train["alpha"]) == (None, None)
    for key in ("noise_mev", "alpha"):  # they depend on --model: both in the help
        assert (f"default: caloflow {default(CaloFlow, key):g}, l2l and conv-l2l "
                f"{default(L2LFlow, key):g}") in helps[key]  # fmt: skip
    assert train["anchor"] is default(CaloFlow, "anchor")
    # what the CaloFlow paper's set-up here has been: 6 blocks of width 256, student 20 epochs
    assert (FLOW2_DEFAULTS["transforms"], FLOW2_DEFAULTS["hidden"], train["epochs_student"]) == (
        6, [256], 20)  # fmt: skip

    sim = _params("calo", "simulate")
    for name in ("geometry", "seed", "max_spots", "spot_fluctuations"):
        assert sim[name] == default(ToySimulator, name), name
    # particle and energies depend on the geometry (ds2/ds3: the challenge's electrons)
    helps = _helps("calo", "simulate")
    lo, hi = default(ToySimulator, "energy_range_mev")
    assert sim["particle"] is None and f"else {default(ToySimulator, 'particle')}" in helps[
        "particle"]  # fmt: skip
    assert f"else {default(ToySimulator, 'energy_distribution')}" in helps["distribution"]
    assert f"else {lo / 1e3:g}" in helps["energy_min"]
    assert f"else {hi / 1e3:g}" in helps["energy_max"]
    assert sim["layout"] == default(write_showers, "layout")

    gen = _params("calo", "generate")
    assert (1e3 * gen["energy_min"], 1e3 * gen["energy_max"]) == (lo, hi)
    assert gen["batch_size"] == default(CaloFlow.sample, "batch_size")
    assert gen["model"] is None  # the CLI's choice: the student (one-pass IAF) if there is one

    ev = _params("calo", "evaluate")
    assert ev["levels"].split(",") == list(default(evaluate, "levels"))
    assert ev["epochs"] == default(evaluate, "epochs")
    assert int(float(ev["max_showers"])) == default(evaluate, "max_showers")
    assert ev["seed"] == default(evaluate, "seed")


def test_evaluate_help_says_the_classifier_stops_on_a_plateau() -> None:
    """The epochs option is a cap; the classifier stops when the validation loss stops improving."""
    result = runner.invoke(app, ["calo", "evaluate", "--help"],
                           env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})  # fmt: skip
    assert result.exit_code == 0
    assert "stops improving" in result.output and "not converged" in result.output
    assert "--patience" in result.output and "--no-gbdt" in result.output


def test_simulate_granular_geometry_defaults_and_resume(tmp_path) -> None:
    """--geometry ds2: CaloChallenge electrons 1 GeV - 1 TeV log-uniform by default, written
    chunk by chunk; a leftover .partial of the same run is resumed, giving the same file."""
    out = tmp_path / "ds2.h5"
    text = _cli("simulate", "--out", out, "--events", 30, "--geometry", "ds2", "--max-spots",
                300, "--chunk-size", 10)  # fmt: skip
    assert "wrote 30 showers (6480 voxels, calochallenge layout)" in text
    assert "particle='electron'" in text and "log-uniform" in text
    whole = read_showers(out)
    assert whole.geometry.name == "calochallenge-ds2" and whole.voxels.shape == (30, 6480)
    assert 1e3 <= whole.energy.min() and whole.energy.max() <= 1e6
    # a run cut after its first chunk: the partial file holds 10 committed showers
    from hepflows.calo.showerstream import ShowerWriter, partial_path

    again = tmp_path / "again.h5"
    with h5py.File(out) as f:
        attrs = {k: f.attrs[k] for k in ("simulator", "chunk_size", "n_showers")}
    attrs = {k: v.item() if hasattr(v, "item") else v for k, v in attrs.items()}
    with ShowerWriter(again, "ds2", attrs=attrs) as w:
        w.append(whole[:10])
    assert partial_path(again).exists()
    _cli("simulate", "--out", again, "--events", 30, "--geometry", "ds2", "--max-spots", 300,
         "--chunk-size", 10)  # fmt: skip
    assert not partial_path(again).exists()
    np.testing.assert_array_equal(read_showers(again).voxels, whole.voxels)


@pytest.mark.parametrize("kind", ["icaloflow", "conv-l2l"])
def test_l2l_train_generate_on_a_granular_geometry(tmp_path, kind) -> None:
    """simulate -> train --model icaloflow (l2l with the per-layer student) or conv-l2l ->
    generate, on a small geometry given as binning XML (6 layers of 8 angles x 4 radii)."""
    from hepflows.calo import Geometry, Layer

    xml = tmp_path / "mini.xml"
    Geometry(tuple(Layer(i, 1.0, (0, 3, 6, 10, 16), 8) for i in range(6)), "electron", 11,
             "mini", "tungsten-silicon").to_xml(xml)  # fmt: skip
    sim = tmp_path / "mini.h5"
    _cli("simulate", "--out", sim, "--events", 300, "--geometry", xml, "--particle", "electron",
         "--max-spots", 200)  # fmt: skip
    model = tmp_path / "l2l.safetensors"
    student = int(kind == "icaloflow")
    if student:  # icaloflow exists for its student
        with pytest.raises(AssertionError, match="icaloflow is the l2l MAF teacher"):
            _cli("train", sim, "--out", tmp_path / "x.safetensors", "--geometry", xml,
                 "--model", kind, "--epochs-student", 0)  # fmt: skip
    text = _cli("train", sim, "--out", model, "--geometry", xml, "--model", kind,
                "--epochs-flow1", 1, "--epochs-teacher", 1, "--epochs-student", student,
                "--batch-size", 100, "--transforms", 2, "--hidden", 8, "--noise-mev", 1.5e-5,
                "--alpha", 1e-7, "--anchor")  # fmt: skip
    assert "L2LFlow training" in text and ("│ student" in text) == bool(student)
    saved, _ = load_model(model)  # the voxels' noise and regulator are kept with the model
    assert (saved.noise_mev, saved.alpha, saved.anchor) == (1.5e-5, 1e-7, True)
    out = tmp_path / "gen.h5"
    text = _cli("generate", model, "--out", out, "--events", 20, "--energy-min", 2,
                "--energy-max", 50)  # fmt: skip
    assert f"wrote 20 showers ({'student' if student else 'teacher'}" in text
    gen = read_showers(out, geometry=xml)
    assert gen.voxels.shape == (20, 192) and np.isfinite(gen.voxels).all()
    # evaluate: both CaloChallenge files are streamed; the features classifier runs
    more = tmp_path / "more.h5"
    _cli("generate", model, "--out", more, "--like", sim)
    report = tmp_path / "eval.json"
    text = _cli("evaluate", sim, f"{kind}={more}", "--geometry", xml, "--levels", "high",
                "--no-gbdt", "--plot", "none", "--out", report, "--epochs", 2)  # fmt: skip
    r = json.loads(report.read_text())
    assert r["reference"]["n_showers"] == 300 and r["models"][kind]["n_showers"] == 300
    assert 0 <= r["models"][kind]["classifier"]["high"]["auc"] <= 1 and kind in text
    with pytest.raises(AssertionError, match="unknown shower model"):
        _cli("train", sim, "--out", tmp_path / "x.safetensors", "--geometry", xml,
             "--model", "nope")  # fmt: skip
