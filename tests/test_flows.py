"""Tests of the `flows` family (planar, RealNVP, MAF) against independent references:
quadrature, autograd Jacobians, round trips and sample histograms."""

from __future__ import annotations

import io
import math
from importlib.metadata import entry_points

import pytest
import torch

import evalgen_flows as flows
from evalgen import Batch, DataKind, DatasetInfo, LikelihoodKind, Representation, TrainState
from evalgen.options import declared_options, resolved_options
from evalgen_flows.planar import PlanarStack, reparameterize_u, solve_planar_inverse

MODELS = ["planar", "realnvp", "maf"]
FAMILY = flows.evalgen_family()


def options(name: str, given: dict | None = None) -> dict:
    """What a run hands the hooks of ``name`` for ``given`` (the keys it takes), defaults filled in."""
    takes = {o.name for o in declared_options(FAMILY, FAMILY.model(name))}
    return resolved_options(FAMILY, name, {k: v for k, v in (given or {}).items() if k in takes})


def toy_info() -> DatasetInfo:
    return DatasetInfo(name="toy", kind=DataKind.CONTINUOUS, shape=(2,), levels=None, num_classes=None,
                       representation=Representation.CONTINUOUS, num_train=1000)


def image_info(shape=(1, 4, 4), levels=17) -> DatasetInfo:
    return DatasetInfo(name="img", kind=DataKind.DISCRETE, shape=shape, levels=levels, num_classes=None,
                       representation=Representation.DEQUANTIZED, num_train=100)


