"""Imports point downwards only (../shared/design/README.md), checked on the source.

Every module under src/hepflows is parsed with ``ast``; every import of a hepflows module,
at module level or inside a function, is checked against the layers:

    layer      modules                            may import (besides its own layer)
    top        hepflows.cli, .generate, .demo     anything
    inference  hepflows.inference                 core, flows, integrate, physics, calo
    physics    hepflows.physics                   core, flows, integrate
    calo       hepflows.calo                      core, flows
    integrate  hepflows.integrate                 core, flows
    flows      hepflows.flows (the flow core)     core
    core       hepflows, .errors, .extras, .console, .progress, .stats, .random, .device, .plots,
               .toys, hepflows.io, hepflows.training: nothing else

``plots`` and ``toys`` are core: they import only core modules (the plotting packages
lazily, through hepflows.extras), and pillars and benchmarks may use them.

A second rule: no module imports a private name (``_x``) or a private module from another
package; within one package (e.g. ``hepflows.integrate``) private helpers may be shared.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layer of each top-level name under ``hepflows`` (``hepflows`` itself is core).
LAYER_OF = {
    "errors": "core", "extras": "core", "console": "core", "progress": "core", "stats": "core",
    "random": "core", "plots": "core", "toys": "core", "io": "core", "training": "core",
    "distributed": "core", "device": "core",
    "flows": "flows",
    "integrate": "integrate", "physics": "physics", "calo": "calo", "inference": "inference",
    "generate": "top", "cli": "top", "demo": "top", "__main__": "top",
}  # fmt: skip

#: Layers each layer may import (its own included).
MAY_IMPORT = {
    "core": {"core"},
    "flows": {"core", "flows"},
    "integrate": {"core", "flows", "integrate"},
    "physics": {"core", "flows", "integrate", "physics"},
    "calo": {"core", "flows", "calo"},
    "inference": {"core", "flows", "integrate", "physics", "calo", "inference"},
    "top": {"core", "flows", "integrate", "physics", "calo", "inference", "top"},
}

#: (importing module, imported module) pairs let through, each with its reason. Keep it
#: empty where possible; an entry that no longer occurs fails the test (remove it then).
ALLOWED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "hepflows.calo.showerfiles"; a package is named without __init__
    path: str
    source: str
    is_package: bool

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def layer(name: str) -> str | None:
    """Layer of a dotted hepflows module name, or None for one in no layer."""
    parts = name.split(".")
    return "core" if len(parts) == 1 else LAYER_OF.get(parts[1])


def package_of(name: str, known: dict[str, Module]) -> str:
    """Package a dotted module name belongs to (itself if it is a package)."""
    module = known.get(name)
    return name if module is None or module.is_package else name.rpartition(".")[0]


def source_modules(src: Path = SRC) -> dict[str, Module]:
    """Every module under ``src/hepflows`` by dotted name."""
    out = {}
    for path in sorted((src / "hepflows").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        out[name] = Module(name, str(path.relative_to(src.parent)), path.read_text(), is_package)
    return out


def hepflows_imports(module: Module, known: dict[str, Module]) -> list[tuple[int, str, str, str]]:
    """``(line, imported module, imported name or "", text)`` of every hepflows import.

    ``from hepflows.x import y`` names the module ``hepflows.x.y`` if that is a module.
    Relative imports are resolved against the module's package.
    """
    out = []
    for node in ast.walk(ast.parse(module.source, module.path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hepflows":
                    out.append((node.lineno, alias.name, "", f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "hepflows":
                continue
            for alias in node.names:
                text = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
                sub = f"{base}.{alias.name}"
                if sub in known:
                    out.append((node.lineno, sub, "", text))
                else:
                    out.append((node.lineno, base, alias.name, text))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(modules: dict[str, Module], allowed: set[tuple[str, str]] = frozenset()):
    """Broken rules as ``(importer, imported, message)``; the message names module, line
    and import."""
    out = []
    for module in modules.values():
        own = layer(module.name)
        if own is None:
            fix = "add its top-level name to LAYER_OF in tests/test_layering.py"
            out.append((module.name, "", f"{module.path}: {module.name} is in no layer: {fix}"))
            continue
        for line, target, name, text in hepflows_imports(module, modules):
            where = f"{module.path}:{line}: {module.name}: `{text}`"
            theirs = layer(target)
            if theirs is None:
                out.append((module.name, target, f"{where}: {target} is in no layer"))
            elif theirs not in MAY_IMPORT[own] and (module.name, target) not in allowed:
                may = sorted(MAY_IMPORT[own])
                why = f"the {own} layer may not import the {theirs} layer (only {may})"
                out.append((module.name, target, f"{where}: {why}"))
            private_module = any(_private(p) for p in target.split("."))
            other = package_of(target, modules) != module.package
            if (_private(name) or private_module) and other:
                what = f"the private name {name}" if _private(name) else "a private module"
                out.append((module.name, target, f"{where}: imports {what} of another package"))
    return out


def test_imports_point_downwards_and_stay_public():
    modules = source_modules()
    assert "hepflows.flows" in modules and "hepflows.calo.showerfiles" in modules
    found = violations(modules, ALLOWED)
    assert not found, "layering broken:\n" + "\n".join(m for _, _, m in found)


def test_allowed_list_is_not_stale():
    modules = source_modules()
    used = {
        (m.name, target)
        for m in modules.values()
        for _, target, _, _ in hepflows_imports(m, modules)
    }
    stale = sorted(ALLOWED - used)
    assert not stale, f"ALLOWED entries no longer needed, remove them: {stale}"


def _synthetic(**sources: str) -> dict[str, Module]:
    out = {}
    for name, source in sources.items():
        dotted = name.replace("__", ".")
        is_package = dotted.count(".") <= 1
        out[dotted] = Module(dotted, f"src/{dotted.replace('.', '/')}.py", source, is_package)
    return out


def test_the_checker_flags_violations():
    """The checker can fail: upward, cross-pillar (also inside functions and relative)
    and cross-package private imports are flagged, with module, line and import."""
    modules = _synthetic(
        hepflows="",
        hepflows__errors="",
        hepflows__flows="",
        hepflows__integrate="",
        hepflows__physics="",
        hepflows__calo="",
        hepflows__integrate__nis="def _read_meta(): ...\n",
        hepflows__integrate__fab=(
            "from hepflows.integrate.nis import _read_meta\n"  # same package: fine
            "def f():\n"
            "    from hepflows.physics import DrellYan\n"  # line 3: integrate -> physics
        ),
        hepflows__physics__gen="from hepflows.integrate import nis\n",  # allowed direction
        hepflows__calo__bad="from ..integrate.nis import _read_meta\n",  # cross-pillar, private
        hepflows__flows__x="import hepflows.calo\n",  # flows -> calo: upward
        hepflows__errors__y="from hepflows import flows\n",  # core -> flows: upward
    )
    found = violations(modules)
    messages = "\n".join(m for _, _, m in found)
    pairs = sorted((a, b) for a, b, _ in found)
    assert pairs == [
        ("hepflows.calo.bad", "hepflows.integrate.nis"),
        ("hepflows.calo.bad", "hepflows.integrate.nis"),
        ("hepflows.errors.y", "hepflows.flows"),
        ("hepflows.flows.x", "hepflows.calo"),
        ("hepflows.integrate.fab", "hepflows.physics"),
    ], messages
    assert "src/hepflows/integrate/fab.py:3: hepflows.integrate.fab: " in messages
    assert "`from hepflows.physics import DrellYan`" in messages
    assert "the private name _read_meta of another package" in messages
    # An allowed pair passes; an unclassified module is reported.
    assert len(violations(modules, {("hepflows.integrate.fab", "hepflows.physics")})) == 4
    assert any("in no layer" in m for _, _, m in violations(_synthetic(hepflows__zzz="")))
