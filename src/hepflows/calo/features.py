"""High-level shower features and distances between feature distributions.

The conventions follow the CaloChallenge evaluation (``evaluate.py`` and
``HighLevelFeatures.py`` of the challenge, summarised in 2410.21611), written for
the layers of :class:`~hepflows.calo.geometry.Geometry` (cartesian or polar):

* per voxelised layer: energy, energy-weighted centre and width in x and y
  (mm, from :meth:`Geometry.centres`), sparsity;
* per shower: deposited energy ``E_dep``, ``E_dep/E_inc`` and ``E_inc``;
* separation power ½ Σ (h₁−h₂)²/(h₁+h₂) of normalised histograms;
* Fréchet and kernel physics distances (FPD, KPD) of Kansal et al. (2211.10295).

Everything works on numpy arrays; all energies are in MeV.
"""

from __future__ import annotations

import numpy as np

from hepflows.calo.geometry import Geometry
from hepflows.calo.showers import Showers
from hepflows.errors import InputError, ShapeError
from hepflows.extras import require

#: Offset (MeV, = 1 keV) added to layer energies before the log10 of
#: :func:`feature_matrix`. CaloChallenge adds 1e-8 MeV; 1 keV (the scale of
#: CaloFlow's voxel noise) keeps empty layers a few units, not ~10, below the
#: rest after standardisation, which keeps the Gaussian fit of the FPD sane.
LOG_EPS = 1e-3

#: Rows per chunk when computing features (bounds the memory of large geometries).
_CHUNK = 8192


def _layer_tag(geometry: Geometry, i: int) -> str:
    """The suffix used in feature names for layer position ``i`` (the layer's id)."""
    return str(geometry.layers[i].id)


