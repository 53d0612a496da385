# C1: direct prompt injection or jailbreak in the user's own input.
package tribunal.pack.c1

import rego.v1
import data.tribunal.lib

violation contains v if {
	some m in input.trace.messages
	m.source == "user"
	score := lib.injection_score[m.id]
	score >= lib.cfg.injection.user_threshold
	v := {
		"rule": "c1.direct_injection",
		"severity": "escalate",
		"message": sprintf("user message %s looks like a prompt injection (score %.2f)", [m.id, score]),
		"evidence": [m.id],
	}
}
