//! The reward model: loss, gradient, determinism, learning, save and load.

use crate::synthetic;
use tribunal_prefs::features::{features, FeatureSettings};
use tribunal_prefs::model::{objective, pair_loss, softplus, Optimizer, Pair};
use tribunal_prefs::{PreferenceRecord, RewardModel, TrainSettings, Turns};

fn small() -> TrainSettings {
    TrainSettings {
        features: FeatureSettings {
            bits: 12,
            ..FeatureSettings::default()
        },
        epochs: 3,
        seed: 7,
        ..TrainSettings::default()
    }
}

#[test]
fn loss_and_gradient_are_finite_for_large_score_differences() {
    for d in [-50.0, -30.0, -1.0, 0.0, 1.0, 30.0, 50.0, -800.0, 800.0] {
        for (p, m) in [(1.0, 0.0), (0.5, 0.0), (0.8, 2.0), (0.0, -1.0)] {
            let (l, g) = pair_loss(d, p, m);
            assert!(l.is_finite() && l >= 0.0, "loss {l} at d={d} p={p} m={m}");
            assert!(
                g.is_finite() && (-1.0..=1.0).contains(&g),
                "grad {g} at d={d}"
            );
        }
    }
    // The plain BT loss: −log σ(d).
    assert!((pair_loss(0.0, 1.0, 0.0).0 - std::f64::consts::LN_2).abs() < 1e-15);
    // Far on the right side the loss is tiny but not lost to rounding.
    let (l, _) = pair_loss(50.0, 1.0, 0.0);
    assert!(l > 0.0 && (l - (-50.0f64).exp()).abs() < 1e-30);
    // Far on the wrong side it grows linearly.
    assert!((pair_loss(-50.0, 1.0, 0.0).0 - 50.0).abs() < 1e-12);
    // The margin shifts the decision point.
    assert!((pair_loss(2.0, 1.0, 2.0).0 - std::f64::consts::LN_2).abs() < 1e-15);
    assert_eq!(softplus(1000.0), 1000.0);
}

#[test]
fn gradient_matches_finite_differences() {
    let settings = FeatureSettings {
        bits: 8,
        ..FeatureSettings::default()
    };
    let mut recs = synthetic(12, 3);
    recs[0].margin = Some(0.7);
    recs[1].soft_label = Some(0.3);
    recs[2].tie = true;
    let pairs: Vec<Pair> = recs
        .iter()
        .map(|r| Pair::new(&settings, r, true, true))
        .collect();
    let dim = settings.dim();
    // A point away from zero, so the sigmoid is not flat.
    let w: Vec<f64> = (0..dim)
        .map(|i| ((i * 37 % 101) as f64 / 101.0 - 0.5) * 0.8)
        .collect();
    let l2 = 0.01;
    let (_, grad) = objective(&pairs, &w, l2);
    let h = 1e-6;
    let mut checked = 0;
    for i in (0..dim).step_by(7) {
        let mut up = w.clone();
        up[i] += h;
        let mut down = w.clone();
        down[i] -= h;
        let numeric = (objective(&pairs, &up, l2).0 - objective(&pairs, &down, l2).0) / (2.0 * h);
        assert!(
            (numeric - grad[i]).abs() <= 1e-6 * (1.0 + numeric.abs()),
            "weight {i}: analytic {} numeric {numeric}",
            grad[i]
        );
        checked += 1;
    }
    assert!(checked > 30);
    assert!(
        grad.iter().any(|g| g.abs() > 1e-4),
        "a gradient that is all zero checks nothing"
    );
}

