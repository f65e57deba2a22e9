package mamori.decision_test

import rego.v1

import data.mamori.decision

principal := {"key_id": "k1", "tenant": "acme", "role": "requester"}

strict := {"key_id": "k2", "tenant": "example-strict", "role": "requester"}

# Tests set input field by field, with literal or local-variable values (see lib_test.rego).
decide_as(who, stage, findings) := d if {
	d := decision.decision with input.principal as who
		with input.stage as stage
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as findings
}

decide(stage, findings) := decide_as(principal, stage, findings)

codes(d) := [r.code | some r in d.reasons]

sexual(score) := {"detector": "image_safety", "category": "sexual", "score": score, "evidence": {"index": 0}}

protected(score) := {"detector": "copyright", "category": "protected_work", "score": score, "evidence": {"index": 0}}

pii(entity) := {"detector": "pii", "category": "pii", "score": 0.9, "evidence": {"entity_type": entity}}

denied := {"detector": "denylist", "category": "denied_term", "score": 1.0, "evidence": {"term_index": 4}}

test_access_allowed if {
	d := decide("access", [])
	d == {"action": "allow", "reasons": [], "obligations": {}}
}

test_access_denied if {
	d := decision.decision with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
		with input.stage as "access"
		with input.request as {"id": "r1", "endpoint": "keys.admin"}
	d.action == "block"
	codes(d) == ["access.denied"]
	d.obligations == {}
}

test_unknown_stage_blocks if {
	d := decide("postscreen", [])
	d.action == "block"
	codes(d) == ["policy.unknown_stage"]
}

test_missing_stage_blocks if {
	d := decision.decision with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
	codes(d) == ["policy.unknown_stage"]
}

test_empty_input_blocks if {
	d := decision.decision with input.unrelated as true
	d.action == "block"
}

test_clean_prescreen_allows if {
	decide("prescreen", []) == {"action": "allow", "reasons": [], "obligations": {}}
}

test_pii_redacts if {
	d := decide("prescreen", [pii("PHONE_NUMBER"), pii("EMAIL_ADDRESS")])
	d.action == "redact"
	codes(d) == ["prescreen.pii"]
	d.obligations == {"redact": ["EMAIL_ADDRESS", "PHONE_NUMBER"]}
}

test_block_beats_redact if {
	d := decide("prescreen", [pii("PERSON"), denied])
	d.action == "block"
	codes(d) == ["prescreen.denied_term", "prescreen.pii"]
	d.obligations == {}
}

test_block_beats_escalate if {
	d := decide("output", [sexual(0.9), protected(0.95)])
	d.action == "block"
	codes(d) == ["output.unsafe_image", "output.protected_work"]
	d.obligations == {}
}

test_escalate_carries_review if {
	d := decide("output", [protected(0.9)])
	d.action == "escalate"
	codes(d) == ["output.protected_work"]
	d.obligations == {"review": {"approvals": 1, "priority": "normal", "deadline_s": 86400, "category": "protected_work"}}
}

test_clean_output_allows if {
	decide("output", [sexual(0.05), protected(0.5)]) == {"action": "allow", "reasons": [], "obligations": {}}
}

test_reasons_are_sorted_within_action if {
	d := decide("output", [sexual(0.5), protected(0.9)])
	codes(d) == ["output.protected_work", "output.unsafe_image_review"]
}

test_reason_shape if {
	d := decide("prescreen", [denied])
	some r in d.reasons
	object.keys(r) == {"code", "detector", "message"}
	r.detector == "denylist"
}

test_missing_findings_blocks if {
	d := decision.decision with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"} with input.stage as "output" with input.request as {"id": "r1", "endpoint": "images.generations"}
	codes(d) == ["policy.bad_input"]
}

test_non_numeric_score_blocks if {
	d := decide("output", [{"detector": "image_safety", "category": "sexual", "score": "0.1"}])
	codes(d) == ["policy.bad_input"]
}

test_access_needs_no_findings if {
	d := decision.decision with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
		with input.stage as "access"
		with input.request as {"endpoint": "assets.read"}
	d.action == "allow"
}

test_missing_threshold_blocks if {
	d := decide("output", []) with data.mamori.thresholds as {"pii": 0.5}
	d.action == "block"
	codes(d) == ["policy.misconfigured"]
}

test_tenant_floor_in_decision if {
	d := decide_as(strict, "output", [sexual(0.7)])
	d.action == "block"
	codes(d) == ["output.unsafe_image"]
}

test_release_allowed if {
	d := decision.decision with input.principal as {"key_id": "k_sup", "tenant": "acme", "role": "supervisor"}
		with input.stage as "release"
		with input.request as {"id": "r1", "requester_key_id": "k1", "review": {"category": "protected_work", "approvals": 1}}
		with input.approvals as [{"key_id": "k_sup", "role": "supervisor"}]
		with input.findings as [protected(0.9)]
	d == {"action": "allow", "reasons": [], "obligations": {}}
}

test_release_held_without_approvals if {
	d := decision.decision with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
		with input.stage as "release"
		with input.request as {"id": "r1", "requester_key_id": "k1", "review": {"category": "sexual", "approvals": 1}}
		with input.approvals as [{"key_id": "k1", "role": "supervisor"}]
		with input.findings as [sexual(0.5)]
	d.action == "escalate"
	codes(d) == ["release.awaiting_approvals", "release.self_approval"]
	d.obligations == {"review": {"approvals": 1, "have": 0}}
}

test_release_bad_approvals_block if {
	d := decision.decision with input.stage as "release"
		with input.request as {"id": "r1", "requester_key_id": "k1"}
		with input.approvals as "yes"
		with input.findings as []
	codes(d) == ["policy.bad_input"]
}

test_release_floor_beats_approvals if {
	d := decision.decision with input.principal as {"key_id": "k_sup", "tenant": "acme", "role": "supervisor"}
		with input.stage as "release"
		with input.request as {"id": "r1", "requester_key_id": "k1", "review": {"approvals": 1}}
		with input.approvals as [{"key_id": "a1", "role": "admin"}, {"key_id": "a2", "role": "admin"}]
		with input.findings as [{"detector": "image_safety", "category": "sexual_minors", "score": 0.7}]
	d.action == "block"
	codes(d) == ["release.floor"]
	d.obligations == {}
}

# A tenant override cannot loosen the floor: not through thresholds, not through a floor block of
# its own, not by lowering the global floor categories in data.
test_tenant_cannot_loosen_the_floor if {
	lax := {"lax": {
		"thresholds": {"denylist": 2, "image_sexual_block": 2, "image_sexual_review": 2, "pii": 2, "protected_work": 2},
		"floor": {"categories": [], "min_score": 1},
		"review": {"sexual": {"approvals": 0}},
	}}
	term := {"detector": "denylist", "category": "csam", "score": 1.0, "evidence": {"term_index": 2}}
	p := decision.decision with input.principal as {"key_id": "k9", "tenant": "lax", "role": "requester"}
		with input.stage as "prescreen"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as [term]
		with data.mamori.tenants as lax
	p.action == "block"
	"prescreen.floor" in codes(p)
	image := {"detector": "image_safety", "category": "sexual_minors", "score": 0.6}
	o := decision.decision with input.principal as {"key_id": "k9", "tenant": "lax", "role": "requester"}
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as [image]
		with data.mamori.tenants as lax
		with data.mamori.floor as {"categories": [], "min_score": 0.99}
	o.action == "block"
	codes(o) == ["output.floor"]
}
