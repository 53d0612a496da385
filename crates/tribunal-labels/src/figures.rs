//! Agreement and quality figures of a queue: over the schema (percent agreement, Cohen's κ
//! for every pair of people, weighted for ordered labels, Fleiss' κ, Krippendorff's α at the
//! schema's level), per person (labels, skips, gold accuracy, agreement with the others, time
//! per item and labels per hour), per item (how far its labels agree) and the tied judge
//! against people (agreement and κ with a bootstrap 95 % interval). A figure that cannot be
//! computed (one category, one label per item) says why instead of a number.

use crate::agreement::{self, Label, Level, NotComputable, Weights};
use crate::queue;
use crate::schema::{Kind, Schema};
use crate::state::QueueState;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The level of measurement of a schema's labels.
pub fn level(schema: &Schema) -> Option<Level> {
    match &schema.kind {
        Kind::Numeric { .. } => Some(Level::Interval),
        Kind::Categorical { ordered: true, .. } => Some(Level::Ordinal),
        Kind::Text => None,
        _ => Some(Level::Nominal),
    }
}

/// A stored value as a label for the statistics: numbers as numbers, an ordered option as
/// its place on the scale, everything else as a category.
pub fn as_label(schema: &Schema, v: &Value) -> Label {
    match (&schema.kind, v) {
        (_, Value::Number(n)) => Label::Number(n.as_f64().unwrap_or(0.0)),
        (
            Kind::Categorical {
                options,
                ordered: true,
                ..
            },
            Value::String(s),
        ) => match options.iter().position(|o| o == s) {
            Some(i) => Label::Number(i as f64),
            None => Label::Category(s.clone()),
        },
        (_, Value::String(s)) => Label::Category(s.clone()),
        (_, other) => Label::Category(other.to_string()),
    }
}

fn figure(r: Result<f64, NotComputable>) -> Value {
    match r {
        Ok(v) if v.is_finite() => json!(v),
        Ok(_) => json!({"not_computable": "the figure is not a finite number"}),
        Err(e) => json!({"not_computable": e.0}),
    }
}

fn interval(r: Result<agreement::WithInterval, NotComputable>) -> Value {
    match r {
        Ok(w) => json!({"value": w.value, "low": w.low, "high": w.high, "resamples": w.resamples}),
        Err(e) => json!({"not_computable": e.0}),
    }
}

/// The label people settled on for an item: the reviewer's final label, else the label of a
/// strict majority of its labels once all are in.
pub fn consensus(held: &QueueState, item: &str, labels: &[(String, Value)]) -> Option<Value> {
    if let Some((v, _)) = held.queue.final_label(item) {
        return Some(v.clone());
    }
    if labels.len() < held.def.overlap || labels.is_empty() {
        return None;
    }
    let mut counts: Vec<(&Value, usize)> = Vec::new();
    for (_, v) in labels {
        match counts.iter_mut().find(|(x, _)| *x == v) {
            Some(c) => c.1 += 1,
            None => counts.push((v, 1)),
        }
    }
    counts
        .into_iter()
        .find(|(_, n)| 2 * n > labels.len())
        .map(|(v, _)| v.clone())
}

