//! tribunal-prefs on small fixtures (`tests/data/`) and generated pairs.

mod prefs {
    pub mod constitution;
    pub mod eval;
    pub mod formats;
    pub mod model;
}

use std::path::{Path, PathBuf};
use tribunal_prefs::{import, Format, PreferenceRecord, Turns};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).expect("fixture")
}

pub fn records(name: &str, format: Format) -> Vec<PreferenceRecord> {
    let got = import(read(name).as_slice(), format).expect("import");
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    got.records
}

/// A small synthetic task: polite, helpful replies beat curt or refusing ones, whatever
/// their length, so the length baseline cannot solve it.
pub fn synthetic(n: usize, seed: u64) -> Vec<PreferenceRecord> {
    let topics = [
        "bread",
        "taxes",
        "python",
        "gardening",
        "chess",
        "music",
        "rust",
        "travel",
    ];
    let good = [
        "Sure, here is how to start with {t}: first gather what you need, then go step by step.",
        "Happy to help with {t}. The key idea is simple and I can explain it.",
        "Great question about {t}! Try this approach.",
        "{t}: begin small and practise.",
    ];
    let bad = [
        "I can't help with {t}.",
        "No. Figure out {t} yourself, I will not explain anything about it to you at all today.",
        "I'm sorry, {t} is not something I will discuss, it is not appropriate and I won't.",
        "Whatever.",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |k: usize| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as usize) % k
    };
    (0..n)
        .map(|_| {
            let t = topics[next(topics.len())];
            let c = good[next(good.len())].replace("{t}", t);
            let r = bad[next(bad.len())].replace("{t}", t);
            PreferenceRecord::new(
                Turns::Text(format!("Tell me about {t}.")),
                Turns::Text(c),
                Turns::Text(r),
            )
        })
        .collect()
}
