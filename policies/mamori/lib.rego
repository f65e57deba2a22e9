# Helpers shared by the stage packages: effective thresholds (with the tenant floor) and labels.
# rego-cpp caches rule values per query but not function results, so hot paths use rules.
package mamori.lib

import rego.v1

# Every threshold a stage package reads. If one is missing from data.yaml, the decision is block
# (policy.misconfigured) instead of silently never firing a rule.
required_thresholds := {
	"denylist", "pii", "image_sexual_block", "image_sexual_review", "protected_work",
	"unsafe_text_block", "unsafe_text_review", "jailbreak_block", "jailbreak_review", "protected_name",
	"toxicity_block", "toxicity_review", "toxicity_prompt_review", "bias_image_review", "bias_text_review",
}

# The principal's tenant overrides, or {} when the tenant has none. (No is_object() check here:
# rego-cpp 1.5 crashes on it under `with input as`; a non-object value yields no overrides anyway.)
default tenant_overrides := {}

tenant_overrides := data.mamori.tenants[input.principal.tenant].thresholds

# Effective thresholds: min(global, tenant), so a tenant can tighten but never loosen the floor.
# Non-numeric values are ignored (a non-numeric global threshold counts as missing).
thresholds := {name: effective |
	some name, global in data.mamori.thresholds
	is_number(global)
	effective := min({global} | {t | t := tenant_overrides[name]; is_number(t)})
}

missing_thresholds := required_thresholds - {name | thresholds[name]}

# A string for messages: the value itself if it is a string, otherwise "unknown".
label(x) := x if is_string(x)

else := "unknown"

# A finding the policy can read: string detector and category, numeric score. The decision
# package blocks (policy.bad_input) unless every finding is valid, so the stage packages may
# compare scores directly.
valid_finding(f) if {
	is_string(f.detector)
	is_string(f.category)
	is_number(f.score)
}

# --- the floor ------------------------------------------------------------------------------------
# Sexual content involving minors is always refused. The floor reads data.mamori.floor only (never a
# tenant's overrides), and the rules keep these categories and a min_score of at most 0.5 whatever
# the data says, so neither a tenant nor a data change can loosen it.
builtin_floor_categories := {"csam", "sexual_minors"}

default floor_data := {}

floor_data := data.mamori.floor

floor_categories := builtin_floor_categories | {c | some c in floor_data.categories; is_string(c)}

floor_min_score := min({0.5} | {s | s := floor_data.min_score; is_number(s)})

floor_finding(f) if {
	f.category in floor_categories
	f.score >= floor_min_score
}

# --- review obligations ---------------------------------------------------------------------------
# data.mamori.review.<category> = {approvals, priority, deadline_s}; a tenant's review overrides may
# only tighten (more approvals, higher priority, shorter deadline). A category with no entry gets
# the strictest default.
priority_rank := {"low": 0, "normal": 1, "high": 2}

default_review := {"approvals": 1, "priority": "high", "deadline_s": 3600}

default review_data := {}

review_data := data.mamori.review

default tenant_review_data := {}

tenant_review_data := data.mamori.tenants[input.principal.tenant].review

global_review(category) := object.get(review_data, category, default_review)

tenant_review(category) := object.get(tenant_review_data, category, {})

# A number, or the default when the value is missing or not a number.
number_or(x, default_value) := x if is_number(x)

else := default_value

# An unknown priority counts as high.
rank(priority) := object.get(priority_rank, priority, 2)

priority_name(r) := p if {
	some p, pr in priority_rank
	pr == r
}

review_approvals(category) := max({
	1,
	number_or(object.get(global_review(category), "approvals", 1), 1),
	number_or(object.get(tenant_review(category), "approvals", 1), 1),
})

review_rank(category) := max({
	rank(object.get(global_review(category), "priority", "high")),
	rank(object.get(tenant_review(category), "priority", "low")),
})

review_deadline(category) := min({global, tenant}) if {
	global := number_or(object.get(global_review(category), "deadline_s", default_review.deadline_s), default_review.deadline_s)
	tenant := number_or(object.get(tenant_review(category), "deadline_s", global), global)
}

# The review obligation for a set of categories: the most urgent category wins (ties: the
# alphabetically first), the largest approval count, the shortest deadline.
review_obligation(categories) := obligation if {
	count(categories) > 0
	ranked := {[review_rank(c), c] | some c in categories}
	top := max({r | some [r, _] in ranked})
	approvals := {review_approvals(c) | some c in categories}
	deadlines := {review_deadline(c) | some c in categories}
	obligation := {
		"approvals": max(approvals),
		"priority": priority_name(top),
		"deadline_s": min(deadlines),
		"category": min({c | some [r, c] in ranked; r == top}),
	}
}
