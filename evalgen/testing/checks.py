"""The checks of one model variant on one kind of data (normalization and agreement live in
`evalgen.testing.density`). Each takes a `Subject`, returns what it measured, and raises
`CheckFailed` with what the plugin should do, or `CheckSkipped` with why it cannot run."""

from __future__ import annotations

import io
import json
import math
import random
import statistics

import numpy as np
import torch
from torch import nn

from evalgen.testing.report import CheckFailed, CheckSkipped
from evalgen.testing.subject import Subject, describe_error, evaluating
from evalgen.types import LikelihoodKind, Representation, TrainState


def _models(subject: Subject) -> list[tuple[str, nn.Module]]:
    """The freshly built model, and the trained one when training worked."""
    models = [("freshly built", subject.resource("fresh"))]
    try:
        models.append(("trained", subject.resource("trained").model))
    except (CheckFailed, CheckSkipped):
        pass
    return models


def _state_diff(a: nn.Module, b: nn.Module) -> list[str]:
    sa, sb = a.state_dict(), b.state_dict()
    return [k for k in sa if k not in sb or sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k])]


def check_build(subject: Subject) -> str:
    likelihood = subject.resource("likelihood", direct=True)
    try:
        model = subject.resource("fresh", direct=True)
    except Exception as exc:
        field = f"{subject.kind.value}_shape"
        raise CheckFailed(
            f"{describe_error(exc)} (the checks build every model for tiny {subject.data.describe()}; for a model "
            f"that needs larger inputs, pass settings=dataclasses.replace(evalgen.testing.DEFAULTS, {field}=...))"
        ) from None
    again = subject.build(subject.data, subject.settings.seed)
    differ = _state_diff(model, again)
    if differ:
        raise CheckFailed(
            f"two builds after torch.manual_seed({subject.settings.seed}) gave different initial values of "
            f"{', '.join(differ[:4])}: evalgen_build_model should draw its initialization from torch's global RNG "
            "(which the harness seeds), not from numpy, random or an unseeded generator")
    optimizers = subject.bound.optimizers(model, subject.config)
    owner: dict[int, str] = {}
    for name, opt in optimizers.items():
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) in owner:
                    raise CheckFailed(f"a parameter is in both optimizer '{owner[id(p)]}' and '{name}' and would be "
                                      "updated twice per step: give each parameter to one optimizer")
                owner[id(p)] = name
    orphans = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in owner]
    if orphans:
        raise CheckFailed(f"trainable parameters {', '.join(orphans[:4])} are in no optimizer of "
                          "evalgen_configure_optimizers: add them, or freeze them with requires_grad_(False)")
    count = sum(p.numel() for p in model.parameters())
    return f"{count} parameters, likelihood: {likelihood.label}, optimizers: {', '.join(optimizers)}"


def check_sample(subject: Subject) -> str:
    s = subject.settings
    seen = []
    for label, model in _models(subject):
        for n in (1, s.num_samples):
            try:
                out = subject.sample(model, n, s.seed + 1)
            except Exception as exc:
                raise CheckFailed(f"{label} model, {n} sample(s): {describe_error(exc)}") from None
            if out.dtype != torch.float32:
                raise CheckFailed(f"evalgen_sample returned {out.dtype}; return float32 (.float())")
            if out.device != subject.device:
                raise CheckFailed(f"evalgen_sample returned a tensor on {out.device}, not on the model's device "
                                  f"{subject.device}: create noise with device= the model's device")
        if s.num_samples > 1 and bool((out == out[:1]).all()):
            raise CheckFailed(f"all {s.num_samples} samples of the {label} model are identical: the sampler "
                              "should use its noise (from the generator)")
        seen.append(f"{label}: range [{float(out.min()):.3g}, {float(out.max()):.3g}]")
    return f"float32 {(s.num_samples, *subject.data.shape)}; " + "; ".join(seen)


