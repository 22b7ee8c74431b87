"""Optional packages, imported when a feature needs them.

``pip install hepflows`` brings only torch, numpy, safetensors, typer and rich. The rest
comes with an extra (``[physics]``, ``[calo]``, ``[plots]``, ``[amplitudes]``,
``[inference]``, ``[all]``), and modules import it inside the function that uses it,
through :func:`require`, so that ``import hepflows.<pillar>`` always works and a missing
package is reported in one line naming the extra to install, only when the feature is used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from hepflows.errors import MissingExtraError

#: Distribution (pip) name of modules whose import name differs.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "pythia8mc": "pythia8mc"}


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``.

    Args:
        module: import name, e.g. ``"h5py"`` or ``"sklearn.metrics"``.
        extra: the hepflows extra that installs it, e.g. ``"calo"``.
        purpose: what needs it, as the start of a sentence, e.g. ``"Reading shower files"``.

    Returns:
        The imported module.

    Raises:
        MissingExtraError: ``"<purpose> needs the '<package>' package: pip install
            'hepflows[<extra>]'"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        package = _DISTRIBUTIONS.get(top, top)
        missing = getattr(exc, "name", None)
        # Installed but broken (one of its own dependencies is missing): say so too.
        detail = "" if missing is None or top == missing.split(".")[0] else f" ({exc})"
        raise MissingExtraError(
            f"{purpose} needs the '{package}' package: pip install 'hepflows[{extra}]'{detail}"
        ) from exc
