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
	codes([protected(0.75)]) == {"output.protected_work"}
	obligations([protected(0.75)]) == {"review": {"approvals": 1, "priority": "normal", "deadline_s": 86400, "category": "protected_work"}}
}

test_protected_work_below_threshold if {
	codes([protected(0.74)]) == set()
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

# --- generated text -------------------------------------------------------------------------------

chat_hits(findings) := h if {
	h := output.hits with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "chat.completions", "modality": "text"}
		with input.findings as findings
}

chat_obligations(findings) := o if {
	o := output.obligations with input.principal as {"key_id": "k1", "tenant": "acme", "role": "requester"}
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "chat.completions", "modality": "text"}
		with input.findings as findings
}

chat_codes(findings) := {h.code | some h in chat_hits(findings)}

toxic(category, score) := {
	"detector": "toxicity", "category": category, "score": score,
	"evidence": {"lexicon": score, "model": 0.1, "directed": true, "rules": ["insult.noun"]},
}

unsafe(category, score) := {"detector": "unsafe_text", "category": category, "score": score, "evidence": {"lexicon": score}}

test_toxic_generated_text_blocks if {
	some h in chat_hits([toxic("insult", 0.9)])
	h.code == "output.toxicity"
	h.action == "block"
	h.message == "the generated text is toxic (category: insult)"
	chat_codes([toxic("insult", 0.9)]) == {"output.toxicity"}
}

test_toxicity_at_block_threshold_blocks if {
	chat_codes([toxic("threat", 0.8)]) == {"output.toxicity"}
}

test_borderline_toxicity_escalates if {
	some h in chat_hits([toxic("harassment", 0.6)])
	h.code == "output.toxicity_review"
	h.action == "escalate"
	h.review_category == "toxicity"
	chat_obligations([toxic("harassment", 0.6)]) == {"review": {"approvals": 1, "priority": "normal", "deadline_s": 86400, "category": "toxicity"}}
}

test_toxicity_below_review_ignored if {
	chat_codes([toxic("profanity", 0.49)]) == set()
	chat_obligations([toxic("profanity", 0.49)]) == {}
}

test_tenant_tightens_toxicity if {
	hits := output.hits with input.principal as {"key_id": "k4", "tenant": "calm", "role": "requester"}
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "chat.completions"}
		with input.findings as [toxic("insult", 0.6)]
		with data.mamori.tenants as {"calm": {"thresholds": {"toxicity_block": 0.55}}}
	{h.code | some h in hits} == {"output.toxicity"}
}

test_unsafe_generated_text_blocks if {
	some h in chat_hits([unsafe("weapons", 0.9)])
	h.code == "output.unsafe_text"
	h.action == "block"
	h.message == "the generated text is unsafe content (category: weapons)"
}

test_unsafe_generated_text_escalates_by_category if {
	some h in chat_hits([unsafe("violence", 0.6)])
	h.code == "output.unsafe_text_review"
	h.review_category == "violence"
	chat_obligations([unsafe("violence", 0.6)]).review.category == "violence"
}

test_unsafe_generated_text_below_review_ignored if {
	chat_codes([unsafe("drugs", 0.3)]) == set()
}

test_generated_sexual_minors_text_hits_the_floor if {
	chat_codes([unsafe("sexual_minors", 0.6)]) == {"output.floor", "output.unsafe_text_review"}
}

stereotype(score) := {"detector": "bias_text", "category": "stereotype", "score": score, "evidence": {"group": "women"}}

test_stereotype_in_generated_text_escalates if {
	some h in chat_hits([stereotype(1.0)])
	h.code == "output.stereotype_review"
	h.action == "escalate"
	h.message == "the generated text pins a stereotype on a group (women)"
	chat_obligations([stereotype(1.0)]) == {"review": {"approvals": 1, "priority": "normal", "deadline_s": 86400, "category": "bias"}}
}

test_weak_stereotype_in_generated_text_ignored if {
	chat_codes([stereotype(0.69)]) == set()
}

named(kind) := {"detector": "protected_names", "category": "protected_name", "score": 1.0, "evidence": {"kind": kind, "id": "p1", "name": "X"}}

test_protected_name_in_generated_text_escalates if {
	chat_codes([named("brand")]) == {"output.protected_name"}
	some h in chat_hits([named("character")])
	h.message == "the generated text names a protected character"
}

