# C12: tool definitions changing under the agent ("rug pull"). The gate pins the first
# definition of each tool it sees offered to an agent and names in
# `input.context.tool_changes` every tool whose definition now differs from the pinned one
# ({name: {pinned, now, pinned_at}}), until a person approves the new definition. A call to
# such a tool gets the configured severity (`tools.definition_changed`: block, escalate or
# off); calls to the other tools go on (instructions written into the new description are
# read by the injection detector, like every tool description: c2).
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c12.tool_definition_changed"]
	severity := cfg.tools.definition_changed
	severity != "off"
	some c in pending_calls
	change := input.context.tool_changes[c.name]
	v := {
		"rule": "c12.tool_definition_changed",
		"severity": severity,
		"message": sprintf(
			"the definition of tool %s changed since it was pinned on %v (sha256 %v, now %v); a person must approve it",
			[c.name, change.pinned_at, change.pinned, change.now],
		),
		"evidence": [sprintf("tools.%s", [c.name]), c.id],
	}
}
