//! The Bradley–Terry reward model: a linear score `s(x) = w · φ(x)` over the hashed
//! features of [`crate::features`], trained so that `P(chosen ≻ rejected) = σ(s_c − s_r)`.
//!
//! For a pair with difference `d = s_c − s_r`, margin `m` (0 unless the record has one and
//! margins are used) and target `p` (the soft label; 1 for a plain preference, 0.5 for a
//! tie), the loss is the cross-entropy `p · softplus(−(d − m)) + (1 − p) · softplus(d − m)`,
//! whose derivative in `d` is `σ(d − m) − p`; with `p = 1` and `m = 0` it is the plain
//! `−log σ(d)`. The objective is the mean loss plus `l2 / 2 · |w|²`. Softplus and σ are
//! computed in forms that neither overflow nor lose the small side, so any finite `d` gives
//! a finite loss and gradient.
//!
//! Training runs over the pairs in an order shuffled by the seed each epoch, one pair a
//! step, with SGD or Adam; both update only the weights a pair touches (the L2 term too,
//! applied to those weights at each step). The same records, settings and seed give the
//! same weights, bit for bit.

use crate::features::{features, FeatureSettings, Features};
use crate::record::{PreferenceRecord, Turns};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model file: field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("record {record}: field `{field}`: {reason}")]
    Record {
        record: usize,
        field: String,
        reason: String,
    },
    #[error("settings: {0}")]
    Settings(String),
    #[error("no pairs to train on")]
    NoPairs,
    #[error("training diverged in epoch {epoch} (the loss or a weight is no longer a finite number); no model is written: lower the learning rate or raise l2")]
    Diverged { epoch: usize },
}

/// How the weights move.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    Sgd {
        learning_rate: f64,
    },
    Adam {
        learning_rate: f64,
        beta1: f64,
        beta2: f64,
        epsilon: f64,
    },
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::Adam {
            learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// Everything training depends on besides the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub features: FeatureSettings,
    pub epochs: usize,
    pub seed: u64,
    pub l2: f64,
    pub optimizer: Optimizer,
    /// Use the records' margins in the loss.
    pub use_margin: bool,
    /// Use the records' soft labels and ties as targets (else every pair's target is 1 and
    /// ties are skipped).
    pub use_soft_labels: bool,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            features: FeatureSettings::default(),
            epochs: 5,
            seed: 0,
            l2: 1e-6,
            optimizer: Optimizer::default(),
            use_margin: true,
            use_soft_labels: true,
        }
    }
}

/// What training did, saved with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// SHA-256 over the training records, each as its JSON line, in order.
    pub data_hash: String,
    pub pairs: usize,
    pub seed: u64,
    pub epochs: usize,
    pub l2: f64,
    pub optimizer: Optimizer,
    pub use_margin: bool,
    pub use_soft_labels: bool,
    /// Mean loss over each epoch's steps, as the pairs were met.
    pub epoch_loss: Vec<f64>,
    /// The objective (mean loss plus the L2 term) on the training pairs after training.
    pub final_loss: f64,
    /// Records made by constitutions, by constitution name and version: a model trained on
    /// an older version of a constitution is stale.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub constitutions:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>>,
}

/// How many of `records` each constitution version made, by constitution name.
pub fn constitutions_of(
    records: &[PreferenceRecord],
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>> {
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>> =
        Default::default();
    for r in records {
        let p = &r.provenance;
        if let (Some(name), Some(version)) = (&p.constitution, &p.constitution_version) {
            *out.entry(name.clone())
                .or_default()
                .entry(version.clone())
                .or_default() += 1;
        }
    }
    out
}

/// `log(1 + e^x)` without overflow or loss for large `|x|`.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The logistic function, without overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The loss of one pair with score difference `d`, target `p` and margin `m`, and its
/// derivative in `d`.
pub fn pair_loss(d: f64, p: f64, m: f64) -> (f64, f64) {
    let z = d - m;
    (p * softplus(-z) + (1.0 - p) * softplus(z), sigmoid(z) - p)
}

/// A pair ready for training: the feature difference `φ(chosen) − φ(rejected)`.
#[derive(Debug, Clone)]
pub struct Pair {
    pub diff: Features,
    pub target: f64,
    pub margin: f64,
}

impl Pair {
    pub fn new(
        settings: &FeatureSettings,
        record: &PreferenceRecord,
        use_margin: bool,
        use_soft_labels: bool,
    ) -> Self {
        let prompt = record.prompt.last_text();
        let c = features(settings, prompt, &record.chosen.text());
        let r = features(settings, prompt, &record.rejected.text());
        Pair {
            diff: subtract(&c, &r),
            target: if use_soft_labels {
                record.target()
            } else {
                1.0
            },
            margin: if use_margin {
                record.margin.unwrap_or(0.0)
            } else {
                0.0
            },
        }
    }
}

fn subtract(a: &Features, b: &Features) -> Features {
    let mut out = Features::default();
    let (mut i, mut j) = (0, 0);
    while i < a.indices.len() || j < b.indices.len() {
        let ai = a.indices.get(i).copied().unwrap_or(u32::MAX);
        let bj = b.indices.get(j).copied().unwrap_or(u32::MAX);
        let (idx, v) = if j >= b.indices.len() || (i < a.indices.len() && ai < bj) {
            i += 1;
            (ai, a.values[i - 1])
        } else if i >= a.indices.len() || bj < ai {
            j += 1;
            (bj, -b.values[j - 1])
        } else {
            i += 1;
            j += 1;
            (ai, a.values[i - 1] - b.values[j - 1])
        };
        if v != 0.0 {
            out.indices.push(idx);
            out.values.push(v);
        }
    }
    out
}

/// The full objective `mean loss + l2/2 · |w|²` over `pairs` and its gradient (dense).
pub fn objective(pairs: &[Pair], w: &[f64], l2: f64) -> (f64, Vec<f64>) {
    let mut grad: Vec<f64> = w.iter().map(|x| l2 * x).collect();
    let mut loss = 0.5 * l2 * w.iter().map(|x| x * x).sum::<f64>();
    let n = pairs.len().max(1) as f64;
    for p in pairs {
        let (l, dl) = pair_loss(p.diff.dot(w), p.target, p.margin);
        loss += l / n;
        for (&i, &v) in p.diff.indices.iter().zip(&p.diff.values) {
            if let Some(g) = grad.get_mut(i as usize) {
                *g += dl * v / n;
            }
        }
    }
    (loss, grad)
}

/// A trained reward model.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardModel {
    pub features: FeatureSettings,
    pub weights: Vec<f64>,
    pub training: Option<TrainSummary>,
}

