"""Event files written with pylhe and read back: LHE, gzipped LHE, LHEH5."""

import pytest
import torch

from hepflows import InputError
from hepflows.io import read_events, write_events
from hepflows.io.events import Events
from hepflows.io.lhe import coordinates


def _events(n=50, d=3, negative=False):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.ones(n, dtype=torch.float64)
    w[0] = 1.5  # an overweight event
    if negative:
        w[1] = -1
    return Events(x=x, weights=w, sigma=2.5, sigma_error=0.01, w_max=3.0, rule="quantile",
                  quantile=0.999, efficiency=0.3, overweight_fraction=0.02, calls=1000)


@pytest.mark.parametrize("suffix", [".lhe", ".lhe.gz", ".h5"])
def test_round_trip(tmp_path, suffix):
    ev = _events()
    path = tmp_path / f"events{suffix}"
    write_events(path, ev)
    init, events = read_events(path)
    assert len(events) == len(ev)
    info = init.initInfo
    assert info.weightingStrategy == 4
    assert init.procInfo[0].xSection == pytest.approx(2.5)
    assert init.procInfo[0].error == pytest.approx(0.01)
    xw = torch.tensor([e.eventinfo.weight for e in events], dtype=torch.float64)
    assert xw.sum().item() == pytest.approx(2.5 * ev.weights.sum().item() / len(ev), rel=1e-6)
    # pylhe writes XML weights with 5 significant digits; LHEH5 keeps full precision.
    rtol = 1e-12 if suffix == ".h5" else 1e-4
    assert torch.allclose(coordinates(events), ev.x, rtol=rtol, atol=0)
    assert not list(tmp_path.glob(".*tmp*"))


def test_negative_weights_use_idwtup_minus_4(tmp_path):
    path = tmp_path / "e.lhe"
    write_events(path, _events(negative=True))
    init, events = read_events(path)
    assert init.initInfo.weightingStrategy == -4
    assert events[1].eventinfo.weight < 0


def test_unknown_suffix(tmp_path):
    with pytest.raises(InputError, match="cannot tell the event format"):
        write_events(tmp_path / "e.txt", _events())
