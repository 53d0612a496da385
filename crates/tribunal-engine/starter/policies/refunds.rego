# An example gate: refunds need a person above a threshold, and are never issued twice.
#
# At the gate (`tribunal serve`, `tribunal check --pending`) the step to judge is
# `input.pending`, and the trace is what came before it. `tribunal eval` judges finished
# traces, with nothing pending: there every call of the trace is judged.
package policies.refunds

import rego.v1

refund_calls := [c | some c in input.trace.tool_calls; c.name == "refund"]

pending_refunds := [c | some c in input.pending.tool_calls; c.name == "refund"]

# The refunds this decision is about: the pending ones, or, with nothing pending, all.
judged := pending_refunds if input.pending

judged := refund_calls if not input.pending

violation contains v if {
	some c in judged
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

violation contains v if {
	not input.pending
	count(refund_calls) > 1
	v := {
		"rule": "refunds.second_refund",
		"severity": "block",
		"message": sprintf("%d refunds were issued in one conversation", [count(refund_calls)]),
		"evidence": [c.id | some c in refund_calls],
	}
}
