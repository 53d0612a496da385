//! Agreement figures against the reference implementations: 200 generated fixtures and the
//! published worked examples in `tests/data/agreement_fixtures.json` (written by
//! `make_agreement_fixtures.py` with scikit-learn, statsmodels and the krippendorff package),
//! to 1e-6.

use serde_json::Value;
use tribunal_labels::agreement::{
    cohen_kappa, fleiss_kappa, krippendorff_alpha, Label, Level, Weights,
};

fn number(v: &Value) -> Option<Label> {
    v.as_f64().map(Label::Number)
}

#[test]
fn figures_equal_the_reference_implementations() {
    let text = include_str!("data/agreement_fixtures.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 200);
    let mut checked = [0usize; 3];
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let got = match case["kind"].as_str().unwrap() {
            "cohen" => {
                checked[0] += 1;
                let a: Vec<Option<Label>> =
                    case["a"].as_array().unwrap().iter().map(number).collect();
                let b: Vec<Option<Label>> =
                    case["b"].as_array().unwrap().iter().map(number).collect();
                let w = match case["weights"].as_str().unwrap() {
                    "linear" => Weights::Linear,
                    "quadratic" => Weights::Quadratic,
                    _ => Weights::None,
                };
                cohen_kappa(&a, &b, w)
            }
            "fleiss" => {
                checked[1] += 1;
                let table: Vec<Vec<u32>> = case["table"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        r.as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_u64().unwrap() as u32)
                            .collect()
                    })
                    .collect();
                fleiss_kappa(&table)
            }
            "krippendorff" => {
                checked[2] += 1;
                let data: Vec<Vec<Option<Label>>> = case["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_array().unwrap().iter().map(number).collect())
                    .collect();
                let level = match case["level"].as_str().unwrap() {
                    "ordinal" => Level::Ordinal,
                    "interval" => Level::Interval,
                    _ => Level::Nominal,
                };
                krippendorff_alpha(&data, level)
            }
            other => panic!("unknown kind {other}"),
        };
        match case["expected"].as_f64() {
            Some(want) => {
                let got = got.unwrap_or_else(|e| panic!("{name}: {e}, expected {want}"));
                assert!((got - want).abs() < 1e-6, "{name}: {got} != {want}");
            }
            None => assert!(
                got.is_err(),
                "{name}: the reference has no value, got {got:?}"
            ),
        }
    }
    assert!(checked.iter().all(|&n| n >= 60), "{checked:?}");
}

#[test]
fn published_examples_have_their_published_values() {
    // Krippendorff (2011), "Computing Krippendorff's alpha-reliability", example C.
    let n = |v: &[Option<f64>]| v.iter().map(|x| x.map(Label::Number)).collect::<Vec<_>>();
    let data = vec![
        n(&[
            Some(1.),
            Some(2.),
            Some(3.),
            Some(3.),
            Some(2.),
            Some(1.),
            Some(4.),
            Some(1.),
            Some(2.),
            None,
            None,
            None,
        ]),
        n(&[
            Some(1.),
            Some(2.),
            Some(3.),
            Some(3.),
            Some(2.),
            Some(2.),
            Some(4.),
            Some(1.),
            Some(2.),
            Some(5.),
            None,
            Some(3.),
        ]),
        n(&[
            None,
            Some(3.),
            Some(3.),
            Some(3.),
            Some(2.),
            Some(3.),
            Some(4.),
            Some(2.),
            Some(2.),
            Some(5.),
            Some(1.),
            None,
        ]),
        n(&[
            Some(1.),
            Some(2.),
            Some(3.),
            Some(3.),
            Some(2.),
            Some(4.),
            Some(4.),
            Some(1.),
            Some(2.),
            Some(5.),
            Some(1.),
            None,
        ]),
    ];
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    assert_eq!(
        round3(krippendorff_alpha(&data, Level::Nominal).unwrap()),
        0.743
    );
    assert_eq!(
        round3(krippendorff_alpha(&data, Level::Interval).unwrap()),
        0.849
    );
    // Fleiss (1971) as tabulated: 10 subjects, 14 raters, 5 categories.
    let table = vec![
        vec![0, 0, 0, 0, 14],
        vec![0, 2, 6, 4, 2],
        vec![0, 0, 3, 5, 6],
        vec![0, 3, 9, 2, 0],
        vec![2, 2, 8, 1, 1],
        vec![7, 7, 0, 0, 0],
        vec![3, 2, 6, 3, 0],
        vec![2, 5, 3, 2, 2],
        vec![6, 5, 2, 1, 0],
        vec![0, 2, 2, 3, 7],
    ];
    assert_eq!(round3(fleiss_kappa(&table).unwrap()), 0.210);
}
