# Output stage: generated images (and image batches) and generated text, before they are returned.
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

# --- generated text (chat answers, speech transcripts) ------------------------------------------
# The text detectors run on generated text at this stage too (gateway/text_pipeline.py output rails).

# Toxicity (insults, threats, harassment, identity hate, directed profanity) in generated text.
toxicity(f) if {
	f.detector == "toxicity"
}

hits contains {
	"action": "block",
	"code": "output.toxicity",
	"detector": "toxicity",
	"message": concat("", ["the generated text is toxic (category: ", lib.label(f.category), ")"]),
} if {
	some f in input.findings
	toxicity(f)
	f.score >= lib.thresholds.toxicity_block
}

hits contains {
	"action": "escalate",
	"code": "output.toxicity_review",
	"detector": "toxicity",
	"message": concat("", ["the generated text may be toxic (category: ", lib.label(f.category), ")"]),
	"review_category": "toxicity",
} if {
	some f in input.findings
	toxicity(f)
	f.score >= lib.thresholds.toxicity_review
	not f.score >= lib.thresholds.toxicity_block
}

# Unsafe content (unsafe_text categories) in generated text, on the prompt's thresholds.
hits contains {
	"action": "block",
	"code": "output.unsafe_text",
	"detector": "unsafe_text",
	"message": concat("", ["the generated text is unsafe content (category: ", lib.label(f.category), ")"]),
} if {
	some f in input.findings
	f.detector == "unsafe_text"
	f.score >= lib.thresholds.unsafe_text_block
}

hits contains {
	"action": "escalate",
	"code": "output.unsafe_text_review",
	"detector": "unsafe_text",
	"message": concat("", ["the generated text may be unsafe content (category: ", lib.label(f.category), ")"]),
	"review_category": lib.label(f.category),
} if {
	some f in input.findings
	f.detector == "unsafe_text"
	f.score >= lib.thresholds.unsafe_text_review
	not f.score >= lib.thresholds.unsafe_text_block
}

# Stereotypes (bias_text) in generated text go to review, as they do in a prompt.
hits contains {
	"action": "escalate",
	"code": "output.stereotype_review",
	"detector": "bias_text",
	"message": concat("", [
		"the generated text pins a stereotype on a group (",
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

# Protected names in generated text, as in a prompt: a protected real person in sexual, violent or
# defamatory generated text is refused; any other protected person, brand or character the answer
# names goes to review (a model that puts a character or a brand into its answer unasked).
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
	"code": "output.protected_person_harm",
	"detector": "protected_names",
	"message": "the generated text puts a protected real person in sexual, violent or defamatory content",
} if {
	some f in input.findings
	protected_name(f)
	object.get(f, ["evidence", "kind"], "") == "person"
	harmful_with_person
}

hits contains {
	"action": "escalate",
	"code": "output.protected_name",
	"detector": "protected_names",
	"message": concat("", ["the generated text names a protected ", lib.label(object.get(f, ["evidence", "kind"], "name"))]),
	"review_category": "protected_name",
} if {
	some f in input.findings
	protected_name(f)
}

# Instructions aimed at the next model in generated text (an answer that would carry a prompt
# injection into an agent or a later turn) go to review. Only at the block threshold: an answer
# that explains what a jailbreak is reads like one at lower scores.
hits contains {
	"action": "escalate",
	"code": "output.injection_review",
	"detector": "jailbreak",
	"message": "the generated text carries instructions that override a model's rules and needs review",
	"review_category": "jailbreak",
} if {
	some f in input.findings
	f.detector == "jailbreak"
	f.score >= lib.thresholds.jailbreak_block
}

# Personal data in generated text is redacted on the prompt's threshold (thresholds.pii), for the
# identifier types in data.mamori.output_pii_entities. Names, places, dates and nationalities are
# left out by default: an answer about history or travel is full of them, and a prompt's own PII
# was already redacted before generation. Absent data redacts nothing.
output_pii_entities := {e | some e in data.mamori.output_pii_entities; is_string(e)}

pii_findings contains f if {
	some f in input.findings
	f.detector == "pii"
	f.score >= lib.thresholds.pii
	object.get(f, ["evidence", "entity_type"], "") in output_pii_entities
}

redact_types contains f.evidence.entity_type if {
	some f in pii_findings
}

# An array built by iteration: rego-cpp 1.5's sort() returns a set, OPA's an array.
redact_list := [t | some t in sort(redact_types)]

hits contains {
	"action": "redact",
	"code": "output.pii",
	"detector": "pii",
	"message": concat("", ["the generated text contains personal data (", concat(", ", redact_list), ")"]),
} if {
	count(pii_findings) > 0
}

# --- image batches: perceived-attribute homogeneity (bias_image) -----------------------------------
# Each image's findings carry the batch measure (detectors/bias_image.py): homogeneity of one
# perceived attribute over the people in the batch. A homogeneous batch goes to review unless the
# prompt itself named that attribute ("a photo of two women"): the gateway may pass the attributes
# the prompt names as input.request.prompt_attributes (a list); without it none is named.
default prompt_attributes := []

prompt_attributes := input.request.prompt_attributes if is_array(input.request.prompt_attributes)

named_attributes := {a | some a in prompt_attributes; is_string(a)}

hits contains {
	"action": "escalate",
	"code": "output.bias_image_review",
	"detector": "bias_image",
	"message": concat("", [
		"the people in the generated batch look alike in ", lib.label(object.get(f, ["evidence", "attribute"], "")),
		" although the prompt names none",
	]),
	"review_category": "bias",
} if {
	some f in input.findings
	f.detector == "bias_image"
	f.category == "attribute_homogeneity"
	object.get(f, ["evidence", "measured"], false) == true
	f.score >= lib.thresholds.bias_image_review
	not object.get(f, ["evidence", "attribute"], "") in named_attributes
}

# Review obligation for escalations (lib.review_obligation: approvals, priority, deadline, category).
review_categories contains h.review_category if {
	some h in hits
	h.action == "escalate"
}

default redact_part := {}

redact_part := {"redact": redact_list} if count(pii_findings) > 0

default review_part := {}

review_part := {"review": lib.review_obligation(review_categories)} if count(review_categories) > 0

obligations := object.union(redact_part, review_part)
