# C4: exfiltration of secrets, PII or the system prompt through tool arguments, URLs,
# markdown images and replies; egress allow-lists for domains and recipients.
package tribunal.pack.c4

import rego.v1
import data.tribunal.lib

violation contains v if {
	some f in input.findings
	f.detector == "secrets"
	f.field == "arguments"
	f.score >= lib.cfg.secrets.threshold
	v := {
		"rule": "c4.secret_in_arguments",
		"severity": "block",
		"message": sprintf("a secret (%s) is passed to tool %s", [f.kind, f.tool]),
		"evidence": [x | some x in [f.id, f.tool_call_id]; x != null],
	}
}

violation contains v if {
	some f in input.findings
	f.detector == "secrets"
	f.field == "content"
	f.source == "assistant"
	f.score >= lib.cfg.secrets.threshold
	v := {
		"rule": "c4.secret_in_reply",
		"severity": "block",
		"message": sprintf("the agent's reply %s contains a secret (%s)", [f.id, f.kind]),
		"evidence": [f.id],
	}
}

violation contains v if {
	some f in input.findings
	f.detector == "pii"
	f.field == "arguments"
	f.score >= lib.cfg.pii.threshold
	not f.kind in lib.cfg.pii.allowed_kinds_in_arguments
	lib.sensitive(f.tool)
	v := {
		"rule": "c4.pii_in_arguments",
		"severity": "block",
		"message": sprintf("personal data (%s) is passed to tool %s", [f.kind, f.tool]),
		"evidence": [x | some x in [f.id, f.tool_call_id]; x != null],
	}
}

# URLs to hosts outside the allow-list (only when an allow-list is configured).
violation contains v if {
	count(lib.cfg.egress.allowed_domains) > 0
	some c in lib.calls
	some s in lib.strings(c.arguments)
	some host in lib.url_hosts(s)
	not lib.domain_allowed(host, lib.cfg.egress.allowed_domains)
	v := {
		"rule": "c4.egress_domain",
		"severity": "block",
		"message": sprintf("%s reaches %s, which is not an allowed domain", [c.name, host]),
		"evidence": [c.id],
	}
}

# Email recipients outside the allowed domains (only when configured).
violation contains v if {
	count(lib.cfg.egress.allowed_recipient_domains) > 0
	some c in lib.calls
	lib.sensitive(c.name)
	some s in lib.strings(c.arguments)
	some addr in lib.emails(s)
	not lib.domain_allowed(lib.email_domain(addr), lib.cfg.egress.allowed_recipient_domains)
	v := {
		"rule": "c4.external_recipient",
		"severity": "block",
		"message": sprintf("%s sends to %s, outside the allowed recipient domains", [c.name, addr]),
		"evidence": [c.id],
	}
}

# Markdown images in replies load a URL as soon as they are shown: data in the URL leaks.
violation contains v if {
	lib.cfg.egress.block_markdown_image_urls
	some r in lib.replies
	images := regex.find_all_string_submatch_n(`!\[[^\]]*\]\( *(https?://[^) ]+)`, r.content, -1)
	some m in images
	url := m[1]
	some host in lib.url_hosts(url)
	not lib.domain_allowed(host, lib.cfg.egress.allowed_domains)
	image_leaks(url)
	v := {
		"rule": "c4.markdown_image_exfiltration",
		"severity": "block",
		"message": sprintf("reply %s embeds an image from %s that carries data in its URL", [r.id, host]),
		"evidence": [r.id],
	}
}

image_leaks(url) if contains(url, "?")

image_leaks(_) if count(lib.cfg.egress.allowed_domains) > 0

# Lines of the system prompt copied into a tool call or a reply.
violation contains v if {
	some m in input.trace.messages
	m.source == "system"
	some line in split(m.content, "\n")
	count(trim_space(line)) >= lib.cfg.egress.system_prompt_min_line
	some c in lib.calls
	lib.sensitive(c.name)
	some s in lib.strings(c.arguments)
	contains(s, trim_space(line))
	v := {
		"rule": "c4.system_prompt_leak",
		"severity": "block",
		"message": sprintf("%s carries text of the system prompt", [c.name]),
		"evidence": [m.id, c.id],
	}
}
