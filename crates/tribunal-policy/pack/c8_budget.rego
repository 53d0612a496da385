# C8: loops, runaway cost and budget abuse: counters over the trace.
package tribunal.pack

import rego.v1

budget := cfg.budget

steps := count(input.trace.messages)

violation contains v if {
	not skip["c8.max_steps"]
	steps > budget.max_steps
	v := {
		"rule": "c8.max_steps",
		"severity": "block",
		"message": sprintf("%d steps, above the budget of %d", [steps, budget.max_steps]),
		"evidence": [],
	}
}

violation contains v if {
	not skip["c8.max_tool_calls"]
	n := count(calls)
	n > budget.max_tool_calls
	v := {
		"rule": "c8.max_tool_calls",
		"severity": "block",
		"message": sprintf("%d tool calls, above the budget of %d", [n, budget.max_tool_calls]),
		"evidence": [],
	}
}

violation contains v if {
	not skip["c8.max_calls_per_tool"]
	limit := budget.max_calls_per_tool
	some name, n in input.trace.calls_per_tool
	n > limit
	ids := [c.id | some c in calls; c.name == name]
	v := {
		"rule": "c8.max_calls_per_tool",
		"severity": "block",
		"message": sprintf("%s called %d times, above the budget of %d", [name, count(ids), budget.max_calls_per_tool]),
		"evidence": ids,
	}
}

violation contains v if {
	not skip["c8.repeated_calls"]
	score := input.scores.repeated_calls
	score.value >= budget.max_identical_calls
	v := {
		"rule": "c8.repeated_calls",
		"severity": "block",
		"message": sprintf("the same tool call is repeated %v times (loop)", [score.value]),
		"evidence": score.evidence,
	}
}

violation contains v if {
	not skip["c8.max_tokens"]
	total := input.trace.usage.total_tokens
	total > budget.max_total_tokens
	v := {
		"rule": "c8.max_tokens",
		"severity": "block",
		"message": sprintf("%d tokens used, above the budget of %d", [total, budget.max_total_tokens]),
		"evidence": [],
	}
}

violation contains v if {
	not skip["c8.max_cost"]
	cost := input.scores.cost.value
	is_number(cost)
	cost > budget.max_cost_usd
	v := {
		"rule": "c8.max_cost",
		"severity": "block",
		"message": sprintf("cost %.4f USD, above the budget of %.2f", [cost, budget.max_cost_usd]),
		"evidence": [],
	}
}
