# Helpers shared by the stage packages: effective thresholds (with the tenant floor) and labels.
# rego-cpp caches rule values per query but not function results, so hot paths use rules.
package mamori.lib

import rego.v1

# Every threshold a stage package reads. If one is missing from data.yaml, the decision is block
# (policy.misconfigured) instead of silently never firing a rule.
required_thresholds := {"denylist", "pii", "image_sexual_block", "image_sexual_review", "protected_work"}

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
