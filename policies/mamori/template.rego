# Issue 8: requests filled from an approved template. The gateway puts the template in the input
# as request.template = {id, version, name, approved, rules_out: [categories]}. An approved template
# may rule out review categories listed in data.mamori.template_waivable: an escalation in such a
# category is waived (decision.rego's waived_hits drops it and records a template.review_waived reason).
# A block is never waived, the floor is never waived, and the filled-in slots are screened as always.
package mamori.template

import rego.v1

default approved := false

approved if input.request.template.approved == true

default waivable_data := []

waivable_data := data.mamori.template_waivable

# The categories the template rules out that the policy data allows templates to waive.
waived_categories contains c if {
	approved
	some c in input.request.template.rules_out
	is_string(c)
	c in waivable_data
	not c in {"csam", "sexual_minors"}
}
