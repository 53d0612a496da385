//! `token_usage` and `cost`: tokens summed over the trace, and what they cost in USD.
//!
//! Usage comes from the spans (`Span::usage`); traces without it fall back to metadata:
//! MLflow's `mlflow.trace.tokenUsage` (a JSON string, at the top of the metadata or inside
//! `trace_metadata`), then a `usage` object (or list of objects) with
//! `input_tokens`/`output_tokens` or `prompt_tokens`/`completion_tokens`.
//!
//! Cost uses a span's own `cost` when the source reports one, otherwise its tokens times
//! the price of its model. Prices are per million tokens: a small built-in table, merged
//! under the `prices` setting. A model is found by exact name, then by the longest known
//! name it starts with (so `gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`).

use crate::{error::JudgeConfigError, registry, Judge, JudgeInput};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use tribunal_core::{Feedback, TokenUsage, Trace};

use super::util;

/// Built-in prices in USD per million tokens: (model, input, output).
const DEFAULT_PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
];

/// MLflow's trace-level token usage key (its value is a JSON string).
const MLFLOW_TOKEN_USAGE: &str = "mlflow.trace.tokenUsage";

// ---------------------------------------------------------------------------------------
// token_usage

/// `token_usage` has no settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TokenSettings {}

pub fn build_tokens(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let TokenSettings {} = registry::params(name, params)?;
    Ok(Box::new(Tokens {
        name: name.to_owned(),
    }))
}

struct Tokens {
    name: String,
}

impl Judge for Tokens {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let trace = input.trace;
        let (usage, from) = match trace.token_usage() {
            Some(u) => {
                let n = trace.spans.iter().filter(|s| s.usage.is_some()).count();
                (u, format!("summed over {n} spans that report usage"))
            }
            None => match metadata_usage(&trace.metadata) {
                Ok(Some((u, field))) => (u, format!("from metadata.{field}")),
                Ok(None) => return Vec::new(),
                Err(e) => return vec![Feedback::error(&self.name, &self.name, e)],
            },
        };
        let value = json!({
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total(),
        });
        let rationale = format!(
            "{} input + {} output = {} tokens, {from}",
            usage.input_tokens,
            usage.output_tokens,
            usage.total()
        );
        vec![Feedback::code(&self.name, &self.name, value).with_rationale(rationale)]
    }
}

/// Token usage the source recorded at trace level, and the metadata field it came from.
fn metadata_usage(meta: &Map<String, Value>) -> Result<Option<(TokenUsage, String)>, String> {
    let nested = meta
        .get("trace_metadata")
        .and_then(Value::as_object)
        .and_then(|m| m.get(MLFLOW_TOKEN_USAGE))
        .map(|v| (v, format!("trace_metadata.{MLFLOW_TOKEN_USAGE}")));
    let candidates = [
        meta.get(MLFLOW_TOKEN_USAGE)
            .map(|v| (v, MLFLOW_TOKEN_USAGE.to_owned())),
        nested,
        meta.get("usage").map(|v| (v, "usage".to_owned())),
    ];
    for (v, field) in candidates.into_iter().flatten() {
        if v.is_null() {
            continue;
        }
        return usage_value(v, &field).map(|u| Some((u, field)));
    }
    Ok(None)
}

