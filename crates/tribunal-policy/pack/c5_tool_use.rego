# C5: unauthorized or excessive tool use: tools not allowed for this agent, denied tools,
# arguments that break their schema or limits, destructive operations, paths outside the
# allowed roots.
package tribunal.pack

import rego.v1

# Loops start from the configured lists, which are usually empty, rather than from the calls.
violation contains v if {
	not skip["c5.denied_tool"]
	some name in cfg.tools.denied
	some c in calls
	tool_named(c.name, name)
	v := {
		"rule": "c5.denied_tool",
		"severity": "block",
		"message": sprintf("tool %s is denied", [c.name]),
		"evidence": [c.id],
	}
}

# Whether a call of `called` is a call of the tool a list names `listed`: the same name in
# another case or with `-` for `_` (`Admin-Console`), or the name an MCP client gives a
# server's tool (`mcp__acme__admin_console`). Tools are told apart by name, and a list must
# not miss one of them written another way. (The allow-lists compare names exactly: a name
# written another way is not on them.)
tool_named(called, listed) if same_tool_name(called, listed)

tool_named(called, listed) if {
	parts := split(called, "__")
	count(parts) >= 3
	parts[0] == "mcp"
	same_tool_name(concat("__", array.slice(parts, 2, count(parts))), listed)
}

same_tool_name(a, b) if lower(replace(a, "-", "_")) == lower(replace(b, "-", "_"))

# The arguments of a call that a limit on `field` reads: the one of that name in any case
# (`Amount` for `amount`), as Go's encoding/json and other readers that ignore case fill
# the field from it.
limited_arguments(c, field) := {key: value |
	is_object(c.arguments)
	some key, value in c.arguments
	lower(key) == lower(field)
}

# The allow-list that applies: the agent's own, else the global one (when not empty).
agent_allow_lists := [l |
	agent := input.context.agent
	is_string(agent)
	l := cfg.tools.agents[agent].allowed_tools
	is_array(l)
]

global_allow_lists := [l | l := cfg.tools.allowed; is_array(l); count(l) > 0]

allow_lists := array.concat(agent_allow_lists, global_allow_lists)

violation contains v if {
	not skip["c5.tool_not_allowed"]
	count(allow_lists) > 0
	list := allow_lists[0]
	some c in calls
	not c.name in list
	v := {
		"rule": "c5.tool_not_allowed",
		"severity": "block",
		"message": sprintf("tool %s is not allowed for agent %s", [c.name, object.get(input.context, "agent", "(any)")]),
		"evidence": [c.id],
	}
}

violation contains v if {
	not skip["c5.invalid_arguments"]
	some f in input.findings
	f.detector == "tool_arguments"
	v := {
		"rule": "c5.invalid_arguments",
		"severity": "block",
		"message": sprintf("arguments of %s do not match its schema", [f.tool]),
		"evidence": finding_evidence(f),
	}
}

# Numeric limits: tools.limits = {"refund": {"amount": {"max": 500, "severity": "escalate"}}}
# A number sent as a string ("900", " 9e2 ") counts as that number: tools that coerce their
# arguments (pydantic models, JavaScript) act on the number.
violation contains v if {
	not skip["c5.argument_limit"]
	some name, fields in cfg.tools.limits
	some c in calls
	tool_named(c.name, name)
	some field, limit in fields
	some key, given in limited_arguments(c, field)
	value := as_number(given)
	value > limit.max
	v := {
		"rule": "c5.argument_limit",
		"severity": object.get(limit, "severity", "escalate"),
		"message": sprintf("%s.%s = %v is above the limit %v", [c.name, key, shown(value), limit.max]),
		"evidence": [c.id],
	}
}

violation contains v if {
	not skip["c5.argument_limit"]
	some name, fields in cfg.tools.limits
	some c in calls
	tool_named(c.name, name)
	some field, limit in fields
	some key, value in limited_arguments(c, field)
	is_number(value)
	value < limit.min
	v := {
		"rule": "c5.argument_limit",
		"severity": object.get(limit, "severity", "escalate"),
		"message": sprintf("%s.%s = %v is below the limit %v", [c.name, key, value, limit.min]),
		"evidence": [c.id],
	}
}

