//! Detector throughput on a realistic 2 KB text (an agent's working notes: prose, a few
//! emails, phone numbers, ids, a URL, a git SHA, a UUID and one leaked API key), against a
//! baseline measured in the same run: the same rules run the naive way, every rule's regex
//! `find_iter` over the whole text one after another (plus one token regex standing in for the
//! entropy scan). The naive baseline does no checks, so the speed-up is if anything understated.
//!
//! After criterion's report, one summary line per detector: time per 2 KB, the ratio to the
//! 20 µs budget for secrets + PII, and the speed-up over the naive baseline.
//!
//! Run: `cargo bench -p tribunal-judges --bench detectors`

use criterion::Criterion;
use regex::Regex;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tribunal_judges::detectors::injection::{InjectionScanner, InjectionSettings};
use tribunal_judges::detectors::pii::{PiiScanner, PiiSettings};
use tribunal_judges::detectors::secrets::{SecretScanner, SecretsSettings};
use tribunal_judges::detectors::Hit;

const TARGET_US: f64 = 20.0;
const SIZE: usize = 2048;

/// Split so the source holds no contiguous key.
const LEAKED_KEY: &str = concat!("sk_", "live_", "51HqLyjWDarjtT1zdp7dc9fQ2xL7aZ0k");

fn sample_text() -> String {
    let paragraphs = [
        "Hi team, following up on ticket #48213 from yesterday's on-call rotation. The customer, \
         Dana Whitfield (dana.whitfield@northwind-traders.com), reported that the nightly export \
         job failed at 02:14 UTC with a timeout after 1,800 seconds. She asked us to call her \
         back on +1 (415) 555-2671 before noon Pacific time, or to email her colleague Omar at \
         omar.haddad@northwind-traders.com if she is unavailable.",
        "I looked at the logs for run 7f3e9c1 on worker pool B. The export reads roughly 3.2 million \
         rows from the orders table, batches them in groups of 5,000, and uploads each batch to \
         the bucket at https://storage.example.net/exports/2024/11/orders. The first 412 batches \
         went through in about nine minutes; batch 413 stalled for the remainder of the window.",
        "The stall lines up with a deploy of commit 3f786850e387550fdab836ed7e6dc881de23001b, which \
         changed the retry policy for request 123e4567-e89b-12d3-a456-426614174000 and similar \
         uploads. The old policy retried three times with exponential backoff; the new one retries \
         forever without a cap, which explains the timeout rather than a clean failure.",
        "While reproducing it locally I noticed the job's environment still carries a production \
         key: STRIPE_SECRET_KEY is set in the runner config. We should rotate it today and move it \
         into the vault. For the record the value starts the usual way.",
        "Next steps: revert the retry change, re-run the export for November 14 and 15, and confirm \
         with Dana by phone or at her office line 020 7946 0958. Billing questions go to \
         accounts@northwind-traders.com; the invoice reference is INV-2024-00917 for 1,249.50 EUR. \
         I will post an update in the incident channel once the rerun completes, probably around \
         16:30 UTC, and close the ticket after the customer confirms the files arrived intact.",
    ];
    let mut text = String::new();
    for (i, p) in paragraphs.iter().cycle().enumerate() {
        if text.len() >= SIZE {
            break;
        }
        text.push_str(p);
        if i == 3 {
            text.push_str(&format!(" Leaked value: {LEAKED_KEY}."));
        }
        text.push_str("\n\n");
    }
    let mut cut = SIZE;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

fn naive(regexes: &[Regex], text: &str) -> usize {
    regexes.iter().map(|r| r.find_iter(text).count()).sum()
}

type Samples = RefCell<BTreeMap<String, Vec<f64>>>;

/// Registers a criterion benchmark and keeps every sample's time per iteration for the summary.
fn bench(c: &mut Criterion, samples: &Samples, name: &str, mut f: impl FnMut()) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            let elapsed = start.elapsed();
            samples
                .borrow_mut()
                .entry(name.to_owned())
                .or_default()
                .push(elapsed.as_secs_f64() / iters as f64);
            elapsed
        })
    });
}

