package mamori.template_test

import rego.v1

import data.mamori.decision

principal := {"key_id": "k1", "tenant": "acme", "role": "requester"}

approved_template := {"id": "tpl_1", "version": 2, "name": "Catalog photo", "approved": true, "rules_out": ["protected_name", "protected_work"]}

unapproved_template := {"id": "tpl_1", "version": 3, "name": "Catalog photo", "approved": false, "rules_out": ["protected_name", "protected_work"]}

sexual_template := {"id": "tpl_2", "version": 1, "name": "Bad", "approved": true, "rules_out": ["sexual", "csam"]}

request(template) := {"id": "r1", "endpoint": "templates.generate", "template": template}

decide(stage, template, findings) := d if {
	d := decision.decision with input.principal as principal
		with input.stage as stage
		with input.request as request(template)
		with input.findings as findings
}

codes(d) := [r.code | some r in d.reasons]

brand := {"detector": "protected_names", "category": "protected_name", "score": 0.9, "evidence": {"kind": "brand"}}

protected := {"detector": "copyright", "category": "protected_work", "score": 0.95, "evidence": {"index": 0}}

sexual_review := {"detector": "image_safety", "category": "sexual", "score": 0.5, "evidence": {"index": 0}}

denied := {"detector": "denylist", "category": "denied_term", "score": 1.0, "evidence": {"term_index": 4}}

test_approved_template_waives_a_ruled_out_review if {
	d := decide("prescreen", approved_template, [brand])
	d.action == "allow"
	codes(d) == ["template.review_waived"]
}

test_approved_template_waives_output_review if {
	d := decide("output", approved_template, [protected])
	d.action == "allow"
	codes(d) == ["template.review_waived"]
	d.obligations == {}
}

test_unapproved_template_waives_nothing if {
	d := decide("prescreen", unapproved_template, [brand])
	d.action == "escalate"
	codes(d) == ["prescreen.protected_name"]
}

test_without_template_review_stays if {
	d := decision.decision with input.principal as principal
		with input.stage as "output"
		with input.request as {"id": "r1", "endpoint": "images.generations"}
		with input.findings as [protected]
	d.action == "escalate"
	codes(d) == ["output.protected_work"]
}

test_block_stays_block if {
	d := decide("prescreen", approved_template, [brand, denied])
	d.action == "block"
	"prescreen.denied_term" in codes(d)
}

test_category_not_ruled_out_is_still_reviewed if {
	d := decide("output", approved_template, [protected, sexual_review])
	d.action == "escalate"
	codes(d) == ["output.unsafe_image_review", "template.review_waived"]
}

test_category_not_waivable_in_data_is_still_reviewed if {
	d := decide("output", sexual_template, [sexual_review])
	d.action == "escalate"
	codes(d) == ["output.unsafe_image_review"]
}

test_waivable_list_comes_from_data if {
	d := decision.decision with input.principal as principal
		with input.stage as "prescreen"
		with input.request as request(approved_template)
		with input.findings as [brand]
		with data.mamori.template_waivable as []
	d.action == "escalate"
}
