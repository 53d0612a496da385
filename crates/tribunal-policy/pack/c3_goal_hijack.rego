# C3: goal hijack: untrusted content followed by a sensitive action.
package tribunal.pack.c3

import rego.v1
import data.tribunal.lib

# A sensitive call after untrusted content that carries injection markers.
violation contains v if {
	some c in lib.calls
	lib.sensitive(c.name)
	some m in input.trace.messages
	not m.trusted
	m.index < c.index
	score := lib.injection_score[m.id]
	score >= lib.cfg.injection.flow_threshold
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
	some c in lib.calls
	lib.sensitive(c.name)
	some d in lib.destinations(c)
	some m in input.trace.messages
	not m.trusted
	m.index < c.index
	contains(lower(m.content), d)
	not mentioned_by_trusted(d)
	v := {
		"rule": "c3.untrusted_destination",
		"severity": "block",
		"message": sprintf("%s sends to %s, which came from %s content %s and not from the user", [c.name, d, m.source, m.id]),
		"evidence": [m.id, c.id],
	}
}

mentioned_by_trusted(d) if {
	some t in lib.trusted_text
	contains(lower(t), d)
}
