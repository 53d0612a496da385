//! Preference data on the wire. Every format is read one JSON object a line; a row that
//! does not fit is rejected with its line number and the field at fault, and the other rows
//! go in. Export writes what the format can hold, in one canonical spelling, so export →
//! import → export gives the same bytes.
//!
//! | format | a row |
//! |---|---|
//! | `trl` | TRL's explicit prompt: `{prompt, chosen, rejected[, margin]}`, each plain text or a list of `{role, content}` |
//! | `trl-implicit` | TRL's implicit prompt: `{chosen, rejected[, margin]}` holding the prompt too; on import the shared beginning is the prompt |
//! | `hh-rlhf` | `{chosen, rejected}` transcripts `"\n\nHuman: …\n\nAssistant: …"`; the shared turns are the prompt |
//! | `ultrafeedback` | UltraFeedback-binarized: `{prompt, prompt_id?, chosen, rejected, messages, score_chosen, score_rejected}`, replies as message lists that begin with the prompt |
//! | `jsonl` | the [`PreferenceRecord`] itself, every field |
//!
//! Rows of either TRL form are read by both `trl` and `trl-implicit`.

mod hh;
mod jsonl;
mod trl;
mod ultrafeedback;

use crate::record::{Message, PreferenceRecord};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::io::{BufRead, Write};
use std::str::FromStr;

