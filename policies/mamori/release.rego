# Release stage: the last check before a held (escalated) asset leaves.
# Input: principal (who asks for the release), request {id, endpoint, requester_key_id,
# review: {category, approvals}}, approvals [{key_id, role}], findings (those that held it).
# allow = release now; escalate = keep holding (not enough approvals yet); block = never release.
package mamori.release

import rego.v1

import data.mamori.lib

default configured_roles := ["supervisor", "compliance", "admin"]

configured_roles := data.mamori.approver_roles

approver_roles := {r | some r in configured_roles; is_string(r)}

# The input is readable: approvals is a list of {key_id, role} strings.
default approvals_ok := false

approvals_ok if {
	is_array(input.approvals)
	every a in input.approvals {
		is_string(a.key_id)
		is_string(a.role)
	}
}

requester := input.request.requester_key_id

# Distinct approvers who count: a permitted role, a non-empty key id, not the requester.
# Without a requester key id in the input, no approval counts (fail closed).
counted contains a.key_id if {
	some a in input.approvals
	a.key_id != ""
	a.role in approver_roles
	is_string(requester)
	a.key_id != requester
}

default self_approved := false

self_approved if {
	some a in input.approvals
	a.key_id == requester
}

default unqualified := false

unqualified if {
	some a in input.approvals
	a.key_id != requester
	not a.role in approver_roles
}

# Approvals needed: what the escalation's review obligation asked for (computed by the output
# stage from data.mamori.review and the tenant's overrides), and at least 1.
requested_approvals contains n if {
	n := input.request.review.approvals
	is_number(n)
}

required := max(requested_approvals | {1})

enough if count(counted) >= required

hits contains {
	"action": "block",
	"code": "release.floor",
	"detector": lib.label(f.detector),
	"message": concat("", ["the asset is refused by the floor (category: ", f.category, "); no approval releases it"]),
} if {
	some f in input.findings
	lib.floor_finding(f)
}

hits contains {
	"action": "escalate",
	"code": "release.awaiting_approvals",
	"detector": "policy",
	"message": concat("", [
		"the asset needs ", format_int(required, 10), " distinct approvals (not the requester's), has ",
		format_int(count(counted), 10),
	]),
} if {
	not enough
}

hits contains {
	"action": "escalate",
	"code": "release.self_approval",
	"detector": "policy",
	"message": "the requester's own approval does not count",
} if {
	not enough
	self_approved
}

hits contains {
	"action": "escalate",
	"code": "release.unqualified_approver",
	"detector": "policy",
	"message": "an approval from a role that may not approve does not count",
} if {
	not enough
	unqualified
}

default obligations := {}

obligations := {"review": {"approvals": required, "have": count(counted)}} if not enough