/// Reads one usage value: an object, a list of objects (summed) or a JSON string of either.
fn usage_value(v: &Value, field: &str) -> Result<TokenUsage, String> {
    match v {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(parsed) if !parsed.is_string() => usage_value(&parsed, field),
            _ => Err(format!(
                "metadata.{field} should be a JSON object of token counts, got {}",
                util::short(&v.to_string())
            )),
        },
        Value::Array(items) => {
            let mut total = TokenUsage::default();
            for (i, item) in items.iter().enumerate() {
                let u = usage_value(item, &format!("{field}[{i}]"))?;
                total.add(u);
            }
            Ok(total)
        }
        Value::Object(o) => {
            let read = |keys: [&str; 2]| -> Result<Option<u64>, String> {
                for key in keys {
                    if let Some(x) = o.get(key).filter(|x| !x.is_null()) {
                        return util::count(x).map(Some).ok_or_else(|| {
                            format!(
                                "metadata.{field}.{key} should be a non-negative integer, got {}",
                                util::short(&x.to_string())
                            )
                        });
                    }
                }
                Ok(None)
            };
            let input = read(["input_tokens", "prompt_tokens"])?;
            let output = read(["output_tokens", "completion_tokens"])?;
            if input.is_none() && output.is_none() {
                return Err(format!(
                    "metadata.{field} has none of input_tokens, prompt_tokens, output_tokens, completion_tokens"
                ));
            }
            Ok(TokenUsage {
                input_tokens: input.unwrap_or(0),
                output_tokens: output.unwrap_or(0),
            })
        }
        other => Err(format!(
            "metadata.{field} should be an object of token counts, got {}",
            util::short(&other.to_string())
        )),
    }
}

// ---------------------------------------------------------------------------------------
// cost

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CostSettings {
    /// Extra or overriding prices, by model name.
    prices: BTreeMap<String, Price>,
    /// The model to price usage that does not name one.
    default_model: Option<String>,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Price {
    input_per_million: f64,
    output_per_million: f64,
}

impl Price {
    fn usd(self, u: TokenUsage) -> f64 {
        (u.input_tokens as f64 * self.input_per_million
            + u.output_tokens as f64 * self.output_per_million)
            / 1e6
    }
}

/// Prices by lower-case model name, searched by exact name then longest prefix. The `cost`
/// judge prices trace usage with it; reports price model judges' own calls with it.
pub struct PriceTable {
    exact: HashMap<String, Price>,
    /// The same names, longest first, for prefix search.
    by_length: Vec<(String, Price)>,
}

impl PriceTable {
    fn new(extra: &BTreeMap<String, Price>) -> PriceTable {
        let mut exact: HashMap<String, Price> = DEFAULT_PRICES
            .iter()
            .map(|(m, i, o)| {
                let price = Price {
                    input_per_million: *i,
                    output_per_million: *o,
                };
                (m.to_string(), price)
            })
            .collect();
        for (model, price) in extra {
            exact.insert(model.to_ascii_lowercase(), *price);
        }
        let mut by_length: Vec<(String, Price)> =
            exact.iter().map(|(k, v)| (k.clone(), *v)).collect();
        by_length.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        PriceTable { exact, by_length }
    }

    /// The built-in prices.
    pub fn builtin() -> PriceTable {
        PriceTable::new(&BTreeMap::new())
    }

    /// The built-in prices with the `prices` setting of a `cost` judge (instance `name`,
    /// settings `params`) over them, checked as that judge checks them.
    pub fn from_cost_settings(name: &str, params: &Value) -> Result<PriceTable, JudgeConfigError> {
        let settings: CostSettings = registry::params(name, params)?;
        check_prices(name, &settings.prices)?;
        Ok(PriceTable::new(&settings.prices))
    }

    /// What `input_tokens` and `output_tokens` of `model` cost in USD; `None` when the model
    /// has no price. A `provider:/model` URI is priced by its model name.
    pub fn usd(&self, model: &str, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        let (_, price) = self.lookup(model)?;
        Some(price.usd(TokenUsage {
            input_tokens,
            output_tokens,
        }))
    }

    /// The price of `model` and the table name it matched. A provider prefix
    /// (`openai/gpt-4o`) is ignored when the full name is unknown.
    fn lookup(&self, model: &str) -> Option<(&str, Price)> {
        let lower = model.trim().to_ascii_lowercase();
        let bare = lower.rsplit('/').next().unwrap_or(&lower);
        for name in [lower.as_str(), bare] {
            if let Some((k, p)) = self.exact.get_key_value(name) {
                return Some((k.as_str(), *p));
            }
        }
        for name in [lower.as_str(), bare] {
            // A prefix must end at a word boundary: `gpt-4o` prices `gpt-4o-2024-08-06`,
            // not `gpt-4omni`.
            let hit = self.by_length.iter().find(|(k, _)| {
                name.strip_prefix(k.as_str()).is_some_and(|rest| {
                    rest.chars()
                        .next()
                        .is_some_and(|c| !c.is_ascii_alphanumeric())
                })
            });
            if let Some((k, p)) = hit {
                return Some((k.as_str(), *p));
            }
        }
        None
    }
}

fn check_prices(name: &str, prices: &BTreeMap<String, Price>) -> Result<(), JudgeConfigError> {
    for (model, p) in prices {
        for (field, v) in [
            ("input_per_million", p.input_per_million),
            ("output_per_million", p.output_per_million),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(JudgeConfigError::invalid(
                    name,
                    format!("prices.{model:?}.{field} must be a non-negative number, got {v}"),
                ));
            }
        }
    }
    Ok(())
}

