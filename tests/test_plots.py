"""Plots: the Dalitz plot of generated decays is written atomically as a PNG."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from hepflows.physics.decays import pi1800
from hepflows.plots import event_dalitz_plot


def test_event_dalitz_plot_writes_a_png(tmp_path):
    f = pi1800()
    events = SimpleNamespace(x=torch.rand(500, 2, generator=torch.Generator().manual_seed(0),
                                          dtype=torch.float64))  # fmt: skip
    path = tmp_path / "dalitz.png"
    event_dalitz_plot(f, events, path, "pi(1800), test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["dalitz.png"]  # no temporary file left
