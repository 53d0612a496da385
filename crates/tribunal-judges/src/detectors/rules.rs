//! The rule engine the detectors share. A rule is data — an id, a regular expression, a
//! score, optional prefilter literals, where it runs and a named check — and a [`RuleSet`] is
//! its compiled form, built once, that scans a text in one cheap pass and then runs only the
//! regular expressions that can match there.
//!
//! How a scan stays cheap:
//! - rules with `prefilter` literals run only when one of their literals occurs in the text.
//!   The literals are searched together by one Aho-Corasick DFA over the text's ASCII
//!   lower-case form, which tells which literals occur in one walk of the text. The
//!   built-in detectors share one automaton over all their literals and one such walk per
//!   text ([`super::pass`]);
//! - rules with `on = "numbers"` run only inside number-like windows (digits with spaces,
//!   dashes, dots, brackets, slashes, plus signs and upper-case letters) holding at least
//!   `min_digits` digits, and a text with fewer digits than that is skipped after one count;
//! - rules with `on = "non_ascii"` run only when the text has a non-ASCII character;
//! - rules with `ignore_case = true` are matched against the ASCII lower-cased text (the same
//!   buffer the prefilter searches) with a lower-case pattern, instead of using `(?i)`: the
//!   regex crate then sees exact literal prefixes and skips to candidates, where `(?i)` over
//!   many words defeats its literal optimisations and costs a full automaton pass;
//! - each number window first goes through one `RegexSet` of all number rules, and only the
//!   rules it reports run to find their matches.
//!
//! Rules with `on = "text"` and no prefilter run over every text (the regex crate's own
//! literal optimisations still apply).

use regex::{Regex, RegexBuilder, RegexSet};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

use super::pass::{self, Literals};
use super::Hit;

/// The most rules one detector instance may hold (the trigger bitset lives on the stack).
pub const MAX_RULES: usize = 512;
/// The most `prefilter_and` groups a rule may have.
pub const MAX_PREFILTER_AND: usize = 3;

fn default_score() -> f64 {
    0.8
}

/// One rule as written in a rule file or in a judge's `extra_rules` setting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable id; it is the finding's `kind` and what `disable` names.
    pub id: String,
    /// A regular expression (Rust `regex` syntax).
    pub pattern: String,
    /// 0..1: how sure a match of this rule is to be real.
    #[serde(default = "default_score")]
    pub score: f64,
    /// Free grouping label (`shell`, `sql`, `override`, ...). Overlapping findings of the same
    /// category are merged by some detectors.
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub description: String,
    /// Literals (matched ignoring ASCII case) one of which must occur in the text before the
    /// regex runs. Empty: the regex runs on every text. Every text the pattern matches must
    /// hold one of them, or the rule misses it: for a pattern that allows any spacing (`\s+`),
    /// take single words, not phrases with a space.
    #[serde(default)]
    pub prefilter: Vec<String>,
    /// More groups of literals (matched ignoring ASCII case), at most
    /// [`MAX_PREFILTER_AND`]: the regex runs only when one literal of every group occurs in
    /// the text too. For patterns that need several words, one of them common in prose.
    /// Needs `prefilter`.
    #[serde(default)]
    pub prefilter_and: Vec<Vec<String>>,
    /// The literals of `prefilter` and `prefilter_and` count only where they start a word
    /// (after a byte that is not an ASCII letter, digit or `_`, or at the text's start), as
    /// in patterns whose words follow `(?-u:\b)` or `\s`.
    #[serde(default)]
    pub prefilter_words: bool,
    /// Where the regex runs.
    #[serde(default)]
    pub on: On,
    /// For `on = "numbers"`: the fewest digits a window and a match must hold.
    #[serde(default)]
    pub min_digits: usize,
    /// For `on = "numbers"`: the most digits a match may hold.
    #[serde(default)]
    pub max_digits: Option<usize>,
    /// A named check the match must pass (the detector lists the valid names).
    #[serde(default)]
    pub check: Option<String>,
    /// The capture group reported as the finding; 0 is the whole match.
    #[serde(default)]
    pub group: usize,
    /// Match against the text with ASCII letters lower-cased (byte offsets are unchanged).
    /// Write the pattern in lower case. Much faster than `(?i)` for phrase lists.
    #[serde(default)]
    pub ignore_case: bool,
}

