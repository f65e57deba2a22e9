package mamori.prescreen_test

import rego.v1

import data.mamori.prescreen

principal := {"key_id": "k1", "tenant": "acme", "role": "requester"}

strict := {"key_id": "k2", "tenant": "example-strict", "role": "requester"}

tenant_hits(who, findings) := h if {
	h := prescreen.hits with input.principal as who
		with input.stage as "prescreen"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as findings
}

obligations(findings) := o if {
	o := prescreen.obligations with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
		with input.stage as "prescreen"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as findings
}

codes(findings) := {h.code | some h in tenant_hits(principal, findings)}

denied(score) := {"detector": "denylist", "category": "denied_term", "score": score, "evidence": {"term_index": 4}}

pii(entity, score) := {"detector": "pii", "category": "pii", "score": score, "evidence": {"entity_type": entity}}

test_no_findings_no_hits if {
	codes([]) == set()
}

test_denied_term_blocks if {
	some h in tenant_hits(principal, [denied(1.0)])
	h.code == "prescreen.denied_term"
	h.action == "block"
	h.message == "the prompt contains a deny-listed term (category: denied_term)"
}

test_denied_term_below_threshold if {
	codes([denied(0.49)]) == set()
}

test_denied_term_at_threshold if {
	codes([denied(0.5)]) == {"prescreen.denied_term"}
}

test_other_term_categories_block_too if {
	codes([{"detector": "denylist", "category": "weapons", "score": 1.0, "evidence": {}}]) == {"prescreen.denied_term"}
}

test_pii_redacts_with_sorted_unique_types if {
	findings := [
		{"detector": "pii", "category": "pii", "score": 0.85, "evidence": {"entity_type": "PERSON"}},
		{"detector": "pii", "category": "pii", "score": 1.0, "evidence": {"entity_type": "EMAIL_ADDRESS"}},
		{"detector": "pii", "category": "pii", "score": 0.9, "evidence": {"entity_type": "PERSON"}},
	]
	codes(findings) == {"prescreen.pii"}
	obligations(findings) == {"redact": ["EMAIL_ADDRESS", "PERSON"]}
}

test_pii_below_threshold_ignored if {
	codes([pii("PERSON", 0.2)]) == set()
	obligations([pii("PERSON", 0.2)]) == {}
}

test_pii_without_entity_type if {
	findings := [{"detector": "pii", "category": "pii", "score": 0.9, "evidence": {}}]
	obligations(findings) == {"redact": ["UNKNOWN"]}
}

test_unsafe_edit_source_blocks if {
	f := {"detector": "image_safety", "category": "sexual", "score": 0.95, "evidence": {"role": "edit_source", "index": 0}}
	codes([f]) == {"prescreen.unsafe_source"}
}

test_mildly_suggestive_source_passes if {
	f := {"detector": "image_safety", "category": "sexual", "score": 0.5, "evidence": {"role": "edit_source"}}
	codes([f]) == set()
}

test_protected_source_blocks if {
	f := {"detector": "copyright", "category": "protected_work", "score": 0.9375, "evidence": {"role": "edit_source"}}
	codes([f]) == {"prescreen.protected_source"}
}

test_protected_source_below_threshold if {
	f := {"detector": "copyright", "category": "protected_work", "score": 0.74, "evidence": {"role": "edit_source"}}
	codes([f]) == set()
}

test_tenant_threshold_applies if {
	f := {"detector": "image_safety", "category": "sexual", "score": 0.65, "evidence": {"role": "edit_source"}}
	{h.code | some h in tenant_hits(strict, [f])} == {"prescreen.unsafe_source"}
}

test_csam_term_hits_the_floor if {
	f := {"detector": "denylist", "category": "csam", "score": 1.0, "evidence": {"term_index": 2}}
	codes([f]) == {"prescreen.denied_term", "prescreen.floor"}
}

test_floor_image_upload_blocks if {
	f := {"detector": "image_safety", "category": "sexual_minors", "score": 0.8, "evidence": {"role": "edit_source"}}
	codes([f]) == {"prescreen.floor"}
}

test_floor_ignores_tenant_thresholds if {
	f := {"detector": "denylist", "category": "csam", "score": 0.6, "evidence": {}}
	h := prescreen.hits with input.principal as {"key_id": "k3", "tenant": "lax", "role": "requester"}
		with input.stage as "prescreen"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as [f]
		with data.mamori.tenants as {"lax": {"thresholds": {"denylist": 0.9}, "floor": {"min_score": 1}}}
	{x.code | some x in h} == {"prescreen.denied_term", "prescreen.floor"}
}

unsafe(category, score) := {"detector": "unsafe_text", "category": category, "score": score, "evidence": {}}

jailbreak(score) := {"detector": "jailbreak", "category": "jailbreak", "score": score, "evidence": {"kinds": ["override"]}}

name(kind) := {"detector": "protected_names", "category": "protected_name", "score": 1.0, "evidence": {"kind": kind}}

test_unsafe_text_blocks_above_the_block_threshold if {
	codes([unsafe("weapons", 0.9)]) == {"prescreen.unsafe_text"}
}

