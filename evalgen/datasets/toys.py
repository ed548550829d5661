"""2-D toy densities with fixed samples and (where one exists) the exact log-density.

Every toy is CONTINUOUS with shape (2,), no labels, and splits of 10 000 / 2 000 / 5 000 points
drawn with ``numpy.random.default_rng([TOY_SEED, crc32(name), split])`` (split = 0 train,
1 valid, 2 test), stored as float32. ``true_log_prob`` maps x (N, 2) to log p(x) in nats (N,),
computed in float64 (returned as float64 on x's device).

The shapes (module constants, also on the density objects; the two Gaussian mixtures also set
``Dataset.modes`` for mode-coverage metrics):

* ``eight-gaussians``: equal mixture of 8 isotropic Gaussians, std `EIGHT_GAUSSIANS_STD`, centred
  at angles k*pi/4 on a circle of radius `EIGHT_GAUSSIANS_RADIUS` (`EIGHT_GAUSSIANS_CENTERS`).
* ``grid-gaussians``: equal mixture of 25 isotropic Gaussians, std `GRID_GAUSSIANS_STD`, centred
  on the 5x5 grid {-4, -2, 0, 2, 4}^2 (`GRID_GAUSSIANS_CENTERS`).
* ``checkerboard``: uniform on the 8 black squares of a 4x4 board of 2x2 squares covering
  [-4, 4]^2; the square with lower-left corner (-4, -4) is black (`CHECKERBOARD_BLACK_CORNERS`).
  Density 1/32 on the closed black squares, 0 elsewhere (the boundary has measure zero).
* ``rings``: angle uniform, radius from an equal mixture over `RINGS_RADII` of Gaussians with std
  `RINGS_STD`, each truncated to r > 0 and renormalised (divided by Phi(mu/std); samples with
  r <= 0 are redrawn, which is exact rejection sampling of the truncated law). By the polar change
  of variables p(x) = p_r(|x|) / (2 pi |x|), which integrates to exactly 1. At the single point
  x = 0 the formula is unbounded; we define p(0) = 0 (log p = -inf), a version of the same
  density since one point has measure zero.
* ``two-moons``: ``sklearn.datasets.make_moons(noise=TWO_MOONS_NOISE)`` with an integer seed drawn
  from the same seed sequence; no closed-form density, so ``true_log_prob`` is None.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from evalgen.datasets.base import Dataset, DatasetSpec, LoadContext, ModeSet, Split, tensor_checksum
from evalgen.types import DataKind

TOY_SEED = 5_170_321
SPLIT_SIZES = {"train": 10_000, "valid": 2_000, "test": 5_000}

EIGHT_GAUSSIANS_RADIUS = 3.0
EIGHT_GAUSSIANS_STD = 0.2
EIGHT_GAUSSIANS_CENTERS = EIGHT_GAUSSIANS_RADIUS * np.stack(
    [np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], axis=1)

GRID_GAUSSIANS_STD = 0.1
GRID_GAUSSIANS_COORDS = (-4.0, -2.0, 0.0, 2.0, 4.0)
GRID_GAUSSIANS_CENTERS = np.array([(a, b) for a in GRID_GAUSSIANS_COORDS for b in GRID_GAUSSIANS_COORDS])

CHECKERBOARD_LOW = -4.0
CHECKERBOARD_CELLS = 4
CHECKERBOARD_SIDE = 2.0
CHECKERBOARD_BLACK_CORNERS = np.array(
    [(CHECKERBOARD_LOW + CHECKERBOARD_SIDE * i, CHECKERBOARD_LOW + CHECKERBOARD_SIDE * j)
     for i in range(CHECKERBOARD_CELLS) for j in range(CHECKERBOARD_CELLS) if (i + j) % 2 == 0])
CHECKERBOARD_BLACK_CENTERS = CHECKERBOARD_BLACK_CORNERS + CHECKERBOARD_SIDE / 2

RINGS_RADII = (1.0, 2.0, 3.0, 4.0)
RINGS_STD = 0.1

TWO_MOONS_NOISE = 0.1

_LOG_2PI = math.log(2 * math.pi)
_CHUNK = 1 << 16


def _chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply ``fn`` to float64 rows of x (N, 2) in chunks, to bound memory for large grids."""
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"expected points of shape (N, 2), got {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    return torch.cat([fn(part) for part in x.split(_CHUNK)]) if len(x) else x.new_zeros(0)


