# The single entry point: data.mamori.decision.decision.
# Input: {principal, stage, request, findings}. Output: {action, reasons, obligations}.
package mamori.decision

import rego.v1

import data.mamori.lib

severity := {"allow": 0, "redact": 1, "escalate": 2, "block": 3}

precedence := ["block", "escalate", "redact", "allow"]

known_stage if input.stage in {"access", "prescreen", "output", "release"}

finding_stage if input.stage in {"prescreen", "output", "release"}

findings_ok if {
	is_array(input.findings)
	every f in input.findings {
		lib.valid_finding(f)
	}
}

misconfigured if count(lib.missing_thresholds) > 0

bad_input if {
	finding_stage
	not findings_ok
}

bad_input if {
	input.stage == "release"
	not data.mamori.release.approvals_ok
}

# The hits and obligations of the stage named in the input.
stage_hits := data.mamori.access.hits if input.stage == "access"

stage_hits := data.mamori.prescreen.hits if input.stage == "prescreen"

stage_hits := data.mamori.output.hits if input.stage == "output"

stage_hits := data.mamori.release.hits if input.stage == "release"

stage_obligations := data.mamori.access.obligations if input.stage == "access"

stage_obligations := data.mamori.prescreen.obligations if input.stage == "prescreen"

stage_obligations := data.mamori.output.obligations if input.stage == "output"

stage_obligations := data.mamori.release.obligations if input.stage == "release"

# Issue 8: an approved template waives the escalations it rules out, never a block (template.rego).
# Set operations, not a function called per hit: rego-cpp's plan for the latter took ~20 GB to build.
waived_hits := {h |
	some h in stage_hits
	h.action == "escalate"
	h.review_category in data.mamori.template.waived_categories
}

kept_hits := stage_hits - waived_hits

waiver_hits := {{
	"action": "allow",
	"code": "template.review_waived",
	"detector": "policy",
	"message": concat("", [
		"review for ", h.review_category, " is waived by the approved template ",
		lib.label(object.get(input.request.template, "name", "unnamed")),
	]),
} |
	some h in waived_hits
}

hits := kept_hits | waiver_hits

escalating if {
	some h in hits
	h.action == "escalate"
}

action := a if {
	top := max({severity[h.action] | some h in hits} | {0})
	some a, s in severity
	s == top
}

# Reasons in precedence order, then sorted by code, detector and message (stable on every engine).
reason_key(h) := concat("\n", [h.code, h.detector, h.message])

hits_by_key := {reason_key(h): h | some h in hits}

reasons := [{"code": h.code, "detector": h.detector, "message": h.message} |
	some a in precedence
	some k in sort({reason_key(h) | some h in hits; h.action == a})
	h := hits_by_key[k]
]

obligations := {} if action == "block"

obligations := stage_obligations if {
	action != "block"
	escalating
}

# nothing escalates (or every escalation was waived by a template): no review obligation
obligations := object.remove(stage_obligations, {"review"}) if {
	action != "block"
	not escalating
}

block(code, message) := {
	"action": "block",
	"reasons": [{"code": code, "detector": "policy", "message": message}],
	"obligations": {},
}

default decision := {
	"action": "block",
	"reasons": [{"code": "policy.unknown_stage", "detector": "policy", "message": "the input names no known stage"}],
	"obligations": {},
}

decision := block("policy.misconfigured", "the policy data lacks a required threshold") if {
	known_stage
	misconfigured
}

decision := block("policy.bad_input", "the findings are not a list of {detector, category, score}, or the approvals not a list of {key_id, role}") if {
	known_stage
	not misconfigured
	bad_input
}

decision := {"action": action, "reasons": reasons, "obligations": obligations} if {
	known_stage
	not misconfigured
	not bad_input
}
