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
	obligations([sexual(0.5)]) == {"review": {"approvals": 1, "priority": "high", "category": "sexual"}}
}

test_below_review_threshold if {
	codes([sexual(0.39)]) == set()
	obligations([sexual(0.39)]) == {}
}

test_protected_work_escalates if {
	codes([protected(0.875)]) == {"output.protected_work"}
	obligations([protected(0.875)]) == {"review": {"approvals": 1, "priority": "normal", "category": "protected_work"}}
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
}

test_unconfigured_review_category_is_high_priority if {
	obligation := obligations([protected(0.95)]).review with data.mamori.review as {}
	obligation == {"approvals": 1, "priority": "high", "category": "protected_work"}
}

test_tenant_tightens_review if {
	{h.code | some h in tenant_hits(strict, [sexual(0.3)])} == {"output.unsafe_image_review"}
}

test_text_findings_ignored_in_output if {
	codes([{"detector": "pii", "category": "pii", "score": 1.0, "evidence": {"entity_type": "PERSON"}}]) == set()
}