@dataclass(frozen=True, eq=False)
class GaussianMixture2D:
    """Mixture of isotropic 2-D Gaussians with a common std."""

    centers: np.ndarray  # (K, 2)
    std: float
    weights: np.ndarray = field(default=None)  # (K,), default uniform

    def __post_init__(self) -> None:
        if self.weights is None:
            object.__setattr__(self, "weights", np.full(len(self.centers), 1.0 / len(self.centers)))

    @property
    def modes(self) -> np.ndarray:
        return self.centers

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.centers), size=n, p=self.weights)
        return self.centers[k] + self.std * rng.standard_normal((n, 2))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        def fn(p: torch.Tensor) -> torch.Tensor:
            mu = torch.as_tensor(self.centers, dtype=torch.float64, device=p.device)
            logw = torch.as_tensor(np.log(self.weights), dtype=torch.float64, device=p.device)
            d2 = ((p[:, None, :] - mu[None]) ** 2).sum(-1)
            comp = -d2 / (2 * self.std**2) - _LOG_2PI - 2 * math.log(self.std)
            return torch.logsumexp(comp + logw, dim=1)

        return _chunked(fn, x)


@dataclass(frozen=True, eq=False)
class Checkerboard:
    """Uniform on the closed black squares (lower-left corners ``corners``, side ``side``)."""

    corners: np.ndarray
    side: float

    @property
    def modes(self) -> np.ndarray:
        return self.corners + self.side / 2

    @property
    def area(self) -> float:
        return len(self.corners) * self.side**2

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.integers(len(self.corners), size=n)
        return self.corners[k] + self.side * rng.random((n, 2))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        def fn(p: torch.Tensor) -> torch.Tensor:
            lo = torch.as_tensor(self.corners, dtype=torch.float64, device=p.device)
            inside = ((p[:, None, :] >= lo) & (p[:, None, :] <= lo + self.side)).all(-1).any(-1)
            out = torch.full((len(p),), -math.inf, dtype=torch.float64, device=p.device)
            return out.masked_fill(inside, -math.log(self.area))

        return _chunked(fn, x)


@dataclass(frozen=True, eq=False)
class Rings:
    """Concentric rings: uniform angle, radius from a mixture of Gaussians truncated to r > 0."""

    radii: tuple[float, ...]
    std: float

    @property
    def weights(self) -> np.ndarray:
        return np.full(len(self.radii), 1.0 / len(self.radii))

    @property
    def modes(self) -> np.ndarray:
        return np.asarray(self.radii)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mu = np.asarray(self.radii)[rng.choice(len(self.radii), size=n, p=self.weights)]
        r = mu + self.std * rng.standard_normal(n)
        while (bad := r <= 0).any():  # rejection: exact draws from the truncated Gaussians
            r[bad] = mu[bad] + self.std * rng.standard_normal(int(bad.sum()))
        theta = rng.uniform(0.0, 2 * np.pi, size=n)
        return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        def fn(p: torch.Tensor) -> torch.Tensor:
            mu = torch.as_tensor(self.radii, dtype=torch.float64, device=p.device)
            logw = torch.as_tensor(np.log(self.weights), dtype=torch.float64, device=p.device)
            r = torch.linalg.vector_norm(p, dim=1)
            z = (r[:, None] - mu) / self.std
            comp = -0.5 * z**2 - 0.5 * _LOG_2PI - math.log(self.std) - torch.special.log_ndtr(mu / self.std)
            log_pr = torch.logsumexp(comp + logw, dim=1)
            out = log_pr - math.log(2 * math.pi) - torch.log(r)
            return out.masked_fill(r == 0, -math.inf)

        return _chunked(fn, x)


