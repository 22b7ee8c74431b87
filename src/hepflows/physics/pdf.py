"""Parton distribution functions from LHAPDF6 grid files, in torch.

An LHAPDF6 set is a folder ``NAME/`` holding ``NAME.info`` (YAML metadata: flavours,
ranges, alpha_s) and one ``NAME_nnnn.dat`` file per member. A member file
(format ``lhagrid1``) is a short YAML header, a ``---`` line, then subgrid blocks,
each ended by ``---``: the x knots, the Q knots (GeV), the PDG ids of the columns
(0 or 21 = gluon), then nx * nq rows of x f(x, Q) with x outermost (row ix * nq + iq).
Subgrids cover consecutive Q ranges, split at the heavy-quark thresholds; the
boundary Q is in both.

:func:`load_pdf` finds a set by name (:func:`find_pdf_member`) in the folders of
``LHAPDF_DATA_PATH`` (and ``LHAPATH``), ``<sys.prefix>/share/LHAPDF``, and the
``pdfdata`` folder of the ``pythia8mc`` wheel, which ships bare member files without
``.info`` (their metadata is in :data:`KNOWN_SETS`).

Interpolation is LHAPDF6's default ``LogBicubicInterpolator``, the same arithmetic
up to rounding: in a subgrid, a cubic Hermite spline in ln x (knot derivatives
from the mean of the adjacent one-sided slopes, one-sided at the ends), evaluated
on four Q rows, then a cubic Hermite spline in ln Q^2 with derivatives from the
same finite differences of the x-interpolated values. A subgrid with fewer than 4
Q knots falls back, as in LHAPDF, to linear interpolation in ln x and ln Q^2. The
subgrid of a point is the last one whose lowest Q^2 is <= Q^2, so a boundary Q
belongs to the upper subgrid. As both are linear in the tabulated values, each
point gets a 4 x 4 stencil of weights that serves all flavours at once.

Outside the grid the values are frozen: x is clamped to [x_min, x_max] and Q^2 to
[q2_min, q2_max] (LHAPDF's "nearest" extrapolator; Pythia's LHAGrid1 freezes as
well). Values are returned as tabulated, so they may be (slightly) negative where
the grid is (NNPDF3.1 LO strange quarks are); Pythia clips those to 0, LHAPDF does not.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError

__all__ = [
    "DEFAULT_SET",
    "KNOWN_SETS",
    "PDF",
    "Subgrid",
    "available_sets",
    "default_pdf_paths",
    "find_pdf_member",
    "load_pdf",
    "read_info",
    "read_lhagrid",
]

DEFAULT_SET = "NNPDF23_lo_as_0130_qed"
"""Pythia 8's default proton PDF (``PDF:pSet = 13``)."""

_MZ = 91.1876
_NNPDF23 = {"mz": _MZ, "m_charm": math.sqrt(2.0), "m_bottom": 4.75, "m_top": 175.0}
_NNPDF31 = {"mz": _MZ, "m_charm": 1.51, "m_bottom": 4.92, "m_top": None}

KNOWN_SETS: dict[str, dict[str, Any]] = {
    "NNPDF23_lo_as_0130_qed": {"lhapdf_id": 247000, "alpha_s_mz": 0.130, "order_qcd": 0,
                               **_NNPDF23},
    "NNPDF23_lo_as_0119_qed": {"lhapdf_id": 246800, "alpha_s_mz": 0.119, "order_qcd": 0,
                               **_NNPDF23},
    "NNPDF23_nlo_as_0119_qed": {"lhapdf_id": 244800, "alpha_s_mz": 0.119, "order_qcd": 1,
                                **_NNPDF23},
    "NNPDF23_nnlo_as_0119_qed": {"lhapdf_id": 246000, "alpha_s_mz": 0.119, "order_qcd": 2,
                                 **_NNPDF23},
    "NNPDF31_lo_as_0118": {"lhapdf_id": 315000, "alpha_s_mz": 0.118, "order_qcd": 0, **_NNPDF31},
    "NNPDF31_lo_as_0130": {"lhapdf_id": 315200, "alpha_s_mz": 0.130, "order_qcd": 0, **_NNPDF31},
    "NNPDF31_nlo_as_0118_luxqed": {"lhapdf_id": 324900, "alpha_s_mz": 0.118, "order_qcd": 1,
                                   **_NNPDF31},
    "NNPDF31_nnlo_as_0118_luxqed": {"lhapdf_id": 325100, "alpha_s_mz": 0.118, "order_qcd": 2,
                                    **_NNPDF31},
}
"""Metadata of the sets Pythia ships without ``.info`` files, keyed by set name.

``lhapdf_id`` is the LHAPDF ID of member 0 (pdfsets.index), ``alpha_s_mz`` the
alpha_s(M_Z) of the fit, ``order_qcd`` its perturbative order (0 = LO), ``mz`` the Z
mass (GeV) and ``m_charm``, ``m_bottom``, ``m_top`` the flavour thresholds (GeV,
``None``: no such threshold) of the one-loop alpha_s used without ``.info`` file.
"""

_MEMBER_RE = re.compile(r"^(?P<name>.+)_(?P<member>\d{4})\.dat$")
_ENV_PATHS = ("LHAPDF_DATA_PATH", "LHAPATH")