def _rng_states() -> tuple:
    return torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def check_determinism(subject: Subject) -> str:
    s = subject.settings
    model = subject.resource("fresh")
    n = s.num_samples
    torch.manual_seed(1_111)
    first = subject.sample(model, n, seed=7)
    torch.manual_seed(2_222)
    before = _rng_states()
    second = subject.sample(model, n, seed=7)
    after = _rng_states()
    other = subject.sample(model, n, seed=8)
    if not torch.equal(first, second):
        diff = float((first - second).abs().max())
        raise CheckFailed(
            f"two calls with generators of the same seed gave different samples (largest difference {diff:.3g}) "
            "when the global torch RNG was seeded differently in between: evalgen_sample must draw all its "
            "randomness from the generator argument (pass generator= to torch.rand/randn/randint/multinomial/"
            "bernoulli; no torch.randn_like, dropout in eval mode, numpy or random)")
    if torch.equal(first, other):
        raise CheckFailed("generators of different seeds gave identical samples: evalgen_sample ignores the "
                          "generator (a fixed seed inside the plugin?); draw the noise from it")
    touched = [name for name, a, b in zip(("torch", "numpy", "random"), before, after)
               if not (torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b) if
                       isinstance(a, np.ndarray) else a == b)]
    if touched:
        raise CheckFailed(f"evalgen_sample advanced the global {' and '.join(touched)} RNG: all randomness must "
                          "come from the generator argument, or runs are not reproducible from their seed")
    return "same generator seed: identical samples whatever the global RNG; other seed: different samples"


def check_log_prob(subject: Subject) -> str:
    s = subject.settings
    exact = subject.likelihood.kind is LikelihoodKind.EXACT
    notes = []
    for label, model in _models(subject):
        x = subject.data.eval_x[:s.num_samples]
        log_p = subject.log_prob(model, x, reseed=s.seed)
        if log_p.dtype not in (torch.float32, torch.float64):
            raise CheckFailed(f"evalgen_log_prob returned {log_p.dtype}; return float32 or float64")
        edges, what = subject.data.extremes()
        try:
            subject.log_prob(model, edges, reseed=s.seed)
        except Exception as exc:
            raise CheckFailed(f"{label} model, on {what}: {describe_error(exc)}: log_prob must be finite on the "
                              "whole support (use logsumexp / log_softmax / softplus, clamp probabilities)") from None
        if exact:
            few = subject.log_prob(model, x[:5])
            diff = (few.double() - log_p[:5].double()).abs()
            if bool((diff > s.batch_atol + s.batch_rtol * log_p[:5].double().abs()).any()):
                raise CheckFailed(
                    f"{label} model: the log_prob of an example changes with the rest of its batch (by up to "
                    f"{float(diff.max()):.3g} nats between a batch of {x.shape[0]} and one of 5): in eval mode "
                    "examples must be scored independently (batch statistics, e.g. batch norm in training mode?)")
        if subject.likelihood.sample_count is not None:
            subject.log_prob(model, x, k=1, reseed=s.seed)
        notes.append(f"{label}: mean {float(log_p.double().mean()):.4g} nats")
    return f"finite {tuple(log_p.shape)} {str(log_p.dtype).removeprefix('torch.')}, also at the edges; " + \
        "; ".join(notes)


