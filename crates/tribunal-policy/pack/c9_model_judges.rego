# C9: what the built-in model judges answered. A reply judged unsafe, a moderation hazard
# category, or an injection the agent followed decides by itself, with the judge's rationale
# as the reason and its evidence. cfg.model_judges maps a score's name to the severity of
# each answer; answers it does not list (safe, none) change nothing.
package tribunal.pack

import rego.v1

violation contains v if {
	not skip["c9"]
	some name, answers in cfg.model_judges
	s := input.scores[name]
	is_string(s.value)
	severity := answers[s.value]
	v := {
		"rule": sprintf("c9.%s", [name]),
		"severity": severity,
		"message": sprintf("judge %s answered %s: %s", [name, s.value, object.get(s, "rationale", "no rationale given")]),
		"evidence": s.evidence,
	}
}
