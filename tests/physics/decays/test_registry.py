"""The decay registry of hepflows.physics.decays: names -> decay densities."""

from __future__ import annotations

import pytest

from hepflows.errors import ConfigError
from hepflows.physics.decays import DECAYS, ThreeBodyDecay, get_decay, lc2pkpi, pi1800


def test_registry_names_the_factories():
    assert DECAYS == {"lambda-c": lc2pkpi, "pi1800": pi1800}
    f = get_decay("pi1800")
    assert isinstance(f, ThreeBodyDecay) and f.name == pi1800().name


def test_unknown_decay_names_the_choices():
    with pytest.raises(ConfigError, match="unknown decay 'omega': choose one of lambda-c, pi1800"):
        get_decay("omega")
