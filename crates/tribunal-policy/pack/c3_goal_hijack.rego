# C3: goal hijack: untrusted content followed by a sensitive action.
package tribunal.pack

import rego.v1

# A sensitive call after untrusted content that carries injection markers.
violation contains v if {
	some id, score in injection_score
	score >= cfg.injection.flow_threshold
	some m in input.trace.messages
	m.id == id
	not m.trusted
	some c in sensitive_calls
	m.index < c.index
	v := {
		"rule": "c3.untrusted_to_sensitive_action",
		"severity": "block",
		"message": sprintf("%s follows %s content %s with injection markers (score %.2f)", [c.name, m.source, m.id, score]),
		"evidence": [m.id, c.id],
	}
}

# A sensitive call whose destination (URL host or email address) appears only in untrusted
# content: the untrusted data chose where things go.
violation contains v if {
	some c in sensitive_calls
	some d in destinations(c)
	some m in input.trace.mentions[d]
	not m.trusted
	m.index < c.index
	not mentioned_by_trusted(d)
	v := {
		"rule": "c3.untrusted_destination",
		"severity": "block",
		"message": sprintf("%s sends to %s, which came from %s content %s and not from the user", [c.name, d, m.source, m.id]),
		"evidence": [m.id, c.id],
	}
}
