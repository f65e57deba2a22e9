# Prescreen stage: the request before generation (prompt text, uploaded edit sources).
package mamori.prescreen

import rego.v1

import data.mamori.lib

# Messages are built with concat: rego-cpp's sprintf quotes computed strings without escaping.

# Deny-listed terms (any term category) block.
hits contains {
	"action": "block",
	"code": "prescreen.denied_term",
	"detector": "denylist",
	"message": concat("", ["the prompt contains a deny-listed term (category: ", lib.label(f.category), ")"]),
} if {
	some f in input.findings
	f.detector == "denylist"
	f.score >= lib.thresholds.denylist
}

# Personal data is redacted; the obligation lists the entity types.
pii_findings contains f if {
	some f in input.findings
	f.detector == "pii"
	f.score >= lib.thresholds.pii
}

redact_types contains lib.label(object.get(f, ["evidence", "entity_type"], "UNKNOWN")) if {
	some f in pii_findings
}

# An array built by iteration: rego-cpp 1.5's sort() returns a set, OPA's an array.
redact_list := [t | some t in sort(redact_types)]

hits contains {
	"action": "redact",
	"code": "prescreen.pii",
	"detector": "pii",
	"message": concat("", ["the prompt contains personal data (", concat(", ", redact_list), ")"]),
} if {
	count(pii_findings) > 0
}

# Uploaded images (edit sources, evidence.role == "edit_source") are checked before editing.
# Any image finding in this stage is about an uploaded image, so the role is not required.
hits contains {
	"action": "block",
	"code": "prescreen.unsafe_source",
	"detector": "image_safety",
	"message": "an uploaded source image is sexual content",
} if {
	some f in input.findings
	f.detector == "image_safety"
	f.category == "sexual"
	f.score >= lib.thresholds.image_sexual_block
}

hits contains {
	"action": "block",
	"code": "prescreen.protected_source",
	"detector": "copyright",
	"message": "an uploaded source image matches a protected work",
} if {
	some f in input.findings
	f.detector == "copyright"
	f.category == "protected_work"
	f.score >= lib.thresholds.protected_work
}

default obligations := {}

obligations := {"redact": redact_list} if count(pii_findings) > 0
