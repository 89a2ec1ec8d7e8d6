"""What the Insights charts print: an axis label must fit the chart's left margin, or the page shows "0.2 days" for a
clipped "10.2 days"."""

from datetime import date

import pytest

from insights import present, selectors


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(41, "41 s"), (38 * 60, "38 min"), (5.7 * 3600, "5.7 h"), (3.25 * 86400, "3.2 d"), (10.2 * 86400, "10 d")],
)
def test_a_duration_on_an_axis_is_short(seconds, label) -> None:
    assert present.duration_tick(seconds) == label


def test_the_lead_time_chart_labels_its_top_with_the_short_form() -> None:
    weekly = [
        (date(2026, 11, 16), selectors.Figures(days=7, lead_median=10.2 * 86400)),
        (date(2026, 11, 23), selectors.Figures(days=7)),
    ]
    charts = {chart.id: chart for chart in present.charts(weekly)}
    assert charts["chart-lead"].top_text == "10 d"
    assert charts["chart-lead"].bars[0].text == "10.2 days"  # the bar's own tooltip keeps the precise figure
    assert all(len(chart.top_text) <= 6 for chart in charts.values())
