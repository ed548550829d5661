"""The `ebm` family: free energies, partition functions and AIS against enumeration, the fully
visible Boltzmann machine, and what every model reports (every model's contract is checked by
tests/test_conformance_bundled.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from evalgen import DataKind, DatasetInfo, Representation, TrainState
from evalgen.options import declared_options, resolved_options
from evalgen.types import Batch
from evalgen_ebm import ais, hooks
from evalgen_ebm.fvbm import FVBM, all_states
from evalgen_ebm.rbm import RBM


def _random_rbm(visible: int, hidden: int, seed: int = 0, scale: float = 1.0) -> RBM:
    torch.manual_seed(seed)
    rbm = RBM(visible, hidden, init_std=scale)
    with torch.no_grad():
        rbm.b.normal_(0, scale)
        rbm.c.normal_(0, scale)
        rbm.base_bias.normal_(0, 1)
    return rbm


def _binary(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _brute_force_log_joint(rbm: RBM) -> torch.Tensor:
    """-E(v, h) for every (v, h), (2^D, 2^H), in float64 from the energy's definition."""
    v, h = _binary(rbm.num_visible), _binary(rbm.num_hidden)
    W, b, c = rbm.W.detach().double(), rbm.b.detach().double(), rbm.c.detach().double()
    return (v @ b)[:, None] + (h @ c)[None, :] + v @ W @ h.T


# --- RBM: free energy and partition function against enumeration ----------------------------


def test_free_energy_is_the_brute_force_marginal_over_hidden_states():
    rbm = _random_rbm(6, 5)
    expected = torch.logsumexp(_brute_force_log_joint(rbm), dim=1)
    got = -rbm.free_energy(_binary(6).float()).double()
    assert torch.allclose(got, expected, atol=1e-5)


def test_exact_log_z_is_the_brute_force_sum_over_all_states():
    rbm = _random_rbm(6, 5)
    assert rbm.exact_log_z() == pytest.approx(float(torch.logsumexp(_brute_force_log_joint(rbm).flatten(), 0)),
                                              abs=1e-5)


def test_annealed_distributions_run_from_the_base_rate_model_to_the_rbm():
    rbm = _random_rbm(5, 3)
    v = _binary(5).float()
    at_zero = torch.logsumexp(rbm.annealed_log_unnormalized(v, 0.0).detach().double(), 0)
    assert float(at_zero) == pytest.approx(rbm.log_z_base(), abs=1e-5)  # the base model's Z, 2^H included
    assert torch.allclose(rbm.annealed_log_unnormalized(v, 1.0), -rbm.free_energy(v), atol=1e-5)


def test_ais_schedule_is_salakhutdinov_and_murray_2008():
    betas = ais.schedule()
    assert len(betas) == 14_501 and betas[0] == 0 and betas[-1] == 1
    assert float(betas[500]) == pytest.approx(0.5) and float(betas[4_500]) == pytest.approx(0.9)
    assert bool((betas[1:] > betas[:-1]).all())
    assert len(ais.schedule(1_000)) == 1_001


def test_ais_estimate_of_a_small_rbm_is_within_its_spread_of_the_exact_value():
    rbm = _random_rbm(8, 4, seed=1)
    estimate = rbm.ais_log_z(100, 2_000, torch.Generator().manual_seed(0))
    exact = rbm.exact_log_z()
    assert estimate.lower <= exact <= estimate.upper
    assert abs(estimate.log_z - exact) < 0.05
    again = rbm.ais_log_z(100, 2_000, torch.Generator().manual_seed(0))
    assert again.log_z == estimate.log_z  # all randomness comes from the generator