def check_checkpoint(subject: Subject) -> str:
    s = subject.settings
    trained = subject.resource("trained").model
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in trained.state_dict().items()}, buffer)
    buffer.seek(0)
    try:
        state = torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckFailed(f"the state_dict cannot be reloaded with torch.load(weights_only=True), as the harness "
                          f"reloads checkpoints ({describe_error(exc)}): keep only tensors in it") from None
    fresh = subject.build(subject.data, s.seed + 1)
    try:
        fresh.load_state_dict(state)
    except Exception as exc:
        raise CheckFailed(f"loading the trained model's state_dict into a freshly built one failed "
                          f"({describe_error(exc)}): evalgen_build_model must create the same parameters and "
                          "buffers from its arguments alone") from None
    fix = ("keep every tensor that matters in the state_dict (nn.Parameter or register_buffer, not plain "
           "attributes) and recompute caches after load_state_dict")
    torch.manual_seed(99)
    a = subject.sample(trained, s.num_samples, s.seed + 2)
    torch.manual_seed(99)
    b = subject.sample(fresh, s.num_samples, s.seed + 2)
    if not torch.allclose(a, b, rtol=s.checkpoint_rtol, atol=s.checkpoint_atol):
        raise CheckFailed(f"a freshly built model given the trained model's state_dict draws different samples for "
                          f"the same generator (largest difference {float((a - b).abs().max()):.3g}): {fix}")
    same = ["samples"]
    x = subject.data.eval_x
    if subject.has_likelihood:
        la = subject.log_prob(trained, x, reseed=s.seed + 4).double()
        lb = subject.log_prob(fresh, x, reseed=s.seed + 4).double()
        if not torch.allclose(la, lb, rtol=s.checkpoint_rtol, atol=s.checkpoint_atol):
            raise CheckFailed(f"a freshly built model given the trained model's state_dict gives a different "
                              f"log_prob (by up to {float((la - lb).abs().max()):.3g} nats): {fix}")
        same.append("log_prob")
    scores = []
    for model in (trained, fresh):
        torch.manual_seed(s.seed + 6)
        with evaluating(model):
            scores.append(subject.bound.outlier_score(model, x))
    if scores[0] is not None and scores[1] is not None:
        a, b = scores[0].double(), scores[1].double()
        if a.shape != b.shape or not torch.allclose(a, b, rtol=s.checkpoint_rtol, atol=s.checkpoint_atol):
            raise CheckFailed(f"a freshly built model given the trained model's state_dict gives different outlier "
                              f"scores (by up to {float((a - b).abs().max()):.3g}): {fix}")
        same.append("outlier scores")
    return f"reloaded state_dict: identical {', '.join(same[:-1]) + ' and ' if len(same) > 1 else ''}{same[-1]}"


def check_training(subject: Subject) -> str:
    trained = subject.resource("trained", direct=True)
    for step, losses in enumerate(trained.log.losses):
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise CheckFailed(f"train_step returned non-finite {', '.join(repr(b) for b in bad)} at step {step} on "
                              f"tiny {subject.data.describe()}: the harness would end the run as diverged")
    steps = len(trained.log.losses)
    if not subject.has_likelihood:
        still = [name for name, changed in trained.changed.items() if not changed]
        if still:
            raise CheckFailed(f"in {steps} steps the parameters of optimizer(s) {', '.join(still)} did not change: "
                              "train_step should call each optimizer's step() with gradients")
    if trained.unreached:
        more = f" and {len(trained.unreached) - 4} more" if len(trained.unreached) > 4 else ""
        raise CheckFailed(f"in {steps} steps no gradient reached trainable parameter(s) "
                          f"{', '.join(trained.unreached[:4])}{more}, which are still as built: they are unused "
                          "or detached from the loss (.detach(), .data, torch.no_grad()); use them, or freeze them "
                          "with requires_grad_(False)")
    if not subject.has_likelihood:
        first = next(iter(trained.log.losses[-1]))
        return f"{steps} steps: finite losses ('{first}' ends at {trained.log.losses[-1][first]:.4g}), " \
               "every optimizer's parameters changed"
    for moment in ("before", "after"):
        value = getattr(trained, moment)
        if isinstance(value, BaseException):
            raise CheckFailed(f"log_prob {moment} training: {describe_error(value)}")
    if not trained.after > trained.before:
        raise CheckFailed(f"after {steps} training steps the mean log_prob of training examples went from "
                          f"{trained.before:.4f} to {trained.after:.4f} nats: train_step should lower -log p(x) "
                          "(check the loss sign, that backward() and optimizer.step() are called and that the "
                          "optimizers hold the parameters log_prob uses)")
    return f"{steps} steps: mean log_prob of training examples {trained.before:.4f} -> {trained.after:.4f} nats"


