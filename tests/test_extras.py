"""Optional packages: the lean core imports without them, and a feature that needs one
fails with a one-line MissingExtraError naming the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import hepflows
from hepflows import HepflowsError, MissingExtraError
from hepflows.extras import require

#: Every optional package imported somewhere in src/ (pythia8mc is Pythia 8's module).
OPTIONAL = ("h5py", "sklearn", "scipy", "vegas", "pylhe", "pythia8", "pythia8mc",
            "matplotlib", "mplhep", "polarimetry", "jax", "sympy")  # fmt: skip


def _block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``import name`` (and of its submodules) fail as if it were not installed."""
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.setitem(sys.modules, loaded, None)
        monkeypatch.setitem(sys.modules, name, None)


def _assert_names(err: pytest.ExceptionInfo, package: str, extra: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert f"'{package}' package" in msg
    assert f"pip install 'hepflows[{extra}]'" in msg


def test_require_returns_the_module():
    assert require("math", "calo", "Nothing") is __import__("math")
    assert require("os.path", "calo", "Nothing") is sys.modules["os.path"]


def test_require_names_the_extra_and_the_purpose():
    with pytest.raises(MissingExtraError) as err:
        require("not_a_module_xyz", "calo", "Reading widgets")
    assert str(err.value) == (
        "Reading widgets needs the 'not_a_module_xyz' package: pip install 'hepflows[calo]'"
    )
    # One hierarchy: caught as a hepflows error (the CLI's one-line path) and as ImportError.
    assert isinstance(err.value, HepflowsError) and isinstance(err.value, ImportError)
    assert hepflows.MissingExtraError is MissingExtraError


def test_require_gives_the_pip_name(monkeypatch):
    _block(monkeypatch, "sklearn")
    with pytest.raises(MissingExtraError) as err:
        require("sklearn.metrics", "calo", "The classifier test")
    _assert_names(err, "scikit-learn", "calo")


def test_shower_files_need_calo(monkeypatch, tmp_path):
    from hepflows.calo import Geometry, Showers, read_showers, write_showers

    _block(monkeypatch, "h5py")
    geometry = Geometry.builtin("calogan")
    showers = Showers(np.full(3, 1e4), np.ones((3, geometry.n_voxels)), geometry)
    with pytest.raises(MissingExtraError) as err:
        write_showers(tmp_path / "s.h5", showers)
    _assert_names(err, "h5py", "calo")
    assert not (tmp_path / "s.h5").exists()
    with pytest.raises(MissingExtraError) as err:
        read_showers(tmp_path / "s.h5")
    _assert_names(err, "h5py", "calo")


def test_simulator_and_evaluation_need_calo(monkeypatch):
    from hepflows.calo import ToySimulator, classifier_test
    from hepflows.calo.features import fpd

    showers = ToySimulator("calogan", seed=0).simulate(5)
    _block(monkeypatch, "scipy", "sklearn")
    with pytest.raises(MissingExtraError) as err:
        ToySimulator("calogan", seed=0).simulate(5)
    _assert_names(err, "scipy", "calo")
    with pytest.raises(MissingExtraError) as err:
        fpd(np.random.default_rng(0).normal(size=(50, 3)), np.ones((50, 3)) + 0.1)
    _assert_names(err, "scipy", "calo")
    with pytest.raises(MissingExtraError) as err:
        classifier_test(showers, showers)
    _assert_names(err, "scikit-learn", "calo")


def test_events_and_vegas_need_physics(monkeypatch, tmp_path):
    from hepflows.integrate import adapt_vegas
    from hepflows.io import Events, write_events
    from hepflows.physics.pythia import pythia_drell_yan

    _block(monkeypatch, "pylhe", "vegas", "pythia8mc")
    events = Events(x=torch.rand(4, 2, dtype=torch.float64), weights=torch.ones(4), sigma=1.0,
                    sigma_error=0.1, w_max=1.0, rule="max", quantile=1.0, efficiency=0.5,
                    overweight_fraction=0.0, calls=8)  # fmt: skip
    with pytest.raises(MissingExtraError) as err:
        write_events(tmp_path / "e.lhe", events)
    _assert_names(err, "pylhe", "physics")
    assert not (tmp_path / "e.lhe").exists()
    with pytest.raises(MissingExtraError) as err:
        adapt_vegas(lambda x: x.sum(1), 2, calls=200)
    _assert_names(err, "vegas", "physics")
    with pytest.raises(MissingExtraError) as err:
        pythia_drell_yan()
    _assert_names(err, "pythia8mc", "physics")


def test_plots_need_plots(monkeypatch, tmp_path):
    from hepflows.plots import density_comparison

    _block(monkeypatch, "matplotlib", "mplhep")
    x = torch.zeros(10, 2)
    with pytest.raises(MissingExtraError) as err:
        density_comparison(x, x, torch.zeros(4, 4), (0, 1, 0, 1), tmp_path / "p.png")
    _assert_names(err, "matplotlib", "plots")
    assert not (tmp_path / "p.png").exists()


def test_the_core_imports_without_any_extra():
    """A fresh interpreter in which no optional package can be imported still imports
    hepflows and every pillar (the errors come only when a feature is used)."""
    code = textwrap.dedent(f"""
        import sys
        [sys.modules.__setitem__(m, None) for m in {OPTIONAL!r}]
        import hepflows, hepflows.flows, hepflows.integrate, hepflows.calo, hepflows.physics
        import hepflows.io, hepflows.plots, hepflows.stats
        from hepflows.calo import read_showers
        try:
            read_showers("missing.h5")
        except hepflows.MissingExtraError as err:
            print(err)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (
        "Reading and writing shower files needs the 'h5py' package: pip install 'hepflows[calo]'"
    )