# ------------------------------------------------------------------------- files
@dataclass(frozen=True)
class Subgrid:
    """One Q range of a member file, as read (float64, CPU).

    Attributes:
        x: (nx,) x knots, increasing.
        q: (nq,) Q knots in GeV, increasing.
        flavours: PDG ids of the columns, gluon as 21.
        xf: (nx, nq, F) the tabulated x f(x, Q) per flavour column.
    """

    x: Tensor
    q: Tensor
    flavours: tuple[int, ...]
    xf: Tensor

    @property
    def q2(self) -> Tensor:
        """(nq,) Q^2 knots in GeV^2 (Q * Q, as LHAPDF stores them)."""
        return self.q * self.q


def _floats(tokens: list[str], path: Path, lineno: int, what: str) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path.name}, line {lineno}: unreadable {what}: {exc}") from None


def _check_knots(k: np.ndarray, path: Path, lineno: int, what: str) -> None:
    if k.size < 2 or not np.all(np.isfinite(k)) or k[0] <= 0 or np.any(np.diff(k) <= 0):
        raise InputError(
            f"{path.name}, line {lineno}: the {what} knots must be at least 2 positive, "
            f"strictly increasing numbers, got {k.size} values from {k[:3]} ..."
        )


def read_lhagrid(path: str | os.PathLike) -> tuple[dict[str, str], list[Subgrid]]:
    """Read an LHAPDF6 ``lhagrid1`` member file.

    Args:
        path: a ``NAME_nnnn.dat`` file.

    Returns:
        ``(header, subgrids)``: the header's ``key: value`` pairs (as strings) and
        the subgrids in increasing Q order.

    Raises:
        InputError: missing file, unknown format, missing ``---``, a block with the
            wrong number of rows or values per row, unreadable or non-finite numbers,
            non-increasing knots, overlapping Q ranges; the message names the file
            and the block or line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the PDF grid file {path}: {exc}") from None
    lines = text.splitlines()
    seps = [i for i, line in enumerate(lines) if line.strip().startswith("---")]
    if not seps:
        raise InputError(f"{path.name}: no '---' line: not an LHAPDF6 grid file")
    header: dict[str, str] = {}
    for line in lines[: seps[0]]:
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith("#"):
            header[key.strip()] = value.strip().strip("\"'")
    fmt = header.get("Format", "lhagrid1")
    if fmt != "lhagrid1":
        raise InputError(f"{path.name}: format {fmt!r} is not supported, only lhagrid1")
    tail = [i + 1 for i in range(seps[-1] + 1, len(lines)) if lines[i].strip()]
    if tail:
        raise InputError(
            f"{path.name}, line {tail[0]}: data after the last '---': block {len(seps)} is "
            "not terminated by '---' (truncated file?)"
        )
    if len(seps) < 2:
        raise InputError(f"{path.name}: header but no subgrid block (truncated file?)")
    grids: list[Subgrid] = []
    for b, (start, stop) in enumerate(zip(seps[:-1], seps[1:], strict=True), start=1):
        body = [(i + 1, lines[i]) for i in range(start + 1, stop) if lines[i].strip()]
        where = f"{path.name}, block {b} (lines {start + 2}-{stop})"
        if len(body) < 4:
            raise InputError(f"{where}: needs x knots, Q knots, flavours and values, "
                             f"found {len(body)} lines")
        (lx, sx), (lq, sq), (lf, sf) = body[:3]
        x = _floats(sx.split(), path, lx, "x knots")
        q = _floats(sq.split(), path, lq, "Q knots")
        _check_knots(x, path, lx, "x")
        _check_knots(q, path, lq, "Q")
        if x[-1] > 1:
            raise InputError(f"{path.name}, line {lx}: x knots above 1 ({x[-1]})")
        try:
            pids = [int(p) for p in sf.split()]
        except ValueError:
            raise InputError(f"{path.name}, line {lf}: unreadable flavour ids {sf!r}") from None
        flavours = tuple(21 if p == 0 else p for p in pids)
        if not flavours or len(set(flavours)) != len(flavours):
            raise InputError(f"{path.name}, line {lf}: empty or repeated flavour ids {pids}")
        rows = body[3:]
        nrow, ncol = x.size * q.size, len(flavours)
        if len(rows) != nrow:
            raise InputError(
                f"{where}: expected nx * nq = {x.size} * {q.size} = {nrow} value rows, "
                f"found {len(rows)} (truncated or corrupt file?)"
            )
        tokens = [r.split() for _, r in rows]
        for (lineno, _), tok in zip(rows, tokens, strict=True):
            if len(tok) != ncol:
                raise InputError(
                    f"{path.name}, line {lineno}: expected {ncol} values (one per flavour), "
                    f"found {len(tok)}"
                )
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError as exc:
            raise InputError(f"{where}: unreadable value: {exc}") from None
        if not np.all(np.isfinite(values)):
            bad = int(np.argwhere(~np.isfinite(values))[0, 0])
            raise InputError(f"{path.name}, line {rows[bad][0]}: non-finite value")
        if grids and q[0] < grids[-1].q[-1].item():
            raise InputError(
                f"{where}: Q range starts at {q[0]} GeV, below the end of the previous "
                f"subgrid ({grids[-1].q[-1].item()} GeV)"
            )
        grids.append(Subgrid(
            x=torch.from_numpy(x), q=torch.from_numpy(q), flavours=flavours,
            xf=torch.from_numpy(values.reshape(x.size, q.size, ncol)),
        ))
    return header, grids


def _parse_scalar(s: str) -> Any:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(s)
        except ValueError:
            pass
    return s


def _parse_info_text(text: str) -> dict[str, Any]:
    """The subset of YAML that LHAPDF .info files use: top-level ``key: value``,
    flow lists ``[a, b]`` (possibly over several lines), block lists (``- a``)."""
    out: dict[str, Any] = {}
    key: str | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if pending:
            pending += " " + line.strip()
            if pending.count("[") <= pending.count("]"):
                out[key] = [_parse_scalar(v) for v in pending.strip()[1:-1].split(",")
                            if v.strip()]
                pending = ""
            continue
        if line.lstrip().startswith("- ") and key is not None and isinstance(out[key], list):
            out[key].append(_parse_scalar(line.lstrip()[2:]))
            continue
        k, sep, value = line.partition(":")
        if not sep or line[0].isspace():
            continue
        key, value = k.strip(), value.strip()
        if value[:1] not in ("'", '"') and " #" in value:
            value = value[: value.index(" #")].rstrip()
        if value.startswith("["):
            if value.count("[") <= value.count("]"):
                out[key] = [_parse_scalar(v) for v in value[1:value.rindex("]")].split(",")
                            if v.strip()]
            else:
                out[key], pending = [], value
        elif not value:
            out[key] = []
        else:
            out[key] = _parse_scalar(value)
    return out


def read_info(path: str | os.PathLike) -> dict[str, Any]:
    """Read an LHAPDF ``.info`` file into a dict (PyYAML if installed, else a small parser).

    Raises:
        InputError: missing or unreadable file.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the PDF info file {path}: {exc}") from None
    try:
        import yaml
    except ImportError:
        return _parse_info_text(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path.name}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path.name}: expected 'key: value' lines")
    return data


