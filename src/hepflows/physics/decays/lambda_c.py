"""Lambda_c^+ -> p K^- pi^+ with the LHCb amplitude model (2208.03262), differentiable.

The model comes from the ComPWA package ``polarimetry-lc2pkpi`` (optional:
``pip install -c constraints.txt "hepflows[amplitudes]"``, it pulls sympy and
JAX). Its symbolic amplitude is built with the published default parameters,
summed over helicities (unpolarised |M|^2 as a function of the three
invariants), turned into a JAX function and wrapped for torch autograd
(:mod:`hepflows.physics.decays.jax_bridge`).

Building the sympy expression takes about 25 s; it is cached on first use in
``$XDG_CACHE_HOME/hepflows`` (default ``~/.cache/hepflows``), one file per model
and package version, written atomically, never shipped with hepflows. The cache
is JSON data, not code: a list of expression nodes that :func:`load_expression`
turns back into sympy objects through a fixed table of constructors (numbers,
symbols, ``Add``, ``Mul``, ``Pow`` and a few elementary functions), never through
``pickle``, ``eval`` or ``sympify``, so a cache file someone else wrote cannot run
code; a file that does not parse is rebuilt. The JAX compilation (a few seconds
per batch-size bucket) happens in each process.

Daughters here: 1 = p, 2 = K^-, 3 = pi^+, so s12 = m^2(pK) (the Lambda*
resonances, e.g. the narrow Lambda(1520)), s23 = m^2(K pi) (K*(892)), s13 =
m^2(p pi) (Delta++(1232)); the Dalitz variables of the LHCb analysis.
"""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from torch import Tensor

from hepflows.errors import ConfigError, MissingExtraError
from hepflows.io.atomic import atomic_write
from hepflows.physics.decays.dalitz import DalitzPlot
from hepflows.physics.decays.decay import ThreeBodyDecay
from hepflows.physics.decays.jax_bridge import JaxFunction

PACKAGE = "polarimetry-lc2pkpi"
DEFAULT_MODEL = "Default amplitude model"
INSTALL = 'pip install -c constraints.txt "hepflows[amplitudes]"'


