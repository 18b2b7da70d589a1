"""The managers' page charts (issue 18 item 7) in a real Chromium against a real server: after real
events (rules firing, an SLA target met and one breached by its own timer), a viewer sees each
rule's 30-day sparkline in the list, the larger chart on the rule, and the workspace's events per
hour and SLA met / breached per day, each with the counts in its bars, its words and its table.
Also the pure part (charts.js) loaded alone in the page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from testkit import wait_until

from .conftest import ROOT_TOKEN, Deskflow
from .web_helpers import DOCS, sign_in


def _wait(fetch: Any, ok: Any) -> Any:
    """The counters trail the commit by one round trip: poll with a deadline."""
    return wait_until(fetch, ok, timeout=15.0, interval=0.05, what="the chart counters")


@pytest.fixture(scope="module")
def charted(deskflow: Deskflow) -> Iterator[dict[str, Any]]:
    """A workspace of its own (the other page tests share theirs), with a rule that fired twice,
    five applied events (one of them the service's own sla.breached) and one SLA target met in
    time, one breached."""
    with httpx.Client(base_url=deskflow.url, timeout=15) as c:
        ws = c.post("/v1/workspaces", json={"name": "charts"},
                    headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
        assert ws.status_code == 201, ws.text
        admin = {"Authorization": f"Bearer {ws.json()['admin_key']}"}
        viewer = c.post("/v1/keys", json={"role": "viewer", "name": "charts viewer"}, headers=admin)
        r = c.post("/v1/sla-policies", json={"name": "fast", "targets": {"first_response": "3s"}},
                   headers=admin)
        assert r.status_code == 201, r.text
        rule = c.post("/v1/rules", headers=admin, json={
            "name": "Tag new tickets", "triggers": ["ticket.created"], "enabled": True,
            "actions": [{"type": "add_tags", "tags": ["new"]}]}).json()
        for ev in ({"id": "c1", "type": "ticket.created", "ticket": {"id": "T-met"}},
                   {"id": "c2", "type": "message.sent", "ticket": {"id": "T-met"},
                    "message": {"author": "agent", "body": "On it"}},
                   {"id": "c3", "type": "ticket.created", "ticket": {"id": "T-late"}},
                   {"id": "c4", "type": "ticket.updated", "ticket": {"id": "T-late", "priority": "high"}}):
            assert c.post("/v1/events?wait=true", json=ev, headers=admin).status_code == 200
        _wait(lambda: c.get("/v1/stats/sla", headers=admin).json(), lambda v: v["breached"] == 1)
        _wait(lambda: c.get("/v1/stats/events", headers=admin).json(), lambda v: v["total"] == 5)
        _wait(lambda: c.get("/v1/stats/rules", headers=admin).json(),
              lambda v: sum(v["rules"][rule["id"]]) == 2)
    yield {"viewer": viewer.json()["key"], "rule": rule}


def test_a_viewer_sees_the_charts_with_the_counts_of_real_events(page: Any, charted: dict[str, Any]) -> None:
    sign_in(page, charted["viewer"])
    row = page.locator(f'#rules-table tr[data-rule-id="{charted["rule"]["id"]}"]')
    spark = row.locator("svg.spark")
    expect(spark).to_have_attribute("data-total", "2")
    expect(spark.locator("title")).to_have_text(
        re.compile(r"^Tag new tickets: 2 fires in 30 days; most on \d{1,2} [A-Z][a-z]{2} \(2\)\.$"))
    assert spark.get_attribute("role") == "img"

    row.get_by_role("button", name="View “Tag new tickets”").click()
    chart = page.locator("#rule-fires-chart")
    expect(chart.locator('rect[data-value="2"]')).to_have_count(1)
    assert chart.locator("svg.chart-svg rect[data-index]").count() == 30
    expect(chart.locator("figcaption p")).to_contain_text("Fires: 2 fires in 30 days")
    chart.get_by_text("Show as table").click()
    assert _total(chart.locator("tbody td")) == 2

    page.get_by_role("button", name="Charts").click()
    events = page.locator("#events-chart")
    expect(events.locator('svg.chart-svg rect[data-value="5"]')).to_have_count(1)
    assert events.locator("svg.chart-svg rect[data-index]").count() == 48
    expect(events.locator("svg.chart-svg title").first).to_have_text("Events per hour, last 48 hours")
    expect(events.locator("desc")).to_contain_text("Events: 5 events in 48 hours")
    sla = page.locator("#sla-chart")
    met = sla.locator('rect[data-series="Met"]:not([data-value="0"])')
    breached = sla.locator('rect[data-series="Breached"]:not([data-value="0"])')
    expect(met).to_have_attribute("data-value", "1")
    expect(breached).to_have_attribute("data-value", "1")
    assert (breached.get_attribute("fill") or "").startswith("url(#")   # hatched, not colour alone
    assert met.get_attribute("fill") is None
    expect(sla.locator(".legend")).to_contain_text("Breached (hatched): 1")
    page.evaluate("document.getElementById('status').textContent = ''")
    page.locator("#view-charts").screenshot(path=str(DOCS / "admin-charts.png"))
    sla.get_by_text("Show as table").click()
    assert _total(sla.locator("tbody td:nth-child(2)")) == 1
    assert _total(sla.locator("tbody td:nth-child(3)")) == 1
    # nothing here can change anything: the view has no form and no button but Refresh
    assert page.locator("#view-charts button").all_inner_texts() == ["Refresh"]


def test_the_pure_part_alone(page: Any) -> None:
    got = page.evaluate("""async () => {
      const c = await import('/admin/charts.js');
      const layout = c.barLayout([[0, 2, 5]], 30, 10);
      return {
        nice: [0, 1, 3, 7, 11, 100, 101].map(c.niceCeil),
        ticks: [c.ticks(5), c.ticks(20)],
        bars: layout.bars.map((b) => [b.x, b.y, b.w, b.h]), top: layout.top,
        pair: c.barLayout([[1, 0], [0, 2]], 20, 4).bars.map((b) => [b.series, b.index, b.x, b.w, b.h]),
        path: c.sparkPath([0, 1, 2], 10, 10),
        every: c.labelEvery(30, 6),
        labels: [c.dayLabel('2026-12-02'), c.hourLabel('2026-12-02T14:00:00Z')],
        words: [c.summarize([0, 3, 1], ['a', 'b', 'c'], ['fire', 'fires'], '3 days'),
                c.summarize([0, 0], ['a', 'b'], ['fire', 'fires'], '2 days'),
                c.summarize([1], ['x'], ['event', 'events'], '1 hour', 'at')],
      };
    }""")
    assert got["nice"] == [1, 1, 5, 10, 20, 100, 200]
    assert got["ticks"] == [[0, 1, 2, 3, 4, 5], [0, 4, 8, 12, 16, 20]]
    assert got["top"] == 5 and got["bars"] == [[1, 10, 8, 0], [11, 6, 8, 4], [21, 0, 8, 10]]
    assert got["pair"] == [[0, 0, 1, 4, 2], [0, 1, 11, 4, 0], [1, 0, 5, 4, 0], [1, 1, 15, 4, 4]]
    assert got["path"] == "M0 9 L5 5 L10 1"
    assert got["every"] == [4, 9, 14, 19, 24, 29]
    assert got["labels"] == ["2 Dec", "14:00"]
    assert got["words"] == ["4 fires in 3 days; most on b (3).", "No fires in 2 days.",
                            "1 event in 1 hour; most at x (1)."]


def _total(cells: Any) -> int:
    return sum(int(t) for t in cells.all_inner_texts())
