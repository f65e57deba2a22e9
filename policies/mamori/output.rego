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

# Review obligation for escalations. A category missing from data.mamori.review gets the
# strictest default (high priority).
priority_rank := {"low": 0, "normal": 1, "high": 2}

default_review := {"approvals": 1, "priority": "high"}

review_categories contains h.review_category if {
	some h in hits
	h.action == "escalate"
}

review_setting(category) := object.get(data.mamori.review, category, default_review)

category_rank(category) := object.get(priority_rank, review_setting(category).priority, 2)

top_rank := max({category_rank(c) | some c in review_categories})

# The most urgent category wins; ties go to the alphabetically first, so the choice is stable.
review_category := min({c | some c in review_categories; category_rank(c) == top_rank})

review_priority := p if {
	some p, r in priority_rank
	r == top_rank
}

default obligations := {}

obligations := {"review": {
	"approvals": max({review_setting(c).approvals | some c in review_categories}),
	"priority": review_priority,
	"category": review_category,
}} if {
	count(review_categories) > 0
}