/// Why an item needs a reviewer, if it does: its labels disagree (not unanimous, or numbers
/// further apart than the queue's spread), or people settled on another label than the
/// tied judge gave. Numbers disagree when further apart than `spread`.
pub fn review_reason(
    held: &QueueState,
    item: &str,
    labels: &[(String, Value)],
    spread: f64,
) -> Option<&'static str> {
    if held.queue.final_label(item).is_some() || labels.len() < held.def.overlap {
        return None;
    }
    if queue::disagree(labels, spread) {
        return Some("people disagree");
    }
    if held.def.review_against_judge {
        let judge = held
            .items
            .get(item)
            .and_then(|i| i.judge_value.as_ref())
            .and_then(|v| held.schema.value(v).ok());
        if let (Some(j), Some(c)) = (judge, consensus(held, item, labels)) {
            if j != c {
                return Some("people disagree with the judge");
            }
        }
    }
    None
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Every figure of a queue.
pub fn figures(held: &QueueState) -> Value {
    let schema = &held.schema;
    let Some(level) = level(schema) else {
        return json!({"schema": schema.name, "not_computable": "free-text labels have no agreement figures"});
    };
    let overlap = held.def.overlap;
    let complete: Vec<(&str, &[(String, Value)])> = held
        .queue
        .all_labels()
        .filter(|(_, l)| l.len() >= overlap && l.len() >= 2)
        .collect();
    let mut people: Vec<&str> = held
        .queue
        .all_labels()
        .flat_map(|(_, l)| l.iter().map(|(p, _)| p.as_str()))
        .collect();
    people.sort_unstable();
    people.dedup();
    // data[person][item]
    let data: Vec<Vec<Option<Label>>> = people
        .iter()
        .map(|p| {
            complete
                .iter()
                .map(|(_, l)| {
                    l.iter()
                        .find(|(who, _)| who == p)
                        .map(|(_, v)| as_label(schema, v))
                })
                .collect()
        })
        .collect();
    let alpha = figure(agreement::krippendorff_alpha(&data, level));
    let per_item_labels: Vec<Vec<Label>> = complete
        .iter()
        .map(|(_, l)| l.iter().map(|(_, v)| as_label(schema, v)).collect())
        .collect();
    let same_count = per_item_labels.windows(2).all(|w| w[0].len() == w[1].len());
    let fleiss = if level != Level::Nominal {
        json!({"not_computable": "Fleiss' kappa is for unordered categories"})
    } else if !same_count {
        json!({"not_computable": "Fleiss' kappa needs the same number of labels on every item"})
    } else {
        figure(agreement::fleiss_kappa(&agreement::category_counts(
            &per_item_labels,
        )))
    };
    // Agreement of every pair of people over the items both labelled.
    let weights = match level {
        Level::Nominal => None,
        _ => Some(Weights::Quadratic),
    };
    let mut pairs = Vec::new();
    let mut kappas = Vec::new();
    let mut percent = Vec::new();
    for i in 0..people.len() {
        for j in i + 1..people.len() {
            let (a, b) = (&data[i], &data[j]);
            let both = a
                .iter()
                .zip(b)
                .filter(|(x, y)| x.is_some() && y.is_some())
                .count();
            if both == 0 {
                continue;
            }
            let k = agreement::cohen_kappa(a, b, Weights::None);
            if let Ok(v) = &k {
                kappas.push(*v);
            }
            if let Ok(p) = agreement::percent_agreement(a, b) {
                percent.push((p, both));
            }
            let mut pair = json!({
                "a": people[i], "b": people[j], "items": both,
                "percent_agreement": figure(agreement::percent_agreement(a, b)),
                "cohen_kappa": figure(k),
            });
            if let Some(w) = weights {
                pair["weighted_kappa"] = json!({
                    "linear": figure(agreement::cohen_kappa(a, b, Weights::Linear)),
                    "quadratic": figure(agreement::cohen_kappa(a, b, w)),
                });
            }
            pairs.push(pair);
        }
    }
    let mean_kappa = if kappas.is_empty() {
        json!({"not_computable": "no pair of people has a kappa (too few shared items, or one label used)"})
    } else {
        json!(kappas.iter().sum::<f64>() / kappas.len() as f64)
    };
    let percent_agreement = if percent.is_empty() {
        json!({"not_computable": "no item has labels from two people"})
    } else {
        let n: usize = percent.iter().map(|(_, n)| n).sum();
        json!(percent.iter().map(|(p, k)| p * *k as f64).sum::<f64>() / n as f64)
    };
    let unanimous = complete
        .iter()
        .filter(|(_, l)| !queue::disagree(l, 0.0))
        .count();

    // Per person.
    let mut took: HashMap<&str, Vec<i64>> = HashMap::new();
    for (p, ms) in &held.took_ms {
        took.entry(p.as_str()).or_default().push(*ms);
    }
    let mut span: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut skips: HashMap<&str, usize> = HashMap::new();
    for ((_, person, kind), note) in &held.notes {
        let at = note.at_ms;
        match kind.as_str() {
            "lock" | "label" => {
                let e = span.entry(person.as_str()).or_insert((at, at));
                e.0 = e.0.min(at);
                e.1 = e.1.max(at);
            }
            "skip" => *skips.entry(person.as_str()).or_default() += 1,
            _ => {}
        }
    }
    let mut everyone: Vec<&str> = people.clone();
    everyone.extend(span.keys().copied());
    everyone.sort_unstable();
    everyone.dedup();
    let per_person: Vec<Value> = everyone
        .iter()
        .map(|p| {
            let labels = held
                .queue
                .all_labels()
                .filter(|(_, l)| l.iter().any(|(w, _)| w == p))
                .count();
            let gold = held.queue.gold_accuracy(p).map(
                |(right, of)| json!({"right": right, "of": of, "accuracy": right as f64 / of as f64}),
            );
            let mut times = took.get(p).cloned().unwrap_or_default();
            let mean = (!times.is_empty())
                .then(|| times.iter().sum::<i64>() as f64 / times.len() as f64);
            let per_hour = span.get(p).and_then(|(first, last)| {
                let hours = (last - first) as f64 / 3_600_000.0;
                (hours > 0.0 && labels > 0).then(|| labels as f64 / hours)
            });
            // How often this person's label matches each other label on shared items.
            let (mut same, mut of) = (0usize, 0usize);
            for (_, l) in &complete {
                if let Some((_, mine)) = l.iter().find(|(w, _)| w == p) {
                    for (w, v) in l.iter() {
                        if w != p {
                            of += 1;
                            same += usize::from(v == mine);
                        }
                    }
                }
            }
            json!({
                "person": p,
                "labels": labels,
                "skips": skips.get(p).copied().unwrap_or(0),
                "gold": gold,
                "agreement_with_others": (of > 0).then(|| same as f64 / of as f64),
                "time_per_item_ms": {"median": median(&mut times), "mean": mean},
                "labels_per_hour": per_hour,
            })
        })
        .collect();

    // Per item.
    let items: Vec<Value> = complete
        .iter()
        .map(|(item, l)| {
            let labels: Vec<Label> = l.iter().map(|(_, v)| as_label(schema, v)).collect();
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for x in &labels {
                *counts
                    .entry(serde_json::to_string(x).unwrap_or_default())
                    .or_default() += 1;
            }
            let top = counts.values().copied().max().unwrap_or(0);
            json!({
                "item": item,
                "labels": l.len(),
                "agreement": top as f64 / l.len() as f64,
                "review": review_reason(held, item, l, held.def.spread),
            })
        })
        .collect();

    json!({
        "schema": schema.name,
        "level": level,
        "items": held.queue.all_labels().count(),
        "items_complete": complete.len(),
        "percent_unanimous": if complete.is_empty() { Value::Null } else { json!(unanimous as f64 / complete.len() as f64) },
        "percent_agreement": percent_agreement,
        "cohen_kappa_mean": mean_kappa,
        "krippendorff_alpha": alpha,
        "fleiss_kappa": fleiss,
        "pairs": pairs,
        "people": per_person,
        "per_item": items,
        "judge": judge_against_people(held),
    })
}

