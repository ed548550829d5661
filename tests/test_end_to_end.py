"""The README's main job: `evalgen run --plugin flows` on digits at the quick budget."""

import pandas as pd
import pytest
from click.testing import CliRunner

from evalgen.cli import main


@pytest.mark.slow
def test_every_flow_beats_the_independent_pixel_baseline_on_digits(tmp_path):
    result = CliRunner().invoke(main, ["run", "--plugin", "flows", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "table.csv").set_index("model")
    baseline = table.loc["categorical", "bits_per_dim_mean"]
    for flow in ("planar", "realnvp", "maf"):
        assert table.loc[flow, "likelihood"] == "exact"
        assert table.loc[flow, "bits_per_dim_mean"] < baseline, table
    assert (tmp_path / "table.md").read_text().count("flows:") == 3