/// Where a rule's regex runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// The whole text (after the prefilter, if the rule has one).
    #[default]
    Text,
    /// Number-like windows only. Patterns should not use `^`/`$` (they would anchor to the
    /// window); `\b` sees one character of context on each side.
    Numbers,
    /// The whole text, only when it contains a non-ASCII character.
    NonAscii,
}

/// A rule implemented in code (entropy, decoded payloads) that still has an id, a category and
/// a score, and can be disabled like any other.
pub(crate) struct Pseudo<'a> {
    pub id: &'a str,
    pub category: &'a str,
    pub score: f64,
}

/// A compiled rule.
pub(crate) struct Rule<C> {
    pub id: Arc<str>,
    pub category: Arc<str>,
    pub score: f64,
    pub check: Option<C>,
    regex: Option<Regex>,
    group: usize,
    on: On,
    min_digits: usize,
    max_digits: usize,
    filtered: bool,
    lower: bool,
}

/// One match before checks, overlaps and thresholds are applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cand {
    pub rule: u32,
    pub start: usize,
    pub end: usize,
    pub score: f64,
}

/// Compiled rules plus the prefilter that decides which of them run on a text.
pub(crate) struct RuleSet<C> {
    rules: Vec<Rule<C>>,
    text_rules: Vec<usize>,
    number_rules: Vec<usize>,
    /// All number rules' patterns, in `number_rules` order: which of them match a window.
    number_set: Option<RegexSet>,
    min_number_digits: usize,
    /// The literals searched for the prefilter: the built-in table every detector shares
    /// (see [`super::pass`]), or a table of this set's own when some literal is not in it.
    /// `None` when no rule has literals nor ignores case.
    table: Option<Arc<Literals>>,
    /// The literals of `table` this set uses (by index) and the rules each one triggers:
    /// `g * MAX_RULES + rule` for the rule's group `g` (0 is `prefilter`, then each group of
    /// `prefilter_and`).
    owners: Vec<(usize, Vec<usize>)>,
    /// For each literal of `table` (by index), its position in `owners` (`u32::MAX` when
    /// this set does not use it): a text's literals are looked up, not every literal of
    /// the set.
    owner_of: Vec<u32>,
    /// For each group of `prefilter_and` (by position), the rules that have it.
    needs: [Bits; MAX_PREFILTER_AND],
}

type Bits = [u64; MAX_RULES / 64];

