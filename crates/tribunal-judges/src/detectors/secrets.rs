//! The `secrets` detector: provider API keys (AWS, GitHub, Slack, Stripe, OpenAI, Anthropic,
//! Google), PEM private keys, JWTs, credentials in assignments, URLs and bearer headers, and
//! high-entropy tokens. Rules and thresholds come from `rules/secrets.toml`; excerpts are
//! always masked.

use super::rules::{resolve_overlaps, shannon_entropy, Cand, Pseudo, RuleSet, RuleSpec};
use super::{
    check_threshold, parse_rule_file, scoped_judge, Combine, FileSettings, Hit, Scanner, B64_URL,
};
use crate::error::JudgeConfigError;
use crate::registry::params;
use crate::text::masked_excerpt;
use crate::Judge;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use std::sync::LazyLock;

const KIND: &str = "secrets";
const ENTROPY_ID: &str = "high_entropy";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    settings: FileSettings,
    entropy: EntropyFile,
    checks: ChecksFile,
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntropyFile {
    score: f64,
    threshold: f64,
    min_len: usize,
    max_len: usize,
    max_word_ratio: f64,
    hex: bool,
    hex_threshold: f64,
    common_bigrams: String,
    ignore_prefixes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksFile {
    placeholders: Vec<String>,
    min_value_entropy: f64,
}

static RULES: LazyLock<Result<RuleFile, String>> =
    LazyLock::new(|| parse_rule_file("secrets.toml", include_str!("../../rules/secrets.toml")));

/// The prefilter literals of the built-in rules; `None` when the rule file does not parse.
pub(crate) fn builtin_literals() -> Option<Vec<Vec<u8>>> {
    Some(super::literals_of(&RULES.as_ref().ok()?.rule))
}

/// Settings of a `secrets` judge. Every field is optional; unset fields take the rule file's
/// defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsSettings {
    /// Rules added to the built-in ones; one with a built-in id replaces it.
    pub extra_rules: Vec<RuleSpec>,
    /// Rule ids to turn off (`high_entropy` turns the entropy scan off).
    pub disable: Vec<String>,
    /// Findings scoring below this are not reported.
    pub threshold: Option<f64>,
    /// Bits per character a token needs to count as high-entropy.
    pub entropy_threshold: Option<f64>,
    /// Shortest token the entropy scan considers.
    pub entropy_min_len: Option<usize>,
    /// Also flag hex-only tokens (git SHAs, digests) when their entropy is high.
    pub entropy_hex: Option<bool>,
    /// Provenance labels to scan (default: all).
    pub provenances: Option<Vec<String>>,
    /// Fields to scan: `content`, `arguments` (default: both).
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Jwt,
    SecretValue,
    NotPlaceholder,
}

const CHECKS: &[(&str, Check)] = &[
    ("jwt", Check::Jwt),
    ("secret_value", Check::SecretValue),
    ("not_placeholder", Check::NotPlaceholder),
];

struct Entropy {
    rule: u32,
    score: f64,
    threshold: f64,
    min_len: usize,
    max_len: usize,
    max_word_ratio: f64,
    hex: bool,
    hex_threshold: f64,
    /// `bigrams[a * 26 + b]`: the letter pair is common in English.
    bigrams: Box<[bool; 676]>,
    ignore_prefixes: Vec<String>,
}

/// Finds secrets in any text. Build once, scan many times (it is `Send + Sync`).
pub struct SecretScanner {
    rules: RuleSet<Check>,
    entropy: Option<Entropy>,
    placeholders: Vec<String>,
    min_value_entropy: f64,
    threshold: f64,
}

impl SecretScanner {
    /// Compiles the built-in rules adjusted by `settings`.
    pub fn new(settings: &SecretsSettings) -> Result<SecretScanner, JudgeConfigError> {
        SecretScanner::compile(KIND, settings)
    }

