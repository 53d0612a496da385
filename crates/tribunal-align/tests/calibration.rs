//! The trust-or-escalate guarantee, checked empirically on a synthetic judge whose
//! confidence-to-accuracy curve is known: its confidence is the share of ten sampled answers
//! that agree (0.5 to 1.0), and the chance that its answer agrees with people at each
//! confidence is fixed below. With target agreement 0.9 and probability 0.9, in at least 90 %
//! of 1,000 random calibration/test draws the agreement on the trusted test answers must be
//! at least 0.9.

use tribunal_align::calibrate::{calibrate, Scored};
use tribunal_align::rng::Rng;

/// (confidence, probability that the answer agrees with people); levels equally likely.
const CURVE: &[(f64, f64)] = &[
    (0.5, 0.55),
    (0.6, 0.62),
    (0.7, 0.70),
    (0.8, 0.78),
    (0.9, 0.90),
    (1.0, 0.97),
];

fn draw(rng: &mut Rng, n: usize) -> Vec<Scored> {
    (0..n)
        .map(|_| {
            let (confidence, p) = CURVE[rng.below(CURVE.len())];
            Scored {
                confidence,
                agrees: rng.unit() < p,
            }
        })
        .collect()
}

/// Agreement with people above `t`, from the curve.
fn population_agreement(t: f64) -> f64 {
    let above: Vec<f64> = CURVE
        .iter()
        .filter(|(c, _)| *c >= t)
        .map(|(_, p)| *p)
        .collect();
    above.iter().sum::<f64>() / above.len() as f64
}

#[test]
fn agreement_on_trusted_answers_meets_the_target_in_nine_splits_of_ten() {
    let (target, confidence) = (0.9, 0.9);
    let (splits, calibration, test) = (1000, 600, 3000);
    let mut rng = Rng::new(2025);
    let (mut met, mut refused, mut coverage, mut population_met) = (0, 0, 0.0, 0);
    for _ in 0..splits {
        let cal = draw(&mut rng, calibration);
        let held = draw(&mut rng, test);
        let t = match calibrate(&cal, target, confidence) {
            Ok(t) => t,
            Err(_) => {
                // No threshold: everything escalates. Counted apart, not as a success.
                refused += 1;
                continue;
            }
        };
        let trusted: Vec<&Scored> = held
            .iter()
            .filter(|s| s.confidence >= t.threshold)
            .collect();
        coverage += trusted.len() as f64 / held.len() as f64;
        let agreement =
            trusted.iter().filter(|s| s.agrees).count() as f64 / trusted.len().max(1) as f64;
        if agreement >= target {
            met += 1;
        }
        if population_agreement(t.threshold) >= target {
            population_met += 1;
        }
    }
    let decided = splits - refused;
    println!(
        "trust or escalate, target {target} with probability {confidence}: {met} of the {decided} splits that gave a threshold met the target on test answers ({population_met} by the known curve), mean coverage {:.3}; {refused} of {splits} refused (too few agreeing items at the strictest threshold)",
        coverage / decided.max(1) as f64
    );
    // Among the splits that trusted anything (the refused ones trust nothing, so they cannot
    // fall short), and over all splits counting a refusal as meeting the target vacuously.
    assert!(met * 10 >= decided * 9, "{met} of {decided}");
    assert!(
        population_met * 10 >= decided * 9,
        "{population_met} of {decided}"
    );
    assert!((met + refused) * 10 >= splits * 9);
    // The guarantee is not met by trusting nothing: most splits give a useful threshold.
    assert!(decided * 10 >= splits * 9, "{refused} refused");
    assert!(coverage / decided.max(1) as f64 > 0.2);
}