fn bit(bits: &Bits, i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

impl<C: Copy> RuleSet<C> {
    /// Merges `extra` into `base` (an extra rule with a built-in id replaces it), removes the
    /// `disable`d ids, and compiles. Errors are messages that name the rule.
    pub(crate) fn compile(
        base: &[RuleSpec],
        extra: &[RuleSpec],
        disable: &[String],
        pseudo: &[Pseudo<'_>],
        checks: &[(&str, C)],
    ) -> Result<RuleSet<C>, String> {
        let mut specs: Vec<RuleSpec> = base.to_vec();
        let mut seen_extra: Vec<&str> = Vec::new();
        for e in extra {
            if e.id.trim().is_empty() {
                return Err(format!(
                    "extra_rules: a rule has an empty id (pattern {:?})",
                    e.pattern
                ));
            }
            if seen_extra.contains(&e.id.as_str()) {
                return Err(format!("extra_rules: rule id {:?} appears twice", e.id));
            }
            seen_extra.push(&e.id);
            if pseudo.iter().any(|p| p.id == e.id) {
                return Err(format!(
                    "extra_rules: rule id {:?} is a built-in check implemented in code; pick another id",
                    e.id
                ));
            }
            match specs.iter_mut().find(|s| s.id == e.id) {
                Some(s) => *s = e.clone(),
                None => specs.push(e.clone()),
            }
        }
        for d in disable {
            let known = specs.iter().any(|s| &s.id == d) || pseudo.iter().any(|p| p.id == d);
            if !known {
                let mut ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
                ids.extend(pseudo.iter().map(|p| p.id));
                return Err(format!(
                    "disable: unknown rule {d:?}; known rules: {}",
                    ids.join(", ")
                ));
            }
        }
        specs.retain(|s| !disable.contains(&s.id));
        let pseudo: Vec<&Pseudo<'_>> = pseudo
            .iter()
            .filter(|p| !disable.iter().any(|d| d == p.id))
            .collect();
        if specs.len() + pseudo.len() > MAX_RULES {
            return Err(format!(
                "too many rules ({}); the limit is {MAX_RULES}",
                specs.len() + pseudo.len()
            ));
        }

        let mut rules = Vec::with_capacity(specs.len() + pseudo.len());
        let mut literal_rules: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        let mut needs: [Bits; MAX_PREFILTER_AND] = [[0; MAX_RULES / 64]; MAX_PREFILTER_AND];
        for (i, s) in specs.iter().enumerate() {
            let rule = compile_rule(s, checks)?;
            if rule.on == On::Numbers && !s.prefilter.is_empty() {
                return Err(format!(
                    "rule {:?}: prefilter does not apply to on = \"numbers\"",
                    s.id
                ));
            }
            if !s.prefilter_and.is_empty() && s.prefilter.is_empty() {
                return Err(format!("rule {:?}: prefilter_and needs a prefilter", s.id));
            }
            if s.prefilter_and.len() > MAX_PREFILTER_AND {
                return Err(format!(
                    "rule {:?}: {} prefilter_and groups; the limit is {MAX_PREFILTER_AND}",
                    s.id,
                    s.prefilter_and.len()
                ));
            }
            let groups = std::iter::once(&s.prefilter)
                .filter(|p| !p.is_empty())
                .chain(&s.prefilter_and);
            for (g, group) in groups.enumerate() {
                if group.is_empty() {
                    return Err(format!("rule {:?}: an empty prefilter_and group", s.id));
                }
                if g > 0 {
                    needs[g - 1][i / 64] |= 1 << (i % 64);
                }
                for lit in group {
                    if lit.is_empty() {
                        return Err(format!("rule {:?}: empty prefilter literal", s.id));
                    }
                    if lit.as_bytes()[0] == pass::WORD {
                        return Err(format!(
                            "rule {:?}: a prefilter literal starts with a NUL character",
                            s.id
                        ));
                    }
                    let key = literal_key(lit, s.prefilter_words);
                    let owners = literal_rules.entry(key).or_default();
                    if !owners.contains(&(g * MAX_RULES + i)) {
                        owners.push(g * MAX_RULES + i);
                    }
                }
            }
            rules.push(rule);
        }
        for p in pseudo {
            if !(0.0..=1.0).contains(&p.score) {
                return Err(format!(
                    "rule {:?}: score {} is outside 0..1",
                    p.id, p.score
                ));
            }
            rules.push(Rule {
                id: p.id.into(),
                category: p.category.into(),
                score: p.score,
                check: None,
                regex: None,
                group: 0,
                on: On::Text,
                min_digits: 0,
                max_digits: usize::MAX,
                filtered: false,
                lower: false,
            });
        }

        let mut literals: Vec<(Vec<u8>, Vec<usize>)> = literal_rules.into_iter().collect();
        literals.sort();
        let (table, owners) = if literals.is_empty() && !rules.iter().any(|r| r.lower) {
            (None, Vec::new())
        } else {
            let shared = pass::builtin()
                .filter(|t| literals.iter().all(|(l, _)| t.index(l).is_some()))
                .cloned();
            let table = match shared {
                Some(t) => t,
                None => Arc::new(Literals::new(
                    literals.iter().map(|(l, _)| l.clone()),
                    false,
                )?),
            };
            let owners = owners_in(&table, literals);
            (Some(table), owners)
        };
        let text_rules: Vec<usize> = (0..rules.len())
            .filter(|&i| rules[i].regex.is_some() && rules[i].on != On::Numbers)
            .collect();
        let number_rules: Vec<usize> = (0..rules.len())
            .filter(|&i| rules[i].regex.is_some() && rules[i].on == On::Numbers)
            .collect();
        let min_number_digits = number_rules
            .iter()
            .map(|&i| rules[i].min_digits)
            .min()
            .unwrap_or(0);
        let number_set = if number_rules.is_empty() {
            None
        } else {
            let patterns = number_rules
                .iter()
                .map(|&i| rules[i].regex.as_ref().map_or("", |r| r.as_str()));
            Some(RegexSet::new(patterns).map_err(|e| format!("number rules: {e}"))?)
        };
        Ok(RuleSet {
            rules,
            text_rules,
            number_rules,
            number_set,
            min_number_digits,
            owner_of: owner_index(table.as_deref(), &owners),
            table,
            owners,
            needs,
        })
    }

    pub(crate) fn rule(&self, i: u32) -> &Rule<C> {
        &self.rules[i as usize]
    }

    /// The enabled rule with this id.
    pub(crate) fn find(&self, id: &str) -> Option<&Rule<C>> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// The index of an enabled pseudo rule.
    pub(crate) fn pseudo(&self, id: &str) -> Option<u32> {
        self.rules
            .iter()
            .position(|r| r.regex.is_none() && &*r.id == id)
            .map(|i| i as u32)
    }

    /// Ids of the enabled rules, in order.
    pub(crate) fn ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| &*r.id).collect()
    }

    /// Every enabled regex rule, for tools that want to run them some other way.
    pub(crate) fn regexes(&self) -> Vec<(&str, &Regex)> {
        self.rules
            .iter()
            .filter_map(|r| r.regex.as_ref().map(|re| (&*r.id, re)))
            .collect()
    }

    /// Calls `f(rule index, rule, start, end)` for every match of every rule that can match
    /// in `text`. Checks are the caller's business.
    pub(crate) fn for_each_match(
        &self,
        text: &str,
        mut f: impl FnMut(u32, &Rule<C>, usize, usize),
    ) {
        match &self.table {
            None => self.matches_in(text, None, &[0; MAX_RULES / 64], &mut f),
            Some(table) => pass::with_pass(table, text, |p| {
                let triggered = self.triggered(p.found);
                self.matches_in(text, Some(&p), &triggered, &mut f)
            }),
        }
    }

    /// [`RuleSet::for_each_match`], answering the text's long runs as well (see
    /// [`super::pass::Pass::long_runs`]), from the same pass.
    pub(crate) fn for_each_match_with_runs(
        &self,
        text: &str,
        mut f: impl FnMut(u32, &Rule<C>, usize, usize),
    ) -> Vec<(usize, usize)> {
        match &self.table {
            None => {
                self.matches_in(text, None, &[0; MAX_RULES / 64], &mut f);
                let mut runs = Vec::new();
                super::for_each_run(
                    text.as_bytes(),
                    super::LONG_RUN,
                    &super::RUN_BYTES,
                    |s, e| runs.push((s, e)),
                );
                runs
            }
            Some(table) => pass::with_pass(table, text, |p| {
                let triggered = self.triggered(p.found);
                self.matches_in(text, Some(&p), &triggered, &mut f);
                p.long_runs().to_vec()
            }),
        }
    }

    /// The same set searching its literals with a table of its own, one literal at a time
    /// (the tests' reference for the shared pass).
    #[cfg(test)]
    pub(crate) fn alone(mut self) -> RuleSet<C> {
        if let Some(t) = &self.table {
            let literals: Vec<(Vec<u8>, Vec<usize>)> = self
                .owners
                .iter()
                .map(|(li, rules)| (t.literal(*li).to_vec(), rules.clone()))
                .collect();
            let own = Arc::new(
                Literals::new(literals.iter().map(|(l, _)| l.clone()), false)
                    .expect("the literals compiled before")
                    .naive(),
            );
            self.owners = owners_in(&own, literals);
            self.owner_of = owner_index(Some(&own), &self.owners);
            self.table = Some(own);
        }
        self
    }

    /// Whether it reads texts through the pass the built-in detectors share.
    #[cfg(test)]
    pub(crate) fn shares_pass(&self) -> bool {
        self.table.as_ref().is_some_and(|t| t.is_shared())
    }

    /// `pass` gives `text` with ASCII letters lower-cased (same length, same offsets).
    fn matches_in(
        &self,
        text: &str,
        pass: Option<&pass::Pass<'_>>,
        triggered: &Bits,
        f: &mut impl FnMut(u32, &Rule<C>, usize, usize),
    ) {
        let mut ascii: Option<bool> = None;
        for &i in &self.text_rules {
            let r = &self.rules[i];
            if r.filtered && !bit(triggered, i) {
                continue;
            }
            if r.on == On::NonAscii && *ascii.get_or_insert_with(|| text.is_ascii()) {
                continue;
            }
            let hay = if r.lower {
                match pass {
                    Some(p) => p.lower(),
                    None => continue,
                }
            } else {
                text
            };
            run(r, hay, 0, &mut |s, e| f(i as u32, r, s, e));
        }
        if let Some(set) = &self.number_set {
            self.numbers(text, set, f);
        }
    }

    /// Which prefiltered rules have one literal of each of their groups among those
    /// `found` in the text.
    fn triggered(&self, found: &[u64]) -> Bits {
        let mut hit: [Bits; MAX_PREFILTER_AND + 1] = [[0; MAX_RULES / 64]; MAX_PREFILTER_AND + 1];
        for (w, &word) in found.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let li = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(&o) = self.owner_of.get(li).filter(|&&o| o != u32::MAX) else {
                    continue;
                };
                for &r in &self.owners[o as usize].1 {
                    let (g, r) = (r / MAX_RULES, r % MAX_RULES);
                    hit[g][r / 64] |= 1 << (r % 64);
                }
            }
        }
        let [mut bits, rest @ ..] = hit;
        for (g, group) in rest.iter().enumerate() {
            for (w, word) in bits.iter_mut().enumerate() {
                // A rule without group `g` is not held back by it.
                *word &= group[w] | !self.needs[g][w];
            }
        }
        bits
    }

    /// Number windows: maximal runs of number-like bytes around the digits. The scan jumps
    /// from digit to digit, eight bytes at a time, so prose without digits costs one quick
    /// pass.
    fn numbers(&self, text: &str, set: &RegexSet, f: &mut impl FnMut(u32, &Rule<C>, usize, usize)) {
        let b = text.as_bytes();
        for_each_number_window(b, self.min_number_digits, |start, end, digits| {
            // One character of context either side, so `\b` sees what the full text has.
            let cs = prev_boundary(text, start);
            let ce = next_boundary(text, end);
            let hay = &text[cs..ce];
            let which = set.matches(hay);
            if !which.matched_any() {
                return;
            }
            for (k, &ri) in self.number_rules.iter().enumerate() {
                let r = &self.rules[ri];
                if digits < r.min_digits || !which.matched(k) {
                    continue;
                }
                run(r, hay, cs, &mut |s, e| {
                    let n = b[s..e].iter().filter(|c| c.is_ascii_digit()).count();
                    if n >= r.min_digits && n <= r.max_digits {
                        f(ri as u32, r, s, e);
                    }
                });
            }
        });
    }

    /// Turns the surviving candidates into hits, dropping those scoring below `threshold`.
    pub(crate) fn emit(&self, cands: &[Cand], threshold: f64, out: &mut Vec<Hit>) {
        for c in cands {
            if c.score >= threshold {
                out.push(Hit {
                    kind: self.rules[c.rule as usize].id.clone(),
                    score: c.score,
                    start: c.start,
                    end: c.end,
                });
            }
        }
    }
}