@pytest.mark.parametrize("scale", [1e-4, 1e-2, 0.9, 3.0])
def test_softplus_increment_matches_numpy_float64(scale):
    """Reference: numpy's float64 logaddexp(0, a + d) - logaddexp(0, a). The float32 increment
    keeps float32's relative precision where the float32 difference of two softplus values
    does not (AIS adds 14,500 of them); |d| > 1 takes the float64 difference."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, generator=g) * 15
    d = (torch.rand(20_000, generator=g) - 0.5) * 2 * scale
    a64, d64 = a.double().numpy(), d.double().numpy()
    reference = np.logaddexp(0, a64 + d64) - np.logaddexp(0, a64)
    got = ais.softplus_increment(a, d).double().numpy()
    assert np.allclose(got, reference, rtol=2e-6, atol=1e-30)


def test_log_z_estimate_combines_weights_as_a_log_mean():
    log_w = torch.tensor([0.0, math.log(3.0)])
    est = ais.estimate_log_z(log_w, log_z_base=1.5, steps=10)
    assert est.log_z == pytest.approx(1.5 + math.log(2.0))
    se = math.sqrt(2.0) / math.sqrt(2)  # std of (1, 3) over sqrt(M)
    assert est.upper == pytest.approx(1.5 + math.log(2 + 3 * se))
    assert est.lower == -math.inf and est.to_dict()["lower"] is None  # 3 SE exceed the mean


def _binarized_mnist_rbm(data_copy, persistent: bool) -> tuple[RBM, torch.Tensor]:
    """784 visible x 16 hidden units, 1,500 SGD steps of PCD or CD-1 on binarized MNIST."""
    from evalgen.datasets.base import LoadContext
    from evalgen.plugins import load_plugins

    data = load_plugins().datasets.get("binarized-mnist").load(LoadContext(data_copy, allow_download=False))
    x = data.train.x.flatten(1)
    torch.manual_seed(0)
    rbm = RBM(784, 16)
    opt = torch.optim.SGD(rbm.parameters(), lr=0.05, momentum=0.5, weight_decay=2e-4)
    g = torch.Generator().manual_seed(0)
    chains = rbm.base_samples(100, g)
    for _ in range(1_500):
        v = x[torch.randint(0, len(x), (100,), generator=g)]
        loss, negative = rbm.cd_loss(v, chains if persistent else v, 1, g)
        chains = negative if persistent else chains
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        rbm.base_bias.copy_((x.mean(0) * len(x) + 0.5).div(len(x) + 1).logit())
    return rbm, data.test.x.flatten(1)


@pytest.mark.long  # 30-45 s: CI runs it after the suite (.ci/run)
def test_ais_on_an_rbm_trained_on_binarized_mnist_is_within_0_1_nats_of_exact(data_copy):
    """Acceptance: 784 visible x 16 hidden, trained with PCD on binarized MNIST, exact log Z over
    the 2^16 hidden states; the default schedule (14,500 temperatures, 100 chains) within 0.1 nats."""
    rbm, _ = _binarized_mnist_rbm(data_copy, persistent=True)
    exact = rbm.exact_log_z()
    estimate = rbm.ais_log_z(100, ais.DEFAULT_STEPS, torch.Generator().manual_seed(4242))
    print(f"\nlog Z exact {exact:.4f}, AIS {estimate.log_z:.4f} [{estimate.lower:.4f}, {estimate.upper:.4f}], "
          f"effective chains {estimate.effective_chains:.1f}")
    assert abs(estimate.log_z - exact) < 0.1
    assert not estimate.degenerate


def test_a_cd1_rbm_with_a_spurious_mode_is_caught_by_the_uniform_start(data_copy):
    """CD-1 leaves a mode no data is near (all hidden units off, ~28 nats above the rest here):
    AIS from the data's base rate never reaches it and underestimates log Z by > 5 nats; AIS from
    the uniform distribution finds it. The model's estimate takes the larger and warns."""
    from evalgen_ebm.models import RBMModel

    rbm, test_x = _binarized_mnist_rbm(data_copy, persistent=False)
    exact = rbm.exact_log_z()
    rate = rbm.ais_log_z(100, 2_000, torch.Generator().manual_seed(1))
    with torch.no_grad():
        rbm.base_bias.zero_()
    uniform = rbm.ais_log_z(100, 2_000, torch.Generator().manual_seed(1))
    print(f"\nCD-1: log Z exact {exact:.2f}, AIS from the base rate {rate.log_z:.2f}, from uniform {uniform.log_z:.2f}")
    assert rate.log_z < exact - 5 and abs(uniform.log_z - exact) < 0.5
    model = RBMModel((1, 28, 28), {"hidden": 16, "ais_steps": 2_000}, persistent=False)
    model.net.load_state_dict(rbm.state_dict())
    model.observe(test_x)  # any binary data: only the base rate is taken from it
    with torch.no_grad():
        model.log_prob(test_x[:10].view(10, 1, 28, 28), 50)
    details = model.likelihood_details()
    assert abs(details["log_z"] - exact) < 0.5 and "disagree" in details["warning"]


# --- the fully visible Boltzmann machine -----------------------------------------------------


def test_fvbm_probabilities_sum_to_one_and_match_the_energy():
    torch.manual_seed(0)
    m = FVBM(9, init_std=1.0)
    with torch.no_grad():
        m.bias.normal_()
    states = all_states(9)
    log_p = m.log_prob(states)
    log_p = log_p.detach()
    assert float(torch.exp(log_p).sum()) == pytest.approx(1.0, abs=1e-9)
    W = m.W.detach().double()
    assert torch.equal(W, W.T) and bool((torch.diagonal(W) == 0).all())
    x = states[123:124].double()
    energy = -0.5 * float(x @ W @ x.T) - float(x @ m.bias.detach().double())
    assert float(log_p[123].detach()) == pytest.approx(-energy - float(m.log_z().detach()), abs=1e-6)


