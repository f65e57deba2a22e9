# Access stage: may this principal's role call this endpoint? Default deny.
package mamori.access

import rego.v1

known_endpoint if input.request.endpoint in data.mamori.endpoints

default allowed := false

allowed if {
	known_endpoint
	some permitted in data.mamori.roles[input.principal.role]
	permitted in {input.request.endpoint, "*"}
}

hits contains {
	"action": "block",
	"code": "access.denied",
	"detector": "policy",
	"message": "the principal's role may not call this endpoint",
} if {
	not allowed
}

obligations := {}