test_unsafe_text_escalates_with_a_review_obligation if {
	codes([unsafe("violence", 0.6)]) == {"prescreen.unsafe_text_review"}
	o := obligations([unsafe("violence", 0.6)])
	o.review.category == "violence"
	o.review.approvals >= 1
}

test_unsafe_text_below_review_is_ignored if {
	codes([unsafe("drugs", 0.3)]) == set()
}

test_jailbreak_blocks_and_escalates if {
	codes([jailbreak(0.95)]) == {"prescreen.jailbreak"}
	codes([jailbreak(0.6)]) == {"prescreen.jailbreak_review"}
}

test_protected_person_in_sexual_content_blocks if {
	"prescreen.protected_person_harm" in codes([name("person"), unsafe("sexual", 0.6)])
}

test_protected_person_in_defamatory_content_blocks if {
	# unsafe_text scores a fake of someone in a disgracing scene real_person 0.6 (review on its own)
	"prescreen.protected_person_harm" in codes([name("person"), unsafe("real_person", 0.6)])
	not "prescreen.protected_person_harm" in codes([name("brand"), unsafe("real_person", 0.6)])
}

test_protected_brand_goes_to_review if {
	codes([name("brand")]) == {"prescreen.protected_name"}
}

test_pii_and_review_obligations_merge if {
	o := obligations([pii("EMAIL_ADDRESS", 0.9), name("character")])
	o.redact == ["EMAIL_ADDRESS"]
	o.review.category == "protected_name"
}

# --- edits of uploaded assets: the upload's own C2PA manifest (issue 7) -------------------------

edit_codes(manifest) := codes if {
	found := prescreen.hits with input.principal as principal
		with input.stage as "prescreen"
		with input.request as {"id": "r1", "endpoint": "images.edits", "source_manifest": manifest}
		with input.findings as []
	codes := {h.code | some h in found}
}

trusted_source := {
	"state": "Trusted", "manifest_id": "urn:c2pa:1", "labels": ["c2pa.actions.v2", "mamori.decision"],
	"mamori_decision": "allow", "training_mining": {},
}

test_trusted_allowed_source_can_be_edited if {
	edit_codes(trusted_source) == set()
}

test_source_without_manifest_can_be_edited if {
	edit_codes({"state": "NO_MANIFEST", "manifest_id": null, "labels": [], "training_mining": {}}) == set()
}

test_invalid_source_manifest_blocks if {
	edit_codes(object.union(trusted_source, {"state": "Invalid"})) == {"prescreen.source_manifest_invalid"}
}

test_source_with_mamori_block_decision_blocks if {
	edit_codes(object.union(trusted_source, {"mamori_decision": "block"})) == {"prescreen.source_decision"}
}

test_source_with_no_edit_assertion_blocks if {
	manifest := object.union(trusted_source, {"labels": ["c2pa.actions.v2", "mamori.no-edit"]})
	edit_codes(manifest) == {"prescreen.source_no_edit"}
}

test_source_that_does_not_allow_ai_inference_blocks if {
	manifest := object.union(trusted_source, {"training_mining": {
		"c2pa.ai_inference": "notAllowed",
		"c2pa.ai_generative_training": "notAllowed",
	}})
	edit_codes(manifest) == {"prescreen.source_no_ai_use"}
}

test_source_that_allows_ai_inference_can_be_edited if {
	manifest := object.union(trusted_source, {"training_mining": {"c2pa.ai_inference": "allowed"}})
	edit_codes(manifest) == set()
}

test_generation_requests_have_no_source_manifest_hits if {
	codes([]) == set()
}

toxic_prompt(category, score) := {"detector": "toxicity", "category": category, "score": score, "evidence": {"directed": true}}

test_clearly_toxic_prompt_escalates if {
	some h in tenant_hits(principal, [toxic_prompt("insult", 0.9)])
	h.code == "prescreen.toxicity_review"
	h.action == "escalate"
	h.review_category == "toxicity"
	h.message == "the prompt is toxic (category: insult)"
	obligations([toxic_prompt("insult", 0.9)]).review.category == "toxicity"
}

test_borderline_toxic_prompt_is_not_held if {
	codes([toxic_prompt("insult", 0.8)]) == set()
}

test_toxic_prompt_is_never_blocked_for_toxicity if {
	every h in tenant_hits(principal, [toxic_prompt("threat", 1.0)]) {
		h.action == "escalate"
	}
}

stereotype(score) := {
	"detector": "bias_text", "category": "stereotype", "score": score,
	"evidence": {"group": "women", "descriptor": "bad at math", "source": "list", "generalized": true, "negated": false},
}

test_stereotype_prompt_escalates if {
	some h in tenant_hits(principal, [stereotype(1.0)])
	h.code == "prescreen.stereotype_review"
	h.action == "escalate"
	h.review_category == "bias"
	h.message == "the prompt pins a stereotype on a group (women)"
}

test_weak_stereotype_cooccurrence_passes if {
	codes([stereotype(0.4)]) == set()
}
