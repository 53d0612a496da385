# C4: exfiltration of secrets, PII or the system prompt through tool arguments, URLs,
# markdown images and replies; egress allow-lists for domains and recipients.
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c4.secret_in_arguments"]
	some f in input.findings
	f.detector == "secrets"
	f.field == "arguments"
	f.score >= cfg.secrets.threshold
	v := {
		"rule": "c4.secret_in_arguments",
		"severity": "block",
		"message": sprintf("a secret (%s) is passed to tool %s", [f.kind, f.tool]),
		"evidence": finding_evidence(f),
	}
}

# A secret in the agent's reply. The reply goes back to the user, so a secret the user asked
# for and that the agent found for them is the task, not a leak: "get me the link to reset my
# password" answered with the reset link from the user's mailbox. The rule stays silent only
# when all of these hold:
# - the secret is of a kind a user asks to be handed (cfg.secrets.requestable_kinds: reset
#   tokens in links, codes, generic tokens), never a provider's API key or a private key;
# - a user message before the reply asks for such a thing (cfg.secrets.request_words:
#   password, reset link, security code ...);
# - the agent copied the secret from what the user or a tool or retrieval gave it
#   (copied_from, cfg.secrets.requestable_from), never from the system prompt (an operator's
#   secret is not the user's to ask for) and not from nowhere.
# A secret the user did not ask for still blocks, and so does one that leaves through a tool
# call (c4.secret_in_arguments) or an image URL (c4.markdown_image_exfiltration), asked for
# or not: those are external sinks, not the user.
violation contains v if {
	not skip["c4.secret_in_reply"]
	some f in input.findings
	f.detector == "secrets"
	f.field == "content"
	f.source == "assistant"
	f.score >= cfg.secrets.threshold
	not secret_handed_to_user(f)
	v := {
		"rule": "c4.secret_in_reply",
		"severity": "block",
		"message": sprintf("the agent's reply %s contains a secret (%s)", [f.id, f.kind]),
		"evidence": [f.id],
	}
}

secret_handed_to_user(f) if {
	f.kind in cfg.secrets.requestable_kinds
	from := object.get(f, "copied_from", [])
	count(from) > 0
	every source in from {
		source in cfg.secrets.requestable_from
	}
	user_asked_for_secret(reply_index(f.id))
}

# Where a reply sits: its message's index, or after every message for the pending step.
reply_index(id) := count(input.trace.messages) if id == "pending"

reply_index(id) := m.index if {
	some m in input.trace.messages
	m.id == id
}

user_asked_for_secret(before) if {
	some m in input.trace.messages
	m.index < before
	m.source == "user"
	said := lower(m.content)
	some word in cfg.secrets.request_words
	contains(said, word)
}

# Personal data passed to a tool that acts on the world is a leak when it did not come from
# the user: a card number or IBAN read from a tool result and sent out. When the user gave
# every value of that kind the call passes (pay this IBAN, book with my card), the flow is
# the task itself, not a leak, and the rule stays silent. cfg.pii.traced_kinds maps a
# finding's kind to the identifier kinds of the argument provenance that carry it; kinds it
# does not list (ssn, national ids) are always flagged.
violation contains v if {
	not skip["c4.pii_in_arguments"]
	some f in input.findings
	f.detector == "pii"
	f.field == "arguments"
	f.score >= cfg.pii.threshold
	not f.kind in cfg.pii.allowed_kinds_in_arguments
	f.tool_call_id in sensitive_call_ids
	not user_gave_personal_data(f.tool_call_id, f.kind)
	v := {
		"rule": "c4.pii_in_arguments",
		"severity": "block",
		"message": sprintf("personal data (%s) is passed to tool %s", [f.kind, f.tool]),
		"evidence": finding_evidence(f),
	}
}

user_gave_personal_data(call_id, kind) if {
	some c in sensitive_calls
	c.id == call_id
	kinds := object.get(cfg.pii.traced_kinds, kind, [])
	found := [s | some l in c.argument_sources; some s in l; s.kind in kinds]
	count(found) > 0
	every s in found {
		s.vouched
	}
}

# URLs to hosts outside the allow-list (only when an allow-list is configured).
violation contains v if {
	not skip["c4.egress_domain"]
	count(cfg.egress.allowed_domains) > 0
	some c in calls
	some host in c.hosts
	not domain_allowed(host, cfg.egress.allowed_domains)
	v := {
		"rule": "c4.egress_domain",
		"severity": "block",
		"message": sprintf("%s reaches %s, which is not an allowed domain", [c.name, host]),
		"evidence": [c.id],
	}
}

# Email recipients outside the allowed domains (only when configured).
violation contains v if {
	not skip["c4.external_recipient"]
	count(cfg.egress.allowed_recipient_domains) > 0
	some c in sensitive_calls
	some addr in c.emails
	not domain_allowed(email_domain(addr), cfg.egress.allowed_recipient_domains)
	v := {
		"rule": "c4.external_recipient",
		"severity": "block",
		"message": sprintf("%s sends to %s, outside the allowed recipient domains", [c.name, addr]),
		"evidence": [c.id],
	}
}

# Markdown images in replies load a URL as soon as they are shown: data in the URL leaks.
violation contains v if {
	not skip["c4.markdown_image_exfiltration"]
	cfg.egress.block_markdown_image_urls
	some [id, url, host] in reply_images
	not domain_allowed(host, cfg.egress.allowed_domains)
	image_leaks(id, url, host)
	v := {
		"rule": "c4.markdown_image_exfiltration",
		"severity": "block",
		"message": sprintf("reply %s embeds an image from %s that carries data in its URL", [id, host]),
		"evidence": [id],
	}
}

image_leaks(_, url, _) if contains(url, "?")

image_leaks(_, _, _) if count(cfg.egress.allowed_domains) > 0

# An image on a host that only untrusted content named, at an address no message gave whole
# before the reply: the agent composed it as that content told it to, and whatever it put in
# the path (an address, a name, an encoded secret) leaves with the request.
image_leaks(id, url, host) if {
	some m in input.trace.mentions[host]
	not m.trusted
	not mentioned_by_trusted(host)
	not url_given_before(id, url)
}

url_given_before(id, url) if {
	some m in input.trace.messages
	m.id != id
	contains(m.content, url)
}

# Lines of the system prompt copied into a sensitive tool call.
violation contains v if {
	not skip["c4.system_prompt_leak"]
	some c in sensitive_calls
	some m in input.trace.messages
	m.source == "system"
	some line in split(m.content, "\n")
	count(trim_space(line)) >= cfg.egress.system_prompt_min_line
	contains(c.arguments_text, trim_space(line))
	v := {
		"rule": "c4.system_prompt_leak",
		"severity": "block",
		"message": sprintf("%s carries text of the system prompt", [c.name]),
		"evidence": [m.id, c.id],
	}
}
