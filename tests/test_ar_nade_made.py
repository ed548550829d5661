"""NADE and MADE (the `autoregressive` family) against independent references: enumeration of
every state, gradients of the conditionals, empirical sample frequencies, a naive D-pass NADE,
the independent-dimension model's exact NLL, and state-dict round trips."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch

try:
    import evalgen_autoregressive  # noqa: F401
except ImportError:  # not installed: the plugin folder of this checkout
    PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")
    if PLUGINS not in sys.path:
        sys.path.insert(0, PLUGINS)

from evalgen_autoregressive.made import MADE
from evalgen_autoregressive.nade import NADE


def states(dims: int, levels: int) -> torch.Tensor:
    """Every vector of ``dims`` levels 0..levels-1, (levels^dims, dims) float32."""
    return torch.tensor(list(itertools.product(range(levels), repeat=dims)), dtype=torch.float32)


def perturbed(model: torch.nn.Module, seed: int, std: float = 1.0) -> torch.nn.Module:
    """The model with all parameters redrawn N(0, std^2): far from uniform conditionals."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(std * torch.randn(p.shape, generator=gen))
    return model


def build(kind: str, shape, levels: int, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "nade":
        return NADE(shape, levels, hidden=kw.get("hidden", 8))
    return MADE(shape, levels, hidden=kw.get("hidden", 16), depth=kw.get("depth", 2),
                num_masks=kw.get("num_masks", 1), seed=kw.get("seed", 0))


MODELS = [("nade", {}), ("made", {"num_masks": 1}), ("made", {"num_masks": 3}),
          ("made", {"num_masks": 3, "depth": 1, "seed": 7})]


# -- exactness by enumeration -----------------------------------------------------------------
@pytest.mark.parametrize("kind,kw", MODELS)
@pytest.mark.parametrize("shape,levels", [((1, 2, 5), 2), ((10,), 2), ((5,), 3)])
def test_probabilities_sum_to_one(kind, kw, shape, levels):
    model = perturbed(build(kind, shape, levels, **kw), seed=1)
    dims = math.prod(shape)
    x = states(dims, levels).reshape(-1, *shape)
    with torch.no_grad():
        log_p = model.log_prob(x)
    assert log_p.shape == (levels ** dims,)
    assert torch.isfinite(log_p).all()
    assert abs(log_p.double().exp().sum().item() - 1.0) < 1e-5


# -- the autoregressive property --------------------------------------------------------------
def _check_autoregressive(logits_fn, order: torch.Tensor, dims: int, levels: int) -> None:
    rank = torch.empty(dims, dtype=torch.long)
    rank[order] = torch.arange(dims)
    x = (torch.rand(6, dims) * (levels - 1)).requires_grad_(True)
    logits = logits_fn(x)
    assert logits.shape == (6, dims, 1 if levels == 2 else levels)
    depends_somewhere = False
    for d in range(dims):
        (grad,) = torch.autograd.grad(logits[:, d].sum(), x, retain_graph=True)
        later = rank >= rank[d]  # d itself and everything after it in the ordering
        assert torch.all(grad[:, later] == 0), f"dimension {d} sees inputs {torch.nonzero(later).flatten().tolist()}"
        depends_somewhere |= bool((grad[:, ~later] != 0).any())
    assert depends_somewhere  # the masks are not trivially empty


@pytest.mark.parametrize("levels", [2, 4])
def test_nade_conditionals_see_only_earlier_dimensions(levels):
    model = perturbed(NADE((3, 3), levels, hidden=7), seed=2)
    assert torch.equal(model.order, torch.arange(9))
    _check_autoregressive(lambda x: model.logits(x.reshape(-1, 3, 3)), model.order, 9, levels)


@pytest.mark.parametrize("levels", [2, 3])
@pytest.mark.parametrize("depth", [1, 3])
def test_made_conditionals_see_only_earlier_dimensions(levels, depth):
    model = perturbed(MADE((2, 4), levels, hidden=12, depth=depth, num_masks=4, seed=3), seed=3, std=0.5)
    assert len({tuple(o.tolist()) for o in model.orders}) > 1  # several random orderings
    for k in range(4):
        _check_autoregressive(lambda x, k=k: model.logits(x.reshape(-1, 2, 4), k), model.orders[k], 8, levels)
        # Structure too: no path through the masks from a not-earlier input to an output.
        paths = model.mask_out[k].double()
        for i in reversed(range(depth)):
            paths = paths @ getattr(model, f"mask_{i}")[k].double()
        rank = torch.empty(8, dtype=torch.long)
        rank[model.orders[k]] = torch.arange(8)
        assert torch.all(paths[rank[:, None] <= rank[None, :]] == 0)


def test_made_single_mask_is_natural_order():
    model = MADE((6,), 2, hidden=10, depth=2)
    assert torch.equal(model.order, torch.arange(6))
    _check_autoregressive(lambda x: model.logits(x), model.order, 6, 2)


# -- sampling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,shape,levels,kw", [
    ("nade", (4,), 2, {}), ("nade", (3,), 3, {}),
    ("made", (2, 2), 2, {"num_masks": 1}), ("made", (3,), 3, {"num_masks": 3}), ("made", (4,), 2, {"num_masks": 3}),
])
def test_samples_follow_log_prob(kind, shape, levels, kw):
    model = perturbed(build(kind, shape, levels, **kw), seed=4, std=1.5)
    dims = math.prod(shape)
    everything = states(dims, levels)
    with torch.no_grad():
        p = model.log_prob(everything.reshape(-1, *shape)).double().exp()
    x = model.sample(20_000, torch.Generator().manual_seed(5))
    assert x.shape == (20_000, *shape) and x.dtype == torch.float32
    flat = x.reshape(20_000, dims).long()
    assert flat.min() >= 0 and flat.max() <= levels - 1
    codes = (flat * (levels ** torch.arange(dims - 1, -1, -1))).sum(1)  # the row index in `states`
    empirical = torch.bincount(codes, minlength=levels ** dims).double() / 20_000
    assert 0.5 * (empirical - p).abs().sum() < 0.03
    again = model.sample(20_000, torch.Generator().manual_seed(5))
    assert torch.equal(x, again)
    assert not torch.equal(x, model.sample(20_000, torch.Generator().manual_seed(6)))


