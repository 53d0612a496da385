package policies.refunds_test

import rego.v1

import data.policies.refunds

pending(amount) := {"kind": "tool_call", "tool_calls": [{"id": "p1", "name": "refund", "arguments": {"amount": amount}}]}

test_small_refund_is_allowed if {
	count(refunds.violation) == 0 with input as {"trace": {"tool_calls": []}, "pending": pending(40)}
}

test_large_refund_escalates if {
	some v in refunds.violation with input as {"trace": {"tool_calls": []}, "pending": pending(900)}
	v.rule == "refunds.large_refund"
}

test_second_refund_is_blocked if {
	earlier := {"id": "c1", "name": "refund", "arguments": {"amount": 10}, "message_id": "m1", "index": 1}
	some v in refunds.violation with input as {"trace": {"tool_calls": [earlier]}, "pending": pending(10)}
	v.rule == "refunds.second_refund"
}

# Finished traces (`tribunal eval`): nothing is pending, every refund of the trace counts.
refund(id, amount) := {"id": id, "name": "refund", "arguments": {"amount": amount}, "message_id": "m1", "index": 1}

test_a_finished_trace_with_a_large_refund_escalates if {
	some v in refunds.violation with input as {"trace": {"tool_calls": [refund("c1", 900)]}}
	v.rule == "refunds.large_refund"
}

test_a_finished_trace_with_two_refunds_is_blocked if {
	some v in refunds.violation with input as {"trace": {"tool_calls": [refund("c1", 10), refund("c2", 10)]}}
	v.rule == "refunds.second_refund"
}

test_a_finished_trace_with_one_small_refund_is_allowed if {
	count(refunds.violation) == 0 with input as {"trace": {"tool_calls": [refund("c1", 40)]}}
}