# ---------------------------------------------------------------------- finding
def _pythia_pdfdata() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("PYTHIA8DATA")
    if env:  # Pythia's own variable points at .../share/Pythia8/xmldoc
        base = Path(env)
        out += [base.parent / "pdfdata", base / "pdfdata", base]
    out.append(Path(sys.prefix) / "share" / "Pythia8" / "pdfdata")
    try:
        spec = importlib.util.find_spec("pythia8mc")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        here = Path(spec.origin).resolve().parent
        out += [p / "share" / "Pythia8" / "pdfdata" for p in (here, *list(here.parents)[:4])]
    return out


def default_pdf_paths() -> list[Path]:
    """Existing folders searched for PDF sets, in order of precedence.

    The folders of ``LHAPDF_DATA_PATH`` and ``LHAPATH`` (colon separated),
    ``<sys.prefix>/share/LHAPDF``, then Pythia's ``pdfdata``: next to the folder
    ``PYTHIA8DATA`` names, in ``<sys.prefix>/share/Pythia8``, or found from the
    ``pythia8mc`` module's location.
    """
    cands: list[Path] = []
    for var in _ENV_PATHS:
        cands += [Path(p) for p in os.environ.get(var, "").split(os.pathsep) if p]
    cands.append(Path(sys.prefix) / "share" / "LHAPDF")
    cands += _pythia_pdfdata()
    out: list[Path] = []
    seen: set[Path] = set()
    for c in cands:
        if c.is_dir() and (r := c.resolve()) not in seen:
            seen.add(r)
            out.append(c)
    return out


def _sets_in(folder: Path) -> set[str]:
    names: set[str] = set()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return names
    for e in entries:
        if e.is_dir() and ((e / f"{e.name}.info").is_file()
                           or (e / f"{e.name}_0000.dat").is_file()):
            names.add(e.name)
        elif (m := _MEMBER_RE.match(e.name)) and e.is_file():
            names.add(m["name"])
    return names


def available_sets(paths: Sequence[str | os.PathLike] | None = None) -> list[str]:
    """Sorted names of the PDF sets found in ``paths`` (default :func:`default_pdf_paths`)."""
    folders = default_pdf_paths() if paths is None else [Path(p) for p in paths]
    return sorted(set().union(*(_sets_in(f) for f in folders)))


def find_pdf_member(
    name: str, member: int = 0, paths: Sequence[str | os.PathLike] | None = None
) -> tuple[Path, Path | None]:
    """Locate member ``member`` of set ``name``.

    In each folder (``paths``, default :func:`default_pdf_paths`), in order: a set
    folder ``NAME/NAME_nnnn.dat`` (with ``NAME/NAME.info`` if present), then a bare
    ``NAME_nnnn.dat`` (with ``NAME.info`` beside it if present).

    Returns:
        ``(member_file, info_file_or_None)``.

    Raises:
        ConfigError: bad name or member; set or member not found (the message lists
            the folders searched and the sets, or members, available).
    """
    if not name or "/" in name or os.sep in name:
        raise ConfigError(f"PDF set name {name!r} must be a bare name such as {DEFAULT_SET!r}")
    if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member <= 9999:
        raise ConfigError(f"PDF member must be an integer in [0, 9999], got {member!r}")
    folders = default_pdf_paths() if paths is None else [Path(p) for p in paths]
    fname = f"{name}_{member:04d}.dat"
    members: set[str] = set()
    for folder in folders:
        for base in (folder / name, folder):
            dat = base / fname
            if dat.is_file():
                info = base / f"{name}.info"
                return dat, (info if info.is_file() else None)
            if base.is_dir():
                members |= {m["member"] for f in base.glob(f"{name}_*.dat")
                            if (m := _MEMBER_RE.match(f.name)) and m["name"] == name}
    searched = ", ".join(str(f) for f in folders) or "(none: no folder exists)"
    if members:
        raise ConfigError(f"PDF set {name!r} has no member {member}; members found: "
                          f"{sorted(int(m) for m in members)} (searched {searched})")
    sets = available_sets(folders)
    shown = ", ".join(sets[:60]) + (f", ... ({len(sets)} in all)" if len(sets) > 60 else "")
    try:
        pythia = importlib.util.find_spec("pythia8mc") is not None
    except (ImportError, ValueError):
        pythia = False
    hint = "" if pythia else (
        " The built-in NNPDF sets ship with pythia8mc: pip install 'hepflows[physics]'."
    )
    raise ConfigError(
        f"PDF set {name!r} not found. Folders searched: {searched}. Available sets: "
        f"{shown or 'none'}. Install the set into a folder of LHAPDF_DATA_PATH "
        f"(lhapdf get NAME) or pass paths=.{hint}"
    )