def check_one_step(subject: Subject) -> str:
    s = subject.settings
    log = subject.resource("trained").log
    for step, counts in enumerate(log.optimizer_steps):
        twice = {k: v for k, v in counts.items() if v > 1}
        if twice:
            raise CheckFailed(
                f"one call of train_step (step {step}) called step() of optimizer(s) "
                f"{', '.join(f'{k} {v} times' for k, v in twice.items())}: one harness step is one update per "
                "optimizer on the given batch (the budget counts steps); spread extra updates over calls, as a "
                "GAN's n_critic")
        if not any(counts.values()):
            raise CheckFailed(f"train_step (step {step}) called no optimizer's step(): each call should make one "
                              "update on the given batch (use the optimizers in state.optimizers)")
    if log.batch_modified_at is not None:
        raise CheckFailed(f"train_step changed batch.x or batch.y in place (step {log.batch_modified_at}): "
                          "work on a copy")
    median = statistics.median(log.seconds[1:] or log.seconds)
    if subject.min_budget is None:
        return f"one update per optimizer per call; median step {median * 1000:.1f} ms"
    name, seconds = subject.min_budget
    limit = s.step_time_fraction * seconds
    if median > limit:
        raise CheckFailed(f"a train_step takes {median:.3g}s (median of {len(log.seconds)}) on a batch of "
                          f"{s.batch_size} tiny examples ({subject.data.describe()}), more than {limit:.3g}s, "
                          f"{s.step_time_fraction:g} of the smallest budget ('{name}': {seconds:g}s): make one "
                          "step one update on one batch (no inner loops over the data)")
    return f"one update per optimizer per call; median step {median * 1000:.1f} ms <= {limit * 1000:.0f} ms"


def _global_state() -> dict[str, object]:
    cudnn = torch.backends.cudnn
    return {
        "torch.get_num_threads()": torch.get_num_threads(),
        "torch.is_grad_enabled()": torch.is_grad_enabled(),
        "torch.get_default_dtype()": torch.get_default_dtype(),
        "torch.are_deterministic_algorithms_enabled()": torch.are_deterministic_algorithms_enabled(),
        "torch.is_anomaly_enabled()": torch.is_anomaly_enabled(),
        "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision(),
        "torch.backends.cudnn.benchmark": cudnn.benchmark,
        "torch.backends.cudnn.deterministic": cudnn.deterministic,
    }


def _watch(hook: str, before: dict[str, object]) -> None:
    after = _global_state()
    changed = [f"{k} {before[k]} -> {after[k]}" for k in before if before[k] != after[k]]
    if changed:
        raise CheckFailed(f"{hook} changed global settings ({'; '.join(changed)}): hooks must leave torch's "
                          "global state as they found it (the harness owns threads, grad mode and dtypes)")


def check_side_effects(subject: Subject) -> str:
    """Each hook leaves torch's global settings, the model's train/eval mode and (sample,
    log_prob, outlier_score) its parameters as they were."""
    s = subject.settings
    state = _global_state()
    torch.manual_seed(s.seed)
    model = subject.bound.build(subject.data.info, subject.config).to(subject.device)
    _watch("evalgen_build_model", state)
    optimizers = subject.bound.optimizers(model, subject.config)
    _watch("evalgen_configure_optimizers", state)
    generator = torch.Generator(device=subject.device).manual_seed(s.seed)
    train_state = TrainState(0, optimizers, generator, subject.device, subject.data.info, subject.config)
    model.train()
    for _ in range(2):
        subject.bound.train_step(model, subject.data.batch(s.batch_size, generator), train_state)
        train_state.step += 1
        _watch("evalgen_train_step", state)
        if not model.training:
            raise CheckFailed("evalgen_train_step left the model in eval mode: the harness puts it in train mode "
                              "before training; call model.train() again if you switch it")
    calls = [("evalgen_sample", lambda: subject.bound.sample(model, 8, generator, subject.data.info))]
    if subject.has_likelihood:
        calls.append(("evalgen_log_prob", lambda: subject.bound.log_prob(model, subject.data.eval_x[:8],
                                                                         s.importance_samples)))
    calls.append(("evalgen_outlier_score", lambda: subject.bound.outlier_score(model, subject.data.eval_x[:8])))
    for hook, call in calls:
        params = [p.detach().clone() for p in model.parameters()]
        model.eval()
        with torch.no_grad():
            inner = _global_state()
            call()
            _watch(hook, inner)
        if model.training:
            raise CheckFailed(f"{hook} switched the model to train mode: the harness calls it in eval mode; "
                              "leave the mode as it was")
        if any(not torch.equal(a, p.detach()) for a, p in zip(params, model.parameters())):
            raise CheckFailed(f"{hook} changed the model's parameters: it must only read them")
        _watch(hook, state)
    return "global torch settings, train/eval mode and parameters left as they were"


