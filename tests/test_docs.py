"""The plugin-author docs: the example plugin runs as written."""

import re
from pathlib import Path

from click.testing import CliRunner

from evalgen.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_the_documented_example_plugin_runs(tmp_path, install_plugin):
    source = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    install_plugin("myfamily", "my_family", module_source=source)
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    result = CliRunner().invoke(main, ["run", "--plugin", "myfamily", "--budget", "unit",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "myfamily:independent" in result.output
