# C2: indirect injection: instructions hidden in tool outputs, retrieved documents or other
# agents' messages.
package tribunal.pack.c2

import rego.v1
import data.tribunal.lib

violation contains v if {
	some m in input.trace.messages
	not m.trusted
	score := lib.injection_score[m.id]
	score >= lib.cfg.injection.untrusted_threshold
	v := {
		"rule": "c2.indirect_injection",
		"severity": "block",
		"message": sprintf("%s content %s (%s) carries injected instructions (score %.2f)", [m.source, m.id, m.name, score]),
		"evidence": [m.id],
	}
}
