"""The ``hepflows`` command: thin, it parses options, calls the library and prints.

One module per pillar holds its commands (a typer app named ``app``), registered
here in :data:`COMMANDS`:

    hepflows integrate ...              :mod:`hepflows.cli.integrate`
    hepflows generate drell-yan|decay   :mod:`hepflows.cli.generate`
    hepflows merge SHARD_DIR --out FILE :mod:`hepflows.cli.merge`
    hepflows calo simulate|train|...    :mod:`hepflows.cli.calo`
    hepflows unfold simulate|train|apply :mod:`hepflows.cli.unfold`
    hepflows mem fit                    :mod:`hepflows.cli.mem`
    hepflows likelihood export|show|validate|onnx :mod:`hepflows.cli.likelihood`
    hepflows posterior train|sample|check :mod:`hepflows.cli.posterior`
    hepflows demo flows                 :mod:`hepflows.cli.demo`

A module is imported only when its command runs or shows its help, so
``hepflows --help`` and ``hepflows --version`` import neither torch nor a pillar.
Errors of the library (:class:`hepflows.HepflowsError`) become a one-line message
on stderr and exit code 2, without a traceback (:func:`run`).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

import hepflows
from hepflows.console import console, err_console
from hepflows.errors import HepflowsError

#: The sub-commands: name -> (module holding its typer ``app``, one-line help for the listing).
COMMANDS: dict[str, tuple[str, str]] = {
    "integrate": ("hepflows.cli.integrate",
                  "Integrate a built-in test integrand with neural importance sampling."),
    "generate": ("hepflows.cli.generate",
                 "Generate unweighted events of a physics process or a decay."),
    "merge": ("hepflows.cli.merge", "Merge the shards of a sharded run into one event file."),
    "calo": ("hepflows.cli.calo",
             "Calorimeter showers: toy simulator, CaloFlow teacher/student, CaloChallenge "
             "metrics."),
    "unfold": ("hepflows.cli.unfold",
               "Unfold Drell-Yan dilepton events: toy detector pairs, cINN or SPINUP."),
    "mem": ("hepflows.cli.mem",
            "Matrix-element method: fit a Drell-Yan parameter to measured lepton events."),
    "likelihood": ("hepflows.cli.likelihood",
                   "Portable flow likelihoods: export, show, validate (nabu tests), onnx."),
    "posterior": ("hepflows.cli.posterior",
                  "Amortised posteriors: train on simulations, sample, check coverage."),
    "demo": ("hepflows.cli.demo", "Demonstrations on built-in defaults (no data needed)."),
}  # fmt: skip


# typer >= 0.2x carries its own click (typer._click), which may differ from an installed
# click: commands are built from typer's classes only, and click is never imported here.


def load_command(name: str) -> TyperCommand:
    """The click command of sub-command ``name`` of :data:`COMMANDS` (imports its module)."""
    module = importlib.import_module(COMMANDS[name][0])
    command = typer.main.get_command(module.app)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The root group: the sub-commands of :data:`COMMANDS` are imported when used.

    The command listing of ``hepflows --help`` is drawn from the one-line helps of
    :data:`COMMANDS`, so showing it imports no sub-command module.
    """

    listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            if self.listing:  # the listing needs the help line only
                return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1])
            self.commands[cmd_name] = load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    name="hepflows",
    help="Fast and faithful particle-physics simulation and inference with normalizing flows.",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"hepflows {hepflows.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version_: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:  # fmt: skip
    """Fast and faithful particle-physics simulation and inference with normalizing flows."""


@app.command()
def info() -> None:
    """Versions, threads and device: what to paste into a bug report."""
    import torch
    from rich.table import Table

    table = Table(title="hepflows environment", show_header=False)
    table.add_row("hepflows", hepflows.__version__)
    table.add_row("python", platform.python_version())
    table.add_row("platform", f"{platform.system()} {platform.machine()}")
    packages = ("torch numpy scipy safetensors typer rich matplotlib mplhep h5py zuko nflows "
                "vegas madnis pylhe pythia8mc polarimetry-lc2pkpi jax").split()  # fmt: skip
    for pkg in packages:
        try:
            table.add_row(pkg, version(pkg))
        except PackageNotFoundError:
            table.add_row(pkg, "[dim]not installed[/dim]")
    table.add_row("torch threads", str(torch.get_num_threads()))
    table.add_row("cpu cores", str(os.cpu_count()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    table.add_row("device", device)
    console.print(table)


def run() -> None:
    """Entry point: run the app, turning library errors into one line and exit code 2."""
    try:
        app()
    except HepflowsError as err:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(err))}", soft_wrap=True)
        sys.exit(2)