# A destructive call needs a person's approval, unless the user's own words asked for that
# action (`requested`: "find and delete the largest file"): the user is the person, and the
# request is the approval. cfg.tools.destructive_when_requested sets the severity then
# ("off" by default; "escalate" asks a person every time). Which file a requested deletion
# hits is the provenance rules' and the alignment judge's question.
destructive_severity(c) := cfg.tools.destructive_when_requested if c.requested

else := "escalate"

violation contains v if {
	not skip["c5.destructive_tool"]
	some c in calls
	c.destructive
	destructive_severity(c) != "off"
	v := {
		"rule": "c5.destructive_tool",
		"severity": destructive_severity(c),
		"message": sprintf("%s is a destructive operation and needs a person's approval", [c.name]),
		"evidence": [c.id],
	}
}

path_keys := {"path", "file", "filename", "file_path", "filepath", "directory", "dir", "target"}

violation contains v if {
	not skip["c5.path_outside_allowed"]
	some c in calls
	is_object(c.arguments)
	some path in object.filter(c.arguments, path_keys)
	is_string(path)
	bad_path(path)
	v := {
		"rule": "c5.path_outside_allowed",
		"severity": "block",
		"message": sprintf("%s touches %s, outside the allowed paths", [c.name, path]),
		"evidence": [c.id],
	}
}

bad_path(path) if contains(path, "..")

bad_path(path) if {
	count(cfg.tools.allowed_paths) > 0
	not under_allowed(path)
}

under_allowed(path) if {
	some root in cfg.tools.allowed_paths
	startswith(path, root)
}

# A number, or the number a string spells in decimal (undefined for any other string,
# "NaN" and "Infinity" included).
as_number(x) := x if is_number(x)

as_number(x) := to_number(trim_space(x)) if {
	is_string(x)
	regex.match(`^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$`, x)
}

# A limited value the limit cannot be checked against (one that is not a number and spells
# none: "NaN", "lots", a list), and a call of a limited tool whose arguments could not be
# read at all, go to a person too: the tool may still act on a number the gate did not see.
# (A number too large for a double, such as 1e309 or Infinity, is read as the largest one
# and meets the limit above.)
violation contains v if {
	not skip["c5.argument_limit"]
	some name, fields in cfg.tools.limits
	some c in calls
	tool_named(c.name, name)
	some field, limit in fields
	some key, value in limited_arguments(c, field)
	value != null
	not as_number(value)
	v := {
		"rule": "c5.argument_limit",
		"severity": object.get(limit, "severity", "escalate"),
		"message": sprintf("%s.%s = %v is not a number its limit can be checked against", [c.name, key, value]),
		"evidence": [c.id],
	}
}

violation contains v if {
	not skip["c5.argument_limit"]
	some name, fields in cfg.tools.limits
	some c in calls
	tool_named(c.name, name)
	is_string(c.arguments)
	v := {
		"rule": "c5.argument_limit",
		"severity": limits_severity(fields),
		"message": sprintf("the arguments of %s could not be read, so its limits cannot be checked", [c.name]),
		"evidence": [c.id],
	}
}

# A value as a message shows it: a number too large for a double (1e309, Infinity, read as
# the largest one) as such, not as its 309 digits.
shown(x) := "a number too large to hold" if too_large(x)

shown(x) := x if not too_large(x)

too_large(x) if {
	is_number(x)
	abs(x) >= 1.7976931348623157e308
}

# The strictest severity of a tool's limits.
limits_severity(fields) := "block" if {
	some limit in fields
	object.get(limit, "severity", "escalate") == "block"
}

limits_severity(fields) := "escalate" if {
	every limit in fields {
		object.get(limit, "severity", "escalate") != "block"
	}
}
