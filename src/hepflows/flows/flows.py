"""Ready-made flows: :class:`CouplingFlow`, :class:`MAF` and :class:`IAF`.

All share the keyword arguments ``features``, ``context`` (0 = none),
``transforms`` (number of blocks), ``bins`` (spline bins), ``hidden``
(conditioner widths) and ``domain`` (``"real"``: Gaussian base and splines on
[-bound, bound] with identity tails; ``"unit"``: uniform base on [0, 1]^F and
bounded splines). They remember their configuration so that
:func:`hepflows.flows.save` / :func:`hepflows.flows.load` can rebuild them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from hepflows.errors import ConfigError
from hepflows.flows.autoregressive import InverseAutoregressive, MaskedAutoregressive
from hepflows.flows.coupling import Coupling
from hepflows.flows.distributions import BaseDistribution, StandardNormal, UnitUniform
from hepflows.flows.elementwise import make_map
from hepflows.flows.flow import Flow
from hepflows.flows.nets import ACTIVATIONS
from hepflows.flows.transforms import Compose, Permutation, Transform

#: Flow classes that save/load can rebuild, by name.
REGISTRY: dict[str, type[ConfiguredFlow]] = {}


class ConfiguredFlow(Flow):
    """A flow built from keyword arguments that it keeps in :attr:`config`."""

    min_features: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 6,
        bins: int = 8,
        hidden: Sequence[int] = (128, 128),
        domain: str = "real",
        bound: float = 5.0,
        kind: str = "rqs",
        act: str = "relu",
        **extra: Any,
    ) -> None:
        config = dict(
            features=features, context=context, transforms=transforms, bins=bins,
            hidden=list(hidden), domain=domain, bound=bound, kind=kind, act=act, **extra,
        )  # fmt: skip
        _check_config(config, self.min_features)
        try:
            elementwise = make_map(kind, bins, bound, domain)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        base: BaseDistribution = StandardNormal(features) if domain == "real" else UnitUniform(
            features
        )
        blocks = self.build(elementwise=elementwise, **config)
        super().__init__(Compose(blocks), base, features, context, domain)
        self.config = config

    def build(self, **config: Any) -> list[Transform]:
        """The list of blocks of the flow (implemented by subclasses)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items())

    def save(self, path: str) -> None:
        """Save weights and configuration to one safetensors file (atomic write)."""
        from hepflows.flows.saving import save

        save(self, path)

    @classmethod
    def load(cls, path: str, map_location: str | torch.device = "cpu") -> ConfiguredFlow:
        """Load a flow of this class saved with :meth:`save`."""
        from hepflows.flows.saving import load

        return load(path, expected=cls, map_location=map_location)


