//! The `pii` detector: email addresses, phone numbers, payment cards, IBANs and national ids
//! (US SSN, UK NINO, Spanish DNI/NIE, Brazilian CPF). Patterns find candidates; checksums and
//! issuing rules written in code confirm them (Luhn and IIN prefixes for cards, ISO 7064
//! mod 97-10 for IBANs, never-issued ranges for SSNs, check letters and digits for DNI and
//! CPF). Rules, IIN prefixes and IBAN lengths come from `rules/pii.toml`; excerpts are masked.

use super::rules::{resolve_overlaps, Cand, RuleSet, RuleSpec};
use super::{check_threshold, parse_rule_file, scoped_judge, Combine, FileSettings, Hit, Scanner};
use crate::error::JudgeConfigError;
use crate::registry::params;
use crate::text::masked_excerpt;
use crate::Judge;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::LazyLock;

const KIND: &str = "pii";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    settings: FileSettings,
    email: EmailFile,
    card: CardFile,
    iban: IbanFile,
    nino: NinoFile,
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailFile {
    ignore_domains: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFile {
    issuers: Vec<IssuerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    name: String,
    iin: Vec<String>,
    lengths: Vec<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IbanFile {
    lengths: BTreeMap<String, usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NinoFile {
    invalid_prefixes: Vec<String>,
}

static RULES: LazyLock<Result<RuleFile, String>> =
    LazyLock::new(|| parse_rule_file("pii.toml", include_str!("../../rules/pii.toml")));

/// The prefilter literals of the built-in rules; `None` when the rule file does not parse.
pub(crate) fn builtin_literals() -> Option<Vec<Vec<u8>>> {
    Some(super::literals_of(&RULES.as_ref().ok()?.rule))
}

/// Settings of a `pii` judge. Unset fields take the rule file's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiSettings {
    /// Rules added to the built-in ones; one with a built-in id replaces it.
    pub extra_rules: Vec<RuleSpec>,
    /// Rule ids to turn off.
    pub disable: Vec<String>,
    /// Findings scoring below this are not reported.
    pub threshold: Option<f64>,
    /// Provenance labels to scan (default: all).
    pub provenances: Option<Vec<String>>,
    /// Fields to scan: `content`, `arguments` (default: both).
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Email,
    Card,
    Iban,
    Ssn,
    Nino,
    Nanp,
    EsDni,
    BrCpf,
}

const CHECKS: &[(&str, Check)] = &[
    ("email", Check::Email),
    ("card", Check::Card),
    ("iban", Check::Iban),
    ("ssn", Check::Ssn),
    ("nino", Check::Nino),
    ("nanp", Check::Nanp),
    ("es_dni", Check::EsDni),
    ("br_cpf", Check::BrCpf),
];

/// An IIN prefix range (the first `len` digits of the card, inclusive bounds) and the card
/// lengths its issuer uses.
#[derive(Debug, Clone)]
struct Iin {
    len: usize,
    lo: u32,
    hi: u32,
    card_lengths: Vec<usize>,
}

/// Finds personal data in any text. Build once, scan many times (it is `Send + Sync`).
pub struct PiiScanner {
    rules: RuleSet<Check>,
    threshold: f64,
    ignore_domains: Vec<String>,
    iin: Vec<Iin>,
    iban_lengths: BTreeMap<String, usize>,
    nino_invalid: Vec<String>,
}

impl PiiScanner {
    /// Compiles the built-in rules adjusted by `settings`.
    pub fn new(settings: &PiiSettings) -> Result<PiiScanner, JudgeConfigError> {
        PiiScanner::compile(KIND, settings)
    }

    fn compile(name: &str, s: &PiiSettings) -> Result<PiiScanner, JudgeConfigError> {
        let err = |m: String| JudgeConfigError::invalid(name, m);
        let file = RULES.as_ref().map_err(|e| err(e.clone()))?;
        let rules =
            RuleSet::compile(&file.rule, &s.extra_rules, &s.disable, &[], CHECKS).map_err(err)?;
        let threshold = check_threshold(
            name,
            "threshold",
            s.threshold.unwrap_or(file.settings.threshold),
        )?;
        let mut iin = Vec::new();
        for issuer in &file.card.issuers {
            for r in &issuer.iin {
                let range = parse_iin(r, &issuer.lengths).ok_or_else(|| {
                    err(format!(
                        "built-in rules/pii.toml: bad IIN range {r:?} for {}",
                        issuer.name
                    ))
                })?;
                iin.push(range);
            }
        }
        Ok(PiiScanner {
            rules,
            threshold,
            ignore_domains: file
                .email
                .ignore_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            iin,
            iban_lengths: file.iban.lengths.clone(),
            nino_invalid: file.nino.invalid_prefixes.clone(),
        })
    }

    /// Appends the personal data found in `text` to `out`, sorted by position. Overlapping
    /// findings are merged (the higher score wins).
    pub fn scan(&self, text: &str, out: &mut Vec<Hit>) {
        let mut cands: Vec<Cand> = Vec::new();
        self.rules.for_each_match(text, |i, rule, s, e| {
            if rule.check.is_none_or(|c| self.passes(c, &text[s..e])) {
                cands.push(Cand {
                    rule: i,
                    start: s,
                    end: e,
                    score: rule.score,
                });
            }
        });
        resolve_overlaps(&mut cands, |_, _| true);
        self.rules.emit(&cands, self.threshold, out);
    }

    /// The same scanner reading each text alone, with an automaton of its own.
    #[cfg(test)]
    pub(crate) fn alone(mut self) -> PiiScanner {
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
            Check::Email => self.email_ok(m),
            Check::Card => self.card_ok(m),
            Check::Iban => self.iban_ok(m),
            Check::Ssn => ssn_ok(m),
            Check::Nino => {
                let prefix = m.get(..2).unwrap_or("");
                !self.nino_invalid.iter().any(|p| p == prefix)
            }
            Check::Nanp => nanp_ok(m),
            Check::EsDni => es_dni_ok(m),
            Check::BrCpf => br_cpf_ok(m),
        }
    }

    fn email_ok(&self, m: &str) -> bool {
        let Some((local, domain)) = m.rsplit_once('@') else {
            return false;
        };
        let domain = domain.to_ascii_lowercase();
        let reserved = self
            .ignore_domains
            .iter()
            .any(|d| domain == *d || domain.ends_with(&format!(".{d}")));
        !local.is_empty()
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && !reserved
    }

    fn card_ok(&self, m: &str) -> bool {
        let digits = digits_of(m);
        if !(13..=19).contains(&digits.len()) || !consistent_separators(m) || !luhn(&digits) {
            return false;
        }
        self.iin.iter().any(|r| {
            let prefix = digits
                .get(..r.len)
                .map(|p| p.iter().fold(0u32, |acc, d| acc * 10 + u32::from(*d)));
            prefix.is_some_and(|p| (r.lo..=r.hi).contains(&p))
                && r.card_lengths.contains(&digits.len())
        })
    }

    fn iban_ok(&self, m: &str) -> bool {
        let compact: Vec<u8> = m.bytes().filter(|b| *b != b' ').collect();
        let Some(country) = std::str::from_utf8(&compact[..2.min(compact.len())]).ok() else {
            return false;
        };
        if self.iban_lengths.get(country) != Some(&compact.len()) {
            return false;
        }
        iban_checksum_ok(&compact)
    }
}

impl Scanner for PiiScanner {
    fn scan_text(&self, text: &str, out: &mut Vec<Hit>) {
        self.scan(text, out)
    }
}

fn parse_iin(r: &str, card_lengths: &[usize]) -> Option<Iin> {
    let (lo, hi) = r.split_once('-').unwrap_or((r, r));
    if lo.len() != hi.len() || lo.is_empty() || lo.len() > 6 {
        return None;
    }
    let (lo_n, hi_n) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo_n <= hi_n).then_some(Iin {
        len: lo.len(),
        lo: lo_n,
        hi: hi_n,
        card_lengths: card_lengths.to_vec(),
    })
}

