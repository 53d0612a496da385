# C6: dangerous shell, SQL or code in tool arguments. A finding blocks unless
# cfg.commands.severities gives its kind another severity (escalate, warn, or off).
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c6.dangerous_command"]
	some f in input.findings
	f.detector == "dangerous_commands"
	f.score >= cfg.commands.threshold
	severity := object.get(cfg.commands.severities, f.kind, "block")
	severity != "off"
	v := {
		"rule": "c6.dangerous_command",
		"severity": severity,
		"message": sprintf("%s is called with a dangerous command (%s)", [f.tool, f.kind]),
		"evidence": finding_evidence(f),
	}
}