def load_pdf(
    name: str = DEFAULT_SET,
    member: int = 0,
    paths: Sequence[str | os.PathLike] | None = None,
    alpha_s_mz: float | None = None,
) -> PDF:
    """Load member ``member`` of the set ``name`` (see :func:`find_pdf_member`).

    Args:
        name: set name, default Pythia 8's default ``NNPDF23_lo_as_0130_qed``.
        member: member number (0 = central).
        paths: folders to search instead of :func:`default_pdf_paths`.
        alpha_s_mz: overrides the set's alpha_s(M_Z); :meth:`PDF.alpha_s` then
            runs at one loop from this value.
    """
    dat, info = find_pdf_member(name, member, paths)
    meta = {} if alpha_s_mz is None else {"alpha_s_mz": float(alpha_s_mz)}
    return PDF.from_file(dat, info=info, metadata=meta)


# ----------------------------------------------------------------- interpolation
def _deriv_coeffs(knots: Tensor) -> Tensor:
    """(n,) knots -> (n, 3) coefficients c with d_i = c_i0 f_(i-1) + c_i1 f_i + c_i2 f_(i+1).

    LHAPDF's knot derivative: the mean of the two adjacent slopes, the forward
    (backward) slope at the first (last) knot.
    """
    n = knots.numel()
    inv = 1.0 / (knots[1:] - knots[:-1])  # (n-1,) inverse interval widths
    c = torch.zeros(n, 3, dtype=knots.dtype)
    c[1:-1, 0] = -0.5 * inv[:-1]
    c[1:-1, 1] = 0.5 * inv[:-1] - 0.5 * inv[1:]
    c[1:-1, 2] = 0.5 * inv[1:]
    c[0, 1], c[0, 2] = -inv[0], inv[0]
    c[-1, 0], c[-1, 1] = -inv[-1], inv[-1]
    return c


def _locate(knots: Tensor, logk: Tensor, coeffs: Tensor, v: Tensor, linear: bool
            ) -> tuple[Tensor, Tensor]:
    """Interval and 4-point weights of (m,) values ``v`` already inside [knots[0], knots[-1]].

    Returns ``(i, w)``: (m,) i with knots[i] <= v < knots[i+1] (clamped to [0, n-2])
    and (m, 4) weights of the values at knots i-1, i, i+1, i+2: cubic Hermite in the
    log (derivatives from :func:`_deriv_coeffs` times the interval width), or linear.
    """
    n = knots.numel()
    i = (torch.searchsorted(knots, v, right=True) - 1).clamp_(0, n - 2)
    width = logk[i + 1] - logk[i]
    t = (torch.log(v) - logk[i]) / width
    zero = torch.zeros_like(t)
    if linear:
        return i, torch.stack((zero, 1 - t, t, zero), dim=-1)
    t2 = t * t
    t3 = t2 * t
    h00 = 2 * t3 - 3 * t2 + 1
    h01 = -2 * t3 + 3 * t2
    a = (t3 - 2 * t2 + t) * width  # h10 times the width: weight of the lower derivative
    b = (t3 - t2) * width  # h11 times the width: weight of the upper derivative
    lo, hi = coeffs[i], coeffs[i + 1]
    w = torch.stack((
        a * lo[:, 0],
        h00 + a * lo[:, 1] + b * hi[:, 0],
        h01 + a * lo[:, 2] + b * hi[:, 1],
        b * hi[:, 2],
    ), dim=-1)
    return i, w


@dataclass(frozen=True)
class _Grid:
    """Interpolation tables of one subgrid.

    Its values sit in the (rows, F) table zero-padded by one knot on each side in
    x and Q: knot (ix, iq) is row ``offset + (ix + 1) * (nq + 2) + iq + 1``, so the
    16 stencil rows of interval (ix, iq) are ``offset + ix * (nq + 2) + iq + delta``.
    Stencil positions outside the grid get weight exactly 0 (one-sided derivatives).
    """

    x: Tensor
    logx: Tensor
    cx: Tensor
    q2: Tensor
    logq2: Tensor
    cq: Tensor
    offset: int
    delta: Tensor
    linear: bool

    @classmethod
    def build(cls, sub: Subgrid, offset: int, linear: bool) -> _Grid:
        logx, q2 = torch.log(sub.x), sub.q2
        logq2 = torch.log(q2)
        stride = q2.numel() + 2
        delta = (torch.arange(4)[:, None] * stride + torch.arange(4)).reshape(16)
        return cls(x=sub.x, logx=logx, cx=_deriv_coeffs(logx), q2=q2, logq2=logq2,
                   cq=_deriv_coeffs(logq2), offset=offset, delta=delta,
                   linear=linear or q2.numel() < 4)


_STENCIL = torch.arange(-1, 3, device="cpu")


