"""Retention per tenant: payloads of expired records deleted, tombstones kept, the chain still verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit.retention import run_retention


def test_dry_run_changes_nothing(signed: Any) -> None:
    signed.fill(6)
    later = datetime.now(UTC) + timedelta(days=31)
    report = run_retention(signed.store, signed.sessions, {"acme": 30}, now=later)
    assert not report.applied
    assert [(t.tenant, t.records, t.first_seq, t.last_seq) for t in report.tenants] == [("acme", 3, 1, 5)]
    assert all(r.payload is not None for r in signed.store.between())


def test_apply_deletes_expired_payloads_per_tenant(signed: Any) -> None:
    signed.fill(6)
    later = datetime.now(UTC) + timedelta(days=31)
    report = run_retention(signed.store, signed.sessions, {"acme": 30, "*": 365}, apply=True, now=later)
    assert report.total == 3
    assert report.record_seq == 7
    records = {r.seq: r for r in signed.store.between()}
    assert [s for s, r in records.items() if r.payload is None] == [1, 3, 5]
    tombstone = records[3]
    assert tombstone.tenant == "acme" and tombstone.request_id == "r3" and len(tombstone.payload_digest) == 64
    assert tombstone.to_dict()["payload_deleted"] is True
    summary = records[7]
    assert summary.event_type == "retention.applied"
    assert summary.payload["tenants"] == [
        {
            "tenant": "acme",
            "days": 30,
            "cutoff": summary.payload["tenants"][0]["cutoff"],
            "payloads_deleted": 3,
            "first_seq": 1,
            "last_seq": 5,
        }
    ]
    report = signed.verify()
    assert report.ok, report.problems
    # a second run finds nothing more and writes no record
    again = run_retention(signed.store, signed.sessions, {"acme": 30, "*": 365}, apply=True, now=later)
    assert again.total == 0 and again.record_seq is None


def test_default_rule_covers_other_tenants_and_system_records(signed: Any) -> None:
    signed.fill(4)
    signed.store.append("gateway.started", {"pid": 1})
    later = datetime.now(UTC) + timedelta(days=10)
    report = run_retention(signed.store, signed.sessions, {"acme": 365, "*": 7}, apply=True, now=later)
    assert {t.tenant: t.records for t in report.tenants} == {"acme": 0, "*": 3}
    deleted = [r.seq for r in signed.store.between() if r.payload is None]
    assert deleted == [2, 4, 5]
    assert signed.verify().ok


@pytest.mark.parametrize("days", [0, -1, "30", True])
def test_invalid_policy_is_refused(signed: Any, days: Any) -> None:
    with pytest.raises(ValueError, match="whole number of days"):
        run_retention(signed.store, signed.sessions, {"acme": days})
