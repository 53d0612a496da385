# C1: direct prompt injection or jailbreak in the user's own input.
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c1.direct_injection"]
	some id, score in injection_score
	score >= cfg.injection.user_threshold
	some m in input.trace.messages
	m.id == id
	m.source == "user"
	v := {
		"rule": "c1.direct_injection",
		"severity": "escalate",
		"message": sprintf("user message %s looks like a prompt injection (score %.2f)", [m.id, score]),
		"evidence": [m.id],
	}
}