def high_level_features(showers: Showers, threshold: float = 0.0) -> dict[str, np.ndarray]:
    """CaloChallenge high-level features of each shower.

    For every voxelised layer (positions :attr:`Geometry.voxel_layers`, named by
    the layer id ``i``):

    * ``E_i``: layer energy (MeV);
    * ``EC_x_i``, ``EC_y_i``: energy-weighted centre (mm);
    * ``width_x_i``, ``width_y_i``: energy-weighted standard deviation (mm),
      sqrt(⟨x²⟩ − ⟨x⟩²) as in CaloChallenge, computed in two passes so a single
      lit voxel gives exactly 0;
    * ``sparsity_i``: fraction of the layer's voxels with energy > ``threshold``.

    Centres and widths of an empty layer are 0 (never NaN). Per shower also
    ``E_inc``, ``E_dep`` (sum of all voxels) and ``E_dep/E_inc``.

    Args:
        showers: N showers.
        threshold: voxel energy (MeV) above which a voxel counts as lit.

    Returns:
        feature name -> (N,) float64 array, in the order ``E_inc``, ``E_dep``,
        ``E_dep/E_inc``, then layer by layer ``E_i``, ``EC_x_i``, ``EC_y_i``,
        ``width_x_i``, ``width_y_i``, ``sparsity_i``.
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise InputError(f"threshold must be a finite energy >= 0 (MeV), got {threshold}")
    geometry = showers.geometry
    centres = geometry.centres()
    n = len(showers)
    e_dep = showers.voxels.sum(1)
    out: dict[str, np.ndarray] = {
        "E_inc": showers.energy.copy(),
        "E_dep": e_dep,
        "E_dep/E_inc": e_dep / showers.energy,
    }
    for i in geometry.voxel_layers:
        s, tag = geometry.slices[i], _layer_tag(geometry, i)
        x, y = centres[s, 0], centres[s, 1]
        cols = {k: np.empty(n) for k in ("E", "EC_x", "EC_y", "width_x", "width_y", "sparsity")}
        for start in range(0, n, _CHUNK):
            rows = slice(start, start + _CHUNK)
            v = showers.voxels[rows, s]
            e = v.sum(1)
            safe = np.where(e > 0, e, 1.0)  # empty layer: centre and width 0
            cx, cy = v @ x / safe, v @ y / safe
            cols["E"][rows] = e
            cols["EC_x"][rows], cols["EC_y"][rows] = cx, cy
            cols["width_x"][rows] = np.sqrt((v * (x - cx[:, None]) ** 2).sum(1) / safe)
            cols["width_y"][rows] = np.sqrt((v * (y - cy[:, None]) ** 2).sum(1) / safe)
            cols["sparsity"][rows] = (v > threshold).mean(1)
        for k, values in cols.items():
            out[f"{k}_{tag}"] = values
    return out


def feature_names(geometry: Geometry) -> list[str]:
    """Names of the columns of :func:`feature_matrix`, in order.

    ``log10(E_inc)``, then ``log10(E_i)`` for every voxelised layer, then
    ``EC_x_i``, ``EC_y_i``, ``width_x_i``, ``width_y_i`` (each block over all layers).
    """
    tags = [_layer_tag(geometry, i) for i in geometry.voxel_layers]
    names = ["log10(E_inc)"] + [f"log10(E_{t})" for t in tags]
    for k in ("EC_x", "EC_y", "width_x", "width_y"):
        names += [f"{k}_{t}" for t in tags]
    return names


def feature_matrix(showers: Showers, features: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """High-level classifier / FPD / KPD input, as CaloChallenge's
    ``prepare_high_data_for_classifier``.

    Columns (see :func:`feature_names`): log10(E_inc / MeV), log10(E_i / MeV +
    :data:`LOG_EPS`) per voxelised layer, then centres EC_x, EC_y and widths
    width_x, width_y per layer in units of 100 mm (CaloChallenge divides by 1e2).
    Sparsity and E_dep are not included (as in CaloChallenge; E_dep is the sum
    of the layer energies).

    Args:
        showers: N showers.
        features: the output of :func:`high_level_features` for these showers,
            to avoid computing it again.

    Returns:
        (N, 1 + 5 L_v) float64 array, L_v voxelised layers.
    """
    f = high_level_features(showers) if features is None else features
    tags = [_layer_tag(showers.geometry, i) for i in showers.geometry.voxel_layers]
    cols = [np.log10(f["E_inc"])] + [np.log10(f[f"E_{t}"] + LOG_EPS) for t in tags]
    for k in ("EC_x", "EC_y", "width_x", "width_y"):
        cols += [f[f"{k}_{t}"] / 100.0 for t in tags]
    return np.stack(cols, 1)


# ------------------------------------------------------------------ separation power
def separation_power(a: np.ndarray, b: np.ndarray, bins: int | np.ndarray = 50) -> float:
    """Separation power ½ Σ_k (h₁ₖ − h₂ₖ)² / (h₁ₖ + h₂ₖ) of two samples.

    Both histograms share the bins and are normalised to unit sum over them
    (CaloChallenge ``_separation_power``): 0 for identical histograms, 1 for
    disjoint ones. Entries outside explicit ``bins`` are ignored.

    Args:
        a: (n,) values of the first sample.
        b: (m,) values of the second sample.
        bins: number of equal bins spanning both samples, or (B+1,) increasing edges.

    Raises:
        InputError: NaN/inf values, bad bins, or a sample with no entry in the bins.
    """
    a, b = np.asarray(a, float).reshape(-1), np.asarray(b, float).reshape(-1)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("separation_power: values hold NaN or inf: drop those entries first")
    if len(a) == 0 or len(b) == 0:
        raise InputError("separation_power needs two non-empty samples")
    if np.ndim(bins) == 0:
        if int(bins) < 1:
            raise InputError(f"bins must be >= 1, got {bins}")
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, int(bins) + 1)
    else:
        edges = np.asarray(bins, float)
        if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
            raise InputError("bins must be an int or at least two increasing edges")
    h1, _ = np.histogram(a, edges)
    h2, _ = np.histogram(b, edges)
    if h1.sum() == 0 or h2.sum() == 0:
        raise InputError(
            "separation_power: a sample has no entry inside the bins: widen the bin range"
        )
    p, q = h1 / h1.sum(), h2 / h2.sum()
    total = p + q
    nonzero = total > 0
    return float(0.5 * np.sum((p - q)[nonzero] ** 2 / total[nonzero]))


# ------------------------------------------------------------------ FPD and KPD
def _check_pair(ref: np.ndarray, gen: np.ndarray, what: str, min_rows: int) -> tuple:
    ref, gen = np.asarray(ref, float), np.asarray(gen, float)
    if ref.ndim != 2 or gen.ndim != 2 or ref.shape[1] != gen.shape[1]:
        raise ShapeError(
            f"{what}: features must be (N, d) and (M, d) arrays with the same d, got "
            f"{ref.shape} and {gen.shape} (use feature_matrix on showers of one geometry)"
        )
    if len(ref) < min_rows or len(gen) < min_rows:
        raise InputError(f"{what} needs at least {min_rows} rows per sample, got "
                         f"{len(ref)} and {len(gen)}")  # fmt: skip
    if not (np.isfinite(ref).all() and np.isfinite(gen).all()):
        raise InputError(f"{what}: features hold NaN or inf")
    return ref, gen


def _standardise(ref: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets scaled with the reference's mean and std (constant columns: std 1)."""
    mean, std = ref.mean(0), ref.std(0)
    std = np.where(std > 0, std, 1.0)
    return (ref - mean) / std, (gen - mean) / std


