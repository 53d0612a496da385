//! Evaluation: ties are misses, the baseline and the interval are always there.

use crate::synthetic;
use tribunal_prefs::eval::{accuracy, bootstrap};
use tribunal_prefs::features::FeatureSettings;
use tribunal_prefs::{
    best_of_n, evaluate, holdout_split, BestOfNGroup, PreferenceRecord, RewardModel, Turns,
};

fn text(s: &str) -> Turns {
    Turns::Text(s.into())
}

fn untrained() -> RewardModel {
    RewardModel::new(FeatureSettings {
        bits: 8,
        ..FeatureSettings::default()
    })
    .expect("model")
}

#[test]
fn equal_scores_count_as_misses() {
    // An untrained model scores everything 0: every pair is a tie, so accuracy is 0, not 0.5.
    let recs = synthetic(20, 5);
    let e = evaluate(&untrained(), &recs, 100, 1);
    assert_eq!(e.n, 20);
    assert_eq!(e.model.accuracy, 0.0);
    assert_eq!(e.score_ties, 20);
    assert_eq!(e.chance, 0.5);
}

#[test]
fn length_baseline_picks_the_longer_reply_and_equal_lengths_miss() {
    let recs = vec![
        PreferenceRecord::new(text("q"), text("a long helpful answer"), text("no")),
        PreferenceRecord::new(text("q"), text("short"), text("a much longer reply")),
        PreferenceRecord::new(text("q"), text("same length"), text("equal words")),
        PreferenceRecord {
            soft_label: Some(0.2),
            ..PreferenceRecord::new(text("q"), text("x"), text("the rejected is better"))
        },
        PreferenceRecord {
            tie: true,
            ..PreferenceRecord::new(text("q"), text("x"), text("y"))
        },
    ];
    let e = evaluate(&untrained(), &recs, 100, 1);
    assert_eq!(e.n, 4);
    assert_eq!(e.ties_skipped, 1);
    assert_eq!(e.length_baseline.correct, 2);
    assert_eq!(e.length_baseline.accuracy, 0.5);
    // Shorter wins only on row 2; the equal lengths miss both ways.
    assert_eq!(e.shorter_baseline.correct, 1);
}

#[test]
fn bootstrap_interval_is_seeded_and_brackets_the_accuracy() {
    let hits: Vec<bool> = (0..200).map(|i| i % 4 != 0).collect();
    let a = accuracy(&hits, 1000, 3);
    assert_eq!(a.accuracy, 0.75);
    assert!(a.ci_low < 0.75 && 0.75 < a.ci_high, "{a:?}");
    assert!(a.ci_low > 0.65 && a.ci_high < 0.85, "{a:?}");
    assert_eq!(bootstrap(&hits, 1000, 3), bootstrap(&hits, 1000, 3));
    assert!((4..20).any(|seed| bootstrap(&hits, 1000, seed) != bootstrap(&hits, 1000, 3)));
    assert_eq!(bootstrap(&[], 1000, 3), None);
}

#[test]
fn accuracy_is_reported_per_subset() {
    let mut recs = synthetic(30, 9);
    for (i, r) in recs.iter_mut().enumerate() {
        r.subset = Some(if i % 3 == 0 { "a" } else { "b" }.into());
    }
    let e = evaluate(&untrained(), &recs, 50, 1);
    assert_eq!(e.subsets["a"].n, 10);
    assert_eq!(e.subsets["b"].n, 20);
}

#[test]
fn best_of_n_counts_groups_whose_best_scores_highest() {
    let train = synthetic(200, 21);
    let model = RewardModel::train(
        &train,
        &tribunal_prefs::TrainSettings {
            features: FeatureSettings {
                bits: 12,
                ..FeatureSettings::default()
            },
            epochs: 3,
            seed: 1,
            ..Default::default()
        },
    )
    .expect("train");
    let groups = vec![
        BestOfNGroup {
            prompt: text("Tell me about chess."),
            candidates: vec![
                text("I can't help with chess."),
                text("Happy to help with chess. The key idea is simple and I can explain it."),
                text("Whatever."),
            ],
            best: 1,
        },
        BestOfNGroup {
            prompt: text("Tell me about music."),
            candidates: vec![
                text("Great question about music! Try this approach."),
                text("No. Figure out music yourself, I will not explain anything about it to you at all today."),
            ],
            best: 0,
        },
        BestOfNGroup {
            prompt: text("x"),
            candidates: vec![],
            best: 0,
        },
    ];
    let b = best_of_n(&model, &groups);
    assert_eq!(b.groups, 2);
    assert_eq!(b.model, 1.0);
    assert_eq!(b.length_baseline, 0.5);
    assert!((b.chance - (1.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
}

#[test]
fn holdout_split_is_seeded_and_disjoint() {
    let mut recs = synthetic(50, 4);
    for (i, r) in recs.iter_mut().enumerate() {
        r.prompt_id = Some(i.to_string());
    }
    let (train, held) = holdout_split(&recs, 0.3, 7);
    assert_eq!((train.len(), held.len()), (35, 15));
    assert_eq!(holdout_split(&recs, 0.3, 7).1, held);
    assert_ne!(holdout_split(&recs, 0.3, 8).1, held);
    let mut ids: Vec<&str> = train
        .iter()
        .chain(&held)
        .filter_map(|r| r.prompt_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 50, "every record once, in one part");
}