/// The tied judge's value against the label people settled on, over the items that have
/// both: agreement and Cohen's κ, each with a seeded bootstrap 95 % interval.
fn judge_against_people(held: &QueueState) -> Value {
    let Some(judge) = held.schema.judge.clone() else {
        return json!({"not_computable": "the schema is not tied to a judge"});
    };
    let schema = &held.schema;
    let mut pairs: Vec<(Label, Label)> = Vec::new();
    let mut unfit = 0usize;
    for (item, labels) in held.queue.all_labels() {
        let Some(c) = consensus(held, item, labels) else {
            continue;
        };
        let Some(j) = held.items.get(item).and_then(|i| i.judge_value.as_ref()) else {
            continue;
        };
        match schema.value(j) {
            Ok(j) => pairs.push((as_label(schema, &c), as_label(schema, &j))),
            Err(_) => unfit += 1,
        }
    }
    let split = |s: &[(Label, Label)]| -> (Vec<Option<Label>>, Vec<Option<Label>>) {
        s.iter()
            .map(|(a, b)| (Some(a.clone()), Some(b.clone())))
            .unzip()
    };
    let weights = match level(schema) {
        Some(Level::Nominal) | None => Weights::None,
        _ => Weights::Quadratic,
    };
    json!({
        "judge": judge,
        "items": pairs.len(),
        "judge_values_not_fitting_the_schema": unfit,
        "agreement": interval(agreement::bootstrap(&pairs, 1000, 7, |s| {
            let (a, b) = split(s);
            agreement::percent_agreement(&a, &b)
        })),
        "kappa": interval(agreement::bootstrap(&pairs, 1000, 7, |s| {
            let (a, b) = split(s);
            agreement::cohen_kappa(&a, &b, weights)
        })),
    })
}

