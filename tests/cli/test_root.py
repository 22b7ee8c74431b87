"""The hepflows command: version, info, the flows demo, and clean errors."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

import hepflows
from hepflows.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert hepflows.__version__ in result.output


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("info", "demo"):
        assert word in result.output


def test_info_reports_versions_and_threads() -> None:
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    for word in ("torch", "threads", "device", hepflows.__version__):
        assert word in result.output


def test_demo_flows_writes_png_and_reports_kl(tmp_path) -> None:
    out = tmp_path / "demo.png"
    result = runner.invoke(
        app, ["demo", "flows", "--density", "ring", "--steps", "30", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "KL" in result.output and "NLL" in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "flows", "--density", "nope"], "unknown toy density 'nope'"),
        (["demo", "flows", "--steps", "0"], "--steps"),
    ],
)
def test_bad_input_exits_2_without_traceback(args, message) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hepflows.cli", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
