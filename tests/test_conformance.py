"""The conformance kit (evalgen.testing) on small plugins with one deliberate bug each."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from evalgen.cli import main
from evalgen.errors import EvalgenError
from evalgen.testing import CHECK_NAMES, DEFAULTS, CheckReport, check_plugin, plugin_checks

#: An elementwise affine flow x = loc + exp(log_scale) * z on continuous data and on dequantized
#: binary/discrete data (a logistic base squashed into [0, 1) by a sigmoid, so the density there
#: is exact too). Each family instance switches on one bug.
FLOW_PLUGIN = '''
import math
import torch
from torch import nn
from evalgen import DataKind, FamilyInfo, Likelihood, ModelSpec, Representation, hookimpl


class Affine(nn.Module):
    def __init__(self, shape, dequantized):
        super().__init__()
        self.shape = tuple(shape)
        d = math.prod(shape)
        self.dequantized = dequantized
        self.loc = nn.Parameter(torch.zeros(d))
        self.log_scale = nn.Parameter(torch.full((d,), math.log(2.0)))


class AffineFamily:
    def __init__(self, name, log_det_sign=-1.0, global_rng=False, raise_in=None, kinds=None, known=None,
                 unused=False, details=None, outlier_attr=False):
        self.name, self.sign, self.global_rng, self.raise_in = name, log_det_sign, global_rng, raise_in
        self.kinds = kinds or frozenset(DataKind)
        self.known, self.unused, self.details, self.outlier_attr = known or {}, unused, details, outlier_attr

    @hookimpl
    def evalgen_family(self):
        spec = ModelSpec("affine", "elementwise affine flow", frozenset(self.kinds), Likelihood(), dequantize=True)
        return FamilyInfo(self.name, "affine flows for the conformance tests", (spec,), known_failures=self.known)

    def _boom(self, hook):
        if self.raise_in == hook:
            raise RuntimeError(f"boom in {hook}")

    @hookimpl
    def evalgen_build_model(self, model_name, dataset, config):
        self._boom("build")
        model = Affine(dataset.shape, dataset.representation is Representation.DEQUANTIZED)
        if self.unused:
            model.unused = nn.Parameter(torch.zeros(3))  # in the optimizer, never in the loss
        return model

    @hookimpl
    def evalgen_configure_optimizers(self, model, config):
        return {"model": torch.optim.Adam(model.parameters(), lr=0.05)}

    def _log_prob(self, model, x):
        y = x.reshape(x.shape[0], -1)
        log_jac = torch.zeros(())
        if model.dequantized:  # y in [0, 1) -> logit, with its log-Jacobian
            y = y.clamp(1e-6, 1 - 1e-6)
            log_jac = -(torch.log(y) + torch.log1p(-y))
            y = torch.log(y) - torch.log1p(-y)
        z = (y - model.loc) * torch.exp(-model.log_scale)
        base = -z - 2 * torch.nn.functional.softplus(-z)  # standard logistic
        return (base + log_jac + self.sign * model.log_scale).sum(1)

    @hookimpl
    def evalgen_train_step(self, model, batch, state):
        self._boom("train_step")
        loss = -self._log_prob(model, batch.x).mean()
        state.optimizers["model"].zero_grad()
        loss.backward()
        state.optimizers["model"].step()
        if self.outlier_attr:
            model.offset = float(loss.detach())  # a plain attribute: not in the state_dict
        return {"nll": loss.detach()}

    @hookimpl
    def evalgen_sample(self, model, num_samples, generator):
        self._boom("sample")
        d = model.loc.numel()
        if self.global_rng:
            u = torch.rand(num_samples, d)
        else:
            u = torch.rand(num_samples, d, generator=generator)
        u = u.clamp(1e-7, 1 - 1e-7)
        y = model.loc + torch.exp(model.log_scale) * (torch.log(u) - torch.log1p(-u))
        if model.dequantized:
            y = torch.sigmoid(y).clamp(max=1 - 2 ** -24)
        return y.reshape(num_samples, *model.shape).float()

    @hookimpl
    def evalgen_log_prob(self, model, x):
        self._boom("log_prob")
        return self._log_prob(model, x)

    @hookimpl
    def evalgen_outlier_score(self, model, x):
        if self.outlier_attr:
            return -self._log_prob(model, x) + getattr(model, "offset", 0.0)
        return None

    @hookimpl
    def evalgen_likelihood_details(self, model):
        return self.details


good = AffineFamily("goodflow")
bad_sign = AffineFamily("badsign", log_det_sign=1.0, kinds={DataKind.CONTINUOUS})
global_rng = AffineFamily("globalrng", global_rng=True, kinds={DataKind.CONTINUOUS})
raises = AffineFamily("raisesflow", raise_in="log_prob", kinds={DataKind.CONTINUOUS})
raises_in_step = AffineFamily("raisesstep", raise_in="train_step", kinds={DataKind.CONTINUOUS})
CONTINUOUS = {DataKind.CONTINUOUS}
declared = AffineFamily("declared", log_det_sign=1.0, kinds=CONTINUOUS,
                        known={"normalization": "the log-determinant's sign: issue 12"})
stale = AffineFamily("stale", kinds=CONTINUOUS, known={"affine:continuous:determinism": "fixed in 0.2"})
typo = AffineFamily("typo", kinds=CONTINUOUS, known={"normalisation": "a typo"})
wrong_model = AffineFamily("wrongmodel", kinds=CONTINUOUS, known={"afine:sample": "a typo"})
unused = AffineFamily("unusedparam", kinds=CONTINUOUS, unused=True)
nan_details = AffineFamily("nandetails", kinds=CONTINUOUS, details={"log_z": float("nan")})
tensor_details = AffineFamily("tensordetails", kinds=CONTINUOUS, details={"log_z": torch.tensor(1.0)})
good_details = AffineFamily("gooddetails", kinds=CONTINUOUS, details={"log_z": 1.5, "note": "exact"})
outlier_attr = AffineFamily("outlierattr", kinds=CONTINUOUS, outlier_attr=True)
'''


@pytest.fixture
def flows(install_plugin):
    """Install the affine-flow families above (and the categorical toy of toy_plugins)."""
    install_plugin("goodflow", "conformance_toys:good", FLOW_PLUGIN)
    for name, target in (("badsign", "bad_sign"), ("globalrng", "global_rng"), ("raisesflow", "raises"),
                         ("raisesstep", "raises_in_step"), ("declared", "declared"), ("stale", "stale"),
                         ("typo", "typo"), ("wrongmodel", "wrong_model"), ("unusedparam", "unused"),
                         ("nandetails", "nan_details"), ("tensordetails", "tensor_details"),
                         ("gooddetails", "good_details"), ("outlierattr", "outlier_attr")):
        install_plugin(name, f"conformance_toys:{target}")
    install_plugin("toygood", "toy_plugins:good")


def results(report: CheckReport, status: str | None = None) -> dict[str, str]:
    return {r.label: r.message for r in report.results if status is None or r.status == status}


def test_a_correct_flow_passes_every_check_on_every_kind_of_data(flows):
    report = check_plugin("goodflow")
    assert report.ok, "\n" + str(report)
    checked = {(r.data, r.check) for r in report.results}
    for kind in ("binary", "discrete", "continuous"):
        for name in ("build", "sample", "determinism", "log_prob", "normalization", "agreement", "checkpoint",
                     "training", "one_step", "side_effects"):
            assert (kind, name) in checked
    skipped = results(report, "skipped")
    assert set(skipped) == {f"affine:{k}:outlier_score" for k in ("binary", "discrete", "continuous")}
    assert all(r.seconds >= 0 for r in report.results)


def test_a_correct_mass_function_passes_by_enumeration(flows):
    report = check_plugin("toygood")
    assert report.ok, "\n" + str(report)
    passed = results(report, "passed")
    assert "sums to 1 over all 512 vectors" in passed["toy:binary:normalization"]
    assert "over all 256 vectors" in passed["toy:discrete:normalization"]


def test_a_flipped_log_determinant_fails_normalization_and_says_so(flows):
    report = check_plugin("badsign")
    assert not report.ok
    failed = results(report, "failed")
    message = failed["affine:continuous:normalization"]
    assert "instead of 1 (exact likelihood" in message and "sign of the log-determinant" in message
    total = float(message.split("integrates to ")[1].split()[0])
    assert total > 4  # log_scale starts at log 2 in both dimensions: 2^4 = 16 before training
    # the samples are right and the shape of exp(log_prob) is right: only normalization fails
    assert set(failed) == {"affine:continuous:normalization"}


def test_a_sampler_that_reads_the_global_rng_fails_determinism(flows):
    report = check_plugin("globalrng", checks=["determinism", "checkpoint", "sample"])
    failed = results(report, "failed")
    assert "affine:continuous:determinism" in failed
    message = failed["affine:continuous:determinism"]
    assert "generators of the same seed gave different samples" in message and "generator=" in message


def test_an_exception_inside_a_hook_is_a_failed_check_not_a_crash(flows):
    report = check_plugin("raisesflow")
    failed = results(report, "failed")
    assert "RuntimeError: boom in log_prob" in failed["affine:continuous:log_prob"]
    assert "evalgen_log_prob raised" in failed["affine:continuous:log_prob"]
    assert "boom in log_prob" in failed["affine:continuous:normalization"]
    assert "boom in log_prob" in failed["affine:continuous:checkpoint"]
    assert "log_prob before training" in failed["affine:continuous:training"]
    assert results(report, "passed").keys() >= {"affine:continuous:sample", "affine:continuous:determinism"}
    step = results(check_plugin("raisesstep", checks=["training", "checkpoint", "sample"]), "failed")
    assert "evalgen_train_step raised RuntimeError: boom in train_step" in step["affine:continuous:training"]
    assert step["affine:continuous:checkpoint"].startswith("not run: training the model failed: ")


def test_plugin_checks_raise_assertion_errors_and_skips_for_pytest(flows):
    found = plugin_checks("badsign")
    assert [str(c) for c in found][:3] == ["badsign:family", "badsign:affine:continuous:build",
                                           "badsign:affine:continuous:sample"]
    by_name = {c.name: c for c in found}
    by_name["build"]()  # passes: returns None
    with pytest.raises(AssertionError, match="sign of the log-determinant"):
        by_name["normalization"]()
    with pytest.raises(pytest.skip.Exception, match="-log p"):
        by_name["outlier_score"]()


def test_the_checks_follow_the_declared_capabilities(flows):
    gan = [c for c in plugin_checks("gan", ["gan"]) if c.data == "continuous"]
    assert {c.name for c in gan} == {"build", "sample", "determinism", "checkpoint", "training", "one_step",
                                     "side_effects", "outlier_score"}  # implicit: no likelihood checks
    ebm = {c.data for c in plugin_checks("ebm", ["fvbm"]) if c.name != "family"}
    assert ebm == {"binary"}
    assert set(CHECK_NAMES) >= {c.name for c in plugin_checks("goodflow")}


def test_unknown_names_are_errors_with_a_suggestion(flows):
    with pytest.raises(EvalgenError, match="did you mean 'goodflow'"):
        plugin_checks("goodflwo")
    with pytest.raises(EvalgenError, match="did you mean 'affine'"):
        plugin_checks("goodflow", ["afine"])
    with pytest.raises(EvalgenError, match="unknown check 'normalisation'"):
        plugin_checks("goodflow", checks=["normalisation"])


def test_settings_change_sizes(flows):
    settings = dataclasses.replace(DEFAULTS, quadrature_points=64, agreement_bins=8)
    report = check_plugin("goodflow", checks=["normalization"], settings=settings)
    assert report.ok and all("64x64 grid" in r.message for r in report.results if r.data == "continuous")


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_prints_a_line_per_check_and_exits_0_when_all_pass(flows):
    result = invoke("check", "goodflow", "--check", "normalization", "--check", "determinism")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 7  # 2 checks x 3 data kinds + the summary
    assert lines[0].startswith("PASS  affine") and "determinism" in lines[0] and lines[0].rstrip().endswith("s")
    assert lines[-1].startswith("OK: plugin 'goodflow': 6 checks, 6 passed, 0 failed, 0 skipped")


def test_cli_exits_1_and_prints_what_to_do_when_a_check_fails(flows):
    result = invoke("check", "badsign", "--model", "affine")
    assert result.exit_code == 1, result.output
    fail = [line for line in result.output.splitlines() if line.startswith("FAIL  ")]
    assert len(fail) == 1 and "normalization" in fail[0] and "log-determinant" in fail[0]
    skip = [line for line in result.output.splitlines() if line.startswith("SKIP")]
    assert skip and "-log p(x)" in skip[0]
    assert result.output.strip().splitlines()[-1].startswith("FAILED: plugin 'badsign'")


def test_cli_unknown_plugin_is_one_line_with_did_you_mean(flows):
    result = invoke("check", "goodflwo")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        line for line in result.output.strip().splitlines() if line.startswith("Error: ")]
    assert "unknown plugin 'goodflwo'; did you mean 'goodflow'?" in result.output


def test_a_plugin_that_fails_to_load_is_one_failed_check(install_plugin):
    install_plugin("brokenplug", "no_such_module_for_evalgen_tests")
    report = check_plugin("brokenplug")
    (result,) = report.results
    assert (result.check, result.status) == ("load", "failed") and "import failed" in result.message
    assert not report.ok


# --- a family's own known failures (FamilyInfo.known_failures) ---------------------------------


def test_a_declared_known_failure_is_an_expected_failure_with_its_reason(flows):
    report = check_plugin("declared", checks=["normalization", "sample"])
    assert report.ok, "\n" + str(report)
    (xfailed,) = report.expected_failures
    assert xfailed.label == "affine:continuous:normalization" and xfailed.status == "xfailed"
    assert xfailed.message.startswith("known failure (the log-determinant's sign: issue 12): ")
    assert "instead of 1" in xfailed.message
    assert "XFAIL affine" in str(report) and "1 expected to fail" in report.summary()
    (check,) = plugin_checks("declared", checks=["normalization"])
    with pytest.raises(pytest.xfail.Exception, match="issue 12"):
        check()


def test_a_known_failure_that_passes_fails_and_says_to_remove_the_declaration(flows):
    report = check_plugin("stale", checks=["determinism", "sample"])
    assert not report.ok
    (failed,) = report.failures
    assert failed.label == "affine:continuous:determinism"
    assert "FamilyInfo.known_failures (fixed in 0.2) but it passes now: remove the declaration" in failed.message
    assert results(report, "passed").keys() == {"affine:continuous:sample"}


def test_an_unknown_name_in_known_failures_is_an_error_naming_the_valid_ones(flows):
    with pytest.raises(EvalgenError, match=r"known_failures: unknown check 'normalisation'; did you mean "
                                           r"'normalization'\? \(known: .*agreement"):
        plugin_checks("typo")
    with pytest.raises(EvalgenError, match="unknown model 'afine'; did you mean 'affine'"):
        check_plugin("wrongmodel")
    result = invoke("check", "typo")
    assert result.exit_code == 1 and "did you mean 'normalization'" in result.output.strip().splitlines()[-1]


def test_cli_prints_xfail_and_exits_0_for_declared_failures(flows):
    result = invoke("check", "declared", "--check", "normalization")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("XFAIL affine")
    assert "1 expected to fail" in result.output.strip().splitlines()[-1]


# --- contract checks every family gets ------------------------------------------------------------


def test_a_parameter_no_gradient_reaches_fails_training(flows):
    failed = results(check_plugin("unusedparam", checks=["training"]), "failed")
    assert "no gradient reached trainable parameter(s) unused" in failed["affine:continuous:training"]


def test_likelihood_details_must_be_what_a_record_can_store(flows):
    nan = results(check_plugin("nandetails", checks=["likelihood_details"]), "failed")
    assert "non-finite number" in nan["affine:continuous:likelihood_details"]
    tensor = results(check_plugin("tensordetails", checks=["likelihood_details"]), "failed")
    assert "not JSON" in tensor["affine:continuous:likelihood_details"]
    good = check_plugin("gooddetails", checks=["likelihood_details"])
    assert good.ok and "log_z, note" in good.results[0].message


def test_outlier_scores_must_survive_a_checkpoint(flows):
    failed = results(check_plugin("outlierattr", checks=["checkpoint"]), "failed")
    assert "different outlier scores" in failed["affine:continuous:checkpoint"]
    gan = results(check_plugin("gan", ["gan"], checks=["checkpoint"]), "passed")
    assert "identical samples and outlier scores" in gan["gan:continuous:checkpoint"]