def fpd(ref_features: np.ndarray, gen_features: np.ndarray, standardise: bool = True) -> float:
    """Fréchet physics distance (2211.10295): Fréchet distance of Gaussian fits.

    FPD = |μ_r − μ_g|² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½), on features standardised
    with the reference's mean and std (JetNet scales by the reference's max |x|;
    the standardisation makes the value independent of feature units as well).
    The trace of the matrix square root is computed from a symmetric eigen-
    decomposition (see :func:`_trace_sqrt_product`). No extrapolation to infinite
    samples: for equal distributions the value is O(d²/N), not 0.

    Args:
        ref_features: (N, d) reference features (e.g. :func:`feature_matrix`).
        gen_features: (M, d) generated features.
        standardise: scale both with the reference's mean and std first.
    """
    ref, gen = _check_pair(ref_features, gen_features, "fpd", 2)
    if standardise:
        ref, gen = _standardise(ref, gen)
    mu1, mu2 = ref.mean(0), gen.mean(0)
    s1, s2 = np.atleast_2d(np.cov(ref, rowvar=False)), np.atleast_2d(np.cov(gen, rowvar=False))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * _trace_sqrt_product(s1, s2))


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr (Σ₁Σ₂)^½ for symmetric PSD (d, d) matrices.

    Σ₁Σ₂ is similar to the PSD matrix Σ₁^½ Σ₂ Σ₁^½, so the trace is the sum of the
    square roots of its eigenvalues: the value ``scipy.linalg.sqrtm(s1 @ s2)``
    gives (after dropping its imaginary part), but stable for singular covariances
    (e.g. a feature that is constant in the reference) and free of warnings.
    """
    linalg = require("scipy.linalg", "calo", "The Frechet physics distance")
    w, u = linalg.eigh(s1)
    root1 = (u * np.sqrt(np.clip(w, 0, None))) @ u.T
    eig = linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int) -> float:
    """Unbiased MMD² with the polynomial kernel k(x, y) = (x·y/d + 1)^degree."""
    d, m, n = x.shape[1], len(x), len(y)
    kxx = (x @ x.T / d + 1.0) ** degree
    kyy = (y @ y.T / d + 1.0) ** degree
    kxy = (x @ y.T / d + 1.0) ** degree
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2.0 * kxy.mean()
    )


def kpd(
    ref_features: np.ndarray,
    gen_features: np.ndarray,
    num_batches: int = 10,
    batch_size: int = 5000,
    degree: int = 3,
    standardise: bool = True,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel physics distance (2211.10295): unbiased MMD² with a polynomial kernel.

    Features are standardised with the reference's mean and std (as :func:`fpd`).
    Each of ``num_batches`` batches draws ``b = min(batch_size, N // 2, M // 2)``
    rows of each set without replacement (so batches differ even for small
    sets, and no row meets itself in the unbiased sums), and computes MMD² with
    k(x, y) = (x·y/d + 1)³. As in JetNet, the value is the median over batches
    and the error is half the 16–84 % inter-quantile range of the batch values
    (the spread of one batch estimate: a conservative error on the median).
    The estimator is unbiased, so equal distributions give values around 0,
    of either sign.

    Args:
        ref_features: (N, d) reference features.
        gen_features: (M, d) generated features.
        num_batches: number of batches.
        batch_size: largest batch (rows per set).
        degree: polynomial degree of the kernel (3 in 2211.10295).
        standardise: scale both with the reference's mean and std first.
        seed: seed of the batch draws.

    Returns:
        (median, error).
    """
    ref, gen = _check_pair(ref_features, gen_features, "kpd", 4)
    if num_batches < 1 or batch_size < 2:
        raise InputError("kpd needs num_batches >= 1 and batch_size >= 2")
    if standardise:
        ref, gen = _standardise(ref, gen)
    b = min(batch_size, len(ref) // 2, len(gen) // 2)
    rng = np.random.default_rng(seed)
    values = np.array([
        _mmd2_unbiased(ref[rng.choice(len(ref), b, replace=False)],
                       gen[rng.choice(len(gen), b, replace=False)], degree)
        for _ in range(num_batches)
    ])  # fmt: skip
    q16, q84 = np.percentile(values, [16, 84])
    return float(np.median(values)), float(0.5 * (q84 - q16))