/// SHA-256 (hex) over records, each as its JSON line.
pub fn data_hash(records: &[PreferenceRecord]) -> Result<String, ModelError> {
    let mut h = Sha256::new();
    for r in records {
        h.update(serde_json::to_vec(r)?);
        h.update(b"\n");
    }
    Ok(crate::record::hex(&h.finalize()))
}

fn check_record(i: usize, r: &PreferenceRecord) -> Result<(), ModelError> {
    let bad = |field: &str, reason: String| ModelError::Record {
        record: i,
        field: field.into(),
        reason,
    };
    if let Some(m) = r.margin {
        if !m.is_finite() {
            return Err(bad("margin", format!("{m} is not finite")));
        }
    }
    if let Some(p) = r.soft_label {
        if !(0.0..=1.0).contains(&p) {
            return Err(bad("soft_label", format!("{p} is not in [0, 1]")));
        }
    }
    Ok(())
}

impl RewardModel {
    /// An untrained model (all weights zero).
    pub fn new(features: FeatureSettings) -> Result<Self, ModelError> {
        features.check().map_err(ModelError::Settings)?;
        Ok(RewardModel {
            weights: vec![0.0; features.dim()],
            features,
            training: None,
        })
    }

    /// Trains on `records` (ties are skipped unless soft labels are used).
    pub fn train(
        records: &[PreferenceRecord],
        settings: &TrainSettings,
    ) -> Result<Self, ModelError> {
        let mut model = RewardModel::new(settings.features.clone())?;
        if !(settings.l2 >= 0.0 && settings.l2.is_finite()) {
            return Err(ModelError::Settings(format!(
                "l2 is {}, expected ≥ 0",
                settings.l2
            )));
        }
        let lr = match settings.optimizer {
            Optimizer::Sgd { learning_rate } | Optimizer::Adam { learning_rate, .. } => {
                learning_rate
            }
        };
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(ModelError::Settings(format!(
                "learning rate is {lr}, expected > 0"
            )));
        }
        let mut pairs = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            check_record(i, r)?;
            if r.tie && !settings.use_soft_labels {
                continue;
            }
            pairs.push(Pair::new(
                &model.features,
                r,
                settings.use_margin,
                settings.use_soft_labels,
            ));
        }
        if pairs.is_empty() {
            return Err(ModelError::NoPairs);
        }
        let dim = model.weights.len();
        let w = &mut model.weights;
        let (mut m1, mut m2) = match settings.optimizer {
            Optimizer::Adam { .. } => (vec![0.0; dim], vec![0.0; dim]),
            Optimizer::Sgd { .. } => (Vec::new(), Vec::new()),
        };
        let mut rng = Rng::new(settings.seed);
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        let mut step: i32 = 0;
        let mut epoch_loss = Vec::with_capacity(settings.epochs);
        for epoch in 1..=settings.epochs {
            rng.shuffle(&mut order);
            let mut total = 0.0;
            for &k in &order {
                let p = &pairs[k];
                let (l, dl) = pair_loss(p.diff.dot(w), p.target, p.margin);
                total += l;
                step = step.saturating_add(1);
                for (&i, &v) in p.diff.indices.iter().zip(&p.diff.values) {
                    let i = i as usize;
                    let g = dl * v + settings.l2 * w[i];
                    match settings.optimizer {
                        Optimizer::Sgd { learning_rate } => w[i] -= learning_rate * g,
                        Optimizer::Adam {
                            learning_rate,
                            beta1,
                            beta2,
                            epsilon,
                        } => {
                            m1[i] = beta1 * m1[i] + (1.0 - beta1) * g;
                            m2[i] = beta2 * m2[i] + (1.0 - beta2) * g * g;
                            let mh = m1[i] / (1.0 - beta1.powi(step));
                            let vh = m2[i] / (1.0 - beta2.powi(step));
                            w[i] -= learning_rate * mh / (vh.sqrt() + epsilon);
                        }
                    }
                }
            }
            if !total.is_finite() || w.iter().any(|x| !x.is_finite()) {
                return Err(ModelError::Diverged { epoch });
            }
            epoch_loss.push(total / pairs.len() as f64);
        }
        let final_loss = objective_value(&pairs, w, settings.l2);
        if !final_loss.is_finite() {
            return Err(ModelError::Diverged {
                epoch: settings.epochs,
            });
        }
        model.training = Some(TrainSummary {
            data_hash: data_hash(records)?,
            pairs: pairs.len(),
            seed: settings.seed,
            epochs: settings.epochs,
            l2: settings.l2,
            optimizer: settings.optimizer,
            use_margin: settings.use_margin,
            use_soft_labels: settings.use_soft_labels,
            epoch_loss,
            final_loss,
            constitutions: constitutions_of(records),
        });
        Ok(model)
    }

    /// The score of `reply` answering `prompt`.
    pub fn score(&self, prompt: &Turns, reply: &Turns) -> f64 {
        features(&self.features, prompt.last_text(), &reply.text()).dot(&self.weights)
    }

    /// The scores of a record's chosen and rejected replies.
    pub fn score_pair(&self, r: &PreferenceRecord) -> (f64, f64) {
        (
            self.score(&r.prompt, &r.chosen),
            self.score(&r.prompt, &r.rejected),
        )
    }

    /// Writes the model as one JSON document (non-zero weights only).
    pub fn save<W: Write>(&self, writer: W) -> Result<(), ModelError> {
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for (i, &v) in self.weights.iter().enumerate() {
            if v != 0.0 {
                indices.push(i as u32);
                values.push(v);
            }
        }
        let file = ModelFile {
            kind: KIND.into(),
            version: 1,
            features: self.features.clone(),
            training: self.training.clone(),
            weights: SparseWeights {
                dim: self.weights.len(),
                indices,
                values,
            },
        };
        serde_json::to_writer(writer, &file)?;
        Ok(())
    }

    /// Reads a model written by [`RewardModel::save`].
    pub fn load<R: Read>(reader: R) -> Result<Self, ModelError> {
        let file: ModelFile = serde_json::from_reader(reader)?;
        let invalid = |field: &str, reason: String| ModelError::Invalid {
            field: field.into(),
            reason,
        };
        if file.kind != KIND {
            return Err(invalid(
                "kind",
                format!("`{}`, expected `{KIND}`", file.kind),
            ));
        }
        if file.version != 1 {
            return Err(invalid("version", format!("{}, expected 1", file.version)));
        }
        file.features.check().map_err(|e| invalid("features", e))?;
        let dim = file.features.dim();
        let sw = file.weights;
        if sw.dim != dim {
            return Err(invalid(
                "weights.dim",
                format!("{}, expected {dim}", sw.dim),
            ));
        }
        if sw.indices.len() != sw.values.len() {
            return Err(invalid(
                "weights.values",
                format!(
                    "{} values for {} indices",
                    sw.values.len(),
                    sw.indices.len()
                ),
            ));
        }
        let mut weights = vec![0.0; dim];
        for (&i, &v) in sw.indices.iter().zip(&sw.values) {
            let slot = weights
                .get_mut(i as usize)
                .ok_or_else(|| invalid("weights.indices", format!("{i} is outside 0..{dim}")))?;
            if !v.is_finite() {
                return Err(invalid(
                    "weights.values",
                    format!("{v} at {i} is not finite"),
                ));
            }
            *slot = v;
        }
        Ok(RewardModel {
            features: file.features,
            weights,
            training: file.training,
        })
    }
}

fn objective_value(pairs: &[Pair], w: &[f64], l2: f64) -> f64 {
    let n = pairs.len().max(1) as f64;
    let reg = 0.5 * l2 * w.iter().map(|x| x * x).sum::<f64>();
    reg + pairs
        .iter()
        .map(|p| pair_loss(p.diff.dot(w), p.target, p.margin).0)
        .sum::<f64>()
        / n
}

const KIND: &str = "tribunal-reward-model";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    kind: String,
    version: u32,
    features: FeatureSettings,
    training: Option<TrainSummary>,
    weights: SparseWeights,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SparseWeights {
    dim: usize,
    indices: Vec<u32>,
    values: Vec<f64>,
}
