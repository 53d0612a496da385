# Shared helpers for the default policy pack.
package tribunal.lib

import rego.v1

cfg := data.tribunal.config

# Every tool call: those in the trace and those of the pending step, with the index of the
# message that made them (the pending step comes after every message).
calls contains c if {
	some tc in input.trace.tool_calls
	c := {"id": tc.id, "name": tc.name, "arguments": tc.arguments, "message_id": tc.message_id, "index": tc.index}
}

calls contains c if {
	some tc in input.pending.tool_calls
	c := {"id": tc.id, "name": tc.name, "arguments": tc.arguments, "message_id": "pending", "index": count(input.trace.messages)}
}

# Text the agent says to its user: assistant replies and a pending reply.
replies contains r if {
	some m in input.trace.messages
	m.role == "assistant"
	m.content != ""
	r := {"id": m.id, "content": m.content}
}

replies contains r if {
	input.pending.content != ""
	r := {"id": "pending", "content": input.pending.content}
}

# Tools that act on the world: send, pay, delete, execute.
sensitive(name) if name in cfg.sensitive_tools.names

sensitive(name) if {
	some p in cfg.sensitive_tools.patterns
	regex.match(p, lower(name))
}

# Every string inside a value.
strings(v) := [s | walk(v, [_, s]); is_string(s)]

# Host names of the http(s) URLs in a text.
url_hosts(s) := {lower(m[1]) | some m in regex.find_all_string_submatch_n(`https?://([A-Za-z0-9.-]+)`, s, -1)}

# Email addresses in a text, lower-cased.
emails(s) := {lower(m[0]) | some m in regex.find_all_string_submatch_n(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`, s, -1)}

# Where a call sends things: URL hosts and email addresses in its arguments.
destinations(c) := {d |
	some s in strings(c.arguments)
	some d in union({url_hosts(s), emails(s)})
}

domain_allowed(host, domains) if {
	some d in domains
	host == lower(d)
}

domain_allowed(host, domains) if {
	some d in domains
	endswith(host, concat("", [".", lower(d)]))
}

email_domain(addr) := parts[count(parts) - 1] if parts := split(addr, "@")

# Combined injection score of one message: 1 - prod(1 - s) over its findings.
injection_score[id] := s if {
	some f in input.findings
	f.detector == "prompt_injection"
	id := f.id
	s := 1 - product([r | some g in input.findings; g.detector == "prompt_injection"; g.id == id; r := 1 - g.score])
}

# Text that the operator or the user wrote.
trusted_text contains m.content if {
	some m in input.trace.messages
	m.source in {"system", "user"}
}