def test_fvbm_gradient_is_data_minus_model_statistics():
    """d/dW_ij of the mean log-likelihood = <x_i x_j>_data - <x_i x_j>_model (the seed's rule)."""
    torch.manual_seed(1)
    m = FVBM(6, init_std=0.5)
    data = (torch.rand(40, 6) < 0.3).float()
    m.log_prob(data).mean().backward()
    p = torch.exp(m.log_prob(all_states(6))).detach()
    states = all_states(6).double()
    model_stats = (states.T * p) @ states
    data_stats = data.double().T @ data.double() / len(data)
    expected = torch.triu(data_stats - model_stats, diagonal=1)  # the upper triangle is the parameter
    assert torch.allclose(torch.triu(m.weight.grad.double(), diagonal=1), expected, atol=1e-6)


def test_fvbm_samples_follow_its_distribution():
    torch.manual_seed(2)
    m = FVBM(4, init_std=1.0)
    draws = m.sample(40_000, torch.Generator().manual_seed(0))
    codes = (draws * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / len(codes)
    probs = torch.exp(m.log_prob(all_states(4))).detach()
    assert 0.5 * float((freq - probs).abs().sum()) < 0.02


def test_fvbm_refuses_more_dimensions_than_it_can_enumerate():
    with pytest.raises(ValueError, match="enumerates 2\\^D states"):
        FVBM(64)


# --- every model of the family: what it reports --------------------------------------------------
# Every model's contract (samples, determinism, log_prob, normalization, checkpoints, training,
# likelihood details that a record can store) is checked by tests/test_conformance_bundled.py.

INFOS = {
    "tiny": DatasetInfo("t", DataKind.BINARY, (1, 4, 4), 2, 10, Representation.LEVELS, 100),
}
SMALL = {"ais_steps": 200, "burn_in": 20, "hidden": 8, "hidden1": 8, "hidden2": 4}
FAMILY = hooks.evalgen_family()


def _options(model_name: str, given: dict | None = None) -> dict:
    """What a run hands the hooks of ``model_name`` for ``given`` (the keys it takes), defaults filled in."""
    takes = {o.name for o in declared_options(FAMILY, FAMILY.model(model_name))}
    return resolved_options(FAMILY, model_name, {k: v for k, v in (given or {}).items() if k in takes})


@pytest.mark.parametrize("model_name", [m.name for m in hooks.MODELS])
def test_every_model_reports_its_log_z_beside_the_number(model_name):
    info = INFOS["tiny"]
    torch.manual_seed(0)
    config = _options(model_name, SMALL)
    model = hooks.evalgen_build_model(model_name=model_name, dataset=info, config=config)
    opts = hooks.evalgen_configure_optimizers(model=model, config=config)
    state = TrainState(0, opts, torch.Generator().manual_seed(0), torch.device("cpu"), info, config)
    x = (torch.rand(32, *info.shape, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    hooks.evalgen_train_step(model=model, batch=Batch(x), state=state)
    with torch.no_grad():
        hooks.evalgen_log_prob(model=model, x=x, num_importance_samples=5)
    details = hooks.evalgen_likelihood_details(model=model)
    assert details is not None and math.isfinite(details["log_z"])


def test_the_label_names_the_schedule_length():
    config = _options("rbm", {"ais_steps": 1000})
    label = hooks.evalgen_describe_likelihood(model_name="rbm", dataset=INFOS["tiny"], config=config)
    assert label.with_samples(100).label == "estimate (AIS, T=1000, M=100)"
    dbm = hooks.evalgen_describe_likelihood(model_name="dbm", dataset=INFOS["tiny"], config=_options("dbm"))
    assert dbm.with_samples(100).label == (
        "estimate (estimate of a lower bound: mean-field ELBO, log Z by AIS, T=14500, M=100)")
    assert hooks.evalgen_describe_likelihood(model_name="fvbm", dataset=INFOS["tiny"], config=_options("fvbm")) is None


def test_multi_level_data_is_refused_with_the_binarized_alternative():
    info = DatasetInfo("d", DataKind.DISCRETE, (1, 8, 8), 17, 10, Representation.LEVELS, 100)
    with pytest.raises(ValueError, match="binarized-digits"):
        hooks.evalgen_build_model(model_name="rbm", dataset=info, config=_options("rbm"))


def test_rbm_sampling_with_thinning_follows_the_exact_distribution():
    """200 chains, burn-in 50, a sample every 5 sweeps (100 from each chain): the empirical
    distribution of a small RBM's visible states matches the exact one (enumerated)."""
    rbm = _random_rbm(4, 3, seed=3, scale=0.7)
    draws = rbm.sample(20_000, torch.Generator().manual_seed(0), burn_in=50, thin=5, chains=200)
    codes = (draws * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / len(codes)
    states = _binary(4)
    exact = torch.softmax(-rbm.free_energy(states.float()).double(), 0).detach()
    assert draws.shape == (20_000, 4) and 0.5 * float((freq - exact).abs().sum()) < 0.03
