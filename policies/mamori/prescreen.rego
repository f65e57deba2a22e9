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

# The floor (lib.floor_finding): a request for sexual content involving minors (deny-list term
# category csam, or an uploaded image in category sexual_minors) is refused whatever a tenant sets.
hits contains {
	"action": "block",
	"code": "prescreen.floor",
	"detector": lib.label(f.detector),
	"message": concat("", ["the request is refused by the floor (category: ", f.category, ")"]),
} if {
	some f in input.findings
	lib.floor_finding(f)
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

# Unsafe instructions (unsafe_text: sexual, violence, weapons, drugs, hate, ... scored in [0, 1]).
hits contains {
	"action": "block",
	"code": "prescreen.unsafe_text",
	"detector": "unsafe_text",
	"message": concat("", ["the prompt asks for unsafe content (category: ", lib.label(f.category), ")"]),
} if {
	some f in input.findings
	f.detector == "unsafe_text"
	f.score >= lib.thresholds.unsafe_text_block
}

hits contains {
	"action": "escalate",
	"code": "prescreen.unsafe_text_review",
	"detector": "unsafe_text",
	"message": concat("", ["the prompt may ask for unsafe content (category: ", lib.label(f.category), ")"]),
	"review_category": lib.label(f.category),
} if {
	some f in input.findings
	f.detector == "unsafe_text"
	f.score >= lib.thresholds.unsafe_text_review
	not f.score >= lib.thresholds.unsafe_text_block
}

# Jailbreaks and prompt injection.
hits contains {
	"action": "block",
	"code": "prescreen.jailbreak",
	"detector": "jailbreak",
	"message": "the prompt tries to override Mamori's or the model's instructions",
} if {
	some f in input.findings
	f.detector == "jailbreak"
	f.score >= lib.thresholds.jailbreak_block
}

hits contains {
	"action": "escalate",
	"code": "prescreen.jailbreak_review",
	"detector": "jailbreak",
	"message": "the prompt may try to override instructions",
	"review_category": "jailbreak",
} if {
	some f in input.findings
	f.detector == "jailbreak"
	f.score >= lib.thresholds.jailbreak_review
	not f.score >= lib.thresholds.jailbreak_block
}

# Toxic prompts (insults, threats, slurs aimed at someone): review at most, and only for clear
# cases (thresholds.toxicity_prompt_review, above the output's review threshold), so that venting,
# quoting or a story's villain in a prompt is not held. Requests for hateful or harassing content
# are unsafe_text's categories (hate, harassment) above.
hits contains {
	"action": "escalate",
	"code": "prescreen.toxicity_review",
	"detector": "toxicity",
	"message": concat("", ["the prompt is toxic (category: ", lib.label(f.category), ")"]),
	"review_category": "toxicity",
} if {
	some f in input.findings
	f.detector == "toxicity"
	f.score >= lib.thresholds.toxicity_prompt_review
}

# Stereotypes (bias_text): a group term with a stereotyped descriptor pinned on it goes to review.
hits contains {
	"action": "escalate",
	"code": "prescreen.stereotype_review",
	"detector": "bias_text",
	"message": concat("", [
		"the prompt pins a stereotype on a group (",
		lib.label(object.get(f, ["evidence", "group"], "unknown")),
		")",
	]),
	"review_category": "bias",
} if {
	some f in input.findings
	f.detector == "bias_text"
	f.category == "stereotype"
	f.score >= lib.thresholds.bias_text_review
}

# Protected names: a real person in sexual, violent or real-person imagery is refused; any
# protected person, brand or character otherwise goes to review.
protected_name(f) if {
	f.detector == "protected_names"
	f.category == "protected_name"
	f.score >= lib.thresholds.protected_name
}

harmful_with_person if {
	some f in input.findings
	f.detector == "unsafe_text"
	f.category in {"sexual", "violence", "real_person"}
	f.score >= lib.thresholds.unsafe_text_review
}

hits contains {
	"action": "block",
	"code": "prescreen.protected_person_harm",
	"detector": "protected_names",
	"message": "the prompt puts a protected real person in sexual, violent or defamatory content",
} if {
	some f in input.findings
	protected_name(f)
	object.get(f, ["evidence", "kind"], "") == "person"
	harmful_with_person
}

hits contains {
	"action": "escalate",
	"code": "prescreen.protected_name",
	"detector": "protected_names",
	"message": concat("", ["the prompt names a protected ", lib.label(object.get(f, ["evidence", "kind"], "name"))]),
	"review_category": "protected_name",
} if {
	some f in input.findings
	protected_name(f)
}

review_categories contains h.review_category if {
	some h in hits
	h.action == "escalate"
}

default redact_part := {}

redact_part := {"redact": redact_list} if count(pii_findings) > 0

default review_part := {}

review_part := {"review": lib.review_obligation(review_categories)} if count(review_categories) > 0

obligations := object.union(redact_part, review_part)

# Edits of uploaded assets (issue 7): the gateway reads the upload's own C2PA manifest and passes
# a summary as input.request.source_manifest {state, manifest_id, labels, mamori_decision,
# training_mining}. What refuses an edit is data (data.mamori.edit_sources); absent data refuses nothing.
default edit_sources := {}

edit_sources := data.mamori.edit_sources

default source_manifest := {}

source_manifest := input.request.source_manifest

edit_strings(name) := {s | some s in object.get(edit_sources, name, []); is_string(s)}

# The manifest does not validate (state Invalid): the file was changed after it was signed.
hits contains {
	"action": "block",
	"code": "prescreen.source_manifest_invalid",
	"detector": "provenance",
	"message": concat("", ["the uploaded image's C2PA manifest does not validate (", lib.label(source_manifest.state), ")"]),
} if {
	source_manifest.state in edit_strings("refuse_states")
}

# A Mamori gateway recorded a refusing decision for the upload.
hits contains {
	"action": "block",
	"code": "prescreen.source_decision",
	"detector": "provenance",
	"message": concat("", [
		"the uploaded image's manifest records a Mamori decision of ",
		lib.label(source_manifest.mamori_decision),
	]),
} if {
	source_manifest.mamori_decision in edit_strings("refuse_decisions")
}

# A "do not edit" assertion (by label).
hits contains {
	"action": "block",
	"code": "prescreen.source_no_edit",
	"detector": "provenance",
	"message": concat("", ["the uploaded image's manifest forbids editing (", label, ")"]),
} if {
	some label in source_manifest.labels
	label in edit_strings("refuse_assertions")
}

# A training-and-mining assertion that does not allow AI use of the asset (editing is AI inference).
hits contains {
	"action": "block",
	"code": "prescreen.source_no_ai_use",
	"detector": "provenance",
	"message": concat("", ["the uploaded image's manifest does not allow AI use (", entry, ": notAllowed)"]),
} if {
	some entry, use in source_manifest.training_mining
	entry in edit_strings("refuse_ai_uses")
	use == "notAllowed"
}