fn median_us(samples: &Samples, name: &str) -> f64 {
    let mut v = samples.borrow().get(name).cloned().unwrap_or_default();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN) * 1e6
}

fn main() {
    let text = sample_text();
    let secrets = SecretScanner::new(&SecretsSettings::default()).expect("built-in secrets rules");
    let pii = PiiScanner::new(&PiiSettings::default()).expect("built-in pii rules");
    let injection =
        InjectionScanner::new(&InjectionSettings::default()).expect("built-in injection rules");

    // Sanity: the text holds what it claims to.
    let mut hits: Vec<Hit> = Vec::new();
    secrets.scan(&text, &mut hits);
    let secret_kinds: Vec<String> = hits.iter().map(|h| h.kind.to_string()).collect();
    hits.clear();
    pii.scan(&text, &mut hits);
    let pii_kinds: Vec<String> = hits.iter().map(|h| h.kind.to_string()).collect();
    hits.clear();
    injection.scan(&text, &mut hits);
    println!("text: {} bytes", text.len());
    println!("secrets found: {secret_kinds:?}");
    println!("pii found: {pii_kinds:?}");
    println!("injection found: {} findings", hits.len());
    assert!(
        secret_kinds.iter().any(|k| k == "stripe_key"),
        "the sample must hold a secret"
    );
    assert!(
        pii_kinds.iter().any(|k| k == "email"),
        "the sample must hold emails"
    );

    let token_regex = Regex::new("[A-Za-z0-9+/]{20,}").expect("token regex");
    let mut naive_secrets: Vec<Regex> = secrets
        .regexes()
        .into_iter()
        .map(|(_, r)| r.clone())
        .collect();
    naive_secrets.push(token_regex);
    let naive_pii: Vec<Regex> = pii.regexes().into_iter().map(|(_, r)| r.clone()).collect();
    let naive_injection: Vec<Regex> = injection
        .regexes()
        .into_iter()
        .map(|(_, r)| r.clone())
        .collect();

    let samples: Samples = RefCell::new(BTreeMap::new());
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .sample_size(20)
        .configure_from_args();
    let mut out: Vec<Hit> = Vec::with_capacity(64);

    bench(&mut c, &samples, "secrets", || {
        out.clear();
        secrets.scan(black_box(&text), &mut out);
        black_box(out.len());
    });
    bench(&mut c, &samples, "pii", || {
        out.clear();
        pii.scan(black_box(&text), &mut out);
        black_box(out.len());
    });
    bench(&mut c, &samples, "secrets+pii", || {
        out.clear();
        secrets.scan(black_box(&text), &mut out);
        pii.scan(black_box(&text), &mut out);
        black_box(out.len());
    });
    bench(&mut c, &samples, "injection", || {
        out.clear();
        injection.scan(black_box(&text), &mut out);
        black_box(out.len());
    });
    bench(&mut c, &samples, "naive/secrets", || {
        black_box(naive(&naive_secrets, black_box(&text)));
    });
    bench(&mut c, &samples, "naive/pii", || {
        black_box(naive(&naive_pii, black_box(&text)));
    });
    bench(&mut c, &samples, "naive/secrets+pii", || {
        black_box(naive(&naive_secrets, black_box(&text)) + naive(&naive_pii, black_box(&text)));
    });
    bench(&mut c, &samples, "naive/injection", || {
        black_box(naive(&naive_injection, black_box(&text)));
    });
    c.final_summary();

    println!();
    println!(
        "summary (median per {} B text; target {TARGET_US} µs for secrets + pii)",
        text.len()
    );
    println!(
        "{:<12} {:>11} {:>12} {:>12} {:>9}",
        "detector", "time/2KB", "of target", "naive", "speed-up"
    );
    for name in ["secrets", "pii", "secrets+pii", "injection"] {
        let ours = median_us(&samples, name);
        let base = median_us(&samples, &format!("naive/{name}"));
        println!(
            "{:<12} {:>8.2} µs {:>11.2}x {:>9.2} µs {:>8.1}x",
            name,
            ours,
            ours / TARGET_US,
            base,
            base / ours
        );
    }
}
