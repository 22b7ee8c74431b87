"""Tree-level amplitudes in torch: SU(3) colour algebra (:mod:`.colour`), colour-ordered
Berends-Giele recursion (:mod:`.berends_giele`) and squared matrix elements of parton
processes, pure QCD and q qbar -> gamma*/Z -> l l with jets (:mod:`.partons`)."""

from hepflows.physics.amplitudes.berends_giele import CurrentBuilder, mdot
from hepflows.physics.amplitudes.partons import GLUON, TreeAmplitude

__all__ = ["GLUON", "CurrentBuilder", "TreeAmplitude", "mdot"]