/// The ASCII digits of `s` as numbers 0..=9.
fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// Every separator in a card number is the same character.
fn consistent_separators(s: &str) -> bool {
    let mut seps = s.bytes().filter(|b| !b.is_ascii_digit());
    match seps.next() {
        None => true,
        Some(first) => seps.all(|b| b == first),
    }
}

/// The Luhn (mod 10) check over digits, the last one being the check digit.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// ISO 7064 mod 97-10 over an IBAN without spaces: move the first four characters to the
/// end, read letters as 10..35, and the remainder mod 97 must be 1.
pub(crate) fn iban_checksum_ok(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        match c {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// Area 000, 666 and 900-999, group 00 and serial 0000 are never issued; separators match.
fn ssn_ok(m: &str) -> bool {
    let d = digits_of(m);
    let seps: Vec<u8> = m.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if d.len() != 9 || seps.len() != 2 || seps[0] != seps[1] {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, x| a * 10 + u32::from(*x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// North American numbering: area code and exchange start with 2-9; area is not N11.
fn nanp_ok(m: &str) -> bool {
    let mut d = digits_of(m);
    if d.len() == 11 {
        if d[0] != 1 {
            return false;
        }
        d.remove(0);
    }
    d.len() == 10 && d[0] >= 2 && !(d[1] == 1 && d[2] == 1) && d[3] >= 2
}

/// Spanish DNI (8 digits) or NIE (X/Y/Z + 7 digits): the letter is "TRWAGMYFPDXBNJZSQVHLCKE"
/// indexed by the number mod 23 (X, Y, Z read as 0, 1, 2).
fn es_dni_ok(m: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let s: Vec<u8> = m.bytes().filter(|b| *b != b'-').collect();
    let Some((&letter, body)) = s.split_last() else {
        return false;
    };
    let mut n: u64 = 0;
    for (i, &c) in body.iter().enumerate() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'X' | b'Y' | b'Z' if i == 0 => c - b'X',
            _ => return false,
        };
        n = n * 10 + u64::from(v);
    }
    body.len() == 8 && LETTERS[(n % 23) as usize] == letter
}

/// Brazilian CPF: two mod-11 check digits; all-equal digits are invalid.
fn br_cpf_ok(m: &str) -> bool {
    let d = digits_of(m);
    if d.len() != 11 || d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let check = |n: usize| {
        let sum: u32 = (0..n)
            .map(|i| u32::from(d[i]) * (n as u32 + 1 - i as u32))
            .sum();
        let r = (sum * 10) % 11;
        if r == 10 {
            0
        } else {
            r
        }
    };
    check(9) == u32::from(d[9]) && check(10) == u32::from(d[10])
}

/// Builds a `pii` judge. Settings: see [`PiiSettings`].
pub fn build(name: &str, params_value: &Value) -> Result<Box<dyn Judge>, JudgeConfigError> {
    let settings: PiiSettings = params(name, params_value)?;
    let scanner = PiiScanner::compile(name, &settings)?;
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

    #[test]
    fn luhn_accepts_test_numbers_and_rejects_typos() {
        assert!(luhn(&digits_of("4111111111111111")));
        assert!(luhn(&digits_of("378282246310005")));
        assert!(!luhn(&digits_of("4111111111111112")));
    }

    #[test]
    fn iban_checksums() {
        assert!(iban_checksum_ok(b"DE89370400440532013000"));
        assert!(iban_checksum_ok(b"GB82WEST12345698765432"));
        assert!(!iban_checksum_ok(b"DE89370400440532013001"));
    }

    #[test]
    fn national_id_checks() {
        assert!(ssn_ok("536-22-8765"));
        assert!(!ssn_ok("000-22-8765"));
        assert!(!ssn_ok("666-22-8765"));
        assert!(!ssn_ok("912-22-8765"));
        assert!(!ssn_ok("536-00-8765"));
        assert!(!ssn_ok("536-22-0000"));
        assert!(!ssn_ok("536-22 8765"));
        assert!(es_dni_ok("12345678Z"));
        assert!(!es_dni_ok("12345678A"));
        assert!(es_dni_ok("X1234567L"));
        assert!(br_cpf_ok("529.982.247-25"));
        assert!(!br_cpf_ok("529.982.247-26"));
        assert!(!br_cpf_ok("111.111.111-11"));
        assert!(nanp_ok("(415) 555-2671"));
        assert!(!nanp_ok("(415) 155-2671"));
        assert!(!nanp_ok("(911) 555-2671"));
    }
}