def cache_dir() -> Path:
    """Folder of hepflows' built amplitude expressions: $XDG_CACHE_HOME/hepflows."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "hepflows"


def _package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise MissingExtraError(
            f"the Lambda_c -> p K pi model needs the optional package {PACKAGE}: {INSTALL}"
        ) from None


#: The file format of the expression cache.
CACHE_FORMAT = "hepflows-sympy-expression"
CACHE_VERSION = 1
#: sympy functions a cached expression may hold: node name -> sympy attribute. Nothing
#: outside this table (and the atoms below) is ever built from a cache file.
FUNCTIONS = ("Add", "Mul", "Pow", "exp", "log", "sin", "cos", "tan", "asin", "acos", "atan",
             "atan2", "sinh", "cosh", "tanh", "Abs", "conjugate", "re", "im", "sign", "arg")
#: Named constants a cached expression may hold.
CONSTANTS = ("I", "pi", "E")
_FLOAT_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)
_FLOAT_SREPR = re.compile(r"Float\('([^']*)', precision=(\d+)\)")
#: Symbol assumptions a cached expression may hold.
ASSUMPTIONS = frozenset(
    "commutative real complex imaginary extended_real integer rational irrational algebraic "
    "transcendental finite infinite positive negative nonnegative nonpositive nonzero zero "
    "extended_positive extended_negative extended_nonnegative extended_nonpositive "
    "extended_nonzero even odd prime composite noninteger hermitian antihermitian".split()
)


class UnsupportedExpression(Exception):
    """An expression holds a sympy type the cache format does not know (it is not cached)."""


def _node(e: Any, index: dict[Any, int]) -> list[Any]:
    import sympy as sp

    if isinstance(e, sp.Symbol):
        if type(e) is not sp.Symbol:
            raise UnsupportedExpression(type(e).__name__)
        assumptions = getattr(e, "_assumptions_orig", None) or {}
        return ["Symbol", e.name, {str(k): bool(v) for k, v in assumptions.items()}]
    if isinstance(e, sp.Integer):
        return ["Integer", int(e)]
    if isinstance(e, sp.Rational):
        return ["Rational", int(e.p), int(e.q)]
    if isinstance(e, sp.Float):
        m = _FLOAT_SREPR.fullmatch(sp.srepr(e))
        if m is None:
            raise UnsupportedExpression(sp.srepr(e))
        return ["Float", m[1], int(m[2])]
    for name in CONSTANTS:
        if e is getattr(sp, name):
            return ["Constant", name]
    name = type(e).__name__
    if name in FUNCTIONS and type(e) is getattr(sp, name):
        return [name, [index[a] for a in e.args]]
    raise UnsupportedExpression(name)


def expression_to_data(expr: Any) -> list[list[Any]]:
    """A sympy expression as JSON-able nodes, children before parents, shared
    subexpressions once; the last node is the expression.

    Raises:
        UnsupportedExpression: a sympy type outside :data:`FUNCTIONS` and the atoms.
    """
    index: dict[Any, int] = {}
    nodes: list[list[Any]] = []
    stack: list[tuple[Any, bool]] = [(expr, False)]
    while stack:  # iterative post-order: no recursion limit on deep expressions
        e, ready = stack.pop()
        if e in index:
            continue
        if e.args and not ready:
            stack.append((e, True))
            stack.extend((a, False) for a in reversed(e.args))
            continue
        index[e] = len(nodes)
        nodes.append(_node(e, index))
    return nodes


def data_to_expression(nodes: Any) -> Any:
    """The sympy expression of :func:`expression_to_data`'s nodes, built only from the
    constructors of :data:`FUNCTIONS`, symbols, numbers and :data:`CONSTANTS`
    (unevaluated: the tree is the one that was written).

    Raises:
        ValueError: anything else (an unknown node, a malformed number or reference).
    """
    import sympy as sp

    def need(ok: bool, node: Any) -> None:
        if not ok:
            raise ValueError(f"not a cached expression node: {str(node)[:80]}")

    need(isinstance(nodes, list) and len(nodes) > 0, nodes)
    built: list[Any] = []
    for node in nodes:
        need(isinstance(node, list) and len(node) >= 2 and isinstance(node[0], str), node)
        kind, args = node[0], node[1:]
        if kind == "Symbol":
            name, assumptions = args if len(args) == 2 else (None, None)
            need(isinstance(name, str) and isinstance(assumptions, dict), node)
            need(all(k in ASSUMPTIONS and isinstance(v, bool) for k, v in assumptions.items()),
                 node)  # fmt: skip
            built.append(sp.Symbol(name, **assumptions))
        elif kind == "Integer":
            need(len(args) == 1 and type(args[0]) is int, node)
            built.append(sp.Integer(args[0]))
        elif kind == "Rational":
            need(len(args) == 2 and all(type(a) is int for a in args) and args[1] > 0, node)
            built.append(sp.Rational(*args))
        elif kind == "Float":
            need(len(args) == 2 and isinstance(args[0], str) and type(args[1]) is int, node)
            need(bool(_FLOAT_TEXT.fullmatch(args[0])) and 1 <= args[1] <= 4096, node)
            built.append(sp.Float(args[0], precision=args[1]))
        elif kind == "Constant":
            need(len(args) == 1 and args[0] in CONSTANTS, node)
            built.append(getattr(sp, args[0]))
        elif kind in FUNCTIONS:
            refs = args[0] if len(args) == 1 else None
            need(isinstance(refs, list) and len(refs) > 0, node)
            need(all(type(i) is int and 0 <= i < len(built) for i in refs), node)
            built.append(getattr(sp, kind)(*(built[i] for i in refs), evaluate=False))
        else:
            need(False, node)
    return built[-1]


def save_expression(path: str | os.PathLike, expr: Any, masses: dict[str, float],
                    model: str, version: str) -> bool:  # fmt: skip
    """Write the cache file (atomically) if ``expr`` survives the round trip exactly.

    Returns:
        Whether the file was written (an expression of unsupported types is not cached).
    """
    try:
        nodes = expression_to_data(expr)
        if data_to_expression(nodes) != expr:
            return False
    except (UnsupportedExpression, ValueError):
        return False
    data = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "model": model,
            "package_version": version, "masses": masses, "nodes": nodes}  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, separators=(",", ":"))))
    return True


def load_expression(
    path: str | os.PathLike, model: str, version: str
) -> tuple[Any, dict[str, float]]:
    """Read a cache file of :func:`save_expression` (data only: no code is run).

    Raises:
        ValueError: not a cache file of this model and package version, or malformed.
    """
    data = json.loads(Path(path).read_text())
    if not (isinstance(data, dict) and data.get("format") == CACHE_FORMAT
            and data.get("version") == CACHE_VERSION and data.get("model") == model
            and data.get("package_version") == version):  # fmt: skip
        raise ValueError(f"{path} is not a {CACHE_FORMAT} file of {model!r} {version}")
    masses = data.get("masses")
    if not (isinstance(masses, dict) and all(isinstance(k, str) and type(v) is float
                                             for k, v in masses.items())):  # fmt: skip
        raise ValueError(f"{path}: malformed masses")
    return data_to_expression(data.get("nodes")), masses


def cache_path(model: str = DEFAULT_MODEL) -> Path:
    """The cache file of ``model`` for the installed package version."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()
    return cache_dir() / f"lc2pkpi-{slug}-{_package_version()}.json"