/// The key of a prefilter literal in a [`Literals`] table.
pub(crate) fn literal_key(lit: &str, at_word_start: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(lit.len() + 1);
    if at_word_start {
        key.push(pass::WORD);
    }
    key.extend(lit.to_ascii_lowercase().into_bytes());
    key
}

/// Each literal's index in `table` with the rules it triggers.
/// For each literal of `table`, its position in `owners` (`u32::MAX` for none).
fn owner_index(table: Option<&Literals>, owners: &[(usize, Vec<usize>)]) -> Vec<u32> {
    let Some(table) = table else {
        return Vec::new();
    };
    let mut at = vec![u32::MAX; table.count()];
    for (o, (li, _)) in owners.iter().enumerate() {
        at[*li] = o as u32;
    }
    at
}

fn owners_in(table: &Literals, literals: Vec<(Vec<u8>, Vec<usize>)>) -> Vec<(usize, Vec<usize>)> {
    literals
        .into_iter()
        .filter_map(|(l, rules)| Some((table.index(&l)?, rules)))
        .collect()
}

fn compile_rule<C: Copy>(s: &RuleSpec, checks: &[(&str, C)]) -> Result<Rule<C>, String> {
    let id = &s.id;
    if id.trim().is_empty() {
        return Err(format!("a rule has an empty id (pattern {:?})", s.pattern));
    }
    if !(s.score.is_finite() && (0.0..=1.0).contains(&s.score)) {
        return Err(format!("rule {id:?}: score {} is outside 0..1", s.score));
    }
    let regex = RegexBuilder::new(&s.pattern)
        .build()
        .map_err(|e| format!("rule {id:?}: invalid pattern: {e}"))?;
    if s.group >= regex.captures_len() {
        return Err(format!(
            "rule {id:?}: group {} but the pattern has {} capture group(s)",
            s.group,
            regex.captures_len() - 1
        ));
    }
    let check = match &s.check {
        None => None,
        Some(name) => match checks.iter().find(|(n, _)| n == name) {
            Some((_, c)) => Some(*c),
            None => {
                let valid: Vec<&str> = checks.iter().map(|(n, _)| *n).collect();
                let valid = if valid.is_empty() {
                    "none".to_owned()
                } else {
                    valid.join(", ")
                };
                return Err(format!(
                    "rule {id:?}: unknown check {name:?}; valid checks: {valid}"
                ));
            }
        },
    };
    let min_digits = if s.on == On::Numbers {
        s.min_digits.max(1)
    } else {
        0
    };
    let max_digits = s.max_digits.unwrap_or(usize::MAX);
    if max_digits < min_digits {
        return Err(format!(
            "rule {id:?}: max_digits {max_digits} is below min_digits {min_digits}"
        ));
    }
    Ok(Rule {
        id: id.as_str().into(),
        category: s.category.as_str().into(),
        score: s.score,
        check,
        regex: Some(regex),
        group: s.group,
        on: s.on,
        min_digits,
        max_digits,
        filtered: !s.prefilter.is_empty(),
        lower: s.ignore_case,
    })
}

