# C6: dangerous shell, SQL or code in tool arguments.
package tribunal.pack.c6

import rego.v1
import data.tribunal.lib

violation contains v if {
	some f in input.findings
	f.detector == "dangerous_commands"
	f.score >= lib.cfg.commands.threshold
	v := {
		"rule": "c6.dangerous_command",
		"severity": "block",
		"message": sprintf("%s is called with a dangerous command (%s)", [f.tool, f.kind]),
		"evidence": [x | some x in [f.id, f.tool_call_id]; x != null],
	}
}
