//! `isotonic`: for judges with a numeric output, a monotone map from the judge's answers to
//! the experts' scale, fitted on the train split (the judge's answers without a map, against
//! the labels). The judge's prompt is left as it is; the map is applied to its answers.

use crate::data::{Example, LabelType};
use crate::isotonic::ValueMap;
use crate::model::{Candidate, ModelError};
use crate::optimizer::{agreement, Context, Optimized, Optimizer};

#[derive(Debug, Clone, Default)]
pub struct Isotonic;

impl Optimizer for Isotonic {
    fn name(&self) -> &'static str {
        "isotonic"
    }

    fn optimize(
        &self,
        start: &Candidate,
        train: &[Example],
        cx: &mut Context<'_>,
    ) -> Result<Optimized, ModelError> {
        if !matches!(cx.label_type, LabelType::Numeric { .. }) {
            return Err(ModelError(
                "isotonic maps numeric answers; this judge's output is not a number".into(),
            ));
        }
        let mut raw = start.clone();
        raw.alignment.value_map = None;
        let outcomes = cx.evaluate(&raw, train)?;
        let pairs: Vec<(f64, f64)> = outcomes
            .iter()
            .filter_map(|o| Some((o.answer.value.as_ref()?.as_f64()?, o.expected.as_f64()?)))
            .collect();
        let mut notes = vec![format!(
            "isotonic: {} of {} train answers paired with labels; agreement without a map {:.3}",
            pairs.len(),
            outcomes.len(),
            agreement(&outcomes)
        )];
        let Some(map) = ValueMap::fit(&pairs) else {
            notes.push(
                "the judge gave fewer than two distinct answers: no map fitted, the judge is unchanged"
                    .into(),
            );
            return Ok(Optimized {
                candidate: start.clone(),
                notes,
            });
        };
        let mapped = pairs
            .iter()
            .filter(|(x, y)| map.apply(*x).round() == y.round())
            .count();
        notes.push(format!(
            "fitted {} steps; agreement on train with the map {:.3}",
            map.steps.len(),
            mapped as f64 / outcomes.len().max(1) as f64
        ));
        let mut candidate = start.clone();
        candidate.alignment.value_map = Some(map);
        Ok(Optimized { candidate, notes })
    }
}