def _moved(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (lists, tuples, dicts, :class:`_Grid`) on ``device``."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, _Grid):
        return dc_replace(value, **{f.name: _moved(getattr(value, f.name), device)
                                    for f in fields(value)})  # fmt: skip
    if isinstance(value, list | tuple):
        return type(value)(_moved(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------- the PDF
def _as_float_tensor(v: Tensor | float | Sequence[float], what: str) -> Tensor:
    if isinstance(v, Tensor):
        if v.is_complex() or v.dtype == torch.bool:
            raise InputError(f"{what} must be real, got dtype {v.dtype}")
        return v.to(dtype=torch.float64)
    try:
        return torch.as_tensor(v, dtype=torch.float64, device="cpu")
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{what} must be numbers: {exc}") from None


def _check_domain(v: Tensor, bad: Tensor, what: str, domain: str) -> None:
    if bool(bad.any()):
        flat = bad.reshape(-1)
        k = int(torch.nonzero(flat)[0, 0])
        raise InputError(
            f"{what}: {int(flat.sum())} of {flat.numel()} values are NaN or outside {domain}, "
            f"e.g. {what}[{k}] = {v.reshape(-1)[k].item()!r} (flat index)"
        )


def _b0(nf: int) -> float:
    return (33.0 - 2.0 * nf) / (12.0 * math.pi)


class PDF:
    """One member of an LHAPDF6 set: x f(x, Q^2) by log-bicubic interpolation, and alpha_s.

    Build with :func:`load_pdf` or :meth:`from_file`. All tensors are float64 on the CPU.

    Attributes:
        name: set name; ``member``: member number.
        flavours: PDG ids of the tabulated flavours (gluon 21), the row order of
            :meth:`xfxQ2_all`.
        x_min, x_max, q2_min, q2_max: the grid's range (Q^2 in GeV^2); values are
            frozen outside it.
        lhapdf_id: LHAPDF ID of this member (set ID + member) or ``None`` if unknown.
        alpha_s_mz: alpha_s(M_Z) or ``None`` if unknown; ``mz``: the Z mass used.
        order_qcd: perturbative order of the fit (0 = LO) or ``None``.
        alpha_s_mode: ``"ipol"`` (the .info's AlphaS_Qs / AlphaS_Vals table),
            ``"running"`` (one loop from alpha_s_mz) or ``None`` (no alpha_s).
        path, info_path: the member file and the .info file (or ``None``).
        subgrids: the grid as read, one :class:`Subgrid` per Q range.
    """

    def __init__(self, path: Path, subgrids: list[Subgrid], meta: dict[str, Any],
                 info_path: Path | None = None, alpha_s_table: tuple[Tensor, Tensor] | None = None,
                 linear: bool = False) -> None:
        self.path = path
        self.info_path = info_path
        self.subgrids = tuple(subgrids)
        m = _MEMBER_RE.match(path.name)
        self.name: str = meta.get("name") or (m["name"] if m else path.stem)
        self.member: int = int(meta["member"]) if meta.get("member") is not None else (
            int(m["member"]) if m else 0)
        set_id = meta.get("lhapdf_id")
        self.lhapdf_id: int | None = None if set_id is None else int(set_id) + self.member
        a_mz = meta.get("alpha_s_mz")
        self.alpha_s_mz: float | None = None if a_mz is None else float(a_mz)
        order = meta.get("order_qcd")
        self.order_qcd: int | None = None if order is None else int(order)
        self.mz: float = float(meta.get("mz") or _MZ)

        # Flavours: union over subgrids in order of appearance; absent columns are 0.
        flavours: list[int] = []
        for sub in subgrids:
            flavours += [f for f in sub.flavours if f not in flavours]
        self.flavours: list[int] = flavours
        self._column = {f: j for j, f in enumerate(flavours)}
        blocks, grids, offset = [], [], 0
        for sub in subgrids:
            nx, nq, _ = sub.xf.shape
            block = torch.zeros(nx + 2, nq + 2, len(flavours), dtype=torch.float64)
            cols = torch.tensor([self._column[f] for f in sub.flavours])
            block[1:-1, 1:-1, cols] = sub.xf
            blocks.append(block.reshape((nx + 2) * (nq + 2), -1))
            grids.append(_Grid.build(sub, offset, linear))
            offset += blocks[-1].shape[0]
        self._table = torch.cat(blocks)  # (rows, F), padded subgrids one after another
        self._grids = grids
        self._q2_lows = torch.stack([g.q2[0] for g in grids])
        self.x_min = min(g.x[0].item() for g in grids)
        self.x_max = max(g.x[-1].item() for g in grids)
        self.q2_min = grids[0].q2[0].item()
        self.q2_max = grids[-1].q2[-1].item()

        # alpha_s: the .info table, else one-loop running from alpha_s(M_Z).
        self._as_grids: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self._as_lows = torch.zeros(0, dtype=torch.float64)
        self.alpha_s_mode: str | None = None
        #: The device of the tables; copies on other devices are made on first use.
        self.device = torch.device("cpu")
        self._copies: dict[torch.device, PDF] = {}
        if alpha_s_table is not None:
            self._setup_alpha_s_ipol(*alpha_s_table)
        elif self.alpha_s_mz is not None:
            self._setup_alpha_s_running(meta)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_file(
        cls,
        dat_path: str | os.PathLike,
        info: str | os.PathLike | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> PDF:
        """Read a member file ``NAME_nnnn.dat``.

        Args:
            dat_path: the member file.
            info: the set's ``.info`` file; default ``NAME.info`` beside the member
                file if it exists.
            metadata: overrides, keys as in :data:`KNOWN_SETS` (``lhapdf_id`` of the
                set, ``alpha_s_mz``, ``order_qcd``, ``mz``, ``m_charm``, ``m_bottom``,
                ``m_top``) plus ``name`` and ``member``. Precedence: ``metadata``, then
                the .info file, then :data:`KNOWN_SETS` for the set's name. An
                ``alpha_s_mz`` given here replaces the .info's alpha_s table by
                one-loop running.

        Raises:
            InputError: unreadable or malformed files.
            ConfigError: unsupported interpolator, or inconsistent alpha_s metadata.
        """
        dat = Path(dat_path)
        _, subgrids = read_lhagrid(dat)
        m = _MEMBER_RE.match(dat.name)
        name = (metadata or {}).get("name") or (m["name"] if m else dat.stem)
        info_path = Path(info) if info is not None else dat.parent / f"{name}.info"
        if info is None and not info_path.is_file():
            info_path = None
        meta: dict[str, Any] = dict(KNOWN_SETS.get(name, {}))
        alpha_table = None
        linear = False
        if info_path is not None:
            data = read_info(info_path)
            for key, ikey in (("lhapdf_id", "SetIndex"), ("alpha_s_mz", "AlphaS_MZ"),
                              ("order_qcd", "OrderQCD"), ("mz", "MZ"), ("m_charm", "MCharm"),
                              ("m_bottom", "MBottom"), ("m_top", "MTop")):
                if data.get(ikey) is not None:
                    meta[key] = data[ikey]
            interp = str(data.get("Interpolator", "logcubic")).lower()
            if interp in ("logbilinear", "loglinear"):
                linear = True
            elif interp not in ("logcubic", "logbicubic"):
                raise ConfigError(f"{info_path.name}: interpolator {interp!r} is not "
                                  "supported (logcubic, logbilinear)")
            qs, vals = data.get("AlphaS_Qs"), data.get("AlphaS_Vals")
            if qs is not None and vals is not None:
                try:
                    qt = torch.tensor([float(v) for v in qs], dtype=torch.float64)
                    at = torch.tensor([float(v) for v in vals], dtype=torch.float64)
                except (TypeError, ValueError):
                    raise InputError(f"{info_path.name}: AlphaS_Qs / AlphaS_Vals must be "
                                     "lists of numbers") from None
                alpha_table = (qt, at)
        meta.update(metadata or {})
        meta["name"] = name
        if (metadata or {}).get("alpha_s_mz") is not None:
            alpha_table = None
        return cls(dat, subgrids, meta, info_path=info_path, alpha_s_table=alpha_table,
                   linear=linear)

    def __repr__(self) -> str:
        return (f"PDF({self.name!r}, member={self.member}, lhapdf_id={self.lhapdf_id}, "
                f"flavours={self.flavours}, x=[{self.x_min:g}, {self.x_max:g}], "
                f"Q2=[{self.q2_min:g}, {self.q2_max:g}] GeV^2, alpha_s={self.alpha_s_mode})")

    # ------------------------------------------------------------------ devices
    def to(self, device: str | torch.device) -> PDF:
        """This PDF with its tables on ``device`` (itself when already there; copies cached).

        Evaluation follows its input: x on a GPU is interpolated with tables on
        that GPU (copied there once), so a PDF never needs moving by hand.
        """
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device == self.device:
            return self
        if device not in self._copies:
            moved = copy.copy(self)
            for name, value in vars(self).items():
                if name != "_copies":
                    setattr(moved, name, _moved(value, device))
            moved.device, moved._copies = device, self._copies
            self._copies[device] = moved
        return self._copies[device]

    # --------------------------------------------------------------- evaluation
    def _prepare(self, x: Tensor | float, q2: Tensor | float) -> tuple[Tensor, Tensor, tuple]:
        xt = _as_float_tensor(x, "x")
        qt = _as_float_tensor(q2, "q2")
        dev = xt.device if xt.device.type != "cpu" else qt.device  # a number joins a tensor
        xt, qt = xt.to(dev), qt.to(dev)
        try:
            xt, qt = torch.broadcast_tensors(xt, qt)
        except RuntimeError:
            raise InputError(f"x {tuple(xt.shape)} and q2 {tuple(qt.shape)} do not "
                             "broadcast") from None
        _check_domain(xt, ~((xt > 0) & (xt <= 1)), "x", "(0, 1]")
        _check_domain(qt, ~((qt > 0) & torch.isfinite(qt)), "q2", "(0, inf)")
        # One scale for every point (a fixed mu_F): q2 stays one value, and the
        # interpolation in Q^2 is done once instead of for every point.
        one_scale = not isinstance(q2, Tensor) or q2.numel() == 1
        qf = qt.reshape(-1)[:1] if one_scale else qt.reshape(-1).contiguous()
        return xt.reshape(-1).contiguous(), qf, tuple(xt.shape)

    def _stencil(self, x: Tensor, q2: Tensor) -> tuple[Tensor, Tensor]:
        """(n,) x, (n,) or (1,) q2 -> (n, 16) table rows and (n, 16) weights."""
        n = x.numel()
        if len(self._grids) == 1:
            return self._grid_stencil(self._grids[0], x, q2)
        if q2.numel() == 1 and n != 1:  # one scale: one subgrid
            k = max(int(torch.searchsorted(self._q2_lows, q2, right=True)[0]) - 1, 0)
            return self._grid_stencil(self._grids[k], x, q2)
        rows = torch.empty(n, 16, dtype=torch.long, device=x.device)
        weights = torch.empty(n, 16, dtype=torch.float64, device=x.device)
        which = (torch.searchsorted(self._q2_lows, q2, right=True) - 1).clamp_(min=0)
        for k, grid in enumerate(self._grids):
            sel = torch.nonzero(which == k).reshape(-1)
            if sel.numel():
                r, w = self._grid_stencil(grid, x[sel], q2[sel])
                rows[sel], weights[sel] = r, w
        return rows, weights

    @staticmethod
    def _grid_stencil(g: _Grid, x: Tensor, q2: Tensor) -> tuple[Tensor, Tensor]:
        xc = x.clamp(g.x[0].item(), g.x[-1].item())
        qc = q2.clamp(g.q2[0].item(), g.q2[-1].item())
        ix, wx = _locate(g.x, g.logx, g.cx, xc, g.linear)
        iq, wq = _locate(g.q2, g.logq2, g.cq, qc, g.linear)
        rows = (g.offset + ix * (g.q2.numel() + 2) + iq)[:, None] + g.delta  # iq may be (1,)
        return rows, (wx[:, :, None] * wq[:, None, :]).reshape(-1, 16)

    @staticmethod
    def _apply(table: Tensor, rows: Tensor, weights: Tensor) -> Tensor:
        """(R, k) table, (n, 16) rows and weights -> (k, n) weighted sums, in one fused pass."""
        out = torch.nn.functional.embedding_bag(rows, table, per_sample_weights=weights,
                                                mode="sum")
        return out.T.contiguous()

    def xfxQ2_all(self, x: Tensor | float, q2: Tensor | float) -> Tensor:
        """x f(x, Q^2) of all tabulated flavours, in the order of :attr:`flavours`.

        The interpolation weights are computed once and used for every flavour.

        Args:
            x: (n,) momentum fractions in (0, 1].
            q2: (n,) scales Q^2 in GeV^2, > 0. Any shapes that broadcast together work;
                the output then has shape (F, *broadcast shape).

        Returns:
            (F, n) float64.

        Raises:
            InputError: NaN, x outside (0, 1], q2 <= 0 or infinite, non-broadcastable shapes.
        """
        xf, qf, shape = self._prepare(x, q2)
        if xf.device != self.device:
            return self.to(xf.device).xfxQ2_all(xf.reshape(shape), qf.reshape(shape))
        rows, w = self._stencil(xf, qf)
        return self._apply(self._table, rows, w).reshape(len(self.flavours), *shape)

    def xfxQ2(self, pid: int | Sequence[int], x: Tensor | float, q2: Tensor | float) -> Tensor:
        """x f(x, Q^2) of flavour(s) ``pid`` (PDG ids; 0 and 21 are the gluon).

        A flavour absent from the grid (e.g. top in NNPDF3.1) gives zeros.

        Args:
            pid: an id, or a sequence of k ids.
            x: (n,) momentum fractions in (0, 1].
            q2: (n,) scales in GeV^2 (shapes broadcast as in :meth:`xfxQ2_all`).

        Returns:
            (n,) for an int ``pid``, (k, n) for a sequence.
        """
        single = isinstance(pid, int | np.integer) or (isinstance(pid, Tensor) and pid.ndim == 0)
        try:
            pids = [int(pid)] if single else [int(p) for p in pid]
        except (TypeError, ValueError):
            raise InputError(f"pid must be a PDG id or a sequence of them, got {pid!r}") from None
        xf, qf, shape = self._prepare(x, q2)
        if xf.device != self.device:
            return self.to(xf.device).xfxQ2(pid, xf.reshape(shape), qf.reshape(shape))
        cols = [self._column.get(21 if p == 0 else p, -1) for p in pids]
        present = sorted({c for c in cols if c >= 0})
        out = torch.zeros(len(pids), xf.numel(), dtype=torch.float64, device=xf.device)
        if present:
            rows, w = self._stencil(xf, qf)
            vals = self._apply(self._table[:, present].contiguous(), rows, w)
            pos = {c: i for i, c in enumerate(present)}
            for k, c in enumerate(cols):
                if c >= 0:
                    out[k] = vals[pos[c]]
        out = out.reshape(len(pids), *shape)
        return out[0] if single else out

    # ------------------------------------------------------------------ alpha_s
    def _setup_alpha_s_ipol(self, qs: Tensor, vals: Tensor) -> None:
        where = self.info_path.name if self.info_path else "alpha_s table"
        if qs.ndim != 1 or qs.shape != vals.shape or qs.numel() < 2:
            raise InputError(f"{where}: AlphaS_Qs and AlphaS_Vals must be lists of equal "
                             f"length >= 2, got {tuple(qs.shape)} and {tuple(vals.shape)}")
        if not (torch.isfinite(qs).all() and torch.isfinite(vals).all() and (qs > 0).all()
                and (vals > 0).all() and (qs[1:] >= qs[:-1]).all()):
            raise InputError(f"{where}: AlphaS_Qs must be positive and non-decreasing, "
                             "AlphaS_Vals positive")
        # A repeated Q (a flavour threshold) starts a new piece, as in LHAPDF.
        cuts = [0] + [i for i in range(1, qs.numel()) if qs[i] == qs[i - 1]] + [qs.numel()]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            if b - a < 2:
                raise InputError(f"{where}: AlphaS_Qs piece starting at Q = {qs[a].item()} "
                                 "has a single knot")
            q2 = qs[a:b] ** 2
            lq2 = torch.log(q2)
            self._as_grids.append((q2, lq2, _deriv_coeffs(lq2), vals[a:b]))
        self._as_lows = torch.stack([g[0][0] for g in self._as_grids])
        self.alpha_s_mode = "ipol"

    def _setup_alpha_s_running(self, meta: dict[str, Any]) -> None:
        a_mz = self.alpha_s_mz
        if not (a_mz is not None and 0 < a_mz < 1):
            raise ConfigError(f"alpha_s(M_Z) must be in (0, 1), got {a_mz}")
        named = [(meta.get("m_charm", 1.3), 4), (meta.get("m_bottom", 4.75), 5),
                 (meta.get("m_top"), 6)]
        present = [(float(m), nf) for m, nf in named if m is not None]
        thr = [m for m, _ in present]
        if thr != sorted(thr) or any(m <= 0 for m in thr):
            raise ConfigError(f"quark-mass thresholds must be positive and increasing: {thr}")
        # Regions k = 0 .. len(thr) between thresholds, with nf[k] active flavours; a
        # reference point (Q^2, alpha_s) per region, alpha_s continuous at the thresholds.
        nfs = [present[0][1] - 1 if present else 5] + [nf for _, nf in present]
        mz2 = self.mz**2
        thr2 = [m * m for m in thr]
        k_mz = sum(t <= mz2 for t in thr2)
        ref = [(0.0, 0.0)] * (len(thr2) + 1)
        ref[k_mz] = (mz2, a_mz)
        for k in range(k_mz - 1, -1, -1):  # down from M_Z
            q2r, ar = ref[k + 1]
            ref[k] = (thr2[k], ar / (1 + ar * _b0(nfs[k + 1]) * math.log(thr2[k] / q2r)))
        for k in range(k_mz + 1, len(thr2) + 1):  # up from M_Z
            q2r, ar = ref[k - 1]
            ref[k] = (thr2[k - 1], ar / (1 + ar * _b0(nfs[k - 1]) * math.log(thr2[k - 1] / q2r)))
        self._as_thr2 = torch.tensor(thr2, dtype=torch.float64)
        self._as_ref = torch.tensor(ref, dtype=torch.float64)  # (regions, 2)
        self._as_b0 = torch.tensor([_b0(nf) for nf in nfs], dtype=torch.float64)
        self.alpha_s_mode = "running"
        probe = torch.tensor([self.q2_min, *[t for t in thr2 if t > self.q2_min]],
                             dtype=torch.float64)
        values = self.alpha_s(probe)
        if not (torch.isfinite(values).all() and (values > 0).all() and (values < 5).all()):
            raise ConfigError(
                f"one-loop alpha_s from alpha_s(M_Z) = {a_mz} hits the Landau pole above "
                f"Q^2 = {self.q2_min} GeV^2"
            )

    def alpha_s(self, q2: Tensor | float) -> Tensor:
        """The strong coupling alpha_s(Q^2).

        With an .info file carrying ``AlphaS_Qs``/``AlphaS_Vals``: LHAPDF's ``ipol``
        method, cubic Hermite in ln Q^2 (derivatives as for the PDFs), piecewise
        between flavour thresholds (repeated Q values), frozen outside the table.
        Otherwise an approximation: one-loop running from alpha_s(M_Z) with
        b0 = (33 - 2 nf) / (12 pi), nf = 3, 4, 5 (6 above m_top if given) switching at
        the quark masses of :data:`KNOWN_SETS` (default m_c = 1.3, m_b = 4.75 GeV),
        alpha_s continuous there, frozen outside [q2_min, q2_max] of the PDF grid.
        This reproduces alpha_s(M_Z) exactly but not the fit's own running beyond LO.

        Args:
            q2: (n,) scales in GeV^2, > 0 (any shape).

        Returns:
            (n,) float64.

        Raises:
            ConfigError: the set has no alpha_s information (pass ``alpha_s_mz``).
            InputError: NaN, non-positive or infinite q2.
        """
        if self.alpha_s_mode is None:
            raise ConfigError(f"no alpha_s for PDF set {self.name!r}: no .info file and no "
                              "known alpha_s(M_Z); pass alpha_s_mz= to load_pdf")
        qt = _as_float_tensor(q2, "q2")
        _check_domain(qt, ~((qt > 0) & torch.isfinite(qt)), "q2", "(0, inf)")
        if qt.device != self.device:
            return self.to(qt.device).alpha_s(qt)
        shape, flat = qt.shape, qt.reshape(-1).contiguous()
        if self.alpha_s_mode == "running":
            flat = flat.clamp(self.q2_min, self.q2_max)
            k = torch.searchsorted(self._as_thr2, flat, right=True)
            q2r, ar = self._as_ref[k, 0], self._as_ref[k, 1]
            out = ar / (1 + ar * self._as_b0[k] * torch.log(flat / q2r))
            return out.reshape(shape)
        lo, hi = self._as_grids[0][0][0].item(), self._as_grids[-1][0][-1].item()
        flat = flat.clamp(lo, hi)
        which = (torch.searchsorted(self._as_lows, flat, right=True) - 1).clamp_(min=0)
        out = torch.empty_like(flat)
        for k, (kq2, klq2, kc, kv) in enumerate(self._as_grids):
            sel = torch.nonzero(which == k).reshape(-1)
            if not sel.numel():
                continue
            v = flat[sel].clamp(kq2[0].item(), kq2[-1].item())
            i, w = _locate(kq2, klq2, kc, v, linear=False)
            idx = (i[:, None] + _STENCIL.to(i.device)).clamp_(0, kq2.numel() - 1)
            out[sel] = (w * kv[idx]).sum(-1)
        return out.reshape(shape)
