"""A conformance kit for plugin authors, in the spirit of scikit-learn's ``check_estimator``.

Run every check of an installed family from Python, from pytest or from the command line::

    from evalgen.testing import check_plugin
    report = check_plugin("myfamily")          # CheckReport: .results, .ok
    print(report)

    @pytest.mark.parametrize("check", plugin_checks("myfamily"), ids=str)
    def test_conformance(check):
        check()                                 # AssertionError / pytest.skip

    $ evalgen check myfamily [--model M ...]

The checks are chosen by what each model declares (its data kinds, its likelihood kind, its
representation); see `CHECKS` and, for every size and tolerance, `CheckSettings` / `DEFAULTS`.
A family declares the checks it is known to fail in ``FamilyInfo.known_failures`` (as
scikit-learn's ``_xfail_checks``): they are expected failures ("xfailed", ``pytest.xfail``), and
a declared check that passes fails, so the declaration is removed once the bug is fixed.
"""

from evalgen.testing.report import CheckFailed, CheckReport, CheckResult, CheckSkipped
from evalgen.testing.runner import CHECK_NAMES, CHECKS, Check, CheckSpec, check_plugin, plugin_checks
from evalgen.testing.settings import DEFAULTS, CheckSettings

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "DEFAULTS",
    "Check",
    "CheckFailed",
    "CheckReport",
    "CheckResult",
    "CheckSettings",
    "CheckSkipped",
    "CheckSpec",
    "check_plugin",
    "plugin_checks",
]