fn run<C>(r: &Rule<C>, hay: &str, offset: usize, f: &mut impl FnMut(usize, usize)) {
    let Some(re) = &r.regex else { return };
    if r.group == 0 {
        for m in re.find_iter(hay) {
            if !m.is_empty() {
                f(offset + m.start(), offset + m.end());
            }
        }
    } else {
        for c in re.captures_iter(hay) {
            if let Some(m) = c.get(r.group).filter(|m| !m.is_empty()) {
                f(offset + m.start(), offset + m.end());
            }
        }
    }
}

const DIGIT: u8 = 2;

/// Calls `f(start, end, digits)` for each maximal run of number-like bytes ([`NUM`]) that
/// holds at least `min_digits` digits (and at least one), in order.
pub(crate) fn for_each_number_window(
    b: &[u8],
    min_digits: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut i = 0;
    while let Some(d) = next_digit(b, i) {
        let mut start = d;
        while start > i && NUM[b[start - 1] as usize] != 0 {
            start -= 1;
        }
        let mut end = d;
        let mut digits = 0;
        while end < b.len() {
            let c = NUM[b[end] as usize];
            if c == 0 {
                break;
            }
            digits += usize::from(c == DIGIT);
            end += 1;
        }
        i = end;
        if digits >= min_digits {
            f(start, end, digits);
        }
    }
}

