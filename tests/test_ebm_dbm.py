"""The `ebm` family's deep Boltzmann machine against brute-force enumeration of a tiny model."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import evalgen_ebm  # noqa: F401
except ImportError:  # the project is not (re-)installed with the ebm plugin yet
    sys.path.insert(0, str(Path(__file__).parents[1] / "plugins"))

from evalgen_ebm import ais
from evalgen_ebm.dbm import DBM

D, H1, H2 = 5, 4, 3


def _tiny(seed: int = 0, w2_zero: bool = False) -> DBM:
    """A tiny DBM with N(0, 1) weights, biases and base-rate bias."""
    torch.manual_seed(seed)
    model = DBM(D, H1, H2)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
        model.base_bias.normal_()
        if w2_zero:
            model.W2.zero_()
    return model


def _np(model: DBM) -> dict[str, np.ndarray]:
    names = ("W1", "W2", "b", "c1", "c2", "base_bias")
    return {n: getattr(model, n).detach().double().numpy() for n in names}


def _states(n: int) -> np.ndarray:
    return np.array(list(itertools.product((0.0, 1.0), repeat=n)))


def _logsumexp(x: np.ndarray, axis=None) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _brute_log_joint(p: dict, beta: float = 1.0) -> np.ndarray:
    """log of the annealed unnormalized joint, (2^D, 2^H1, 2^H2), by direct evaluation of E."""
    v, h1, h2 = _states(D), _states(H1), _states(H2)
    out = np.empty((len(v), len(h1), len(h2)))
    for i, vi in enumerate(v):
        for j, hj in enumerate(h1):
            for k, hk in enumerate(h2):
                e = -(p["b"] @ vi) - p["c1"] @ hj - p["c2"] @ hk - vi @ p["W1"] @ hj - hj @ p["W2"] @ hk
                out[i, j, k] = (1 - beta) * (p["base_bias"] @ vi) - beta * e
    return out


@pytest.fixture(scope="module")
def tiny() -> DBM:
    return _tiny()


@pytest.fixture(scope="module")
def brute(tiny) -> dict:
    joint = _brute_log_joint(_np(tiny))
    log_z = float(_logsumexp(joint.ravel()))
    return {"joint": joint, "log_z": log_z, "log_p_v": _logsumexp(joint.reshape(2 ** D, -1), axis=1) - log_z}


# --- exact quantities ------------------------------------------------------------------------

def test_energy_matches_the_formula(tiny):
    p = _np(tiny)
    g = torch.Generator().manual_seed(3)
    v, h1, h2 = (torch.rand(7, n, generator=g) for n in (D, H1, H2))  # means are allowed
    got = tiny.energy(v, h1, h2).detach().double().numpy()
    vn, h1n, h2n = (x.double().numpy() for x in (v, h1, h2))
    want = [-(p["b"] @ a) - p["c1"] @ c - p["c2"] @ d - a @ p["W1"] @ c - c @ p["W2"] @ d
            for a, c, d in zip(vn, h1n, h2n)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_exact_log_z_matches_brute_force(tiny, brute):
    assert abs(tiny.exact_log_z() - brute["log_z"]) < 1e-9


def test_exact_log_prob_is_normalized_and_the_marginal(tiny, brute):
    log_p = tiny.exact_log_prob(torch.tensor(_states(D), dtype=torch.float32)).numpy()
    assert abs(_logsumexp(log_p)) < 1e-9
    np.testing.assert_allclose(log_p, brute["log_p_v"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("beta", [0.0, 0.37, 1.0])
def test_log_unnormalized_h1_matches_brute_force(tiny, beta):
    p = _np(tiny)
    joint = _brute_log_joint(p, beta)
    want = _logsumexp(np.moveaxis(joint, 1, 0).reshape(2 ** H1, -1), axis=1)
    got = tiny.log_unnormalized_h1(torch.tensor(_states(H1), dtype=torch.float32), beta).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    if beta == 0.0:  # the base-rate model's log Z, as ais_log_z uses it
        base_log_z = np.log1p(np.exp(p["base_bias"])).sum() + (H1 + H2) * math.log(2)
        assert abs(_logsumexp(got) - base_log_z) < 1e-9


def test_fit_base_rate_is_the_smoothed_logit():
    model = DBM(D, H1, H2)
    data = torch.tensor([[1, 0, 1, 1, 0], [1, 0, 0, 1, 0], [1, 0, 1, 0, 0]], dtype=torch.float32)
    model.fit_base_rate(data)
    mean = (np.array([3, 0, 2, 2, 0]) + 0.5) / 4
    np.testing.assert_allclose(model.base_bias.double().numpy(), np.log(mean / (1 - mean)), rtol=1e-6)


# --- mean field and the variational bound ----------------------------------------------------

def test_mean_field_reaches_a_fixed_point(tiny):
    v = torch.tensor(_states(D), dtype=torch.float32)
    mu1, mu2 = tiny.mean_field(v, steps=200)
    p = _np(tiny)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    m1, m2 = mu1.double().numpy(), mu2.double().numpy()
    new1 = sig(p["c1"] + v.double().numpy() @ p["W1"] + m2 @ p["W2"].T)
    new2 = sig(p["c2"] + new1 @ p["W2"])
    assert np.abs(new1 - m1).max() < 1e-6 and np.abs(new2 - m2).max() < 1e-6


def _brute_kl(p: dict, v: np.ndarray, mu1: np.ndarray, mu2: np.ndarray, log_p_v: float) -> float:
    """KL(q(h1) q(h2) || p(h1, h2 | v)) by enumerating the 2^(H1+H2) hidden states."""
    kl = 0.0
    for h1 in _states(H1):
        for h2 in _states(H2):
            log_q = (np.log(np.where(h1 == 1, mu1, 1 - mu1)).sum() + np.log(np.where(h2 == 1, mu2, 1 - mu2)).sum())
            neg_e = p["b"] @ v + p["c1"] @ h1 + p["c2"] @ h2 + v @ p["W1"] @ h1 + h1 @ p["W2"] @ h2
            kl += math.exp(log_q) * (log_q - (neg_e - log_p_v))  # log p(h|v) = -E - log Z - log p(v)
    return kl


def test_variational_bound_is_log_p_minus_the_kl(tiny, brute):
    v = torch.tensor(_states(D), dtype=torch.float32)
    bound = tiny.variational_bound(v, brute["log_z"], mf_steps=10).numpy()
    assert np.all(bound <= brute["log_p_v"] + 1e-9)
    assert np.all(brute["log_p_v"] - bound > 1e-4)  # W2 != 0: q is not the posterior here
    mu1, mu2 = (m.double().numpy() for m in tiny.mean_field(v, 10))
    p = _np(tiny)
    log_p_plus_z = brute["log_p_v"] + brute["log_z"]  # log sum_h exp(-E(v, h))
    for i, vi in enumerate(v.double().numpy()):
        kl = _brute_kl(p, vi, mu1[i], mu2[i], log_p_plus_z[i])
        assert abs(bound[i] - (brute["log_p_v"][i] - kl)) < 1e-9


def test_bound_is_exact_when_the_layers_decouple():
    """With W2 = 0 the DBM is an RBM times independent h2 units: p(h1, h2 | v) factorizes, and
    one mean-field round reaches it (mu1 = sigmoid(c1 + v W1), mu2 = sigmoid(c2)), so the bound
    with the exact log Z is log p(v)."""
    model = _tiny(seed=1, w2_zero=True)
    v = torch.tensor(_states(D), dtype=torch.float32)
    exact = model.exact_log_prob(v).numpy()
    bound = model.variational_bound(v, model.exact_log_z(), mf_steps=1).numpy()
    np.testing.assert_allclose(bound, exact, rtol=0, atol=1e-9)


# --- AIS -------------------------------------------------------------------------------------

def test_ais_matches_exact_log_z(tiny, brute):
    est = tiny.ais_log_z(100, ais.DEFAULT_STEPS, torch.Generator().manual_seed(0))
    assert est.chains == 100 and est.steps == ais.DEFAULT_STEPS
    assert abs(est.log_z - brute["log_z"]) < 0.05, est
    assert est.lower <= brute["log_z"] <= est.upper, est


def test_ais_is_reproducible_and_exact_at_the_base_model(tiny):
    one = tiny.ais_log_z(20, 300, torch.Generator().manual_seed(5))
    two = tiny.ais_log_z(20, 300, torch.Generator().manual_seed(5))
    assert one == two
    assert tiny.ais_log_z(20, 300, torch.Generator().manual_seed(6)) != one
    # A DBM equal to its base-rate model: every weight is 1 and log Z is the base's, exactly.
    base = DBM(D, H1, H2)
    with torch.no_grad():
        base.W1.zero_(), base.W2.zero_()
        base.base_bias.copy_(tiny.base_bias)
        base.b.copy_(tiny.base_bias)
    est = base.ais_log_z(5, 10, torch.Generator().manual_seed(0))
    assert est.log_weight_std == 0.0
    assert abs(est.log_z - base.exact_log_z()) < 1e-9


# --- sampling and training -------------------------------------------------------------------

def _index(v: torch.Tensor) -> np.ndarray:
    """Row index of each binary v in _states(D) (first coordinate most significant)."""
    return (v.numpy() @ (2 ** np.arange(D - 1, -1, -1))).astype(int)


def test_gibbs_samples_follow_the_exact_marginal(tiny, brute):
    v = tiny.gibbs_sample(20_000, torch.Generator().manual_seed(0), burn_in=50)
    assert v.shape == (20_000, D) and set(v.unique().tolist()) <= {0.0, 1.0}
    empirical = np.bincount(_index(v), minlength=2 ** D) / len(v)
    tv = 0.5 * np.abs(empirical - np.exp(brute["log_p_v"])).sum()
    assert tv < 0.03, tv
    start = torch.zeros(3, D)
    assert torch.equal(tiny.gibbs_sample(3, torch.Generator(), burn_in=0, start=start), start)


def test_pcd_gradient_is_negative_minus_positive_statistics(tiny):
    g = torch.Generator().manual_seed(0)
    v_data = (torch.rand(16, D, generator=g) < 0.5).float()
    chains = tiny.init_chains(8, g)
    tiny.zero_grad()
    loss, (v_neg, h1_neg, h2_neg) = tiny.pcd_loss(v_data, chains, g, mf_steps=10)
    loss.backward()
    # mean field by hand: bottom-up pass with 2 W1, then 10 rounds of the fixed-point updates
    p = _np(tiny)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    vd = v_data.double().numpy()
    mu1 = sig(p["c1"] + 2 * vd @ p["W1"])
    mu2 = sig(p["c2"] + mu1 @ p["W2"])
    for _ in range(10):
        mu1 = sig(p["c1"] + vd @ p["W1"] + mu2 @ p["W2"].T)
        mu2 = sig(p["c2"] + mu1 @ p["W2"])
    vn, h1n, h2n = (x.double().numpy() for x in (v_neg, h1_neg, h2_neg))
    want = {
        "W1": vn.T @ h1n / 8 - vd.T @ mu1 / 16,
        "W2": h1n.T @ h2n / 8 - mu1.T @ mu2 / 16,
        "b": vn.mean(0) - vd.mean(0),
        "c1": h1n.mean(0) - mu1.mean(0),
        "c2": h2n.mean(0) - mu2.mean(0),
    }
    for name, grad in want.items():
        np.testing.assert_allclose(getattr(tiny, name).grad.double().numpy(), grad, rtol=0, atol=1e-5)
    tiny.zero_grad()


def test_pcd_training_raises_the_exact_likelihood():
    torch.manual_seed(0)
    model = DBM(D, H1, H2)
    g = torch.Generator().manual_seed(1)
    prototypes = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.float32)

    def draw(n: int) -> torch.Tensor:
        rows = prototypes[torch.randint(0, 2, (n,), generator=g)]
        return (rows + (torch.rand(n, D, generator=g) < 0.05).float()) % 2

    test = draw(2_000)
    model.fit_base_rate(draw(2_000))
    before = float(model.exact_log_prob(test).mean())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    chains = model.init_chains(64, g)
    for _ in range(400):
        loss, chains = model.pcd_loss(draw(64), chains, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = float(model.exact_log_prob(test).mean())
    assert after > before + 0.5, (before, after)


# --- validation ------------------------------------------------------------------------------

def test_inputs_are_validated(tiny):
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        tiny.mean_field(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="binary"):
        tiny.exact_log_prob(torch.full((2, D), 0.5))
    with pytest.raises(ValueError, match=r"h1 of shape \(N, 4\)"):
        tiny.log_unnormalized_h1(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="beta"):
        tiny.log_unnormalized_h1(torch.zeros(2, H1), beta=1.5)
    with pytest.raises(ValueError, match="same N"):
        tiny.energy(torch.zeros(2, D), torch.zeros(3, H1), torch.zeros(2, H2))
    with pytest.raises(ValueError, match="num_samples"):
        tiny.gibbs_sample(4, g, start=torch.zeros(3, D))
    with pytest.raises(ValueError, match=r"chain h2 of shape \(N, 3\)"):
        tiny.pcd_loss(torch.zeros(2, D), (torch.zeros(2, D), torch.zeros(2, H1), torch.zeros(2, 2)), g)
    with pytest.raises(ValueError, match="hidden1 = 21"):
        DBM(3, 21, 2).exact_log_z()