@pytest.mark.parametrize("levels,depth", [(2, 1), (5, 2)])
def test_made_incremental_sampler_matches_full_passes(levels, depth):
    """The sampler updates the first layer as it draws; each draw must be the inverse-CDF draw
    from the full network's conditional given the dimensions before it (same uniforms)."""
    from evalgen_autoregressive.common import draw, uniforms
    model = perturbed(MADE((3, 4), levels, hidden=16, depth=depth), seed=9, std=1.0)
    x = model.sample(300, torch.Generator().manual_seed(2)).flatten(1)
    u = uniforms((300, 12), torch.Generator().manual_seed(2), torch.device("cpu"))
    with torch.no_grad():
        logits = model.logits(x.reshape(300, 3, 4))  # (N, D, P): row d sees only x_<d
    for d in model.order.tolist():
        assert torch.equal(x[:, d], draw(logits[:, d], u[:, d]))


# -- NADE against a naive D-pass computation ---------------------------------------------------
@pytest.mark.parametrize("levels", [2, 5])
def test_nade_matches_naive_d_pass(levels):
    model = perturbed(NADE((2, 3), levels, hidden=6), seed=8)
    x = torch.randint(0, levels, (11, 2, 3)).float()
    v = x.flatten(1) if levels == 2 else x.flatten(1) / (levels - 1)
    W, c, V, b = model.W.double(), model.c.double(), model.V.double(), model.b.double()
    expected = torch.zeros(11, dtype=torch.float64)
    for d in range(6):
        h = torch.sigmoid(c + v[:, :d].double() @ W[:, :d].T)  # (N, H), one pass per dimension
        out = h @ V[d].T + b[d]  # (N, P)
        target = x.flatten(1)[:, d].long()
        if levels == 2:
            p1 = torch.sigmoid(out[:, 0])
            expected += torch.where(target == 1, p1, 1 - p1).log()
        else:
            expected += torch.log_softmax(out, -1).gather(1, target[:, None])[:, 0]
    with torch.no_grad():
        assert torch.allclose(model.log_prob(x).double(), expected, atol=1e-5)


