"""Changing policy data (thresholds, term lists, tenant overrides, review settings) without a deploy.

A change is validated, then proved on a scratch copy of the bundle (it must load and compile), then
written into the bundle folder (`data.yaml` and a new `.manifest` revision, each replaced
atomically, under the bundle's exclusive lock), then the engine in this process reloads. Other
gateway processes pick the change up through their file watch (`start_policy_watch`). If any step
before the write fails, nothing in force changes.

Only the keys in `CHANGEABLE` may change this way. The roles, endpoints, approver roles and the
floor are part of the reviewed bundle: a compliance officer must not be able to grant roles, and
nobody may loosen the floor through an API.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.policy import PolicyError, RegoEngine, bundle_lock, load_bundle

CHANGEABLE = ("thresholds", "terms", "tenants", "review")
# The thresholds the rules need (lib.required_thresholds); others may be added.
THRESHOLDS = ("denylist", "pii", "image_sexual_block", "image_sexual_review", "protected_work")
# A review threshold above its block threshold would never escalate: refused as a data error.
REVIEW_BELOW_BLOCK = (
    ("image_sexual_review", "image_sexual_block"),
    ("unsafe_text_review", "unsafe_text_block"),
    ("jailbreak_review", "jailbreak_block"),
    ("toxicity_review", "toxicity_block"),
)
PRIORITIES = {"low": 0, "normal": 1, "high": 2}
TENANT_KEYS = ("thresholds", "review")
DATA_FILE = "data.yaml"
_HEADER = (
    "# Mamori policy data. Thresholds, term lists, tenant overrides and review settings may be changed\n"
    "# through PUT/PATCH /v1/policy/data (which rewrites this file); the rest only by editing the bundle.\n"
)


class PolicyDataError(PolicyError):
    """A data change that does not validate: `errors` lists every reason, `path` the first field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class DataChange:
    revision_before: str
    revision_after: str
    summary: dict[str, Any]
    data: dict[str, Any]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_review(where: str, review: Any, errors: list[str], *, partial: bool) -> None:
    if not isinstance(review, Mapping):
        errors.append(f"{where} must be an object of category -> {{approvals, priority, deadline_s}}")
        return
    for category, entry in review.items():
        at = f"{where}.{category}"
        if not isinstance(entry, Mapping):
            errors.append(f"{at} must be an object")
            continue
        unknown = set(entry) - {"approvals", "priority", "deadline_s"}
        if unknown:
            errors.append(f"{at}: unknown keys {sorted(unknown)}")
        if not partial and not {"approvals", "priority", "deadline_s"} <= set(entry):
            errors.append(f"{at} needs approvals, priority and deadline_s")
        if "approvals" in entry and not (isinstance(entry["approvals"], int) and 1 <= entry["approvals"] <= 10):
            errors.append(f"{at}.approvals must be an integer from 1 to 10")
        if "priority" in entry and entry["priority"] not in PRIORITIES:
            errors.append(f"{at}.priority must be one of {sorted(PRIORITIES)}")
        if "deadline_s" in entry and not (isinstance(entry["deadline_s"], int) and entry["deadline_s"] >= 60):
            errors.append(f"{at}.deadline_s must be an integer of at least 60")