pub fn build_cost(name: &str, params: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: CostSettings = registry::params(name, params)?;
    check_prices(name, &settings.prices)?;
    let default_model = settings.default_model.filter(|m| !m.trim().is_empty());
    Ok(Box::new(Cost {
        name: name.to_owned(),
        prices: PriceTable::new(&settings.prices),
        default_model,
    }))
}

struct Cost {
    name: String,
    prices: PriceTable,
    default_model: Option<String>,
}

/// What one model's tokens cost in a trace.
#[derive(Default)]
struct ModelCost {
    usage: TokenUsage,
    usd: f64,
}

/// The running total while walking a trace.
#[derive(Default)]
struct Tally<'a> {
    total: f64,
    by_model: BTreeMap<&'a str, ModelCost>,
    reported_spans: usize,
    reported_usd: f64,
    most_expensive: Option<(&'a str, f64)>,
}

impl<'a> Tally<'a> {
    fn add(&mut self, span_id: Option<&'a str>, usd: f64) {
        self.total += usd;
        if let Some(id) = span_id {
            if self.most_expensive.is_none_or(|(_, best)| usd > best) {
                self.most_expensive = Some((id, usd));
            }
        }
    }
}

impl Cost {
    /// Prices `usage` for `model` (or the default model); the error says what to configure.
    fn price<'a>(
        &'a self,
        tally: &mut Tally<'a>,
        model: Option<&'a str>,
        usage: TokenUsage,
        what: &str,
    ) -> Result<f64, String> {
        if usage.total() == 0 {
            return Ok(0.0);
        }
        let model = model
            .filter(|m| !m.trim().is_empty())
            .or(self.default_model.as_deref())
            .ok_or_else(|| {
                format!(
                    "{what} reports token usage but names no model; set judges.{}.default_model",
                    self.name
                )
            })?;
        let (table_name, price) = self.prices.lookup(model).ok_or_else(|| {
            format!(
                "no price for model {model:?} ({what}); add it to judges.{}.prices, e.g. \
                 prices = {{ {model:?} = {{ input_per_million = 1.0, output_per_million = 2.0 }} }}",
                self.name
            )
        })?;
        let usd = price.usd(usage);
        let entry = tally.by_model.entry(table_name).or_default();
        entry.usage.add(usage);
        entry.usd += usd;
        Ok(usd)
    }

    fn tally<'a>(&'a self, trace: &'a Trace) -> Result<Option<Tally<'a>>, String> {
        let mut tally = Tally::default();
        let mut any = false;
        for s in &trace.spans {
            let usd = match (s.cost, s.usage) {
                (Some(c), _) => {
                    if !c.is_finite() || c < 0.0 {
                        return Err(format!("span {} reports an invalid cost {c}", s.id));
                    }
                    tally.reported_spans += 1;
                    tally.reported_usd += c;
                    c
                }
                (None, Some(u)) => {
                    self.price(&mut tally, s.model.as_deref(), u, &format!("span {}", s.id))?
                }
                (None, None) => continue,
            };
            any = true;
            tally.add(Some(&s.id), usd);
        }
        if !any {
            let Some((usage, field)) = metadata_usage(&trace.metadata)? else {
                return Ok(None);
            };
            let model = trace.metadata.get("model").and_then(Value::as_str);
            let usd = self.price(&mut tally, model, usage, &format!("metadata.{field}"))?;
            tally.add(None, usd);
        }
        Ok(Some(tally))
    }
}

