# C3: goal hijack: untrusted content followed by a sensitive action.
package tribunal.pack

import rego.v1

# A sensitive call after untrusted content that carries injection markers.
violation contains v if {
	not skip["c3.untrusted_to_sensitive_action"]
	some id, score in injection_score
	score >= cfg.injection.flow_threshold
	some m in input.trace.messages
	m.id == id
	not m.trusted
	some c in sensitive_calls
	m.index < c.index
	v := {
		"rule": "c3.untrusted_to_sensitive_action",
		"severity": "block",
		"message": sprintf("%s follows %s content %s with injection markers (score %.2f)", [c.name, m.source, m.id, score]),
		"evidence": [m.id, c.id],
	}
}

# A sensitive call whose destination (URL host or email address) appears only in untrusted
# content: the untrusted data chose where things go. An e-mail address that untrusted content
# gave only as a field's value (a sender, a participant list) is data the agent looked up,
# not an instruction, and does not count.
violation contains v if {
	not skip["c3.untrusted_destination"]
	some c in sensitive_calls
	some d in destinations(c)
	some m in input.trace.mentions[d]
	not m.trusted
	m.index < c.index
	not mentioned_by_trusted(d)
	not field_address(c, d)
	not vouched_host(c, d)
	v := {
		"rule": "c3.untrusted_destination",
		"severity": "block",
		"message": sprintf("%s sends to %s, which came from %s content %s and not from the user", [c.name, d, m.source, m.id]),
		"evidence": [m.id, c.id],
	}
}

# A sensitive call passes, as its destination, recipient or target (`to`, `recipients`,
# `account`, `iban`, `url`, `path`, `file_id`: cfg.provenance.target_arguments), an
# identifier that only untrusted content gave, inside its prose, and that the user and the
# operator never gave: the untrusted text chose the target. Values a tool returned as plain
# fields (a contact's address, a file list, a sharing list) do not count; values in a
# sentence of a tool result, a retrieved chunk or another agent's message do. Identifiers in
# content arguments (an invoice number quoted in an e-mail's body) are data the task
# carries, not where it goes, and do not count either. Kinds: cfg.provenance.target_kinds.
violation contains v if {
	not skip["c3.untrusted_argument"]
	some c in sensitive_calls
	some arg, sources in c.argument_sources
	some s in sources
	s.target
	s.in_text
	not s.vouched
	s.kind in cfg.provenance.target_kinds
	v := {
		"rule": "c3.untrusted_argument",
		"severity": cfg.provenance.severity,
		"message": sprintf("%s.%s = %s (%s) came only from %s content %s, not from the user", [c.name, arg, s.value, s.kind, s.source, s.id]),
		"evidence": [s.id, c.id],
	}
}

# A state-changing call after untrusted content that nothing the user said relates to: no
# word of the tool's name (or a synonym in cfg.alignment.synonyms) is in the user's
# messages, the user did not hand the choice of actions to a document
# (cfg.alignment.delegation), no identifier it passes came from the user or the operator, and
# no argument value is one the user gave (an order number, a title, an amount they named).
# Browser navigation (click, goto, tabs) changes what the agent sees, not the world, and is
# not state-changing. The severity is
# cfg.alignment.tools[name] when set ("off" turns the rule off for that tool), else
# cfg.alignment.severity.
alignment_severity(name) := s if {
	s := cfg.alignment.tools[name]
	is_string(s)
} else := cfg.alignment.severity

# Without a request from the user (a trace of tool traffic only, as an MCP gateway sees it)
# there is nothing to measure the call against, and the rule stays silent.
user_asked if {
	some m in input.trace.messages
	m.role == "user"
	m.content != ""
}

violation contains v if {
	not skip["c3.unwarranted_action"]
	user_asked
	some c in calls
	c.state_changing
	not c.warranted
	m := input.trace.messages[c.after_untrusted]
	severity := alignment_severity(c.name)
	severity != "off"
	v := {
		"rule": "c3.unwarranted_action",
		"severity": severity,
		"message": sprintf("%s changes something after %s content %s, and nothing the user asked for relates to it", [c.name, m.source, m.id]),
		"evidence": [m.id, c.id],
	}
}

# The call passes a URL on host d that the user or the operator vouched for (argument
# provenance: a link on a site the user named, opened without a query).
vouched_host(c, d) if {
	some l in c.argument_sources
	some s in l
	s.kind == "url"
	s.vouched
	url_host(s.value) == d
}

url_host(v) := split(split(split(split(v, "/")[0], "?")[0], "#")[0], ":")[0]

field_address(c, d) if {
	some l in c.argument_sources
	some s in l
	s.kind == "email"
	s.value == d
	not s.in_text
}