/// A preference data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Trl,
    TrlImplicit,
    HhRlhf,
    UltraFeedback,
    Jsonl,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Trl,
        Format::TrlImplicit,
        Format::HhRlhf,
        Format::UltraFeedback,
        Format::Jsonl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Trl => "trl",
            Format::TrlImplicit => "trl-implicit",
            Format::HhRlhf => "hh-rlhf",
            Format::UltraFeedback => "ultrafeedback",
            Format::Jsonl => "jsonl",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown format `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// A row that was not imported: its line (1-based), the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedRow {
    pub line: usize,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: field `{}`: {}",
            self.line, self.field, self.reason
        )
    }
}

/// What an import read: the records, and the rows it rejected.
#[derive(Debug, Default)]
pub struct Imported {
    pub records: Vec<PreferenceRecord>,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading line {line}: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("record {record}: field `{field}` cannot be written as {format}: {reason}")]
    Unrepresentable {
        /// The record's index (0-based) in the list given to export.
        record: usize,
        format: Format,
        field: String,
        reason: String,
    },
}

/// Reads `reader` as `format`, one JSON object a line (blank lines skipped).
pub fn import<R: BufRead>(mut reader: R, format: Format) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        line += 1;
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| ImportError::Io { line, source })?;
        if n == 0 {
            break;
        }
        let text = match std::str::from_utf8(&buf) {
            // A byte-order mark may start the file.
            Ok(t) if line == 1 => t.strip_prefix('\u{feff}').unwrap_or(t),
            Ok(t) => t,
            Err(e) => {
                out.rejected
                    .push(reject(line, "line", format!("not UTF-8: {e}")));
                continue;
            }
        };
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let row = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                out.rejected
                    .push(reject(line, "line", "expected a JSON object".into()));
                continue;
            }
            Err(e) => {
                out.rejected
                    .push(reject(line, "line", format!("not JSON: {e}")));
                continue;
            }
        };
        let parsed = match format {
            Format::Trl | Format::TrlImplicit => trl::read(&row),
            Format::HhRlhf => hh::read(&row),
            Format::UltraFeedback => ultrafeedback::read(&row),
            Format::Jsonl => jsonl::read(&row),
        };
        match parsed {
            // Two identical replies say nothing about which is better.
            Ok(r) if r.chosen == r.rejected => out.rejected.push(reject(
                line,
                "rejected",
                "the same reply as chosen: a pair says which of two replies is better".into(),
            )),
            Ok(r) => match roles_fit(&r) {
                Ok(()) => out.records.push(r),
                Err((field, reason)) => out.rejected.push(reject(line, &field, reason)),
            },
            Err((field, reason)) => out.rejected.push(reject(line, &field, reason)),
        }
    }
    Ok(out)
}

/// The roles a preference's messages may have.
const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Whether a record's messages have roles a chat has, and each reply given as messages ends
/// with the assistant's (a reply that is a user's turn is no reply to prefer).
fn roles_fit(r: &crate::record::PreferenceRecord) -> Result<(), FieldError> {
    use crate::record::Turns;
    for (name, turns) in [
        ("prompt", &r.prompt),
        ("chosen", &r.chosen),
        ("rejected", &r.rejected),
    ] {
        let Turns::Messages(list) = turns else {
            continue;
        };
        // Named by the part of the record, not by a message's place: formats that share
        // the prompt inside the replies have moved messages between them.
        if let Some(m) = list.iter().find(|m| !ROLES.contains(&m.role.as_str())) {
            return Err((
                name.to_owned(),
                format!(
                    "messages whose role is one of {}, found {:?}",
                    ROLES.join(", "),
                    m.role
                ),
            ));
        }
        if let Some(last) = list
            .last()
            .filter(|m| name != "prompt" && m.role != "assistant")
        {
            return Err((
                name.to_owned(),
                format!(
                    "a reply that ends with the assistant's message, found one of role {:?} last",
                    last.role
                ),
            ));
        }
    }
    Ok(())
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    /// Records written.
    pub written: usize,
    /// Ties (`tie`, or a `soft_label` of 0.5) left out: only `jsonl` holds one.
    pub ties_left_out: usize,
    /// Records whose `soft_label` is below 0.5 (the rejected reply is the likelier better
    /// one), written the other way round: the other formats hold a preference's direction,
    /// not its strength.
    pub turned: usize,
    /// Records left out of `trl-implicit` because, read back, their text would split into
    /// another prompt and other replies (replies that begin alike, a prompt that does not
    /// end where a word does).
    pub not_readable_back: usize,
}

/// Writes `records` as `format`, one JSON object a line. Fails on the first record the
/// format cannot hold (naming it and the field), before writing anything. The formats other
/// than `jsonl` say only which reply is better: a record whose soft label favours `rejected`
/// is written with the replies swapped, and a tie is left out; both are counted.
pub fn export<W: Write>(
    records: &[PreferenceRecord],
    format: Format,
    mut writer: W,
) -> Result<Exported, ExportError> {
    let mut rows = Vec::with_capacity(records.len());
    let mut done = Exported::default();
    for (i, r) in records.iter().enumerate() {
        let turned;
        let r = if format == Format::Jsonl {
            r
        } else {
            match r.soft_label {
                _ if r.tie || r.soft_label == Some(0.5) => {
                    done.ties_left_out += 1;
                    continue;
                }
                Some(p) if p < 0.5 => {
                    turned = r.turned();
                    done.turned += 1;
                    &turned
                }
                _ => r,
            }
        };
        if format == Format::TrlImplicit && !trl::reads_back_implicit(r) {
            done.not_readable_back += 1;
            continue;
        }
        let row = match format {
            Format::Trl => trl::write(r, true),
            Format::TrlImplicit => trl::write(r, false),
            Format::HhRlhf => hh::write(r),
            Format::UltraFeedback => ultrafeedback::write(r),
            Format::Jsonl => jsonl::write(r),
        };
        rows.push(row.map_err(|(field, reason)| ExportError::Unrepresentable {
            record: i,
            format,
            field,
            reason,
        })?);
    }
    for row in &rows {
        writer.write_all(row.as_bytes())?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    done.written = rows.len();
    Ok(done)
}

/// A field-level failure: the field's name and why.
pub(crate) type FieldError = (String, String);

fn reject(line: usize, field: &str, reason: String) -> RejectedRow {
    RejectedRow {
        line,
        field: field.to_string(),
        reason,
    }
}

/// The field `name` as `T`; `None` when absent or null.
pub(crate) fn field<T: DeserializeOwned>(
    row: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, FieldError> {
    match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| (name.to_string(), e.to_string())),
    }
}

/// The field `name` as `T`, which must be there.
pub(crate) fn required<T: DeserializeOwned>(
    row: &Map<String, Value>,
    name: &str,
) -> Result<T, FieldError> {
    field(row, name)?.ok_or_else(|| (name.to_string(), "missing".to_string()))
}

/// Splits two conversations that share their beginning into the shared prompt and the two
/// replies; each reply keeps at least one message.
pub(crate) fn split_messages(
    a: Vec<Message>,
    b: Vec<Message>,
) -> (Vec<Message>, Vec<Message>, Vec<Message>) {
    let max = a.len().min(b.len()).saturating_sub(1);
    let shared = a
        .iter()
        .zip(&b)
        .take(max)
        .take_while(|(x, y)| x == y)
        .count();
    let mut a = a;
    let mut b = b;
    let ra = a.split_off(shared);
    let rb = b.split_off(shared);
    (a, ra, rb)
}

/// Splits two texts that share their beginning: the prompt is the shared beginning up to
/// its last whitespace (so a word is not cut), the replies the rest.
pub(crate) fn split_text<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str, &'a str) {
    let mut shared = 0;
    for ((i, x), y) in a.char_indices().zip(b.chars()) {
        if x != y {
            break;
        }
        shared = i + x.len_utf8();
    }
    let (a_shared, b_shared) = (&a[shared..], &b[shared..]);
    let cut = if a_shared.is_empty() && b_shared.is_empty() {
        shared
    } else {
        a[..shared]
            .char_indices()
            .rfind(|(_, c)| c.is_whitespace())
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(0)
    };
    (&a[..cut], &a[cut..], &b[cut..])
}

/// Serializes a value that cannot fail to serialize (plain data, finite floats checked by
/// the caller).
pub(crate) fn to_line<T: serde::Serialize>(value: &T) -> Result<String, FieldError> {
    serde_json::to_string(value).map_err(|e| ("record".to_string(), e.to_string()))
}

/// A margin or score must be a finite number to be written as JSON.
pub(crate) fn finite(name: &str, v: Option<f64>) -> Result<Option<f64>, FieldError> {
    match v {
        Some(x) if !x.is_finite() => Err((name.to_string(), format!("{x} is not finite"))),
        other => Ok(other),
    }
}