impl Judge for Cost {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, input: &JudgeInput<'_>) -> Vec<Feedback> {
        let tally = match self.tally(input.trace) {
            Ok(Some(t)) => t,
            Ok(None) => return Vec::new(),
            Err(e) => return vec![Feedback::error(&self.name, &self.name, e)],
        };
        let mut parts: Vec<String> = tally
            .by_model
            .iter()
            .map(|(model, c)| {
                format!(
                    "{model}: {} input + {} output tokens = ${:.6}",
                    c.usage.input_tokens, c.usage.output_tokens, c.usd
                )
            })
            .collect();
        if tally.reported_spans > 0 {
            parts.push(format!(
                "cost reported by {} spans = ${:.6}",
                tally.reported_spans, tally.reported_usd
            ));
        }
        if parts.is_empty() {
            parts.push("no tokens used".to_owned());
        }
        let mut fb = Feedback::code(&self.name, &self.name, tally.total).with_rationale(format!(
            "${:.6} in all; {}",
            tally.total,
            parts.join("; ")
        ));
        if let Some((id, _)) = tally.most_expensive {
            fb = fb.with_evidence(vec![id.to_owned()]);
        }
        vec![fb]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_match_exact_then_longest_prefix_at_a_boundary() {
        let t = PriceTable::new(&BTreeMap::new());
        assert_eq!(t.lookup("gpt-4o").unwrap().0, "gpt-4o");
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").unwrap().0, "gpt-4o-mini");
        assert_eq!(t.lookup("GPT-4o-2024-08-06").unwrap().0, "gpt-4o");
        assert_eq!(t.lookup("openai/gpt-4o-mini").unwrap().0, "gpt-4o-mini");
        assert_eq!(
            t.lookup("claude-sonnet-4-20250514").unwrap().0,
            "claude-sonnet-4"
        );
        assert!(t.lookup("gpt-4omni").is_none());
        assert!(t.lookup("llama-3").is_none());
    }

    #[test]
    fn model_uris_are_priced_by_their_model_and_settings_override_the_table() {
        let t = PriceTable::builtin();
        let usd = t.usd("openai:/gpt-4o-mini", 1_000_000, 1_000_000).unwrap();
        assert!((usd - 0.75).abs() < 1e-12, "{usd}");
        assert_eq!(t.usd("ollama:/llama3.1", 10, 10), None);
        let custom = PriceTable::from_cost_settings(
            "cost",
            &json!({"prices": {"llama3.1": {"input_per_million": 1.0, "output_per_million": 2.0}}}),
        )
        .unwrap();
        assert_eq!(
            custom.usd("ollama:/llama3.1", 1_000_000, 500_000),
            Some(2.0)
        );
        let err = PriceTable::from_cost_settings(
            "cost",
            &json!({"prices": {"m": {"input_per_million": -1.0, "output_per_million": 2.0}}}),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("non-negative"), "{err}");
    }

    #[test]
    fn metadata_usage_reads_every_shape() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        let u = metadata_usage(&m(
            json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!((u.0.input_tokens, u.0.output_tokens), (3, 4));
        let u = metadata_usage(&m(json!({"trace_metadata": {MLFLOW_TOKEN_USAGE: "{\"input_tokens\": 5, \"output_tokens\": 6, \"total_tokens\": 11}"}})))
            .unwrap()
            .unwrap();
        assert_eq!((u.0.input_tokens, u.0.output_tokens), (5, 6));
        let u = metadata_usage(&m(
            json!({"usage": [{"input_tokens": "1"}, {"output_tokens": 2}]}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!((u.0.input_tokens, u.0.output_tokens), (1, 2));
        assert!(metadata_usage(&m(json!({"usage": {"input_tokens": -1}}))).is_err());
        assert!(metadata_usage(&m(json!({MLFLOW_TOKEN_USAGE: "not json"}))).is_err());
        assert!(metadata_usage(&m(json!({}))).unwrap().is_none());
    }
}
