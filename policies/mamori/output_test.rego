package mamori.output_test

import rego.v1

import data.mamori.output

principal := {"key_id": "k1", "tenant": "acme", "role": "requester"}

strict := {"key_id": "k2", "tenant": "example-strict", "role": "requester"}

tenant_hits(who, findings) := h if {
	h := output.hits with input.principal as who
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as findings
}

obligations(findings) := o if {
	o := output.obligations with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as findings
}

codes(findings) := {h.code | some h in tenant_hits(principal, findings)}

sexual(score) := {"detector": "image_safety", "category": "sexual", "score": score, "evidence": {"index": 0}}

protected(score) := {"detector": "copyright", "category": "protected_work", "score": score, "evidence": {"index": 0, "distance": 4}}

test_clean_image if {
	codes([sexual(0.01)]) == set()
}

test_sexual_image_blocks if {
	codes([sexual(0.85)]) == {"output.unsafe_image"}
}

test_sexual_image_at_block_threshold if {
	codes([sexual(0.8)]) == {"output.unsafe_image"}
}

test_borderline_image_escalates if {
	codes([sexual(0.5)]) == {"output.unsafe_image_review"}
	obligations([sexual(0.5)]) == {"review": {"approvals": 1, "priority": "high", "deadline_s": 3600, "category": "sexual"}}
}

test_below_review_threshold if {
	codes([sexual(0.39)]) == set()
	obligations([sexual(0.39)]) == {}
}

test_protected_work_escalates if {
	codes([protected(0.875)]) == {"output.protected_work"}
	obligations([protected(0.875)]) == {"review": {"approvals": 1, "priority": "normal", "deadline_s": 86400, "category": "protected_work"}}
}

test_protected_work_below_threshold if {
	codes([protected(0.86)]) == set()
}

test_high_priority_review_wins if {
	findings := [protected(0.95), sexual(0.45)]
	codes(findings) == {"output.protected_work", "output.unsafe_image_review"}
	obligation := obligations(findings).review
	obligation.priority == "high"
	obligation.category == "sexual"
	obligation.deadline_s == 3600
}

test_unconfigured_review_category_is_high_priority if {
	obligation := obligations([protected(0.95)]).review with data.mamori.review as {}
	obligation == {"approvals": 1, "priority": "high", "deadline_s": 3600, "category": "protected_work"}
}

test_tenant_tightens_review if {
	{h.code | some h in tenant_hits(strict, [sexual(0.3)])} == {"output.unsafe_image_review"}
}

test_text_findings_ignored_in_output if {
	codes([{"detector": "pii", "category": "pii", "score": 1.0, "evidence": {"entity_type": "PERSON"}}]) == set()
}

test_denied_term_in_generated_text_blocks if {
	codes([{"detector": "denylist", "category": "denied_term", "score": 1.0, "evidence": {"term": "x"}}]) == {"output.denied_term"}
}

test_floor_image_blocks if {
	codes([{"detector": "image_safety", "category": "sexual_minors", "score": 0.5, "evidence": {}}]) == {"output.floor"}
}

test_floor_below_min_score if {
	codes([{"detector": "image_safety", "category": "sexual_minors", "score": 0.49, "evidence": {}}]) == set()
}

test_tenant_review_override_tightens if {
	o := output.obligations with input.principal as {"key_id": "k2", "tenant": "example-strict", "role": "requester"}
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as [{"detector": "image_safety", "category": "sexual", "score": 0.3}]
	o == {"review": {"approvals": 2, "priority": "high", "deadline_s": 1800, "category": "sexual"}}
}

test_tenant_review_override_cannot_loosen if {
	o := output.obligations with input.principal as {"key_id": "k3", "tenant": "lax", "role": "requester"}
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as [{"detector": "copyright", "category": "protected_work", "score": 0.9}]
		with data.mamori.tenants as {"lax": {"review": {"protected_work": {"approvals": 0, "priority": "low", "deadline_s": 999999}}}}
	o == {"review": {"approvals": 1, "priority": "normal", "deadline_s": 86400, "category": "protected_work"}}
}