def validate(mamori: Mapping[str, Any]) -> list[str]:
    """Every reason the `mamori` data document is not acceptable (empty when it is)."""
    errors: list[str] = []
    thresholds = mamori.get("thresholds")
    if not isinstance(thresholds, Mapping):
        errors.append("thresholds must be an object")
        thresholds = {}
    for name in THRESHOLDS:
        if name not in thresholds:
            errors.append(f"thresholds.{name} is required")
    for name, value in thresholds.items():
        if not _number(value) or not 0 <= value <= 1:
            errors.append(f"thresholds.{name} must be a number from 0 to 1")
    for low, high in REVIEW_BELOW_BLOCK:
        if _number(thresholds.get(low)) and _number(thresholds.get(high)) and thresholds[low] > thresholds[high]:
            errors.append(f"thresholds.{low} must not exceed thresholds.{high}")

    terms = mamori.get("terms")
    if not isinstance(terms, list):
        errors.append("terms must be a list of {term, category}")
        terms = []
    for i, entry in enumerate(terms):
        if not isinstance(entry, Mapping) or set(entry) != {"term", "category"}:
            errors.append(f"terms[{i}] must be an object with exactly term and category")
        elif not isinstance(entry["term"], str) or not entry["term"].strip() or len(entry["term"]) > 200:
            errors.append(f"terms[{i}].term must be a non-empty string of at most 200 characters")
        elif not isinstance(entry["category"], str) or not entry["category"].strip():
            errors.append(f"terms[{i}].category must be a non-empty string")

    review = mamori.get("review", {})
    _check_review("review", review, errors, partial=False)
    review = review if isinstance(review, Mapping) else {}

    tenants = mamori.get("tenants", {})
    if not isinstance(tenants, Mapping):
        errors.append("tenants must be an object of tenant -> {thresholds, review}")
        tenants = {}
    for tenant, override in tenants.items():
        at = f"tenants.{tenant}"
        if not isinstance(override, Mapping):
            errors.append(f"{at} must be an object")
            continue
        for key in set(override) - set(TENANT_KEYS):
            if key == "floor":
                errors.append(f"{at}.floor: a tenant cannot change the floor")
            else:
                errors.append(f"{at}.{key}: a tenant override may only hold {', '.join(TENANT_KEYS)}")
        for name, value in (override.get("thresholds") or {}).items():
            where = f"{at}.thresholds.{name}"
            if name not in thresholds:
                errors.append(f"{where} is not a global threshold")
            elif not _number(value) or not 0 <= value <= 1:
                errors.append(f"{where} must be a number from 0 to 1")
            elif _number(thresholds.get(name)) and value > thresholds[name]:
                errors.append(f"{where} = {value} would loosen the global {thresholds[name]}: tenants may only tighten")
        tenant_review = override.get("review", {})
        _check_review(f"{at}.review", tenant_review, errors, partial=True)
        if isinstance(tenant_review, Mapping):
            for category, entry in tenant_review.items():
                base = review.get(category)
                if not isinstance(entry, Mapping) or not isinstance(base, Mapping):
                    continue
                where = f"{at}.review.{category}"
                if isinstance(entry.get("approvals"), int) and entry["approvals"] < base.get("approvals", 1):
                    errors.append(f"{where}.approvals would loosen the global {base.get('approvals')}")
                if entry.get("priority") in PRIORITIES and PRIORITIES[entry["priority"]] < PRIORITIES.get(
                    base.get("priority", "high"), 2
                ):
                    errors.append(f"{where}.priority would loosen the global {base.get('priority')}")
                if isinstance(entry.get("deadline_s"), int) and entry["deadline_s"] > base.get("deadline_s", 0):
                    errors.append(f"{where}.deadline_s would loosen the global {base.get('deadline_s')}")
    return errors


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _summary(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What changed, without term texts: threshold values, term counts, tenant and review paths."""
    out: dict[str, Any] = {"changed_keys": sorted(k for k in CHANGEABLE if before.get(k) != after.get(k))}
    b_thr, a_thr = before.get("thresholds") or {}, after.get("thresholds") or {}
    thresholds = {
        name: {"before": b_thr.get(name), "after": a_thr.get(name)}
        for name in sorted(set(b_thr) | set(a_thr))
        if b_thr.get(name) != a_thr.get(name)
    }
    if thresholds:
        out["thresholds"] = thresholds

    def keyed(terms: Any) -> set[str]:
        return {json.dumps(t, sort_keys=True) for t in terms or []}

    b_terms, a_terms = keyed(before.get("terms")), keyed(after.get("terms"))
    if b_terms != a_terms:
        added = [json.loads(t)["category"] for t in a_terms - b_terms]
        out["terms"] = {
            "added": len(a_terms - b_terms),
            "removed": len(b_terms - a_terms),
            "count": len(a_terms),
            "categories_added": sorted(set(added)),
        }
    for key in ("tenants", "review"):
        b_map, a_map = before.get(key) or {}, after.get(key) or {}
        changed = sorted(k for k in set(b_map) | set(a_map) if b_map.get(k) != a_map.get(k))
        if changed:
            out[key] = {
                "changed": changed,
                "added": sorted(set(a_map) - set(b_map)),
                "removed": sorted(set(b_map) - set(a_map)),
            }
    return out


def _data_revision(base: str, mamori: Mapping[str, Any]) -> str:
    base = base.split("+data.", 1)[0]
    digest = hashlib.sha256(json.dumps(mamori, sort_keys=True).encode()).hexdigest()[:12]
    return f"{base}+data.{digest}"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def change_data(bundle_dir: Path, *, replace: Mapping[str, Any] | None = None, patch: Any = None) -> DataChange:
    """Apply a PUT (`replace`: all of CHANGEABLE) or a PATCH (`patch`: a JSON merge patch over the
    changeable part) to the bundle's data; PolicyDataError (400) or PolicyError when refused."""
    bundle_dir = Path(bundle_dir)
    data_path = bundle_dir / DATA_FILE
    body = replace if replace is not None else patch
    if not isinstance(body, Mapping):
        raise PolicyDataError(["the body must be a JSON object"])
    outside = sorted(set(body) - set(CHANGEABLE))
    if outside:
        only = ", ".join(CHANGEABLE)
        raise PolicyDataError(
            [f"{key}: not changeable through the API (only {only}); edit the bundle" for key in outside]
        )
    if replace is not None:
        missing = [k for k in CHANGEABLE if k not in replace]
        if missing:
            raise PolicyDataError([f"{k} is required in a PUT (use PATCH to change part of the data)" for k in missing])
    with bundle_lock(bundle_dir, shared=False):
        current = load_bundle(bundle_dir)
        if not data_path.is_file() or set(current.data) - {"mamori"}:
            raise PolicyError(f"{bundle_dir} keeps its data elsewhere than {DATA_FILE}; edit the bundle")
        before = current.data.get("mamori", {})
        changeable_before = {k: before[k] for k in CHANGEABLE if k in before}
        if replace is not None:
            changeable_after = {k: copy.deepcopy(replace[k]) for k in CHANGEABLE}
        else:
            changeable_after = merge_patch(changeable_before, patch)
        after = {**before, **changeable_after}
        for key in CHANGEABLE:
            if key not in changeable_after:
                after.pop(key, None)
        errors = validate(after)
        if errors:
            raise PolicyDataError(errors)
        revision_after = _data_revision(current.revision, after)
        manifest_path = bundle_dir / ".manifest"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
        manifest["revision"] = revision_after
        data_text = _HEADER + yaml.safe_dump({"mamori": after}, sort_keys=False, allow_unicode=True)
        # Prove it on a scratch copy first: it must load, compile and decide.
        with tempfile.TemporaryDirectory(prefix="mamori-policy-") as scratch:
            trial = Path(scratch) / "bundle"
            shutil.copytree(bundle_dir, trial, ignore=shutil.ignore_patterns(".mamori.lock", ".*.tmp"))
            (trial / DATA_FILE).write_text(data_text, encoding="utf-8")
            (trial / ".manifest").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            RegoEngine(trial)
        _write_atomic(data_path, data_text)
        _write_atomic(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return DataChange(
        revision_before=current.revision,
        revision_after=revision_after,
        summary=_summary(before, after),
        data=after,
    )


__all__ = ["CHANGEABLE", "DataChange", "PolicyDataError", "change_data", "merge_patch", "validate"]
