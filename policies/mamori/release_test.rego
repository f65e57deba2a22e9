package mamori.release_test

import rego.v1

import data.mamori.release

requester := {"key_id": "k_req", "tenant": "acme", "role": "requester"}

sup(key) := {"key_id": key, "role": "supervisor"}

# Tests set input field by field, with literal or local-variable values (see lib_test.rego).
hits_for(approvals, review, findings) := h if {
	h := release.hits with input.principal as {"key_id": "k_sup", "tenant": "acme", "role": "supervisor"}
		with input.stage as "release"
		with input.request as {"id": "r1", "endpoint": "escalations.decide", "requester_key_id": "k_req", "review": review}
		with input.approvals as approvals
		with input.findings as findings
}

codes(approvals, review, findings) := {h.code | some h in hits_for(approvals, review, findings)}

test_one_approval_releases if {
	codes([sup("s1")], {"category": "protected_work", "approvals": 1}, []) == set()
}

test_no_approval_holds if {
	codes([], {"category": "protected_work", "approvals": 1}, []) == {"release.awaiting_approvals"}
}

test_requester_cannot_approve_own if {
	approvals := [{"key_id": "k_req", "role": "supervisor"}]
	codes(approvals, {"category": "protected_work", "approvals": 1}, []) == {"release.awaiting_approvals", "release.self_approval"}
}

test_two_needed_same_key_twice_is_one if {
	approvals := [sup("s1"), sup("s1")]
	codes(approvals, {"category": "sexual", "approvals": 2}, []) == {"release.awaiting_approvals"}
}

test_two_distinct_release if {
	codes([sup("s1"), sup("s2")], {"category": "sexual", "approvals": 2}, []) == set()
}

test_requester_role_does_not_count if {
	approvals := [{"key_id": "k_other", "role": "requester"}]
	codes(approvals, {"category": "protected_work"}, []) == {"release.awaiting_approvals", "release.unqualified_approver"}
}

test_at_least_one_approval if {
	codes([], {"category": "sexual", "approvals": 0}, []) == {"release.awaiting_approvals"}
	codes([], {"category": "sexual"}, []) == {"release.awaiting_approvals"}
}

test_obligation_says_how_many if {
	o := release.obligations with input.principal as {"key_id": "k_sup", "tenant": "acme", "role": "supervisor"}
		with input.stage as "release"
		with input.request as {"id": "r1", "requester_key_id": "k_req", "review": {"approvals": 2}}
		with input.approvals as [{"key_id": "s1", "role": "admin"}]
		with input.findings as []
	o == {"review": {"approvals": 2, "have": 1}}
}

test_missing_requester_counts_nothing if {
	h := release.hits with input.stage as "release"
		with input.request as {"id": "r1", "review": {"approvals": 1}}
		with input.approvals as [{"key_id": "s1", "role": "supervisor"}]
		with input.findings as []
	{x.code | some x in h} == {"release.awaiting_approvals"}
}

test_floor_blocks_whatever_the_approvals if {
	f := {"detector": "image_safety", "category": "sexual_minors", "score": 0.9, "evidence": {}}
	approvals := [sup("s1"), sup("s2"), sup("s3")]
	c := codes(approvals, {"category": "sexual", "approvals": 1}, [f])
	c == {"release.floor"}
}

test_approvals_ok if {
	release.approvals_ok with input.approvals as [{"key_id": "a", "role": "admin"}]
	release.approvals_ok with input.approvals as []
	not release.approvals_ok with input.approvals as [{"key_id": 1, "role": "admin"}]
	not release.approvals_ok with input.approvals as "s1"
	not release.approvals_ok with input.stage as "release"
}

test_configured_roles if {
	r := release.approver_roles with data.mamori.approver_roles as ["admin"]
	r == {"admin"}
}
