# C6: dangerous shell, SQL or code in tool arguments.
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c6.dangerous_command"]
	some f in input.findings
	f.detector == "dangerous_commands"
	f.score >= cfg.commands.threshold
	v := {
		"rule": "c6.dangerous_command",
		"severity": "block",
		"message": sprintf("%s is called with a dangerous command (%s)", [f.tool, f.kind]),
		"evidence": finding_evidence(f),
	}
}
