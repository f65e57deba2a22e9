package mamori.lib_test

# Tests set input field by field (`with input.x as ...`) and give `with` literal or local-variable
# values, never a rule: rego-cpp 1.5 fails to compile `with input as {...}` over rules that depend
# on other rules, and mis-evaluates `with input.x as some_rule`.

import rego.v1

import data.mamori.lib

test_global_thresholds_without_tenant if {
	t := lib.thresholds with input.principal as {"tenant": "no-such-tenant"}
	t.image_sexual_block == 0.8
	t.image_sexual_review == 0.4
	t.protected_work == 0.75
}

test_tenant_tightens if {
	t := lib.thresholds with input.principal as {"tenant": "example-strict"}
	t.image_sexual_block == 0.6
	t.image_sexual_review == 0.2
	t.pii == 0.5
}

test_tenant_cannot_loosen if {
	t := lib.thresholds with input.principal as {"tenant": "lax"}
		with data.mamori.tenants as {"lax": {"thresholds": {"image_sexual_block": 0.99, "pii": 0.1}}}
	t.image_sexual_block == 0.8
	t.pii == 0.1
}

test_tenant_non_numeric_override_ignored if {
	t := lib.thresholds with input.principal as {"tenant": "odd"}
		with data.mamori.tenants as {"odd": {"thresholds": {"pii": "0.0"}}}
	t.pii == 0.5
}

test_no_missing_thresholds_in_shipped_data if {
	count(lib.missing_thresholds) == 0
}

test_missing_threshold_detected if {
	missing := lib.missing_thresholds with data.mamori.thresholds as {"pii": 0.5, "denylist": "high"}
	missing == {
		"denylist", "image_sexual_block", "image_sexual_review", "protected_work",
		"unsafe_text_block", "unsafe_text_review", "jailbreak_block", "jailbreak_review", "protected_name",
		"toxicity_block", "toxicity_review", "toxicity_prompt_review", "bias_image_review", "bias_text_review",
	}
}

test_label if {
	lib.label("x") == "x"
	lib.label(3) == "unknown"
}

test_valid_finding if {
	lib.valid_finding({"detector": "pii", "category": "pii", "score": 0.5})
	not lib.valid_finding({"detector": "pii", "category": "pii", "score": "0.5"})
	not lib.valid_finding({"detector": "pii", "score": 0.5})
}

test_floor_categories_cannot_be_removed if {
	c := lib.floor_categories with data.mamori.floor as {"categories": [], "min_score": 0.9}
	c == {"csam", "sexual_minors"}
	s := lib.floor_min_score with data.mamori.floor as {"categories": [], "min_score": 0.9}
	s == 0.5
}

test_floor_can_be_widened_in_data if {
	c := lib.floor_categories with data.mamori.floor as {"categories": ["extremism"], "min_score": 0.3}
	c == {"csam", "sexual_minors", "extremism"}
	lib.floor_min_score == 0.5
}

test_floor_finding if {
	lib.floor_finding({"detector": "denylist", "category": "csam", "score": 0.5})
	not lib.floor_finding({"detector": "denylist", "category": "weapons", "score": 1.0})
	not lib.floor_finding({"detector": "image_safety", "category": "sexual_minors", "score": 0.1})
}

test_review_defaults_for_unknown_category if {
	lib.review_approvals("nope") == 1
	lib.review_rank("nope") == 2
	lib.review_deadline("nope") == 3600
}

test_review_obligation_combines if {
	o := lib.review_obligation({"sexual", "protected_work"})
	o == {"approvals": 1, "priority": "high", "deadline_s": 3600, "category": "sexual"}
}

test_number_or if {
	lib.number_or(3, 1) == 3
	lib.number_or("3", 1) == 1
}
