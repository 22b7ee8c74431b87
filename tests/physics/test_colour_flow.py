"""Leading-colour flows: valid lines for every jet subprocess, the exact colour sum of pure
gluon amplitudes, four-quark leading flows, and colour-conserving event records."""

import pytest
import torch

from helpers import conserves_colour
from hepflows.errors import InputError
from hepflows.physics.amplitudes.colour_flow import FIRST_TAG, colour_tags, flow_weights, flows
from hepflows.physics.amplitudes.partons import TreeAmplitude
from hepflows.physics.kinematics import beam_momenta
from hepflows.physics.processes import DrellYanJets, MultiJet
from hepflows.physics.processes.multijet import jet_subprocesses
from hepflows.physics.rambo import RamboOnDiet


def _momenta(n_final: int, n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    final = RamboOnDiet(1.0, [0.0] * n_final).massless(
        torch.rand(n, 3 * n_final - 4, generator=g, dtype=torch.float64)) * 1000
    x = torch.ones(n, dtype=torch.float64)
    return torch.cat((beam_momenta(x, x, 1000.0), final), 1)


@pytest.mark.parametrize("n_jets", [2, 3])
def test_every_flow_joins_each_colour_and_anticolour_slot_once(n_jets):
    for cls in jet_subprocesses(n_jets, 2):
        amp = cls.amplitude
        colour_legs = sorted(amp.bars + amp.gluons)
        anti_legs = sorted(amp.kets + amp.gluons)
        lines = flows(amp)
        assert lines, cls.label
        for flow in lines:
            assert sorted(c for c, _ in flow) == colour_legs, (cls.label, flow)
            assert sorted(a for _, a in flow) == anti_legs, (cls.label, flow)
            assert all(c != a for c, a in flow)
        w = flow_weights(amp, _momenta(n_jets))
        assert w.shape == (6, len(lines)) and bool((w.sum(1) > 0).all()), cls.label


@pytest.mark.parametrize("n_gluons", [2, 3])
def test_gluon_flows_carry_the_whole_colour_sum(n_gluons):
    """For 4 and 5 gluons the colour sum is exactly leading colour:
    sum |M|^2 = N^(n-2) (N^2 - 1) sum_sigma |A_sigma|^2 (Tr(T^a T^b) = delta^ab)."""
    amp = TreeAmplitude((21, 21), (21,) * n_gluons)
    p = _momenta(n_gluons)
    lead = flow_weights(amp, p).sum(1) * 3**n_gluons * 8 * amp.average * amp.parity_factor
    torch.testing.assert_close(lead, amp(p), rtol=1e-10, atol=0)
    # with quarks the leading colour differs at O(1 / N^2)
    qq = TreeAmplitude((1, -1), (21, 21))
    p = _momenta(2)
    ratio = flow_weights(qq, p).sum(1) * 3 * 8 * qq.average * qq.parity_factor / qq(p)
    assert bool(((ratio - 1).abs() > 0.01).all() and ((ratio - 1).abs() < 0.5).all())


def test_four_quark_leading_flows():
    """q qbar -> Q Qbar (s-channel gluon): colour goes from the quark to the new quark, the
    colour-singlet flow (1/N) is not leading; q Q -> q Q (t channel): colours swap lines."""
    annihilation = TreeAmplitude((1, -1), (2, -2))
    (flow,) = flows(annihilation)
    tags = colour_tags([flow], torch.zeros(1, dtype=torch.int64), 4)[0]
    assert tags[0, 0] == tags[2, 0] != 0 and tags[1, 1] == tags[3, 1] != 0  # q -> Q, qbar -> Qbar
    scattering = TreeAmplitude((1, 2), (1, 2))
    (flow,) = flows(scattering)
    tags = colour_tags([flow], torch.zeros(1, dtype=torch.int64), 4)[0]
    assert tags[0, 0] == tags[3, 0] and tags[1, 0] == tags[2, 0]  # colour exchanged
    identical = TreeAmplitude((1, 1), (1, 1))
    assert len(flows(identical)) == 2  # t- and u-channel exchange
    assert len(flows(TreeAmplitude((1, -1), (2, -2, 21)))) == 2
    assert len(flows(TreeAmplitude((1, -1), (1, -1, 21)))) == 4


def test_tags_swap_on_incoming_legs():
    """q g -> q g at leading colour: an incoming quark's colour is its all-outgoing
    anticolour; tags start at FIRST_TAG."""
    amp = TreeAmplitude((1, 21), (1, 21))
    lines = flows(amp)
    tags = colour_tags(lines, torch.arange(len(lines)), 4)
    assert bool((tags[:, 0, 1] == 0).all() and (tags[:, 0, 0] >= FIRST_TAG).all())
    assert bool((tags[:, 2, 1] == 0).all() and (tags[:, 2, 0] >= FIRST_TAG).all())


@pytest.mark.parametrize("process", ["jjj", "llj"])
def test_event_records_conserve_flavour_colour_and_momentum(process):
    if process == "jjj":
        f = MultiJet(n_jets=3, pt_min=50.0, dr_min=0.4, alpha_s=0.118, flavours=3)
    else:
        f = DrellYanJets(n_jets=1, pt_min=20.0)
    g = torch.Generator().manual_seed(1)
    u = torch.rand(3000, f.dims, generator=g, dtype=torch.float64)
    u = u[f(u) > 0][:200]
    table = f.particle_table(u, generator=g)
    assert conserves_colour(table)
    p = table[..., [9, 6, 7, 8]]
    incoming = table[:, :, 1] < 0
    balance = (p * torch.where(incoming, -1.0, 1.0)[..., None]).sum(1)
    assert float(balance.abs().max()) < 1e-6 * float(p[..., 0].max())
    # quark number per flavour is conserved (incoming counted with the opposite sign)
    pid = table[..., 0].long()
    for q in range(1, 6):
        net = ((pid == q).long() - (pid == -q).long()) * torch.where(incoming, -1, 1)
        assert bool((net.sum(1) == 0).all())
    # the chosen subprocesses follow the classes' shares: gluons are in most 3-jet events
    if process == "jjj":
        assert float((pid[:, :2] == 21).any(1).double().mean()) > 0.5
    else:
        assert bool((pid[:, 2] == 11).all() and (pid[:, 3] == -11).all())
        assert bool((table[:, 2:4, 4:6] == 0).all())  # leptons carry no colour
    with pytest.raises(InputError, match="inside the cuts"):
        f.particle_table(torch.zeros(2, f.dims, dtype=torch.float64))
