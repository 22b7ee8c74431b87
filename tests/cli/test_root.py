"""The hepflows command: its tree (lazy sub-commands), version, info, the flows demo, and
clean errors."""

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


# ------------------------------------------------------------------ the command tree


def _fresh_process(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_import_no_torch_and_no_pillar(argv) -> None:
    """The listing comes from the registry: no sub-command module, no torch is imported."""
    out = _fresh_process(
        "import sys\n"
        f"sys.argv = ['hepflows', *{argv!r}]\n"
        "from hepflows.cli import run\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "mods = [m for m in sys.modules if m == 'torch' or m.startswith('hepflows.')]\n"
        "print('MODULES', sorted(mods))\n"
    )
    modules = out.split("MODULES", 1)[1]
    assert "'torch'" not in modules, modules
    for name in ("integrate", "generate", "calo", "demo"):
        assert f"hepflows.cli.{name}" not in modules
    if argv == ["--help"]:
        assert all(name in out for name in ("integrate", "generate", "calo", "demo", "info"))


def test_every_registered_command_loads_with_its_listed_help() -> None:
    import typer

    from hepflows.cli import COMMANDS

    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    assert group.list_commands(ctx)[: len(COMMANDS)] == list(COMMANDS)
    for name, (_, short) in COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name
        first = (command.help or "").strip().splitlines()[0]
        assert first == short, name  # the listing says what the command's own help says
    # a sub-command shows its own help, drawn from its module
    result = runner.invoke(app, ["generate", "--help"])
    assert result.exit_code == 0 and "drell-yan" in result.output and "decay" in result.output


def test_library_errors_keep_their_square_brackets(monkeypatch, capsys) -> None:
    from hepflows import MissingExtraError, cli

    def failing() -> None:
        raise MissingExtraError("plotting needs matplotlib: pip install 'hepflows[plots]'")

    monkeypatch.setattr(cli, "app", failing)
    with pytest.raises(SystemExit) as info:
        cli.run()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: plotting needs matplotlib: pip install 'hepflows[plots]'"


@pytest.mark.parametrize(
    ("out", "message"),
    [("demo.jpg", "cannot tell the plot format of --out"),
     ("/proc/demo.png", "cannot write the plot --out /proc/demo.png")],
)  # fmt: skip
def test_demo_output_is_checked_before_any_work(out, message, monkeypatch, capsys) -> None:
    from hepflows import cli
    from hepflows.cli import demo

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(demo, "flows_demo", no_work)
    monkeypatch.setattr(sys, "argv", ["hepflows", "demo", "flows", "--out", out])
    with pytest.raises(SystemExit) as info:
        cli.run()
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_demo_defaults_are_the_librarys() -> None:
    import inspect

    import typer

    from hepflows.cli import demo
    from hepflows.demo import flows_demo

    command = typer.main.get_group(demo.app).commands["flows"]
    library = inspect.signature(flows_demo).parameters
    for p in command.params:
        expected = library[p.name].default
        assert (str(p.default) if p.name == "out" else p.default) == expected, p.name


def test_the_cli_needs_no_separate_click_package():
    """typer carries its own click; a machine without the click package runs the CLI."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['click'] = None; from hepflows.cli import run; "
            "sys.argv = ['hepflows', '--help']; run()")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "generate" in out.stdout
