package mamori.access_test

import rego.v1

import data.mamori.access

allowed(role, endpoint) := a if {
	a := access.allowed with input.principal as {"key_id": "k1", "tenant": "acme", "role": role}
		with input.stage as "access"
		with input.request as {"id": "r1", "endpoint": endpoint}
}

hits(role, endpoint) := h if {
	h := access.hits with input.principal as {"key_id": "k1", "tenant": "acme", "role": role}
		with input.stage as "access"
		with input.request as {"id": "r1", "endpoint": endpoint}
}

test_requester_may_generate if {
	allowed("requester", "images.generations") == true
}

test_requester_may_edit_and_read if {
	allowed("requester", "images.edits") == true
	allowed("requester", "requests.read") == true
	allowed("requester", "assets.read") == true
}

test_requester_may_not_decide_escalations if {
	allowed("requester", "escalations.decide") == false
	allowed("requester", "audit.read") == false
	allowed("requester", "keys.admin") == false
}

test_supervisor if {
	allowed("supervisor", "escalations.list") == true
	allowed("supervisor", "escalations.decide") == true
	allowed("supervisor", "images.generations") == false
	allowed("supervisor", "protected.write") == false
}

test_auditor if {
	allowed("auditor", "audit.read") == true
	allowed("auditor", "requests.read") == true
	allowed("auditor", "assets.read") == false
}

test_compliance if {
	allowed("compliance", "protected.write") == true
	allowed("compliance", "audit.read") == true
	allowed("compliance", "images.generations") == false
}

test_admin_everything_known if {
	every endpoint in data.mamori.endpoints {
		allowed("admin", endpoint) == true
	}
}

test_admin_unknown_endpoint_denied if {
	allowed("admin", "shell.exec") == false
}

test_unknown_role_denied if {
	allowed("root", "images.generations") == false
}

test_missing_principal_denied if {
	not access.allowed with input.stage as "access" with input.request as {"endpoint": "images.generations"}
}

test_missing_endpoint_denied if {
	not access.allowed with input.principal as {"role": "admin"} with input.stage as "access" with input.request as {}
}

test_denied_hit_has_code if {
	some h in hits("auditor", "keys.admin")
	h.code == "access.denied"
	h.action == "block"
}

test_allowed_has_no_hits if {
	count(hits("requester", "images.generations")) == 0
}
