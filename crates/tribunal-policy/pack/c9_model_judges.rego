# C9: what the built-in model judges answered. A reply judged unsafe, a moderation hazard
# category, or an injection the agent followed decides by itself, with the judge's rationale
# as the reason and its evidence. cfg.model_judges maps a score's name to the severity of
# each answer; answers it does not list (safe, none) change nothing. A judge of one of those
# kinds under a name of its own (`kind` beside its score) answers as its kind.
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c9"]
	some name, s in input.scores
	answers := cfg.model_judges[object.get(s, "kind", name)]
	is_string(s.value)
	severity := answers[s.value]
	v := {
		"rule": sprintf("c9.%s", [object.get(s, "kind", name)]),
		"severity": severity,
		"message": sprintf("judge %s answered %s: %s", [name, s.value, object.get(s, "rationale", "no rationale given")]),
		"evidence": s.evidence,
	}
}