/// The first ASCII digit in `b` at or after `from`, looked for eight bytes at a time.
pub(crate) fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut i = from;
    while let Some(word) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // The high bit of every byte strictly between `/` and `:` (bytes of 0x80 and above
        // excluded): each byte's sums stay within the byte, so the test is exact.
        let low = x & (ONES * 0x7f);
        let below = (ONES * (0x7f + b':' as u64)).wrapping_sub(low);
        let above = low + ONES * (0x7f - b'/' as u64);
        let digits = below & above & !x & (ONES * 0x80);
        if digits != 0 {
            return Some(i + digits.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|d| i + d)
}

/// Byte classes of number-like windows: 2 = digit, 1 = may sit inside a number, 0 = breaks it.
static NUM: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = DIGIT;
        c += 1;
    }
    let mut c = b'A';
    while c <= b'Z' {
        t[c as usize] = 1;
        c += 1;
    }
    t[b' ' as usize] = 1;
    t[b'-' as usize] = 1;
    t[b'.' as usize] = 1;
    t[b'(' as usize] = 1;
    t[b')' as usize] = 1;
    t[b'/' as usize] = 1;
    t[b'+' as usize] = 1;
    t
};

fn prev_boundary(text: &str, i: usize) -> usize {
    if i == 0 {
        return 0;
    }
    let mut k = i - 1;
    while !text.is_char_boundary(k) {
        k -= 1;
    }
    k
}

fn next_boundary(text: &str, i: usize) -> usize {
    if i >= text.len() {
        return text.len();
    }
    let mut k = i + 1;
    while k < text.len() && !text.is_char_boundary(k) {
        k += 1;
    }
    k
}