/// The two roads to a label for one judge, over the queues whose schema is tied to it: how
/// many items the judge answered and how many people labelled (and how many the judge sent
/// to people as untrusted), and, on the items a reviewer decided, how often each road agreed
/// with the final label (with bootstrap 95 % intervals), and how long people took per item.
/// A trace in several of those queues counts once, in the first queue that holds it (a
/// queue filled from another, or imported from its export, would count it again and narrow
/// the intervals); `same_trace_again` says how many items were left out so.
pub fn hybrid(judge: &str, queues: &[QueueState]) -> Value {
    let mut names = Vec::new();
    let (mut items, mut judged, mut labelled, mut untrusted) = (0usize, 0usize, 0usize, 0usize);
    let mut judge_vs_final: Vec<(Label, Label)> = Vec::new();
    let mut people_vs_final: Vec<(Label, Label)> = Vec::new();
    let mut took: Vec<i64> = Vec::new();
    let mut adjudicated = 0usize;
    let (mut seen, mut again) = (std::collections::HashSet::new(), 0usize);
    for q in queues {
        let collects = q.def.untrusted_from.as_deref() == Some(judge);
        if q.schema.judge.as_deref() != Some(judge) && !collects {
            continue;
        }
        names.push(q.def.id.clone());
        took.extend(q.took_ms.iter().map(|(_, ms)| *ms));
        for (id, item) in &q.items {
            // An item of a trace is that trace's (with its span, when it names one).
            let key = match (&item.trace, &item.span) {
                (Some(t), Some(s)) => format!("{t}/{s}"),
                (Some(t), None) => t.clone(),
                (None, _) => format!("{}\n{id}", q.def.id),
            };
            if !seen.insert(key) {
                again += 1;
                continue;
            }
            items += 1;
            let labels = q.queue.labels_for("", id, true);
            labelled += usize::from(!labels.is_empty());
            if collects {
                untrusted += 1;
            }
            let judge_value = item
                .judge_value
                .as_ref()
                .and_then(|v| q.schema.value(v).ok());
            judged += usize::from(judge_value.is_some());
            let Some((fin, _)) = q.queue.final_label(id) else {
                continue;
            };
            adjudicated += 1;
            let fin = as_label(&q.schema, fin);
            if let Some(j) = judge_value {
                judge_vs_final.push((as_label(&q.schema, &j), fin.clone()));
            }
            for (_, v) in labels {
                people_vs_final.push((as_label(&q.schema, &v), fin.clone()));
            }
        }
    }
    let agreement = |pairs: &[(Label, Label)]| {
        interval(agreement::bootstrap(pairs, 1000, 11, |s| {
            if s.is_empty() {
                return Err(NotComputable("no item".into()));
            }
            Ok(s.iter().filter(|(a, b)| a == b).count() as f64 / s.len() as f64)
        }))
    };
    json!({
        "judge": judge,
        "queues": names,
        "items": items,
        "judge_answered": judged,
        "people_labelled": labelled,
        "sent_to_people_as_untrusted": untrusted,
        "same_trace_again": again,
        "adjudicated": {
            "items": adjudicated,
            "judge_items": judge_vs_final.len(),
            "judge_agreement": agreement(&judge_vs_final),
            "people_labels": people_vs_final.len(),
            "people_agreement": agreement(&people_vs_final),
        },
        "people_time_per_item_ms": median(&mut took),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use crate::state::QueueDef;

    fn queue(id: &str, items: &[&str]) -> QueueState {
        let def: QueueDef = serde_json::from_value(json!({"id": id, "schema": "ok",
            "items": items, "overlap": 1, "lock_s": 60}))
        .unwrap();
        let schema: Schema =
            serde_json::from_value(json!({"name": "ok", "type": "pass_fail", "judge": "tone"}))
                .unwrap();
        let mut q = QueueState::new(def, schema).unwrap();
        for item in items {
            q.queue.restore_label("ann", item, json!(true));
        }
        q
    }

    /// A trace in two queues tied to the judge (one imported from the other's export, say)
    /// counts once.
    #[test]
    fn a_trace_in_several_queues_counts_once() {
        let h = hybrid(
            "tone",
            &[queue("a", &["t1", "t2"]), queue("b", &["t2", "t3"])],
        );
        assert_eq!(
            (&h["items"], &h["people_labelled"], &h["same_trace_again"]),
            (&json!(3), &json!(3), &json!(1)),
            "{h}"
        );
    }
}