def _check_config(config: dict[str, Any], min_features: int) -> None:
    def positive_int(name: str, low: int = 1) -> None:
        v = config[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {v!r}")

    positive_int("features", min_features)
    positive_int("context", 0)
    positive_int("transforms")
    positive_int("bins", 2)
    if not all(isinstance(h, int) and h > 0 for h in config["hidden"]):
        raise ConfigError(f"hidden must be a sequence of positive ints, got {config['hidden']!r}")
    if config["domain"] not in ("real", "unit"):
        raise ConfigError(f"domain must be 'real' or 'unit', got {config['domain']!r}")
    if not (isinstance(config["bound"], int | float) and 0 < config["bound"] < math.inf):
        raise ConfigError(f"bound must be positive, got {config['bound']!r} (and finite)")
    if config["act"] not in ACTIVATIONS:
        known = sorted(ACTIVATIONS)
        raise ConfigError(f"unknown activation {config['act']!r}: choose from {known}")


def alternating_permutation(features: int, split: int, seed: int | None) -> torch.Tensor:
    """Permutation that moves the transformed features into the conditioning half.

    Features ``split..F-1`` (just transformed) come first, then ``0..split-1``;
    with a seed each half is also shuffled, so that features meet different
    partners from block to block.

    Returns:
        (F,) permutation indices.
    """
    first, second = torch.arange(split, features), torch.arange(split)
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        first = first[torch.randperm(len(first), generator=g)]
        second = second[torch.randperm(len(second), generator=g)]
    return torch.cat((first, second))


class CouplingFlow(ConfiguredFlow):
    """Coupling flow (RealNVP / neural spline flow).

    Each block transforms half of the features conditioned on the other half
    (and the context); a permutation between blocks swaps the halves.

    Args:
        features: F >= 2.
        context: C, context width (0 = none).
        transforms: number of coupling blocks.
        bins: spline bins K.
        hidden: conditioner MLP hidden widths.
        domain: ``"real"`` or ``"unit"``.
        bound: tail bound B of the real-domain splines.
        kind: element-wise map, ``"rqs"`` or ``"affine"`` (real domain only).
        act: activation of the conditioners.
        permutation: ``"random"`` (halves swapped and shuffled, seeded by
            ``seed``) or ``"swap"`` (halves swapped in order).
        seed: seed of the random permutations.
        bayesian: Bayesian (variational) conditioner layers; see :meth:`kl`.

    Example:
        >>> flow = CouplingFlow(features=2, transforms=4, bins=8, hidden=(64, 64))
        >>> x = flow.sample(1000)            # (1000, 2)
        >>> flow.log_prob(x).shape
        torch.Size([1000])
    """

    min_features = 2

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 6,
        bins: int = 8,
        hidden: Sequence[int] = (128, 128),
        domain: str = "real",
        bound: float = 5.0,
        kind: str = "rqs",
        act: str = "relu",
        permutation: str = "random",
        seed: int = 0,
        bayesian: bool = False,
    ) -> None:
        if permutation not in ("random", "swap"):
            raise ConfigError(f"permutation must be 'random' or 'swap', got {permutation!r}")
        super().__init__(
            features, context, transforms, bins, hidden, domain, bound, kind, act,
            permutation=permutation, seed=seed, bayesian=bayesian,
        )  # fmt: skip

    def build(self, **c: Any) -> list[Transform]:
        features, split = c["features"], c["features"] // 2
        blocks: list[Transform] = []
        for i in range(c["transforms"]):
            if i:
                seed = c["seed"] + i if c["permutation"] == "random" else None
                blocks.append(Permutation(alternating_permutation(features, split, seed)))
            blocks.append(
                Coupling(
                    features, split, c["elementwise"], c["context"], c["hidden"], c["act"],
                    bayesian=c["bayesian"],
                )  # fmt: skip
            )
        return blocks

    def kl(self) -> torch.Tensor:
        """KL term of the Bayesian conditioners (a scalar; 0 if not Bayesian)."""
        return sum(
            (m.net.kl() for m in self.modules() if isinstance(m, Coupling)), torch.zeros(())
        )


class MAF(ConfiguredFlow):
    """Masked autoregressive flow: density in one pass, sampling in F passes per block.

    Args: as :class:`CouplingFlow` (without ``permutation``/``seed``/``bayesian``);
    the autoregressive order is reversed between blocks.
    """

    block: ClassVar[type[MaskedAutoregressive]] = MaskedAutoregressive

    def __init__(
        self,
        features: int,
        context: int = 0,
        transforms: int = 5,
        bins: int = 8,
        hidden: Sequence[int] = (128, 128),
        domain: str = "real",
        bound: float = 5.0,
        kind: str = "rqs",
        act: str = "relu",
    ) -> None:
        super().__init__(features, context, transforms, bins, hidden, domain, bound, kind, act)

    def build(self, **c: Any) -> list[Transform]:
        features = c["features"]
        blocks: list[Transform] = []
        for i in range(c["transforms"]):
            if i:
                blocks.append(Permutation(torch.arange(features - 1, -1, -1)))
            blocks.append(
                self.block(features, c["elementwise"], c["context"], c["hidden"], act=c["act"])
            )
        return blocks


class IAF(MAF):
    """Inverse autoregressive flow: sampling in one pass, density in F passes per block.

    Same arguments as :class:`MAF`. CaloFlow's student is an IAF: its blocks
    (:class:`~hepflows.flows.autoregressive.InverseAutoregressive`) mirror the
    MAF's block by block, so a student can be distilled from a teacher of the
    same configuration.
    """

    block = InverseAutoregressive
