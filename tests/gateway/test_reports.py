"""`GET /v1/reports/summary`: requests, rates by category, review turnaround and missed deadlines, per tenant."""

from __future__ import annotations

from typing import Any

from gateway.api.reports import percentile

GEN = "/v1/images/generations"


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95)) == (50.0, 95.0)


def test_summary_counts_requests_refusals_and_reviews(gateway: Any) -> None:
    refused = gateway.client.post(
        GEN, json={"prompt": "forbidden-zebra", "size": "64x64"}, headers=gateway.auth("requester")
    )
    assert refused.status_code == 400
    ok = gateway.client.post(GEN, json={"prompt": "a calm lake", "size": "64x64"}, headers=gateway.auth("requester"))
    assert ok.status_code == 200
    resp = gateway.client.get("/v1/reports/summary?days=7", headers=gateway.auth("supervisor"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scope"] == "acme" and set(body["tenants"]) <= {"acme"}
    total = body["total"]
    assert total["requests"] >= 2 and total["refused"] >= 1
    assert 0 < total["refusal_rate"] <= 1
    denied = total["by_category"]["denied_term"]  # the rule behind prescreen.denied_term
    assert denied["requests"] >= 1 and denied["refusal_rate"] == 1.0
    assert total["by_category"]["none"]["refusal_rate"] < 1.0
    review = total["review"]
    assert set(review) >= {"escalations", "approved", "rejected", "expired", "missed_deadlines", "turnaround_s"}
    assert set(review["turnaround_s"]) == {"p50", "p95"}


def test_summary_scope_and_access(gateway: Any) -> None:
    assert gateway.client.get("/v1/reports/summary", headers=gateway.auth("requester")).status_code == 403
    own = gateway.client.get("/v1/reports/summary?tenant=globex", headers=gateway.auth("supervisor")).json()
    assert own["scope"] == "acme"  # a tenant's supervisor sees only their tenant, whatever they ask
    everyone = gateway.client.get("/v1/reports/summary", headers=gateway.auth("admin")).json()
    assert everyone["scope"] == "*"
    assert gateway.client.get("/v1/reports/summary?days=0", headers=gateway.auth("admin")).status_code == 400