def build_expression(
    model: str = DEFAULT_MODEL, progress: bool = True
) -> tuple[Any, dict[str, float]]:
    """The model's unpolarised |M|^2 as a sympy expression of sigma1, sigma2, sigma3, and masses.

    Cached in :func:`cache_dir` (built on first use, about 25 s) as data
    (:func:`save_expression`); a cache file that does not load is rebuilt.

    Args:
        model: a published model name of ``polarimetry-lc2pkpi``.
        progress: say so when building.

    Returns:
        ``(expression, masses)``: sympy expression with free symbols sigma1..3 (the
        package's numbering: 1 = p, 2 = pi^+, 3 = K^-; sigma_i = m^2 of the pair
        without i) and ``{"m0": M, "m1": m_p, "m2": m_pi, "m3": m_K}`` in GeV.
    """
    version = _package_version()
    path = cache_path(model)
    # Caches of earlier hepflows versions were pickles: never read, removed.
    path.with_suffix(".pkl").unlink(missing_ok=True)
    if path.exists():
        try:
            return load_expression(path, model, version)
        except Exception:  # a damaged or foreign cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    import polarimetry
    from polarimetry.lhcb import _load_model_definitions

    names = list(_load_model_definitions(Path(polarimetry.__file__).parent
                                         / "lhcb/model-definitions.yaml"))  # fmt: skip
    if model not in names:
        raise ConfigError(f"unknown Lambda_c model {model!r}; published models: {names}")
    if progress:
        from hepflows.console import console

        console.print(f"building the Lambda_c -> p K pi amplitude ({model}); cached in {path}")
    m = polarimetry.published_model(model)
    expr = m.full_expression.xreplace(m.variables).xreplace(m.parameter_defaults).doit()
    masses = {str(k): float(v) for k, v in m.masses.items()}
    save_expression(path, expr, masses, model, version)
    return expr, masses


def lc2pkpi(model: str = DEFAULT_MODEL, progress: bool = True) -> ThreeBodyDecay:
    """Lambda_c^+ -> p K^- pi^+ (unpolarised LHCb model) as a density on the unit square.

    Args:
        model: a published model name of ``polarimetry-lc2pkpi``.
        progress: say when the expression is being built.

    Returns:
        A :class:`ThreeBodyDecay` with daughters (p, K^-, pi^+): s12 = m^2(pK) uniform in u0.
    """
    import jax.numpy as jnp
    import sympy as sp

    expr, masses = build_expression(model, progress)
    syms = sorted(expr.free_symbols, key=str)
    if [str(s) for s in syms] != ["sigma1", "sigma2", "sigma3"]:
        raise ConfigError(f"unexpected free symbols {syms} in the {model!r} expression")
    raw = sp.lambdify(syms, expr, modules="jax", cse=True)

    def fn(sigma1, sigma2, sigma3):
        return jnp.real(raw(sigma1, sigma2, sigma3))

    dalitz = DalitzPlot(masses["m0"], masses["m1"], masses["m3"], masses["m2"],
                        names=("p", "K-", "pi+"))  # fmt: skip
    # A point inside the Dalitz region to pad JAX batches with (sigma1, sigma2, sigma3).
    import torch

    c = dalitz.map(torch.full((1, 2), 0.5, dtype=torch.float64))
    s12, s23 = float(c[0][0]), float(c[1][0])
    s13 = dalitz.s_sum - s12 - s23
    jf = JaxFunction(fn, pad=(s23, s12, s13))

    def intensity(s12: Tensor, s23: Tensor, s13: Tensor) -> Tensor:
        # ours (p, K, pi) -> the package's sigma1 = m^2(K pi), sigma2 = m^2(p K), sigma3 = m^2(p pi)
        return jf(s23, s12, s13)

    ids = (4122, 2212, -321, 211)
    return ThreeBodyDecay(dalitz, intensity, "Lambda_c+ -> p K- pi+", pdg_ids=ids)
