# C6: dangerous shell, SQL or code in tool arguments. A finding blocks unless
# cfg.commands.severities gives its kind another severity (escalate, warn, or off).
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c6.dangerous_command"]
	some f in input.findings
	f.detector == "dangerous_commands"
	f.score >= cfg.commands.threshold
	severity := object.get(cfg.commands.severities, f.kind, "block")
	severity != "off"
	v := {
		"rule": "c6.dangerous_command",
		"severity": severity,
		"message": sprintf("%s is called with a dangerous command (%s)", [f.tool, f.kind]),
		"evidence": finding_evidence(f),
	}
}

# A call that writes a file deciding who may log in or be root, or what runs by itself later
# (the sudoers file, an authorized_keys file, a git hook, a shell's startup file, a cron
# table or a service unit), by its path argument or the destination it moves or copies to:
# what the shell rules read in a command (`echo … >> /etc/sudoers`), read here in a file
# tool's call (`write_file(path=…)`) and in the files a command writes (`tee /etc/hosts`,
# `cp x.service /etc/systemd/system/`). The kinds, their paths and their severities are
# `cfg.commands.files`; a path is compared as written and in lower case, with `\` read as
# `/` and `//` and `/./` as `/`.
written_path_keys := path_keys | {
	"destination", "dest", "destination_path", "new_path", "to_path", "target_path",
	"output_path", "output_file", "outfile",
}

# The paths calls write: a state-changing call's path arguments, and the files a call's
# commands write (`files_written`: redirections, tee, cp and mv, sed -i, a download's output).
written_paths contains [c, path] if {
	some c in calls
	c.state_changing
	is_object(c.arguments)
	some path in object.filter(c.arguments, written_path_keys)
	is_string(path)
}

written_paths contains [c, path] if {
	some c in calls
	some path in c.files_written
}

violation contains v if {
	not skip["c6.sensitive_file_written"]
	some [c, path] in written_paths
	plain := regex.replace(replace(path, "\\", "/"), `/(\./)*/*`, "/")
	some kind, file in cfg.commands.files
	some p in {plain, lower(plain)}
	regex.match(file.pattern, p)
	severity := object.get(file, "severity", "block")
	severity != "off"
	v := {
		"rule": "c6.sensitive_file_written",
		"severity": severity,
		"message": sprintf("%s writes %s (%s)", [c.name, path, kind]),
		"evidence": [c.id],
	}
}
