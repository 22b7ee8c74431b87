"""``python -m hepflows``: the ``hepflows`` command (so ``torchrun -m hepflows ...`` works)."""

from hepflows.cli import run

if __name__ == "__main__":
    run()