    fn compile(name: &str, s: &SecretsSettings) -> Result<SecretScanner, JudgeConfigError> {
        let err = |m: String| JudgeConfigError::invalid(name, m);
        let file = RULES.as_ref().map_err(|e| err(e.clone()))?;
        let e = &file.entropy;
        let pseudo = [Pseudo {
            id: ENTROPY_ID,
            category: "entropy",
            score: e.score,
        }];
        let rules = RuleSet::compile(&file.rule, &s.extra_rules, &s.disable, &pseudo, CHECKS)
            .map_err(err)?;
        let threshold = check_threshold(
            name,
            "threshold",
            s.threshold.unwrap_or(file.settings.threshold),
        )?;
        let entropy = match rules.pseudo(ENTROPY_ID) {
            None => None,
            Some(rule) => {
                let threshold = s.entropy_threshold.unwrap_or(e.threshold);
                if !(threshold.is_finite() && threshold >= 0.0) {
                    return Err(err(format!(
                        "entropy_threshold: {threshold} must be a non-negative number"
                    )));
                }
                // A run of the 64 token characters holds at most log2(64) = 6 bits each.
                if threshold > 6.0 {
                    return Err(err(format!(
                        "entropy_threshold: {threshold} is above 6, the most bits per character \
                         a run of [A-Za-z0-9+/] holds, so no run would ever be flagged; \
                         disable = [\"{ENTROPY_ID}\"] turns the scan off"
                    )));
                }
                let min_len = s.entropy_min_len.unwrap_or(e.min_len);
                if min_len < 2 || min_len > e.max_len {
                    return Err(err(format!(
                        "entropy_min_len: {min_len} must be between 2 and {}",
                        e.max_len
                    )));
                }
                let mut bigrams = Box::new([false; 676]);
                for pair in e.common_bigrams.split_whitespace() {
                    let p = pair.as_bytes();
                    if p.len() != 2 || !p.iter().all(u8::is_ascii_lowercase) {
                        return Err(err(format!(
                            "built-in rules/secrets.toml: bad bigram {pair:?}"
                        )));
                    }
                    bigrams[usize::from(p[0] - b'a') * 26 + usize::from(p[1] - b'a')] = true;
                }
                Some(Entropy {
                    rule,
                    score: e.score,
                    threshold,
                    min_len,
                    max_len: e.max_len,
                    max_word_ratio: e.max_word_ratio,
                    hex: s.entropy_hex.unwrap_or(e.hex),
                    hex_threshold: e.hex_threshold,
                    bigrams,
                    ignore_prefixes: e.ignore_prefixes.clone(),
                })
            }
        };
        Ok(SecretScanner {
            rules,
            entropy,
            placeholders: file
                .checks
                .placeholders
                .iter()
                .map(|p| p.to_lowercase())
                .collect(),
            min_value_entropy: file.checks.min_value_entropy,
            threshold,
        })
    }

    /// Appends the secrets found in `text` to `out`, sorted by position. Overlapping findings
    /// are merged (the higher score wins).
    pub fn scan(&self, text: &str, out: &mut Vec<Hit>) {
        let mut cands: Vec<Cand> = Vec::new();
        let runs = self.rules.for_each_match_with_runs(text, |i, rule, s, e| {
            if rule.check.is_none_or(|c| self.passes(c, &text[s..e])) {
                cands.push(Cand {
                    rule: i,
                    start: s,
                    end: e,
                    score: rule.score,
                });
            }
        });
        if let Some(e) = &self.entropy {
            e.scan(text, &runs, &mut cands);
        }
        // A secret written in hex or percent-encoded is found by the rules in what it decodes
        // to, and reported where its encoding stands.
        let found = cands.len();
        for &(s, e) in runs.iter().filter(|(s, e)| e - s >= MIN_HEX_RUN) {
            let run = &text.as_bytes()[s..e];
            for hex in run.split(|c| !c.is_ascii_hexdigit()) {
                // The place of this piece of the run in the text.
                let at = s + (hex.as_ptr() as usize - run.as_ptr() as usize);
                if let Some(decoded) = hex_text(hex) {
                    self.scan_decoded(&decoded, &mut cands, |ds, de| (at + 2 * ds, at + 2 * de));
                }
            }
        }
        if let Some((decoded, from)) = percent_decoded(text) {
            self.scan_decoded(&decoded, &mut cands, |ds, de| (from[ds].0, from[de - 1].1));
        }
        if cands.len() > found {
            cands.sort_by_key(|c| (c.start, c.end));
        }
        resolve_overlaps(&mut cands, |_, _| true);
        self.rules.emit(&cands, self.threshold, out);
    }

