"""The PixelCNN and the shared pixel distributions, against independent references: exactness by
enumerating every image, the autoregressive property and the receptive field (no blind spot in
the gated model) by gradients, sampling against log_prob, the logistic mixture against scipy."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

try:
    import evalgen_autoregressive  # noqa: F401
except ImportError:  # the plugins folder is not installed: import it from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from evalgen import Categorical, DiscretizedLogistic, LogisticMixture
from evalgen_autoregressive.pixelcnn import PixelCNN

CONFIGS = [(output, gated) for output in ("categorical", "logistic_mixture") for gated in (True, False)]


def _all_images(shape: tuple[int, int, int], levels: int) -> torch.Tensor:
    d = int(np.prod(shape))
    grid = list(itertools.product(range(levels), repeat=d))
    return torch.tensor(grid, dtype=torch.float32).view(-1, *shape)


def _model(shape, levels, output, gated, seed=0, scale=None, **kw) -> PixelCNN:
    torch.manual_seed(seed)
    model = PixelCNN(shape, levels, output=output, gated=gated, **kw)
    if scale is not None:  # sharper than the near-uniform default init: a non-trivial distribution
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, scale)
    return model


# --- exactness by enumeration -----------------------------------------------------------------


@pytest.mark.parametrize("output,gated", CONFIGS)
def test_mass_function_sums_to_one(output, gated):
    shape, levels = (1, 2, 3), 3
    model = _model(shape, levels, output, gated, channels=8, layers=3, mixtures=3, scale=0.5)
    logp = model.log_prob(_all_images(shape, levels))
    assert logp.shape == (levels ** 6,)
    assert float(logp.detach().logsumexp(0).exp()) == pytest.approx(1.0, abs=1e-5)
    assert float(logp.detach().std()) > 0.3  # a genuinely non-uniform distribution


def test_shapes_and_errors():
    model = PixelCNN((1, 4, 5), 4, channels=8, layers=2)
    x = torch.randint(0, 4, (3, 1, 4, 5)).float()
    assert model.logits(x).shape == (3, 20, 4)
    assert model.log_prob(x).shape == (3,)
    assert model.loss(x).shape == ()
    mix = PixelCNN((1, 4, 5), 4, channels=8, layers=2, output="logistic_mixture", mixtures=2)
    assert mix.logits(x).shape == (3, 20, 6)
    with pytest.raises(ValueError, match="single-channel"):
        PixelCNN((3, 4, 4), 4)
    with pytest.raises(ValueError, match="unknown output"):
        PixelCNN((1, 4, 4), 4, output="gaussian")
    with pytest.raises(ValueError):
        model.log_prob(torch.zeros(2, 1, 5, 4))


# --- autoregressive property and receptive field by gradients ------------------------------------


def _dependence(model: PixelCNN, x: torch.Tensor, pixel: int) -> torch.Tensor:
    """|d params(pixel) / d x| summed over a random projection of the parameters: (H, W)."""
    x = x.clone().requires_grad_(True)
    params = model.logits(x)[0, pixel]
    weights = torch.randn(params.shape, dtype=params.dtype, generator=torch.Generator().manual_seed(pixel))
    (grad,) = torch.autograd.grad((params * weights).sum(), x)
    return grad[0, 0].abs()


@pytest.mark.parametrize("output,gated", CONFIGS)
def test_autoregressive_property(output, gated):
    height, width, levels = 5, 4, 4
    model = _model((1, height, width), levels, output, gated, channels=8, layers=4, mixtures=2).double()
    x = torch.rand(1, 1, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    for d in range(height * width):
        grad = _dependence(model, x, d).flatten()
        assert torch.all(grad[d:] == 0), f"pixel {d} depends on itself or a later pixel"
        i, j = divmod(d, width)
        if j > 0:
            assert grad[d - 1] > 0  # it does see the pixel to its left
        if i > 0:
            assert grad[d - width] > 0  # and the one above


def test_receptive_field_gated_has_no_blind_spot():
    size, layers = 7, 5
    i, j = 4, 3
    d = i * size + j
    x = torch.rand(1, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3
    gated = _model((1, size, size), 4, "categorical", True, channels=8, layers=layers).double()
    ungated = _model((1, size, size), 4, "categorical", False, channels=8, layers=layers).double()
    g = _dependence(gated, x, d).flatten()
    u = _dependence(ungated, x, d).flatten()
    # the gated model sees EVERY earlier pixel (all within its receptive field here), and nothing later
    assert torch.all(g[:d] > 0), f"gated misses earlier pixels {torch.nonzero(g[:d] == 0).flatten().tolist()}"
    assert torch.all(g[d:] == 0)
    assert torch.all(u[d:] == 0)
    u2 = u.view(size, size)
    # the ungated model sees (i - r, j + c) only for c <= r: the blind spot above-right
    for r, c in [(1, 2), (1, 3), (2, 3)]:
        assert u2[i - r, j + c] == 0, f"ungated unexpectedly sees ({i - r}, {j + c})"
        assert g.view(size, size)[i - r, j + c] > 0
    for r, c in [(1, 1), (2, 2), (1, -3), (0, -3), (4, 0)]:
        assert u2[i - r, j + c] > 0, f"ungated should see ({i - r}, {j + c})"


# --- sampling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gated", [True, False])
def test_windowed_pixel_params_equal_the_full_pass(gated):
    """Sampling runs each pass on the receptive field's rows only; that must be exact: on an
    image much taller than the receptive field, every pixel's parameters equal the full pass's."""
    shape, layers = (1, 11, 5), 2
    model = _model(shape, 4, "logistic_mixture", gated, layers=layers, channels=6, scale=0.5).double()
    x = torch.randint(0, 4, (3, *shape), generator=torch.Generator().manual_seed(5)).double()
    full = model.logits(x)
    for i in range(shape[1]):
        for j in range(shape[2]):
            window = model.pixel_params(x, i, j)
            assert torch.allclose(window, full[:, i * shape[2] + j, None], atol=1e-10), (i, j)


@pytest.mark.parametrize("output,gated", CONFIGS)
def test_sampling_agrees_with_log_prob(output, gated):
    shape, levels, n = (1, 2, 2), 3, 40_000
    model = _model(shape, levels, output, gated, channels=8, layers=3, mixtures=3, scale=0.5)
    images = _all_images(shape, levels)
    probs = model.log_prob(images).exp().detach().numpy()
    samples = model.sample(n, torch.Generator().manual_seed(3))
    assert samples.shape == (n, *shape) and samples.dtype == torch.float32
    assert set(samples.unique().tolist()) <= set(range(levels))
    codes = (samples.flatten(1).long() * torch.tensor([27, 9, 3, 1])).sum(1)
    empirical = np.bincount(codes.numpy(), minlength=levels ** 4) / n
    tv = 0.5 * np.abs(empirical - probs).sum()
    assert tv < 0.03, tv


def test_sampling_is_reproducible():
    model = _model((1, 3, 3), 4, "logistic_mixture", True, channels=8, layers=2, mixtures=2)
    a = model.sample(16, torch.Generator().manual_seed(7))
    b = model.sample(16, torch.Generator().manual_seed(7))
    c = model.sample(16, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- the pixel distributions -----------------------------------------------------------------------


def _probs_all_levels(dist, params: torch.Tensor, levels: int) -> torch.Tensor:
    """P(level k) for params (N, 1, P): (N, L)."""
    n = params.shape[0]
    return torch.stack([dist.log_prob(params, torch.full((n, 1), float(k), dtype=params.dtype))
                        for k in range(levels)], dim=-1).exp()


@pytest.mark.parametrize("levels,components", [(2, 1), (3, 4), (16, 5), (256, 3)])
def test_logistic_mixture_sums_to_one(levels, components):
    generator = torch.Generator().manual_seed(4)
    params = torch.randn(50, 1, 3 * components, dtype=torch.float64, generator=generator)
    params[..., 2 * components:] -= 2.0  # log scales around e^-2: peaked at some levels
    probs = _probs_all_levels(LogisticMixture(levels, components), params, levels)
    assert torch.allclose(probs.sum(-1), torch.ones(50, dtype=torch.float64), atol=1e-9)
    assert torch.all(probs >= 0)


@pytest.mark.parametrize("levels", [2, 5, 256])
def test_single_logistic_matches_scipy(levels):
    rng = np.random.default_rng(5)
    mean = rng.uniform(-1.2, 1.2, 20)
    log_scale = rng.uniform(-4.0, 0.5, 20)
    params = torch.tensor(np.stack([mean, log_scale], -1), dtype=torch.float64)[:, None, :]  # (20, 1, 2)
    half = 1.0 / (levels - 1)
    centres = 2.0 * np.arange(levels) / (levels - 1) - 1.0
    upper = np.append(centres[:-1] + half, np.inf)
    lower = np.insert(centres[1:] - half, 0, -np.inf)
    scale = np.exp(log_scale)[:, None]
    reference = (scipy.stats.logistic.cdf(upper[None], loc=mean[:, None], scale=scale)
                 - scipy.stats.logistic.cdf(lower[None], loc=mean[:, None], scale=scale))
    single = _probs_all_levels(DiscretizedLogistic(levels), params, levels).numpy()
    mixture_params = torch.cat([torch.zeros(20, 1, 1, dtype=torch.float64), params], -1)  # one component
    mixture = _probs_all_levels(LogisticMixture(levels, 1), mixture_params, levels).numpy()
    np.testing.assert_allclose(single, reference, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(mixture, reference, rtol=1e-6, atol=1e-12)


def test_categorical_matches_softmax():
    params = torch.randn(7, 3, 5, generator=torch.Generator().manual_seed(6))
    x = torch.randint(0, 5, (7, 3)).float()
    expected = torch.log_softmax(params, -1).gather(-1, x.long()[..., None]).squeeze(-1).sum(-1)
    assert torch.allclose(Categorical(5).log_prob(params, x), expected)


def test_vae_names_are_the_public_ones():
    from evalgen_vae import likelihoods

    assert likelihoods.DiscretizedLogistic is DiscretizedLogistic
    assert likelihoods.LogisticMixture is LogisticMixture
    assert likelihoods.Categorical is Categorical


# --- persistence and training ----------------------------------------------------------------------


@pytest.mark.parametrize("output,gated", CONFIGS)
def test_state_dict_round_trip(output, gated):
    shape, levels = (1, 4, 4), 4
    model = _model(shape, levels, output, gated, seed=0, channels=8, layers=3, mixtures=2, scale=0.3)
    copy = _model(shape, levels, output, gated, seed=1, channels=8, layers=3, mixtures=2)
    x = torch.randint(0, levels, (6, *shape)).float()
    assert not torch.allclose(model.log_prob(x), copy.log_prob(x))
    copy.load_state_dict(model.state_dict())
    assert torch.equal(model.log_prob(x), copy.log_prob(x))
    assert torch.equal(model.sample(4, torch.Generator().manual_seed(0)),
                       copy.sample(4, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("output", ["categorical", "logistic_mixture"])
def test_training_beats_independent_pixels(output):
    """Images of bars (3x3, levels 3): each image is one of six patterns — a full row or a full column at
    level 2 or level 1 on a background of 0 — strongly correlated pixels that the best independent-pixel
    model (the exact per-pixel marginals of the data) cannot capture."""
    levels, size = 3, 3
    patterns = []
    for value in (1, 2):
        for k in range(size):
            row = torch.zeros(1, size, size)
            row[0, k, :] = value
            col = torch.zeros(1, size, size)
            col[0, :, k] = value
            patterns += [row, col]
    patterns = torch.stack(patterns)  # (12, 1, 3, 3)
    choice = torch.randint(0, len(patterns), (256,), generator=torch.Generator().manual_seed(0))
    data = patterns[choice]
    # the independent-pixel model's exact NLL on the data: the per-pixel empirical entropy
    flat = data.flatten(1).long()
    freq = torch.stack([(flat == k).float().mean(0) for k in range(levels)], -1)  # (9, L)
    independent_nll = -freq.clamp_min(1e-12).log().gather(-1, flat.T).sum(0).mean()  # (9, N) -> scalar
    torch.manual_seed(0)
    model = PixelCNN((1, size, size), levels, channels=16, layers=3, output=output, mixtures=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        initial = float(model.loss(data))
    for _ in range(300):
        opt.zero_grad()
        loss = model.loss(data)
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = float(model.loss(data))
    print(f"{output}: NLL {initial:.3f} -> {final:.3f}; independent pixels {float(independent_nll):.3f}")
    assert final < initial
    assert final < float(independent_nll) - 1.0, (final, float(independent_nll))
