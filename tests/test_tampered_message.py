"""A tampered demand artifact is refitted and the run's messages say so (issue 25, item 7).

Before, the refit was right but only the log said why; the run record (and so the report) showed
a fresh backtest with no reason, unlike prep time.
"""

from __future__ import annotations

from pathlib import Path

from models.forecasting import forecast
from tests.test_demand_models import SPEC, _registry, make_scope, planted  # noqa: F401 (fixture)


def test_a_tampered_selection_is_named_in_the_messages_and_backtested_again(planted):  # noqa: F811
    feats, _, _, outcome = planted
    first = outcome.models[0]
    params = Path(first.artifact_path) / "params.json"
    original = params.read_text()
    params.write_text(original + " ")
    try:
        again = forecast(feats, SPEC, make_scope(feats.series["series_id"], _registry(first), run="88888888-0000"))
    finally:
        params.write_text(original)
    assert again.backtest is not None  # nothing of the tampered artifact was used
    named = [m for m in again.messages if first.version in m and "unusable" in m]
    assert len(named) == 1 and "ArtifactChecksumError" in named[0] and "refitted" in named[0], again.messages
