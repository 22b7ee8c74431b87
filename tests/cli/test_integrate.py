"""The ``hepflows integrate`` command: a tiny run end to end, its tables and its errors.

Successful runs go through typer's CliRunner; bad input goes through the real
entry point ``hepflows.cli.run`` in-process, which turns library errors into
one line on stderr and exit code 2.
"""

from __future__ import annotations

import re
import sys

import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from hepflows import cli
from hepflows.cli import integrate as cli_integrate
from hepflows.integrate import builtin

runner = CliRunner()
NUMBER = r"[-+]?[0-9][0-9.]*(?:e[-+]?[0-9]+)?"


def invoke(*args: str):
    result = runner.invoke(cli.app, ["integrate", *args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def integral(output: str) -> tuple[float, float]:
    """The integral and its error from the printed result ('x ± e' or 'x +- e')."""
    m = re.search(rf"integral\W+({NUMBER})\s*(?:±|\+-)\s*({NUMBER})", output)
    assert m, output
    return float(m[1]), float(m[2])


def run_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["hepflows", *argv])
    with pytest.raises(SystemExit) as info:
        cli.run()
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


# ------------------------------------------------------------------ runs
def test_tiny_camel_run_prints_an_integral_that_agrees_with_the_exact_value():
    out = invoke("camel", "--dims", "2", "--calls", "2000")
    value, error = integral(out)
    exact = builtin("camel", 2).exact
    assert 0 < error < 0.05 * value
    assert abs(value - exact) < 5 * error, out
    assert f"{exact:.8g}" in out  # the exact value is shown with the pull
    assert "pull" in out and "2,000" in out  # calls of the estimate


def test_the_seed_fixes_the_result():
    a = integral(invoke("gaussian", "--dims", "2", "--calls", "1000", "--seed", "3"))
    b = integral(invoke("gaussian", "--dims", "2", "--calls", "1000", "--seed", "3"))
    assert a == b


def test_resonances_print_the_channel_table():
    out = invoke("resonances", "--dims", "2", "--calls", "2000")
    value, error = integral(out)
    rows = re.findall(rf"(ridge x[01])\W+({NUMBER})\W+({NUMBER})\W+({NUMBER})%\W+([0-9,]+)", out)
    assert [r[0] for r in rows] == ["ridge x0", "ridge x1"], out
    values = [float(r[1]) for r in rows]
    errors = [float(r[2]) for r in rows]
    shares = [float(r[3]) for r in rows]
    calls = [int(r[4].replace(",", "")) for r in rows]
    assert sum(calls) == 2000  # every point of the estimate goes to one channel
    assert sum(values) == pytest.approx(value, rel=1e-4)  # channels add up to the integral
    assert sum(shares) == pytest.approx(100.0, abs=0.15)
    # independent channel estimates: errors add in quadrature (3 printed digits)
    assert (errors[0] ** 2 + errors[1] ** 2) ** 0.5 == pytest.approx(error, rel=0.01)
    assert abs(value - builtin("resonances", 2).exact) < 5 * error


def test_comb_drops_its_faint_channels_and_says_so():
    """60 channels, learned weights by default (more than 8), --drop-channels: the 20
    faint peaks are dropped and the table and a line say so."""
    out = invoke("comb", "--dims", "2", "--calls", "6000", "--train-calls", "20000",
                 "--drop-channels", "1e-3", "--seed", "1")  # fmt: skip
    value, error = integral(out)
    assert abs(value - builtin("comb", 2).exact) < 5 * error
    assert len(re.findall(r"peak \d+\W+dropped", out)) == 20, out
    assert "dropped in training: 20 channels" in out.replace("\n", " ")


def test_no_multichannel_prints_no_channel_table():
    out = invoke("resonances", "--dims", "2", "--calls", "2000", "--no-multichannel")
    integral(out)
    assert "ridge" not in out


def test_events_are_written_to_an_lhe_file(tmp_path):
    from hepflows.io import read_events
    from hepflows.io.lhe import coordinates

    path = tmp_path / "camel.lhe"
    out = invoke("camel", "--dims", "2", "--calls", "2000", "--events", "300", "--out", str(path))
    assert re.search(r"wrote 300 events to .*camel\.lhe", out.replace("\n", "")), out
    _, events = read_events(path)
    assert len(events) == 300
    x = coordinates(events)
    assert x.shape == (300, 2) and ((x >= 0) & (x <= 1)).all()
    # Unweighted events follow f: chi^2 of the four quadrants against f's own shares.
    f = builtin("camel", 2)
    grid = (torch.arange(400, dtype=torch.float64) + 0.5) / 400
    u = torch.cartesian_prod(grid, grid)
    quadrant = lambda p: (p[:, 0] > 0.5).long() * 2 + (p[:, 1] > 0.5).long()  # noqa: E731
    expected = torch.bincount(quadrant(u), weights=f(u), minlength=4)
    expected = expected / expected.sum() * 300
    observed = torch.bincount(quadrant(x), minlength=4).to(torch.float64)
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3, observed


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["camel", "--dims", "0"], "dims"),
        (["nope", "--dims", "2"], "unknown integrand 'nope'"),
        (["camel", "--dims", "2", "--calls", "abc"], "--calls must be a number"),
        (["camel", "--dims", "2", "--calls", "0"], "--calls must lie between 1 and 1e13"),
        (["camel", "--dims", "2", "--loss", "chi2"], "unknown loss 'chi2'"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(args, message, monkeypatch, capsys):
    code, _, err = run_main(["integrate", *args], monkeypatch, capsys)
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err


def test_unknown_event_format_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "x.txt"
    argv = ["integrate", "camel", "--dims", "2", "--calls", "2000", "--out", str(out)]
    code, _, err = run_main(argv, monkeypatch, capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "x.txt" in errors[0] and ".lhe" in errors[0], err
    assert err.strip().splitlines()[-1] == errors[0]  # the last word, no traceback after it
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_event_format_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    argv = ["integrate", "camel", "--dims", "2", "--calls", "2000", "--out", str(tmp_path / "x")]
    code, out, err = run_main(argv, monkeypatch, capsys)
    assert code == 2
    assert "training" not in out + err and "generating" not in out + err, err


@pytest.mark.parametrize(
    ("option", "path", "message"),
    [("--out", "/proc/x.lhe", "cannot write the event file --out /proc/x.lhe"),
     ("--out", "{tmp}/d.lhe", "is a directory"),
     ("--checkpoint", "/proc/x.safetensors", "cannot write the checkpoint --checkpoint")],
)  # fmt: skip
def test_unwritable_outputs_are_refused_before_any_work(
    option, path, message, tmp_path, monkeypatch, capsys
):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(cli_integrate, "NeuralIntegrator", no_work)
    (tmp_path / "d.lhe").mkdir()
    argv = ["integrate", "camel", "--dims", "2", option, path.format(tmp=tmp_path)]
    code, out, err = run_main(argv, monkeypatch, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error:") and message in err, err


# ------------------------------------------------------------------ help and defaults
def test_help_keeps_the_square_brackets_of_the_vegas_default():
    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}  # one line per option
    result = runner.invoke(cli.app, ["integrate", "--help"], env=wide)
    assert result.exit_code == 0
    assert "warm start from VEGAS grids [default: for d <= 4]" in result.output


def test_defaults_are_the_integrators():
    """--loss and --vegas show and use NeuralIntegrator's defaults."""
    import inspect

    import typer

    from hepflows.integrate import NeuralIntegrator
    from hepflows.integrate.trainers import ImportanceTrainer

    params = {p.name: p.default for p in typer.main.get_command(cli_integrate.app).params}
    assert params["loss"] == inspect.signature(ImportanceTrainer).parameters["loss"].default
    assert params["vegas"] is inspect.signature(NeuralIntegrator).parameters["vegas"].default
    assert params["vegas"] is None  # "for d <= 4", decided by the integrator
