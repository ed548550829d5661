"""Every bundled family through the conformance kit (evalgen.testing), every check.

A family's known failures are its own declaration (`FamilyInfo.known_failures`): the kit reports
them as expected failures and fails once one of them passes, so a bundled family that declares
one passes here until the bug is fixed. (The flows' dequantized normalization failed here until
their logit alpha went from 0.05 to 1e-6: see evalgen_flows.layers.DEFAULT_ALPHA.)

Each family takes a few seconds (the slowest, autoregressive and vae, about 10 s on two CPU
cores). The energy-based models run with a short AIS schedule here (their log Z estimate with
the default 14,500 temperatures takes seconds per call); the long test runs them as shipped.
"""

from __future__ import annotations

import pytest

from evalgen.testing import check_plugin

BUNDLED = ("baselines", "flows", "vae", "gan", "ebm", "autoregressive")
#: Plugin options (as ``-o``) that keep a family's checks short.
FAST_OPTIONS = {"ebm": {"ais_steps": 300, "burn_in": 100}}


def _assert_conforms(family: str, options: dict) -> None:
    report = check_plugin(family, config=options)
    assert report.ok, "\n" + "\n".join(f"{r.label}: {r.message}" for r in report.failures) + "\n" + report.summary()
    assert len(report.results) > 10
    checked = {r.check for r in report.results if r.status == "passed"}
    assert {"family", "build", "sample", "determinism", "checkpoint", "training", "one_step"} <= checked, checked


@pytest.mark.parametrize("family", BUNDLED)
def test_bundled_family_passes_the_conformance_kit(family):
    _assert_conforms(family, FAST_OPTIONS.get(family, {}))


@pytest.mark.long
def test_energy_based_models_pass_with_their_default_ais_schedule():
    _assert_conforms("ebm", {})