test_protected_person_in_harmful_generated_text_blocks if {
	chat_codes([named("person"), unsafe("real_person", 0.7)]) == {
		"output.protected_person_harm", "output.protected_name", "output.unsafe_text_review",
	}
	# a brand in the same text is reviewed, not refused
	chat_codes([named("brand"), unsafe("violence", 0.7)]) == {"output.protected_name", "output.unsafe_text_review"}
}

injection(score) := {"detector": "jailbreak", "category": "jailbreak", "score": score, "evidence": {"kinds": ["override"]}}

test_injection_in_generated_text_escalates_only_when_clear if {
	chat_codes([injection(0.8)]) == {"output.injection_review"}
	chat_codes([injection(0.79)]) == set()
}

pii(entity, score) := {"detector": "pii", "category": "pii", "score": score, "evidence": {"entity_type": entity}}

test_pii_in_generated_text_is_redacted if {
	findings := [pii("PHONE_NUMBER", 0.75), pii("EMAIL_ADDRESS", 1.0), pii("EMAIL_ADDRESS", 0.9)]
	some h in chat_hits(findings)
	h.code == "output.pii"
	h.action == "redact"
	h.message == "the generated text contains personal data (EMAIL_ADDRESS, PHONE_NUMBER)"
	chat_obligations(findings) == {"redact": ["EMAIL_ADDRESS", "PHONE_NUMBER"]}
}

test_pii_names_and_dates_in_generated_text_are_left if {
	findings := [pii("PERSON", 0.85), pii("DATE_TIME", 0.85), pii("LOCATION", 0.85), pii("NRP", 0.85)]
	chat_codes(findings) == set()
	chat_obligations(findings) == {}
}

test_pii_entity_list_is_data if {
	hits := output.hits with input.principal as principal
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "chat.completions"}
		with input.findings as [pii("PERSON", 0.85)]
		with data.mamori.output_pii_entities as ["PERSON"]
	{h.code | some h in hits} == {"output.pii"}
}

test_pii_in_generated_text_below_threshold if {
	chat_codes([pii("CREDIT_CARD", 0.4)]) == set()
}

test_pii_without_entity_type_in_generated_text_is_not_redacted if {
	chat_codes([{"detector": "pii", "category": "pii", "score": 1.0, "evidence": {}}]) == set()
}

test_redaction_rides_along_with_an_escalation if {
	o := chat_obligations([pii("EMAIL_ADDRESS", 1.0), toxic("insult", 0.6)])
	o.redact == ["EMAIL_ADDRESS"]
	o.review.category == "toxicity"
}

# --- image batches: bias_image --------------------------------------------------------------------

homogeneous(attribute, score, measured) := {
	"detector": "bias_image", "category": "attribute_homogeneity", "score": score,
	"evidence": {"attribute": attribute, "measured": measured, "people": 4, "batch": 4, "label": "masculine", "index": 0},
}

batch_hits(findings, attributes) := h if {
	h := output.hits with input.principal as principal
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "images.generations", "n": 4, "prompt_attributes": attributes}
		with input.findings as findings
}

test_homogeneous_batch_escalates_for_bias_review if {
	some h in tenant_hits(principal, [homogeneous("gender_presentation", 1.0, true)])
	h.code == "output.bias_image_review"
	h.action == "escalate"
	h.review_category == "bias"
	h.message == "the people in the generated batch look alike in gender_presentation although the prompt names none"
	obligations([homogeneous("gender_presentation", 1.0, true)]).review.category == "bias"
}

test_diverse_batch_passes if {
	codes([homogeneous("gender_presentation", 0.2, true)]) == set()
}

test_unmeasured_batch_passes if {
	codes([homogeneous("age_group", 1.0, false)]) == set()
}

test_attribute_named_in_prompt_is_not_escalated if {
	{h.code | some h in batch_hits([homogeneous("gender_presentation", 1.0, true)], ["gender_presentation"])} == set()
	{h.code | some h in batch_hits([homogeneous("skin_tone", 1.0, true)], ["gender_presentation"])} == {"output.bias_image_review"}
}

test_malformed_prompt_attributes_name_nothing if {
	{h.code | some h in batch_hits([homogeneous("skin_tone", 0.96, true)], "skin_tone")} == {"output.bias_image_review"}
}

# bias_image scores 1 - p: a batch escalates when so concentrated a batch would arise by chance in
# at most 5 % of fair batches (two alike people of two score at most 0.75: never escalated)
test_a_batch_that_chance_explains_passes if {
	codes([homogeneous("gender_presentation", 0.94, true)]) == set()
	codes([homogeneous("gender_presentation", 0.95, true)]) == {"output.bias_image_review"}
}