    /// The same scanner reading each text alone, with an automaton of its own.
    #[cfg(test)]
    pub(crate) fn alone(mut self) -> SecretScanner {
        self.rules = self.rules.alone();
        self
    }

    /// Whether it reads texts through the pass the built-in detectors share.
    #[cfg(test)]
    pub(crate) fn shares_pass(&self) -> bool {
        self.rules.shares_pass()
    }

    /// Ids of the enabled rules.
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.ids()
    }

    /// The enabled regex rules, for running them without the prefilter (benchmarks).
    pub fn regexes(&self) -> Vec<(&str, &regex::Regex)> {
        self.rules.regexes()
    }

    fn passes(&self, check: Check, m: &str) -> bool {
        match check {
            Check::Jwt => is_jwt(m),
            Check::NotPlaceholder => self.not_placeholder(m),
            Check::SecretValue => {
                m.len() >= 8
                    && self.not_placeholder(m)
                    && shannon_entropy(m.as_bytes()) >= self.min_value_entropy
            }
        }
    }

    /// The rules' matches in a decoded text, placed in the text as written by `place`.
    fn scan_decoded(
        &self,
        decoded: &str,
        cands: &mut Vec<Cand>,
        place: impl Fn(usize, usize) -> (usize, usize),
    ) {
        self.rules.for_each_match(decoded, |i, rule, s, e| {
            if rule.check.is_none_or(|c| self.passes(c, &decoded[s..e])) {
                let (start, end) = place(s, e);
                cands.push(Cand {
                    rule: i,
                    start,
                    end,
                    score: rule.score,
                });
            }
        });
    }

    fn not_placeholder(&self, v: &str) -> bool {
        let lower = v.to_lowercase();
        let first = v.chars().next();
        !self.placeholders.iter().any(|p| lower.contains(p.as_str()))
            && !v.contains(['$', '{', '}', '(', ')', '[', ']', '<', '>'])
            && !v.chars().all(|c| Some(c) == first)
    }
}

impl Scanner for SecretScanner {
    fn scan_text(&self, text: &str, out: &mut Vec<Hit>) {
        self.scan(text, out)
    }
}

/// The fewest hex digits a run must hold to be read as the text it encodes.
const MIN_HEX_RUN: usize = 32;
/// The fewest `%XX` escapes a text must hold to be read percent-decoded.
const MIN_PERCENT_ESCAPES: usize = 4;

/// The printable ASCII text a run of hex digits (even length, at least [`MIN_HEX_RUN`])
/// encodes; `None` for other runs (digests and ids decode to bytes that are not text).
fn hex_text(b: &[u8]) -> Option<String> {
    if b.len() < MIN_HEX_RUN || !b.len().is_multiple_of(2) || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let text: Vec<u8> = b
        .chunks_exact(2)
        .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
        .collect();
    text.iter()
        .all(|&c| c == b'\n' || c == b'\r' || c == b'\t' || (0x20..0x7f).contains(&c))
        .then(|| String::from_utf8(text).ok())
        .flatten()
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.to_ascii_lowercase() - b'a' + 10,
    }
}

