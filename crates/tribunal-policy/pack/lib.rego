# Shared helpers of the default policy pack. Every file of the pack is one package, so one
# evaluation computes each helper once; helpers are complete rules or functions over facts
# precomputed in the input.
package tribunal.pack

import rego.v1

cfg := data.tribunal.config

# Rules known not to fire on this input, which are then not evaluated: the screen in front of
# the pack (tribunal-policy's screen.rs) checks in Rust a condition wider than each rule and
# names, in input.screen.skip, the rules whose condition does not hold (the model judges'
# rules as "c9"). An input without it runs every rule.
default skip := {}

skip := input.screen.skip

default pending_calls := []

pending_calls := input.pending.tool_calls if is_array(input.pending.tool_calls)

# Every tool call: those in the trace and those of the pending step, with the index of the
# message that made them (the pending step comes after every message).
calls := array.concat(input.trace.tool_calls, pending_calls)

# Tools that act on the world (send, pay, delete, execute). Tribunal marks each call
# `sensitive` and `destructive` from cfg.sensitive_tools and cfg.tools.destructive_patterns.
sensitive_calls := [c | some c in calls; c.sensitive]

sensitive_call_ids := {c.id | some c in sensitive_calls}

# Where a call sends things: URL hosts and email addresses in its arguments.
destinations(c) := array.concat(object.get(c, "hosts", []), object.get(c, "emails", []))

domain_allowed(host, domains) if {
	some d in domains
	host == lower(d)
}

domain_allowed(host, domains) if {
	some d in domains
	endswith(host, concat("", [".", lower(d)]))
}

email_domain(addr) := parts[count(parts) - 1] if parts := split(addr, "@")

# Combined injection score per message id: 1 - prod(1 - s) over its findings.
injection_findings := [f | some f in input.findings; f.detector == "prompt_injection"]

injection_ids := {f.id | some f in injection_findings}

injection_score := {id: s |
	some id in injection_ids
	s := 1 - product([r | some g in injection_findings; g.id == id; r := 1 - g.score])
}

# Was destination d (URL host or email) mentioned by the operator or the user?
mentioned_by_trusted(d) if {
	some x in input.trace.mentions[d]
	x.source in {"system", "user"}
}

# Markdown images in what the agent says: [message id, url, host].
reply_images contains [m.id, img.url, img.host] if {
	some m in input.trace.messages
	some img in m.images
	m.role == "assistant"
}

reply_images contains ["pending", img.url, img.host] if {
	some img in input.pending.images
}

# Evidence ids of a finding: its message and, for arguments, the tool call.
finding_evidence(f) := [f.id, f.tool_call_id] if {
	f.tool_call_id
} else := [f.id]
