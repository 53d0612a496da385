//! Constitutions: a named list of principles, each with the text of the principle, the
//! request that asks a model to critique a reply against it and the request that asks for a
//! revision (Constitutional AI, Bai et al. 2022), and optionally the question that asks which
//! of two replies follows it better. Read from TOML; versioned by a hash of its content, so
//! changing any principle changes the version and whatever was built from the old one can be
//! told apart.
//!
//! ```toml
//! name = "helpful-harmless"
//!
//! [[principles]]
//! id = "harmless"
//! text = "The reply does not help anyone hurt people."
//! critique = "Point out every way the reply could help someone hurt people."
//! revision = "Rewrite the reply so that it helps no one hurt people."
//! compare = "Which reply is less likely to help someone hurt people?"   # optional
//! ```
//!
//! Pure: the caller reads the file and asks the model; this module parses, versions, samples
//! principles from a seed and turns the model's answers into preference records.

use crate::record::{hex, PreferenceRecord, Provenance, ProvenanceKind, Turns};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::ops::Range;

/// One principle of a constitution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principle {
    pub id: String,
    pub text: String,
    /// Asks the model to critique a reply against the principle.
    pub critique: String,
    /// Asks the model to rewrite the reply so that it follows the principle.
    pub revision: String,
    /// Asks which of two replies follows the principle better (a default built from `text`
    /// when the file has none).
    pub compare: String,
}

/// A constitution read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constitution {
    pub name: String,
    pub principles: Vec<Principle>,
    /// `sha256:` and the hex SHA-256 of the name and principles in a fixed encoding:
    /// formatting and comments do not change it, any word of a principle does.
    pub version: String,
}