/// `text` with its `%XX` escapes of ASCII bytes read as those bytes, and for each byte the
/// span of `text` it comes from (an escape, or a byte as written); `None` when it holds fewer
/// than [`MIN_PERCENT_ESCAPES`].
fn percent_decoded(text: &str) -> Option<(String, Vec<(usize, usize)>)> {
    let b = text.as_bytes();
    let escape = |i: usize| {
        (b[i] == b'%'
            && b.get(i + 1).is_some_and(|c| (b'0'..=b'7').contains(c))
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        .then(|| (hex_value(b[i + 1]) << 4) | hex_value(b[i + 2]))
    };
    let escapes = memchr::memchr_iter(b'%', b)
        .filter(|&i| escape(i).is_some())
        .take(MIN_PERCENT_ESCAPES)
        .count();
    if escapes < MIN_PERCENT_ESCAPES {
        return None;
    }
    let (mut plain, mut from) = (Vec::with_capacity(b.len()), Vec::with_capacity(b.len()));
    let mut i = 0;
    while i < b.len() {
        let (c, len) = escape(i).map_or((b[i], 1), |c| (c, 3));
        plain.push(c);
        from.push((i, i + len));
        i += len;
    }
    // Only ASCII bytes were put in, each for a whole escape, so the text is still UTF-8; a
    // match starts and ends on whole characters of it, and so on character boundaries of
    // `text`.
    Some((String::from_utf8(plain).ok()?, from))
}

/// Does the first segment decode (base64url) to a JSON object with an `alg` member?
fn is_jwt(m: &str) -> bool {
    let Some(header) = m.split('.').next() else {
        return false;
    };
    let Ok(bytes) = B64_URL.decode(header.trim_end_matches('=')) else {
        return false;
    };
    matches!(serde_json::from_slice::<Value>(&bytes), Ok(Value::Object(o)) if o.contains_key("alg"))
}

/// `u32::MAX` for bytes that make up entropy tokens (`[A-Za-z0-9+/]`), 0 for the rest.
static TOKEN: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
            t[c] = u32::MAX;
        }
        c += 1;
    }
    t
};

/// Calls `f(start, end)` for each maximal run of `min` token bytes or more (`min` at least
/// [`super::LONG_RUN`]), found within `long`, the text's long runs: the bytes either side of
/// a long run are not run bytes, so not token bytes either, and the runs found within one
/// are the text's own.
fn token_runs(b: &[u8], long: &[(usize, usize)], min: usize, mut f: impl FnMut(usize, usize)) {
    for &(s, e) in long.iter().filter(|(s, e)| e - s >= min) {
        super::for_each_run(&b[s..e], min, &TOKEN, |a, z| f(s + a, s + z));
    }
}

impl Entropy {
    /// Finds the maximal runs of at least `min_len` token bytes, then judges each run.
    /// `long` are the text's long runs ([`super::pass::Pass::long_runs`]): token runs that
    /// long lie within them, so only they are read when `min_len` is that long too.
    fn scan(&self, text: &str, long: &[(usize, usize)], out: &mut Vec<Cand>) {
        let b = text.as_bytes();
        let judge = |run_start: usize, run_end: usize| {
            let (mut s, mut e) = (run_start, run_end);
            while s < e && matches!(b[s], b'/' | b'+') {
                s += 1;
            }
            while e > s && matches!(b[e - 1], b'/' | b'+') {
                e -= 1;
            }
            let len = e - s;
            if len < self.min_len || len > self.max_len {
                return;
            }
            if self.is_secret_like(&b[s..e])
                && !self
                    .ignore_prefixes
                    .iter()
                    .any(|p| text[..run_start].ends_with(p.as_str()))
            {
                out.push(Cand {
                    rule: self.rule,
                    start: s,
                    end: e,
                    score: self.score,
                });
            }
        };
        if self.min_len < super::LONG_RUN {
            return super::for_each_run(b, self.min_len, &TOKEN, judge);
        }
        token_runs(b, long, self.min_len, judge);
    }

    fn is_secret_like(&self, t: &[u8]) -> bool {
        let (mut digits, mut letters, mut hex_only) = (0usize, 0usize, true);
        // `0x` only says that hex follows (an address, a hash): the digits are what count.
        let body = t
            .strip_prefix(b"0x")
            .or_else(|| t.strip_prefix(b"0X"))
            .unwrap_or(t);
        for &c in body {
            if c.is_ascii_digit() {
                digits += 1;
            } else if c.is_ascii_alphabetic() {
                letters += 1;
                hex_only &= c.is_ascii_hexdigit();
            } else {
                hex_only = false;
            }
        }
        if digits == 0 || letters == 0 {
            return false;
        }
        let threshold = if hex_only {
            if !self.hex {
                return false;
            }
            self.hex_threshold
        } else {
            self.threshold
        };
        if shannon_entropy(t) < threshold {
            return false;
        }
        let common = t
            .windows(2)
            .filter(|w| {
                let (a, b) = (w[0].to_ascii_lowercase(), w[1].to_ascii_lowercase());
                a.is_ascii_lowercase()
                    && b.is_ascii_lowercase()
                    && self.bigrams[usize::from(a - b'a') * 26 + usize::from(b - b'a')]
            })
            .count();
        (common as f64) <= self.max_word_ratio * (t.len() - 1) as f64
    }
}

