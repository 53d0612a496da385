//! Reward-model figures on the project's preference data (`shared/data/hh-rlhf`, or the
//! file in `TRIBUNAL_BENCH_PREFS`): training on 10,000 pairs (`TRIBUNAL_BENCH_PAIRS`; the
//! file's train part repeated, each copy with the other word order dropped, so copies are not
//! identical) on one core, scoring replies, and accuracy on the held-out part next to the
//! length baselines with bootstrap intervals. Times are printed against a baseline measured
//! in the same run: reading the same records from JSON with serde_json.

use std::time::Instant;
use tribunal_prefs::{
    evaluate, holdout_split, Format, PreferenceRecord, RewardModel, TrainSettings, Turns,
};

fn main() {
    let path = std::env::var("TRIBUNAL_BENCH_PREFS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/hh-rlhf/harmless-base-test-dev.jsonl"
        )
        .to_owned()
    });
    let pairs: usize = std::env::var("TRIBUNAL_BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let imported =
        tribunal_prefs::import(std::io::BufReader::new(file), Format::HhRlhf).expect("read");
    let (train, held) = holdout_split(&imported.records, 0.3, 7);
    println!(
        "{path}: {} pairs read, {} train, {} held out",
        imported.records.len(),
        train.len(),
        held.len()
    );
    // Copies of the train part: the k-th copy drops its replies' k-th word (mod length), so
    // every copy is a different text with the same preference.
    let mut big: Vec<PreferenceRecord> = Vec::with_capacity(pairs);
    let mut k = 0usize;
    while big.len() < pairs {
        for r in &train {
            if big.len() == pairs {
                break;
            }
            let mut r = r.clone();
            if k > 0 {
                r.chosen = drop_word(&r.chosen, k);
                r.rejected = drop_word(&r.rejected, k);
            }
            big.push(r);
        }
        k += 1;
    }
    // Baseline: read the same records back from their JSON.
    let lines: Vec<String> = big
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let t = Instant::now();
    let mut n = 0usize;
    for l in &lines {
        let r: PreferenceRecord = serde_json::from_str(l).unwrap();
        n += r.chosen.text().len();
    }
    let baseline = t.elapsed();
    std::hint::black_box(n);

    let settings = TrainSettings {
        seed: 7,
        ..TrainSettings::default()
    };
    let t = Instant::now();
    let model = RewardModel::train(&big, &settings).expect("train");
    let training = t.elapsed();
    println!(
        "training on {} pairs ({} epochs, one thread): {:.2} s (target < 60 s); {:.0}x the JSON read of the same records ({:.3} s)",
        big.len(),
        settings.epochs,
        training.as_secs_f64(),
        training.as_secs_f64() / baseline.as_secs_f64(),
        baseline.as_secs_f64()
    );

    let replies: Vec<(Turns, Turns)> = big
        .iter()
        .flat_map(|r| {
            [
                (r.prompt.clone(), r.chosen.clone()),
                (r.prompt.clone(), r.rejected.clone()),
            ]
        })
        .collect();
    let t = Instant::now();
    let mut sum = 0.0;
    for (p, r) in &replies {
        sum += model.score(p, r);
    }
    let scoring = t.elapsed();
    std::hint::black_box(sum);
    println!(
        "scoring {} replies: {:.0} replies/s (target >= 10,000)",
        replies.len(),
        replies.len() as f64 / scoring.as_secs_f64()
    );

    let e = evaluate(&model, &held, 1000, 7);
    println!("held-out: {}", serde_json::to_string(&e).unwrap());
}

fn drop_word(t: &Turns, k: usize) -> Turns {
    let text = t.text();
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 2 {
        return t.clone();
    }
    let skip = k % words.len();
    Turns::Text(
        words
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
            .join(" "),
    )
}