@dataclass(frozen=True, eq=False)
class TwoMoons:
    """scikit-learn's two interleaving half circles with Gaussian noise; no closed-form density."""

    noise: float
    log_prob = None
    modes = None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        from sklearn.datasets import make_moons

        points, _ = make_moons(n_samples=n, noise=self.noise, random_state=int(rng.integers(2**31 - 1)))
        return points


EIGHT_GAUSSIANS = GaussianMixture2D(EIGHT_GAUSSIANS_CENTERS, EIGHT_GAUSSIANS_STD)
GRID_GAUSSIANS = GaussianMixture2D(GRID_GAUSSIANS_CENTERS, GRID_GAUSSIANS_STD)
CHECKERBOARD = Checkerboard(CHECKERBOARD_BLACK_CORNERS, CHECKERBOARD_SIDE)
RINGS = Rings(RINGS_RADII, RINGS_STD)
TWO_MOONS = TwoMoons(TWO_MOONS_NOISE)


@dataclass(frozen=True)
class Toy:
    name: str
    density: GaussianMixture2D | Checkerboard | Rings | TwoMoons
    summary: str
    params: str  # what determines the samples, recorded in the checksum


TOYS: dict[str, Toy] = {t.name: t for t in (
    Toy("eight-gaussians", EIGHT_GAUSSIANS, "8 Gaussians (std 0.2) on a circle of radius 3, exact log-density",
        f"radius={EIGHT_GAUSSIANS_RADIUS} std={EIGHT_GAUSSIANS_STD}"),
    Toy("grid-gaussians", GRID_GAUSSIANS, "5x5 grid of Gaussians (std 0.1, spacing 2), exact log-density",
        f"coords={GRID_GAUSSIANS_COORDS} std={GRID_GAUSSIANS_STD}"),
    Toy("checkerboard", CHECKERBOARD, "uniform on the black squares of a 4x4 board on [-4,4]^2, exact log-density",
        f"low={CHECKERBOARD_LOW} cells={CHECKERBOARD_CELLS} side={CHECKERBOARD_SIDE}"),
    Toy("rings", RINGS, "4 concentric rings (radii 1..4, radial std 0.1), exact log-density",
        f"radii={RINGS_RADII} std={RINGS_STD} truncated r>0"),
    Toy("two-moons", TWO_MOONS, "scikit-learn make_moons (noise 0.1), no closed-form density",
        f"sklearn.make_moons noise={TWO_MOONS_NOISE}"),
)}


def toy_rng(name: str, split_index: int) -> np.random.Generator:
    return np.random.default_rng([TOY_SEED, zlib.crc32(name.encode()), split_index])


def load_toy(name: str, ctx: LoadContext | None = None) -> Dataset:
    """Draw the fixed splits of toy ``name`` (``ctx`` is unused: nothing is read from disk)."""
    toy = TOYS[name]
    splits = [
        Split(torch.from_numpy(toy.density.sample(n, toy_rng(name, i)).astype(np.float32)), None)
        for i, n in enumerate(SPLIT_SIZES.values())
    ]
    train, valid, test = splits
    salt = f"{name}; {toy.params}; seed={TOY_SEED}; sizes={tuple(SPLIT_SIZES.values())}; v1"
    return Dataset(
        name=name,
        kind=DataKind.CONTINUOUS,
        levels=None,
        num_classes=None,
        train=train,
        valid=valid,
        test=test,
        checksum=tensor_checksum(train.x, valid.x, test.x, salt=salt),
        source=f"synthetic 2-D toy density, evalgen.datasets.toys ({toy.params})",
        true_log_prob=toy.density.log_prob,
        feature_extractor=None,
        modes=_mode_set(toy.density),
    )


def _mode_set(density: GaussianMixture2D | Checkerboard | Rings | TwoMoons) -> ModeSet | None:
    """The components of a Gaussian mixture, for mode coverage; None for the other shapes."""
    if isinstance(density, GaussianMixture2D):
        return ModeSet(density.centers, density.std, density.weights)
    return None


def dataset_specs() -> list[DatasetSpec]:
    return [
        DatasetSpec(name, DataKind.CONTINUOUS, toy.summary, lambda ctx, name=name: load_toy(name, ctx),
                    shape=(2,))
        for name, toy in TOYS.items()
    ]