#[test]
fn same_seed_gives_identical_weights_and_another_seed_does_not() {
    let recs = synthetic(60, 1);
    let a = RewardModel::train(&recs, &small()).expect("train");
    let b = RewardModel::train(&recs, &small()).expect("train");
    assert_eq!(a.weights.len(), 4096);
    assert!(a
        .weights
        .iter()
        .zip(&b.weights)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(a.training, b.training);
    let c = RewardModel::train(&recs, &TrainSettings { seed: 8, ..small() }).expect("train");
    assert_ne!(a.weights, c.weights);
}

#[test]
fn training_learns_a_preference_length_cannot_explain() {
    let train = synthetic(200, 11);
    let test = synthetic(100, 12);
    for optimizer in [Optimizer::default(), Optimizer::Sgd { learning_rate: 0.5 }] {
        let model = RewardModel::train(
            &train,
            &TrainSettings {
                optimizer,
                ..small()
            },
        )
        .expect("train");
        let summary = model.training.as_ref().expect("summary");
        assert!(summary.epoch_loss[0] > *summary.epoch_loss.last().unwrap_or(&f64::MAX));
        let eval = tribunal_prefs::evaluate(&model, &test, 200, 1);
        assert!(eval.model.accuracy > 0.95, "{optimizer:?}: {eval:?}");
        assert!(eval.length_baseline.accuracy < 0.8, "{eval:?}");
    }
}

/// Training that diverges (a learning rate far too large) is an error naming the epoch,
/// never a model of non-finite weights that cannot be loaded again.
#[test]
fn training_that_diverges_is_an_error() {
    let train = synthetic(200, 11);
    for optimizer in [
        Optimizer::Sgd {
            learning_rate: 1e300,
        },
        Optimizer::Adam {
            learning_rate: 1e300,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        },
    ] {
        let err = RewardModel::train(
            &train,
            &TrainSettings {
                optimizer,
                ..small()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, tribunal_prefs::ModelError::Diverged { .. }),
            "{optimizer:?}: {err}"
        );
        assert!(err.to_string().contains("diverged"), "{err}");
    }
}

#[test]
fn save_and_load_keep_scores_and_settings() {
    let recs = synthetic(40, 2);
    let model = RewardModel::train(&recs, &small()).expect("train");
    let mut file = Vec::new();
    model.save(&mut file).expect("save");
    let json: serde_json::Value = serde_json::from_slice(&file).expect("json");
    assert_eq!(json["kind"], "tribunal-reward-model");
    assert_eq!(json["features"]["bits"], 12);
    assert_eq!(json["training"]["seed"], 7);
    assert_eq!(json["training"]["epochs"], 3);
    assert_eq!(
        json["training"]["data_hash"].as_str().map(str::len),
        Some(64)
    );
    let loaded = RewardModel::load(file.as_slice()).expect("load");
    assert_eq!(loaded.features, model.features);
    assert_eq!(loaded.training, model.training);
    for r in &recs {
        let (a, b) = (model.score_pair(r), loaded.score_pair(r));
        assert!((a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12);
    }
    let mut again = Vec::new();
    loaded.save(&mut again).expect("save");
    assert_eq!(RewardModel::load(again.as_slice()).expect("load"), loaded);
}

#[test]
fn load_rejects_a_broken_file_naming_the_field() {
    let model = RewardModel::new(FeatureSettings {
        bits: 6,
        ..FeatureSettings::default()
    })
    .expect("model");
    let mut file = Vec::new();
    model.save(&mut file).expect("save");
    let mut json: serde_json::Value = serde_json::from_slice(&file).expect("json");
    json["weights"]["indices"] = serde_json::json!([999]);
    json["weights"]["values"] = serde_json::json!([1.0]);
    let err = RewardModel::load(json.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("weights.indices"), "{err}");
    json["weights"]["dim"] = serde_json::json!(5);
    let err = RewardModel::load(json.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("weights.dim"), "{err}");
    assert!(RewardModel::load(&b"{"[..]).is_err());
}

#[test]
fn training_refuses_bad_labels_and_empty_data() {
    let mut recs = synthetic(3, 1);
    recs[1].soft_label = Some(2.0);
    let err = RewardModel::train(&recs, &small()).unwrap_err();
    assert!(err.to_string().contains("record 1") && err.to_string().contains("soft_label"));
    assert!(RewardModel::train(&[], &small()).is_err());
}

#[test]
fn features_see_refusals_questions_lists_and_the_prompt() {
    let s = FeatureSettings {
        bits: 16,
        ..FeatureSettings::default()
    };
    let refusal = features(&s, "help?", "I can't do that.");
    let plain = features(&s, "help?", "I can do that.");
    assert_ne!(refusal, plain);
    // The same reply to another prompt differs only through the pair features.
    let other_prompt = features(&s, "something else entirely", "I can do that.");
    assert_ne!(plain, other_prompt);
    let no_pair = FeatureSettings {
        pair: false,
        ..s.clone()
    };
    assert_eq!(
        features(&no_pair, "help?", "I can do that."),
        features(&no_pair, "something else entirely", "I can do that.")
    );
    // Deterministic: the same text gives the same features.
    assert_eq!(
        features(&s, "a", "- one\n- two"),
        features(&s, "a", "- one\n- two")
    );
    assert!(features(&s, "", "").indices.len() <= 1);
    let _ = PreferenceRecord::new(Turns::default(), Turns::default(), Turns::default());
}
