# Output stage: the generated images, before they are returned.
package mamori.output

import rego.v1

import data.mamori.lib

sexual(f) if {
	f.detector == "image_safety"
	f.category == "sexual"
}

protected(f) if {
	f.detector == "copyright"
	f.category == "protected_work"
}

# The floor (lib.floor_finding): sexual content involving minors, whatever a tenant sets.
hits contains {
	"action": "block",
	"code": "output.floor",
	"detector": lib.label(f.detector),
	"message": concat("", ["a generated image is refused by the floor (category: ", f.category, ")"]),
} if {
	some f in input.findings
	lib.floor_finding(f)
}

hits contains {
	"action": "block",
	"code": "output.unsafe_image",
	"detector": "image_safety",
	"message": "a generated image is sexual content",
} if {
	some f in input.findings
	sexual(f)
	f.score >= lib.thresholds.image_sexual_block
}

hits contains {
	"action": "escalate",
	"code": "output.unsafe_image_review",
	"detector": "image_safety",
	"message": "a generated image may be sexual content and needs review",
	"review_category": "sexual",
} if {
	some f in input.findings
	sexual(f)
	f.score >= lib.thresholds.image_sexual_review
	not f.score >= lib.thresholds.image_sexual_block
}

hits contains {
	"action": "escalate",
	"code": "output.protected_work",
	"detector": "copyright",
	"message": "a generated image is similar to a protected work and needs review",
	"review_category": "protected_work",
} if {
	some f in input.findings
	protected(f)
	f.score >= lib.thresholds.protected_work
}

# Generated text (chat) that contains a deny-listed term is cut off.
hits contains {
	"action": "block",
	"code": "output.denied_term",
	"detector": "denylist",
	"message": concat("", ["the generated text contains a deny-listed term (category: ", lib.label(f.category), ")"]),
} if {
	some f in input.findings
	f.detector == "denylist"
	f.score >= lib.thresholds.denylist
}

# Review obligation for escalations (lib.review_obligation: approvals, priority, deadline, category).
review_categories contains h.review_category if {
	some h in hits
	h.action == "escalate"
}

default obligations := {}

obligations := {"review": lib.review_obligation(review_categories)} if {
	count(review_categories) > 0
}
