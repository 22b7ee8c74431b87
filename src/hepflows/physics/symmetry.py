"""Exact symmetries of an integrand, folded away before integration.

A process integrand on [0, 1]^d often has exact symmetries that a flow would
otherwise have to learn from samples (and never learns exactly):

* **flat directions**: f does not depend on u_k at all (the azimuth phi of a
  2 -> 2 process without phi-dependent cuts): u_k is integrated analytically
  (the width of [0, 1] is 1) and drawn uniformly for events;
* **a reflection**: f(u) = f(R u) with R mapping u_i -> 1 - u_i on a set of
  directions (for pp -> l+ l-, swapping the beams: (y, cos theta) ->
  (-y, -cos theta)). The half u_h < 1/2 carries half the integral, so
  f_fold(v) = f(u(v)) with u_h = v_h / 2 has the same integral (Jacobian 1/2
  times multiplicity 2); events come back mirrored with probability 1/2.

:class:`Folded` wraps such an integrand: fewer dimensions and half the volume
for the flow, the same integral, one call of f per point. On Drell-Yan with the
Z' (2e5 + 2e5 calls) it lowered the relative error from 9.5e-5 to 6.8e-5 and
raised the unweighting efficiency from 0.50 to 0.61 (benchmarks/drell_yan.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hepflows.errors import ConfigError


class Folded:
    """An integrand with its flat directions dropped and one reflection folded.

    Args:
        f: the full integrand, (n, d) float64 unit-cube points -> (n,).
        dims: d.
        flat: directions f does not depend on.
        mirror: directions of the reflection u_i -> 1 - u_i that leaves f invariant
            (empty: no reflection).
        half: the mirrored direction whose lower half is kept (one of ``mirror``).
        check: verify the symmetries on ``check`` random points (0: trust them);
            a violation is a :class:`~hepflows.ConfigError`. These calls are not
            part of any budget.
        seed: seed of the check points.

    The folded integrand takes (n, k) points, k = d - len(flat), in the order of
    the remaining directions, and has the same integral as ``f``.
    """

    def __init__(
        self,
        f: Callable[[Tensor], Tensor],
        dims: int,
        flat: Sequence[int] = (),
        mirror: Sequence[int] = (),
        half: int | None = None,
        check: int = 256,
        seed: int = 0,
    ) -> None:
        self.f, self.full_dims = f, int(dims)
        self.flat, self.mirror = tuple(sorted(set(flat))), tuple(sorted(set(mirror)))
        if any(not 0 <= k < dims for k in self.flat + self.mirror):
            raise ConfigError(f"flat {flat} and mirror {mirror} must be directions 0..{dims - 1}")
        if set(self.flat) & set(self.mirror):
            raise ConfigError("a flat direction cannot also be mirrored: drop it from mirror")
        if self.mirror and half not in self.mirror:
            raise ConfigError(f"half must be one of the mirrored directions {self.mirror}")
        if not self.mirror and half is not None:
            raise ConfigError("half needs a reflection: give mirror")
        self.half = half
        self.kept = tuple(k for k in range(dims) if k not in self.flat)
        self.dims = len(self.kept)
        if self.dims < 1:
            raise ConfigError("every direction is flat: nothing is left to integrate")
        self.exact = getattr(f, "exact", None)
        if check:
            self._check(check, seed)

    def _embed(self, v: Tensor) -> Tensor:
        """(n, k) folded points -> (n, d) full points with u_half in [0, 1/2], flat at 1/2."""
        u = torch.full((len(v), self.full_dims), 0.5, dtype=v.dtype, device=v.device)
        u[:, list(self.kept)] = v
        if self.half is not None:
            u[:, self.half] = 0.5 * u[:, self.half]
        return u

    def __call__(self, v: Tensor) -> Tensor:
        """(n, k) folded points -> (n,) integrand values (one call of f each)."""
        return self.f(self._embed(v))

    def expand(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Full (n, d) points distributed as f from folded (n, k) points distributed as f_fold.

        Flat directions are drawn uniformly; the reflection is applied to a random half.
        """
        u = self._embed(v)
        for k in self.flat:
            u[:, k] = torch.rand(len(v), generator=generator, dtype=v.dtype, device=v.device)
        if self.mirror:
            flip = torch.rand(len(v), generator=generator, device=v.device) < 0.5
            cols = list(self.mirror)
            sub = u[:, cols]
            sub[flip] = 1 - sub[flip]
            u[:, cols] = sub
        return u

    def _check(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(n, self.full_dims, generator=g, dtype=torch.float64, device="cpu")
        ref = self.f(u)
        scale = ref.abs().max().clamp_min(1e-300)
        moved = {}
        for k in self.flat:
            w = u.clone()
            w[:, k] = torch.rand(n, generator=g, dtype=torch.float64, device="cpu")
            moved[f"direction {k} (flat)"] = w
        if self.mirror:
            w = u.clone()
            w[:, list(self.mirror)] = 1 - w[:, list(self.mirror)]
            moved[f"reflection of {self.mirror}"] = w
        for name, w in moved.items():
            dev = ((self.f(w) - ref).abs().max() / scale).item()
            if not dev < 1e-9:
                raise ConfigError(
                    f"the integrand is not invariant under the {name}: relative change {dev:.3g} "
                    "(an asymmetric cut?); integrate it unfolded (fold=False)"
                )

    def channels(self) -> list:
        """The channels of ``f`` (``f.channels()``), in folded coordinates.

        Valid when every channel maps direction 0 only and 0 is kept unmirrored
        (the s-hat channels of a 2 -> 2 process); other columns pass through.
        """
        if 0 in self.flat or 0 in self.mirror:
            raise ConfigError("channels act on direction 0: it must be kept and not mirrored")
        return self.f.channels()  # type: ignore[attr-defined]