/// A constitution file that cannot be used: the file, line and field, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConstitutionError {
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    /// A path such as `principles[2].critique`; empty when no field is concerned.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConstitutionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    name: Option<toml::Spanned<String>>,
    #[serde(default)]
    principles: Vec<toml::Spanned<FilePrinciple>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrinciple {
    id: Option<toml::Spanned<String>>,
    text: Option<toml::Spanned<String>>,
    critique: Option<toml::Spanned<String>>,
    revision: Option<toml::Spanned<String>>,
    compare: Option<toml::Spanned<String>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Constitution {
    /// Parses the TOML text of `file` (the name is used in errors only).
    pub fn parse(file: &str, text: &str) -> Result<Constitution, ConstitutionError> {
        let err = |span: Option<Range<usize>>, field: &str, message: String| ConstitutionError {
            file: file.to_owned(),
            line: span.map(|s| line_of(text, s.start)).unwrap_or(0),
            field: field.to_owned(),
            message,
        };
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            // The parser's message repeats the position as a drawing; its first line is
            // the reason.
            let message = e.message().lines().next().unwrap_or("").to_owned();
            let field = field_in_message(&message)
                .or_else(|| e.span().and_then(|at| key_at(text, at.start)))
                .unwrap_or_default();
            err(e.span(), &field, message)
        })?;
        let name = match doc.name {
            Some(n) if !n.get_ref().trim().is_empty() => n.into_inner(),
            Some(n) => {
                return Err(err(
                    Some(n.span()),
                    "name",
                    "the constitution's name is empty".into(),
                ))
            }
            None => return Err(err(None, "name", "a constitution needs a name".into())),
        };
        if doc.principles.is_empty() {
            return Err(err(
                None,
                "principles",
                "a constitution needs at least one [[principles]] table".into(),
            ));
        }
        let mut principles: Vec<Principle> = Vec::with_capacity(doc.principles.len());
        let mut id_lines: Vec<usize> = Vec::new();
        for (i, p) in doc.principles.into_iter().enumerate() {
            let table_span = p.span();
            let p = p.into_inner();
            let required = |v: Option<toml::Spanned<String>>,
                            key: &str|
             -> Result<String, ConstitutionError> {
                let field = format!("principles[{i}].{key}");
                match v {
                    None => Err(err(
                        Some(table_span.clone()),
                        &field,
                        format!("missing: every principle needs `{key}`"),
                    )),
                    Some(s) if s.get_ref().trim().is_empty() => {
                        Err(err(Some(s.span()), &field, "is empty".into()))
                    }
                    Some(s) => Ok(s.into_inner()),
                }
            };
            let id_span = p.id.as_ref().map(|s| s.span());
            let id = required(p.id, "id")?;
            if let Some(bad) = id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            {
                return Err(err(
                    id_span,
                    &format!("principles[{i}].id"),
                    format!("`{id}` has `{bad}`: an id is letters, digits, `-`, `_` and `.`"),
                ));
            }
            if let Some(j) = principles.iter().position(|q| q.id == id) {
                return Err(err(
                    id_span,
                    &format!("principles[{i}].id"),
                    format!(
                        "`{id}` is already the id of the principle on line {}",
                        id_lines[j]
                    ),
                ));
            }
            id_lines.push(id_span.map(|s| line_of(text, s.start)).unwrap_or(0));
            let text_ = required(p.text, "text")?;
            let critique = required(p.critique, "critique")?;
            let revision = required(p.revision, "revision")?;
            let compare = match p.compare {
                None => format!("Which reply better follows this principle: {text_}"),
                Some(_) => required(p.compare, "compare")?,
            };
            principles.push(Principle {
                id,
                text: text_,
                critique,
                revision,
                compare,
            });
        }
        let version = version_of(&name, &principles);
        Ok(Constitution {
            name,
            principles,
            version,
        })
    }

    pub fn principle(&self, id: &str) -> Option<&Principle> {
        self.principles.iter().find(|p| p.id == id)
    }

    /// Whether `record` was made by an older version of this constitution (same name,
    /// another version): what was built from it should be built again.
    pub fn is_stale(&self, record: &crate::PreferenceRecord) -> bool {
        let p = &record.provenance;
        p.constitution.as_deref() == Some(self.name.as_str())
            && p.constitution_version.as_deref() != Some(self.version.as_str())
    }

    /// The first 12 hex digits of the version, for messages.
    pub fn short_version(&self) -> &str {
        let hex = self
            .version
            .strip_prefix("sha256:")
            .unwrap_or(&self.version);
        &hex[..hex.len().min(12)]
    }

    /// `n` distinct principles drawn for the item named `key` (a trace id, say) with `seed`
    /// (all of them when `n` is `None` or at least their number), in file order. The same
    /// seed and key draw the same principles on every machine, whatever order items come in.
    pub fn sample(&self, n: Option<usize>, seed: u64, key: &str) -> Vec<&Principle> {
        // FNV-1a: a stable number for the key.
        let item = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let total = self.principles.len();
        match n {
            Some(n) if n < total => {
                let mut idx: Vec<usize> = (0..total).collect();
                let mut rng = Rng::new(seed ^ item.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                rng.shuffle(&mut idx);
                let mut chosen = idx[..n].to_vec();
                chosen.sort_unstable();
                chosen.into_iter().map(|i| &self.principles[i]).collect()
            }
            _ => self.principles.iter().collect(),
        }
    }

    /// The provenance of a preference this constitution's principle `principle` produced
    /// with `model` about the traces `trace_ids`.
    pub fn provenance(&self, model: &str, principle: &str, trace_ids: &[String]) -> Provenance {
        Provenance {
            kind: ProvenanceKind::Constitution,
            model: Some(model.to_owned()),
            constitution_version: Some(self.version.clone()),
            constitution: Some(self.name.clone()),
            principle: Some(principle.to_owned()),
            source_trace_ids: trace_ids.to_vec(),
            ..Provenance::default()
        }
    }

    /// Revision ≻ original: the pair a critique and revision make.
    pub fn revision_pair(
        &self,
        model: &str,
        principle: &str,
        prompt: Turns,
        original: &str,
        revised: &str,
        trace_ids: &[String],
    ) -> PreferenceRecord {
        let mut r = PreferenceRecord::new(
            prompt,
            Turns::Text(revised.to_owned()),
            Turns::Text(original.to_owned()),
        );
        r.provenance = self.provenance(model, principle, trace_ids);
        r
    }

    /// The record an AI comparison makes from its two asks: `first` answered with reply A
    /// shown first, `second` with reply B shown first; each is whether the model preferred
    /// A. The soft label is the share of the two asks that preferred A; `chosen` is A unless
    /// both preferred B. A pair whose answer flips with the order is marked inconsistent
    /// (the model followed the position, not the replies) and has a soft label of 0.5.
    #[allow(clippy::too_many_arguments)] // the pair, its origin and the two answers
    pub fn comparison(
        &self,
        model: &str,
        principle: &str,
        prompt: Turns,
        a: Turns,
        b: Turns,
        first_prefers_a: bool,
        second_prefers_a: bool,
        trace_ids: &[String],
    ) -> PreferenceRecord {
        let p_a =
            (f64::from(u8::from(first_prefers_a)) + f64::from(u8::from(second_prefers_a))) / 2.0;
        let (chosen, rejected, p) = if p_a >= 0.5 {
            (a, b, p_a)
        } else {
            (b, a, 1.0 - p_a)
        };
        let mut r = PreferenceRecord::new(prompt, chosen, rejected);
        r.soft_label = Some(p);
        r.provenance = self.provenance(model, principle, trace_ids);
        r.provenance.inconsistent = first_prefers_a != second_prefers_a;
        // Both orders were shown; the record stands for the two asks together.
        r.provenance.order_shown = None;
        r
    }
}

fn version_of(name: &str, principles: &[Principle]) -> String {
    let mut h = Sha256::new();
    h.update(b"tribunal-prefs/constitution/v1");
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(name);
    for p in principles {
        for s in [&p.id, &p.text, &p.critique, &p.revision, &p.compare] {
            put(s);
        }
    }
    format!("sha256:{}", hex(&h.finalize()))
}

/// The field a serde message names (`unknown field `x``, `missing field `y``); a message
/// about a value (`invalid type: integer `5``) names none.
fn field_in_message(message: &str) -> Option<String> {
    if !(message.starts_with("unknown field") || message.starts_with("missing field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// The key of the `key = value` line holding byte `at` of `text`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()).then(|| key.to_owned())
}