/// Drops candidates that overlap a stronger candidate of the same group (`same_group`); on a
/// tie the earlier, longer one stays. Leaves the survivors sorted by position.
pub(crate) fn resolve_overlaps(c: &mut Vec<Cand>, same_group: impl Fn(&Cand, &Cand) -> bool) {
    c.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    if c.len() < 2 {
        return;
    }
    let mut keep = vec![true; c.len()];
    for i in 0..c.len() {
        if !keep[i] {
            continue;
        }
        for j in i + 1..c.len() {
            if c[j].start >= c[i].end {
                break;
            }
            if !keep[j] || !same_group(&c[i], &c[j]) {
                continue;
            }
            if c[j].score > c[i].score {
                keep[i] = false;
                break;
            }
            keep[j] = false;
        }
    }
    let mut k = keep.iter();
    c.retain(|_| *k.next().unwrap_or(&true));
}

/// Shannon entropy in bits per byte.
pub(crate) fn shannon_entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, pattern: &str) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            pattern: pattern.into(),
            score: 0.5,
            category: String::new(),
            description: String::new(),
            prefilter: Vec::new(),
            prefilter_and: Vec::new(),
            prefilter_words: false,
            on: On::Text,
            min_digits: 0,
            max_digits: None,
            check: None,
            group: 0,
            ignore_case: false,
        }
    }

    fn matches(rs: &RuleSet<()>, text: &str) -> Vec<(String, usize, usize)> {
        let mut v = Vec::new();
        rs.for_each_match(text, |_, r, s, e| v.push((r.id.to_string(), s, e)));
        v
    }

    #[test]
    fn prefilter_literals_gate_rules_and_ignore_case() {
        let mut a = spec("a", "(?i)sk-ant-[a-z]+");
        a.prefilter = vec!["SK-ANT-".into()];
        let mut b = spec("b", "sk-[a-z]+");
        b.prefilter = vec!["sk-".into()];
        let rs = RuleSet::<()>::compile(&[a, b], &[], &[], &[], &[]).unwrap();
        assert!(matches(&rs, "nothing here").is_empty());
        let m = matches(&rs, "x SK-ANT-abc");
        assert_eq!(m, vec![("a".into(), 2, 12)]);
        let m = matches(&rs, "sk-ant-abc");
        assert_eq!(m.len(), 2, "{m:?}");
    }

    #[test]
    fn a_rule_with_prefilter_and_groups_runs_only_when_every_group_occurs() {
        let mut a = spec("a", r"(?i)note\s+to\s+the\s+ai");
        a.prefilter = vec!["note".into()];
        a.prefilter_and = vec![vec!["ai".into(), "llm".into()], vec!["to".into()]];
        // The same pattern gated by its first literal only, beside it.
        let mut b = spec("b", r"(?i)note\s+to\s+the\s+ai");
        b.prefilter = vec!["note".into()];
        let rs = RuleSet::<()>::compile(&[a, b], &[], &[], &[], &[]).unwrap();
        let t = "Note to the AI: ok";
        assert_eq!(
            matches(&rs, t),
            vec![("a".into(), 0, 14), ("b".into(), 0, 14)]
        );
        // The literals gate, not the match: with one group absent the rule does not run even
        // where its pattern would match (a pattern no prefilter implies, to show it).
        let mut c = spec("c", "x");
        c.prefilter = vec!["x".into()];
        c.prefilter_and = vec![vec!["ai".into()], vec!["to".into()]];
        let rs = RuleSet::<()>::compile(&[c], &[], &[], &[], &[]).unwrap();
        assert!(matches(&rs, "x ai").is_empty());
        assert!(matches(&rs, "x to").is_empty());
        assert_eq!(matches(&rs, "x AI TO").len(), 1);
        // Groups need a prefilter, are not empty, and are few.
        let mut d = spec("d", "x");
        d.prefilter_and = vec![vec!["y".into()]];
        let e = RuleSet::<()>::compile(&[d.clone()], &[], &[], &[], &[])
            .err()
            .unwrap();
        assert!(e.contains("prefilter_and needs a prefilter"), "{e}");
        d.prefilter = vec!["x".into()];
        d.prefilter_and = vec![vec![]];
        let e = RuleSet::<()>::compile(&[d.clone()], &[], &[], &[], &[])
            .err()
            .unwrap();
        assert!(e.contains("empty prefilter_and group"), "{e}");
        d.prefilter_and = vec![vec!["y".into()]; MAX_PREFILTER_AND + 1];
        let e = RuleSet::<()>::compile(&[d], &[], &[], &[], &[])
            .err()
            .unwrap();
        assert!(e.contains("the limit is"), "{e}");
    }

    #[test]
    fn word_literals_count_only_where_they_start_a_word() {
        // A pattern no literal implies, to show what the literals gate.
        let mut r = spec("w", "x");
        r.prefilter = vec!["act".into()];
        r.prefilter_words = true;
        // The same literal anywhere, in another rule of the same set.
        let mut a = spec("a", "x");
        a.prefilter = vec!["act".into()];
        let rs = RuleSet::<()>::compile(&[r.clone(), a], &[], &[], &[], &[]).unwrap();
        let ids = |t: &str| -> Vec<String> { matches(&rs, t).into_iter().map(|m| m.0).collect() };
        assert_eq!(ids("x contact"), vec!["a"]);
        assert_eq!(ids("x ACT"), vec!["w", "a"]);
        assert_eq!(ids("act x"), vec!["w", "a"]);
        assert_eq!(ids("x _act"), vec!["a"]);
        assert_eq!(ids("x -act"), vec!["w", "a"]);
        assert_eq!(ids("x 2act"), vec!["a"]);
        r.prefilter = vec!["\0act".into()];
        let e = RuleSet::<()>::compile(&[r], &[], &[], &[], &[])
            .err()
            .unwrap();
        assert!(e.contains("NUL"), "{e}");
    }

    #[test]
    fn ignore_case_rules_match_the_lower_cased_text_at_the_same_offsets() {
        let mut r = spec("p", r"ignore\s+previous");
        r.ignore_case = true;
        r.prefilter = vec!["ignore".into()];
        let rs = RuleSet::<()>::compile(&[r], &[], &[], &[], &[]).unwrap();
        assert_eq!(matches(&rs, "é IGNORE Previous"), vec![("p".into(), 3, 18)]);
    }

    #[test]
    fn number_windows_keep_offsets_and_word_boundaries() {
        let mut r = spec("n", r"(?-u:\b)[0-9]{3}-[0-9]{4}(?-u:\b)");
        r.on = On::Numbers;
        r.min_digits = 7;
        let rs = RuleSet::<()>::compile(&[r], &[], &[], &[], &[]).unwrap();
        assert_eq!(
            matches(&rs, "call é 555-1234, ok"),
            vec![("n".into(), 8, 16)]
        );
        // The window starts right after a letter: `\b` must still see the letter.
        assert!(matches(&rs, "x555-1234").is_empty());
        assert!(matches(&rs, "55-12").is_empty());
    }

    /// The windows read byte by byte: the reference for [`for_each_number_window`].
    fn windows_read_bytewise(b: &[u8], min: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if NUM[b[i] as usize] == 0 {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && NUM[b[i] as usize] != 0 {
                i += 1;
            }
            let digits = b[start..i].iter().filter(|c| c.is_ascii_digit()).count();
            if digits >= min.max(1) {
                out.push((start, i, digits));
            }
        }
        out
    }

    #[test]
    fn number_windows_found_word_at_a_time_are_the_windows_read_byte_by_byte() {
        // Digits, the bytes around them (`/` and `:` border the digits' range), number-like
        // bytes, letters and non-ASCII bytes whose low seven bits are digits.
        let alphabet = b"0189/:ABZ -.()+ax\xb0\xb9\xff\n";
        for (case, b) in super::super::generated::texts(11, 4000, 70, alphabet, 4).enumerate() {
            for from in 0..=b.len() {
                assert_eq!(
                    next_digit(&b, from),
                    b[from..]
                        .iter()
                        .position(u8::is_ascii_digit)
                        .map(|d| from + d),
                    "case {case}, from {from}: {b:?}"
                );
            }
            for min in [0, 1, 2, 6, 13] {
                let mut got = Vec::new();
                for_each_number_window(&b, min, |s, e, d| got.push((s, e, d)));
                assert_eq!(
                    got,
                    windows_read_bytewise(&b, min),
                    "case {case}, min {min}: {b:?}"
                );
            }
        }
    }

    #[test]
    fn overlaps_keep_the_stronger_candidate() {
        let mut c = vec![
            Cand {
                rule: 0,
                start: 0,
                end: 10,
                score: 0.5,
            },
            Cand {
                rule: 1,
                start: 2,
                end: 6,
                score: 0.9,
            },
            Cand {
                rule: 2,
                start: 20,
                end: 30,
                score: 0.1,
            },
        ];
        resolve_overlaps(&mut c, |_, _| true);
        assert_eq!(c.iter().map(|c| c.rule).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn entropy_of_simple_strings() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
