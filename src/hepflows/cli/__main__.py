"""``python -m hepflows.cli``: the ``hepflows`` command."""

from hepflows.cli import run

run()