/// Builds a `secrets` judge. Settings: see [`SecretsSettings`].
pub fn build(name: &str, params_value: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: SecretsSettings = params(name, params_value)?;
    let scanner = SecretScanner::compile(name, &settings)?;
    let file = RULES
        .as_ref()
        .map_err(|e| JudgeConfigError::invalid(name, e.clone()))?;
    scoped_judge(
        name,
        scanner,
        settings
            .provenances
            .as_deref()
            .unwrap_or(&file.settings.provenances),
        settings.fields.as_deref().unwrap_or(&file.settings.fields),
        Combine::Max,
        masked_excerpt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The maximal runs of token bytes of `min` or more, read byte by byte.
    fn runs_read_bytewise(b: &[u8], min: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for i in 0..=b.len() {
            let token = i < b.len() && TOKEN[b[i] as usize] != 0;
            match (token, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if i - s >= min {
                        out.push((s, i));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn runs_found_by_skipping_are_the_runs_read_byte_by_byte() {
        // Texts of token and other bytes in every mix, runs of every length around `min`.
        let alphabet = b"aZ5+/ -._\n";
        for (case, b) in super::super::generated::texts(7, 4000, 120, alphabet, 5).enumerate() {
            for min in [1, 2, 3, 5, 8, 14, 15, 16, 20, 24, 40] {
                let mut got = Vec::new();
                super::super::for_each_run(&b, min, &TOKEN, |s, e| got.push((s, e)));
                assert_eq!(
                    got,
                    runs_read_bytewise(&b, min),
                    "case {case}, min {min}: {:?}",
                    String::from_utf8_lossy(&b)
                );
            }
        }
    }

    #[test]
    fn token_runs_found_within_long_runs_are_the_token_runs_of_the_text() {
        // Token bytes, the run bytes that are not token bytes (`-`, `_`), and others.
        let alphabet = b"aZ5+/-_ .\n";
        for (case, b) in super::super::generated::texts(3, 3000, 160, alphabet, 5).enumerate() {
            let mut long = Vec::new();
            super::super::for_each_run(
                &b,
                super::super::LONG_RUN,
                &super::super::RUN_BYTES,
                |s, e| long.push((s, e)),
            );
            for min in [15, 16, 20, 24, 40] {
                let (mut got, mut want) = (Vec::new(), Vec::new());
                token_runs(&b, &long, min, |s, e| got.push((s, e)));
                super::super::for_each_run(&b, min, &TOKEN, |s, e| want.push((s, e)));
                assert_eq!(
                    got,
                    want,
                    "case {case}, min {min}: {:?}",
                    String::from_utf8_lossy(&b)
                );
            }
        }
    }

    #[test]
    fn jwt_header_must_be_json_with_alg() {
        // {"alg":"HS256","typ":"JWT"}
        assert!(is_jwt(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.sig"
        ));
        // {"typ":"JWT"} has no alg.
        assert!(!is_jwt("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig"));
        assert!(!is_jwt("eyJnot-base64-json.x.y"));
    }

    #[test]
    fn placeholders_are_not_secret_values() {
        let s = SecretScanner::new(&SecretsSettings::default()).unwrap();
        assert!(!s.passes(Check::SecretValue, "your_api_key_here"));
        assert!(!s.passes(Check::SecretValue, "${API_KEY}"));
        assert!(!s.passes(Check::SecretValue, "aaaaaaaaaaaa"));
        assert!(s.passes(Check::SecretValue, "Zq8vT3mK1pLx9wRb"));
    }
}