def eight_gaussians(n: int, gen: torch.Generator, radius: float = 2.5, std: float = 0.35) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=gen)
    angle = k.double() * (2 * math.pi / 8)
    centers = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)
    return (centers + std * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()


def make_state(model, info, config=None) -> TrainState:
    config = options(model.flow_name, config)
    return TrainState(step=0, optimizers=flows.evalgen_configure_optimizers(model, config),
                      generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                      dataset=info, config=config)


def perturb(model: torch.nn.Module, scale: float = 0.2, seed: int = 0) -> torch.nn.Module:
    """Randomize every parameter so that no layer is the identity (zero-initialised layers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


_TRAINED: dict[str, torch.nn.Module] = {}


@pytest.fixture
def trained_2d(request):
    """A model trained briefly (200 steps) on eight Gaussians, cached per model name, float64."""
    name = request.param
    if name not in _TRAINED:
        torch.manual_seed(0)
        info = toy_info()
        model = flows.evalgen_build_model(name, info, options(name))
        state = make_state(model, info, {"lr": 3e-3})
        gen = torch.Generator().manual_seed(1)
        model.train()
        for step in range(200):
            state.step = step
            out = flows.evalgen_train_step(model, Batch(eight_gaussians(256, gen)), state)
            assert math.isfinite(float(out["nll"]))
        _TRAINED[name] = model.eval().double()
    return _TRAINED[name]


def grid(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    """Midpoints of an n x n grid over [lo, hi]^2, as (n*n, 2) float64, and the cell area."""
    h = (hi - lo) / n
    t = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], -1), h * h


# --- family / registration ----------------------------------------------------------------


def test_family_declares_three_exact_dequantized_models():
    """Exact densities of the dequantized values (the harness, not the plugin, reports the bound
    they give on the discrete likelihood: tests/test_likelihood_labels.py)."""
    info = flows.evalgen_family()
    assert info.name == "flows"
    assert [m.name for m in info.models] == MODELS
    for spec in info.models:
        assert spec.likelihood.kind is LikelihoodKind.EXACT
        assert spec.dequantize is True
        assert spec.data_kinds == frozenset(DataKind)


def test_entry_point_points_at_the_package():
    eps = [ep for ep in entry_points(group="evalgen") if ep.name == "flows"]
    assert eps and eps[0].value == "evalgen_flows"


# --- 1. normalization by quadrature --------------------------------------------------------


@pytest.mark.parametrize("trained_2d", MODELS, indirect=True)
def test_density_integrates_to_one(trained_2d):
    pts, area = grid(-8.0, 8.0, 400)
    with torch.no_grad():
        mass = (trained_2d.log_prob(pts).exp().sum() * area).item()
    assert mass == pytest.approx(1.0, abs=0.01)


# --- 2. change of variables against the autograd Jacobian ----------------------------------


def _check_change_of_variables(model, xs: torch.Tensor) -> None:
    model = model.double().eval()
    d = model.dim
    with torch.no_grad():
        got = model.log_prob(xs)
    for i in range(xs.shape[0]):
        x = xs[i].reshape(-1)
        z = model.forward_to_base(x[None])[0][0].detach()
        jac = torch.autograd.functional.jacobian(lambda v: model.forward_to_base(v[None])[0][0], x)
        sign, logabsdet = torch.linalg.slogdet(jac)
        assert sign != 0
        ref = -0.5 * (z @ z) - 0.5 * d * math.log(2 * math.pi) + logabsdet
        assert got[i].item() == pytest.approx(ref.item(), abs=1e-8, rel=1e-10)


@pytest.mark.parametrize("trained_2d", MODELS, indirect=True)
def test_log_prob_matches_autograd_jacobian_2d(trained_2d):
    gen = torch.Generator().manual_seed(3)
    _check_change_of_variables(trained_2d, eight_gaussians(5, gen).double())


@pytest.mark.parametrize("name", MODELS)
def test_log_prob_matches_autograd_jacobian_image(name):
    torch.manual_seed(0)
    info = image_info()
    model = perturb(flows.evalgen_build_model(name, info, options(name, {"layers": 4, "hidden": 32})))
    gen = torch.Generator().manual_seed(4)
    x = ((torch.randint(0, 17, (3, 1, 4, 4), generator=gen) + torch.rand(3, 1, 4, 4, generator=gen)) / 17)
    x[0, 0, 0, 0] = 0.0  # the closed end of the support is fine too
    _check_change_of_variables(model, x.double())


# --- 3. invertibility ----------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("info", [toy_info(), image_info()], ids=["2d", "image"])
def test_inverse_round_trip(name, info):
    torch.manual_seed(0)
    model = flows.evalgen_build_model(name, info, options(name, {"layers": 4, "hidden": 32}))
    model = perturb(model, 0.1).double().eval()
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(256, model.dim, generator=gen, dtype=torch.float64)
    if info.levels:
        data = torch.rand(256, model.dim, generator=gen, dtype=torch.float64)
    else:
        data = eight_gaussians(256, gen).double()
    with torch.no_grad():
        x = model.inverse_from_base(z)  # base -> data (planar: numerical inverse)
        z_back, _ = model.forward_to_base(x)
        data_back = model.inverse_from_base(model.forward_to_base(data)[0])
    assert torch.isfinite(x).all()
    assert (z_back - z).abs().max().item() < 1e-5
    assert (data_back - data).abs().max().item() < 1e-5


def test_planar_solver_is_machine_precise():
    gen = torch.Generator().manual_seed(6)
    c = 10 * torch.randn(10_000, generator=gen, dtype=torch.float64)
    for wu in (-0.9999, -0.5, 0.0, 0.3, 5.0, 200.0):
        for b in (-3.0, 0.0, 2.0):
            wu_t, b_t = torch.tensor(wu, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
            alpha = solve_planar_inverse(c, wu_t, b_t)
            resid = alpha + wu_t * torch.tanh(alpha + b_t) - c
            assert resid.abs().max().item() <= 1e-12 * (1 + abs(wu))


# --- 4. samples agree with the density -----------------------------------------------------


@pytest.mark.parametrize("trained_2d", MODELS, indirect=True)
def test_sample_histogram_matches_density(trained_2d):
    lo, hi, bins, sub = -6.0, 6.0, 16, 12
    with torch.no_grad():
        samples = flows.evalgen_sample(trained_2d, 40_000, torch.Generator().manual_seed(7)).double()
        pts, area = grid(lo, hi, bins * sub)
        dens = trained_2d.log_prob(pts).exp().reshape(bins, sub, bins, sub).sum((1, 3)) * area
    hist = torch.histogramdd(samples, bins=[bins, bins], range=[lo, hi, lo, hi]).hist / samples.shape[0]
    outside_hist = 1.0 - hist.sum()
    outside_dens = 1.0 - dens.sum()
    tv = 0.5 * ((hist - dens).abs().sum() + (outside_hist - outside_dens).abs())
    assert tv.item() < 0.04  # sampling noise alone gives about 0.02 here


# --- 5. shapes, gradients, checkpoints, determinism ----------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("info", [toy_info(), image_info((1, 8, 8))], ids=["2d", "digits"])
def test_sample_shape_dtype_range(name, info):
    torch.manual_seed(0)
    model = flows.evalgen_build_model(name, info, options(name, {"layers": 3, "hidden": 32})).eval()
    with torch.no_grad():
        x = flows.evalgen_sample(model, 50, torch.Generator().manual_seed(0))
        lp = flows.evalgen_log_prob(model, x.clamp(0, 1 - 1e-6) if info.levels else x)
    assert x.shape == (50, *info.shape) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    if info.representation is Representation.DEQUANTIZED:
        assert x.min() >= 0 and x.max() <= 1
    assert lp.shape == (50,) and torch.isfinite(lp).all()


@pytest.mark.parametrize("name", MODELS)
def test_log_prob_rejects_wrong_shapes(name):
    model = flows.evalgen_build_model(name, image_info(), options(name, {"layers": 2, "hidden": 16}))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.rand(4, 16))


@pytest.mark.parametrize("name", MODELS)
def test_train_step_reaches_every_parameter(name):
    torch.manual_seed(0)
    info = image_info()
    model = flows.evalgen_build_model(name, info, options(name, {"layers": 2, "hidden": 16}))
    state = make_state(model, info)
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for step in range(2):  # the first step moves the zero-initialised output layers off zero
        state.step = step
        out = flows.evalgen_train_step(model, Batch(x), state)
    assert torch.as_tensor(out["nll"]).dim() == 0
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name):
    info = image_info()
    torch.manual_seed(0)
    model = perturb(flows.evalgen_build_model(name, info, options(name))).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    fresh = flows.evalgen_build_model(name, info, options(name)).eval()
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(flows.evalgen_log_prob(model, x), flows.evalgen_log_prob(fresh, x))


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_samples(name):
    torch.manual_seed(0)
    model = perturb(flows.evalgen_build_model(name, toy_info(), options(name))).eval()
    with torch.no_grad():
        a = flows.evalgen_sample(model, 64, torch.Generator().manual_seed(11))
        b = flows.evalgen_sample(model, 64, torch.Generator().manual_seed(11))
        c = flows.evalgen_sample(model, 64, torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- 6. planar invertibility constraint ----------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_planar_reparameterization_keeps_wu_above_minus_one(dtype):
    gen = torch.Generator().manual_seed(8)
    eps = torch.finfo(dtype).eps
    cases = []
    for scale in (1e-3, 1.0, 10.0, 100.0):
        for _ in range(50):
            w = scale * torch.randn(16, generator=gen, dtype=dtype)
            cases.append((scale * torch.randn(16, generator=gen, dtype=dtype), w))
            cases.append((-scale * w, w))  # adversarial: u anti-parallel to w, w.u << -1
    cases.append((torch.randn(16, dtype=dtype), torch.zeros(16, dtype=dtype)))  # w = 0
    for u, w in cases:
        u_hat, wu = reparameterize_u(u, w)
        assert wu.item() > -1.0  # the value the layer uses, for any raw parameters
        size = 1.0 + (w.norm() * u.norm()).item()
        dot = torch.dot(w.double(), u_hat.double()).item()  # the returned vector really has it
        assert abs(dot - wu.item()) <= 64 * eps * size
        if 64 * eps * size < 1e-4:  # where rounding cannot reach the margin, the dot itself is > -1
            assert dot > -1.0
    layer = PlanarStack(16, 3).to(dtype)  # extreme raw parameters give a finite log-det
    with torch.no_grad():
        layer.w.copy_(5 * torch.randn(3, 16, generator=gen, dtype=dtype))
        layer.u.copy_(-40 * layer.w)
        _, ladj = layer(torch.randn(32, 16, generator=gen, dtype=dtype))
    assert torch.isfinite(ladj).all()


# --- MADE masks ----------------------------------------------------------------------------


@pytest.mark.parametrize("dim,hidden", [(2, 8), (16, 8), (16, 64)])
def test_made_is_autoregressive(dim, hidden):
    from evalgen_flows.maf import MADE

    torch.manual_seed(0)
    made = perturb(MADE(dim, hidden)).double()
    x = torch.randn(dim, dtype=torch.float64)
    for part in (0, 1):  # d mu / d x and d log-scale / d x are strictly lower triangular
        jac = torch.autograd.functional.jacobian(lambda v, part=part: made(v[None])[part][0], x)
        assert torch.count_nonzero(torch.triu(jac)) == 0
        assert torch.count_nonzero(torch.tril(jac, -1)) > 0