def obvious_outliers(subject: Subject, n: int) -> torch.Tensor | None:
    """``n`` images no model of the check data could find typical, in the model's representation:
    uniform noise over the levels (or over [0, 1) when dequantized). None for continuous data,
    where no set is obvious to every score (a discriminator may rate far-out points as real)."""
    g = torch.Generator().manual_seed(subject.settings.seed + 23)
    data, shape = subject.data, subject.data.shape
    if data.info.representation is Representation.LEVELS:
        return torch.randint(0, data.levels, (n, *shape), generator=g).float().to(subject.device)
    if data.info.representation is Representation.DEQUANTIZED:
        return torch.rand((n, *shape), generator=g).to(subject.device)
    return None


def auroc(inliers: torch.Tensor, outliers: torch.Tensor) -> float:
    """P(an outlier scores higher than an inlier), ties counting half (the Mann-Whitney AUROC)."""
    diff = outliers.double().reshape(-1, 1) - inliers.double().reshape(1, -1)
    return float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())


def check_outlier_score(subject: Subject) -> str:
    """The family's outlier score: finite, one per example, and higher for what is more outlying:
    after training on image data, uniform noise (`obvious_outliers`) must outscore the data."""
    model = subject.resource("trained").model
    n = subject.settings.num_samples
    outliers = obvious_outliers(subject, n)
    with evaluating(model):
        scores = subject.bound.outlier_score(model, subject.data.eval_x[:n])
        noise = None if scores is None or outliers is None else subject.bound.outlier_score(model, outliers)
    if scores is None:
        if subject.spec.outlier_score is not None:
            raise CheckFailed(f"ModelSpec.outlier_score names a score ({subject.spec.outlier_score!r}) but "
                              "evalgen_outlier_score returned None: return the scores, or leave the name out")
        raise CheckSkipped("evalgen_outlier_score returned None: the default -log p(x) / D is used")
    if noise is None:
        return f"finite ({scores.shape[0]},) scores (direction not checked on continuous data)"
    separation = auroc(scores, noise)
    if separation < 0.5:
        raise CheckFailed(f"after training, uniform noise scores as less outlying than the training data (AUROC "
                          f"{separation:.2f}): higher must mean more outlying (return the negated score if yours "
                          f"is a likelihood or a realness)")
    return f"finite ({scores.shape[0]},) scores; uniform noise outscores the data (AUROC {separation:.2f})"


def check_likelihood_details(subject: Subject) -> str:
    """After log_prob on the test data, evalgen_likelihood_details returns None or a dict the
    run record can store: JSON values, finite numbers."""
    model = subject.resource("trained").model
    subject.log_prob(model, subject.data.eval_x, reseed=subject.settings.seed)
    with evaluating(model):
        details = subject.bound.likelihood_details(model)
    if details is None:
        return "returned None: nothing is stored beside the test NLL"
    try:
        json.dumps(details, allow_nan=False)
    except ValueError as exc:
        raise CheckFailed(f"evalgen_likelihood_details returned a non-finite number ({exc}): the run record "
                          "holds finite numbers only (report a failed estimate as None or a string)") from None
    except TypeError as exc:
        raise CheckFailed(f"evalgen_likelihood_details returned a value that is not JSON ({exc}): return plain "
                          "floats, ints, strings, lists and dicts (float(tensor), not the tensor)") from None
    return f"a JSON dict of {len(details)} item(s): {', '.join(sorted(map(str, details))[:6])}"