# -- training ---------------------------------------------------------------------------------
def _correlated_data(n: int, dims: int, levels: int, seed: int) -> torch.Tensor:
    """Two prototypes, each level re-drawn uniformly with probability 0.15: strongly dependent
    dimensions with near-uniform marginals."""
    gen = torch.Generator().manual_seed(seed)
    protos = torch.randint(0, levels, (2, dims), generator=gen)
    x = protos[torch.randint(0, 2, (n,), generator=gen)]
    noise = torch.rand(n, dims, generator=gen) < 0.15
    return torch.where(noise, torch.randint(0, levels, (n, dims), generator=gen), x).float()


def _independent_nll(x: torch.Tensor, levels: int) -> float:
    """Exact mean NLL of the best independent-dimension model: the data's own marginals."""
    marginals = torch.stack([(x == k).double().mean(0) for k in range(levels)])  # (L, D)
    log_marg = marginals.clamp(min=1e-300).log()
    return -log_marg.gather(0, x.long()).sum(1).mean().item()  # log_marg[x[n, d], d]


@pytest.mark.parametrize("kind,levels,kw", [("nade", 2, {"hidden": 16}), ("made", 2, {"num_masks": 1}),
                                            ("made", 2, {"num_masks": 4}), ("nade", 3, {"hidden": 16}),
                                            ("made", 3, {"num_masks": 2})])
def test_training_beats_independent_model(kind, levels, kw):
    x = _correlated_data(1000, 8, levels, seed=9)
    baseline = _independent_nll(x, levels)
    model = build(kind, (8,), levels, **kw)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    with torch.no_grad():
        before = -model.log_prob(x).mean().item()
    for _ in range(300):
        loss = model.loss(x)
        assert loss.dim() == 0
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = -model.log_prob(x).mean().item()
    assert after < before
    assert after < baseline - 0.5, (before, after, baseline)


def test_made_loss_chooses_masks_from_the_generator():
    model = perturbed(MADE((5,), 2, hidden=8, num_masks=4, seed=1), seed=1)
    x = torch.randint(0, 2, (7, 5)).float()
    per_mask = {round(-model.log_prob_mask(x, k).mean().item(), 5) for k in range(4)}
    losses = [model.loss(x, torch.Generator().manual_seed(s)).item() for s in range(20)]
    assert {round(v, 5) for v in losses} <= per_mask
    assert len({round(v, 5) for v in losses}) > 1
    assert model.loss(x, torch.Generator().manual_seed(3)).item() == losses[3]


# -- validation and persistence ---------------------------------------------------------------
@pytest.mark.parametrize("cls", [NADE, MADE])
def test_wrong_shape_is_rejected(cls):
    model = cls((1, 2, 5), 2, 4)
    for bad in (torch.zeros(3, 10), torch.zeros(3, 1, 5, 2), torch.zeros(1, 2, 5)):
        with pytest.raises(ValueError, match=r"\(N, 1, 2, 5\)"):
            model.log_prob(bad)
        with pytest.raises(ValueError, match=r"\(N, 1, 2, 5\)"):
            model.loss(bad)


def test_made_masks_are_reproducible_from_the_seed():
    a, b = MADE((6,), 2, 10, depth=2, num_masks=3, seed=11), MADE((6,), 2, 10, depth=2, num_masks=3, seed=11)
    c = MADE((6,), 2, 10, depth=2, num_masks=3, seed=12)
    for name in ("orders", "mask_0", "mask_1", "mask_out"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not all(torch.equal(getattr(a, n), getattr(c, n)) for n in ("orders", "mask_0", "mask_1", "mask_out"))
    assert int(a.seed) == 11


@pytest.mark.parametrize("kind,kw,fresh_kw", [
    ("nade", {}, {}),
    ("made", {"num_masks": 3, "seed": 4}, {"num_masks": 3, "seed": 99}),  # the masks come from the state dict
    ("made", {"num_masks": 1}, {"num_masks": 1}),
])
def test_state_dict_round_trip(kind, kw, fresh_kw, tmp_path):
    model = perturbed(build(kind, (2, 3), 3, **kw), seed=13)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    fresh = build(kind, (2, 3), 3, **fresh_kw)
    fresh.load_state_dict(torch.load(path))
    x = states(6, 3)[::7].reshape(-1, 2, 3)
    with torch.no_grad():
        assert torch.equal(model.log_prob(x), fresh.log_prob(x))
    assert torch.equal(model.sample(50, torch.Generator().manual_seed(0)),
                       fresh.sample(50, torch.Generator().manual_seed(0)))
