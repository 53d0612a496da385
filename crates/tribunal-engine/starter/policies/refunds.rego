# An example gate: refunds need a person above a threshold, and are never issued twice.
package policies.refunds

import rego.v1

refund_calls := [c | some c in input.trace.tool_calls; c.name == "refund"]

pending_refunds := [c | some c in input.pending.tool_calls; c.name == "refund"]

violation contains v if {
	some c in pending_refunds
	c.arguments.amount > 250
	v := {
		"rule": "refunds.large_refund",
		"severity": "escalate",
		"message": sprintf("refund of %v needs a person's approval", [c.arguments.amount]),
		"evidence": [c.id],
	}
}

violation contains v if {
	count(pending_refunds) > 0
	count(refund_calls) > 0
	v := {
		"rule": "refunds.second_refund",
		"severity": "block",
		"message": "a refund was already issued in this conversation",
		"evidence": [c.id | some c in refund_calls],
	}
}
