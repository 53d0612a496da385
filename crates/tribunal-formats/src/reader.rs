//! Streaming input: files, directories and standard input become a sequence of raw JSON
//! items, each with the file and line it started on. Parsing happens later, in parallel;
//! memory stays bounded by one item, whatever the file size.
//!
//! - `.jsonl` / `.ndjson` / standard input: one item per non-empty line.
//! - `.json` holding an array of traces: one item per element, split without parsing.
//! - `.json` holding one trace (an object, or a list of chat messages): one item.
//! - a directory: every `.json`, `.jsonl` and `.ndjson` file below it, in name order, and
//!   each of them compressed with gzip (`.jsonl.gz`, …).
//! - a gzip file (known by its first bytes, whatever its name) is read as what it holds,
//!   by the name without `.gz`.

use crate::error::ImportError;
use crate::util::fallback_id;
use crate::{import_value, InputFormat};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tribunal_core::Trace;

/// Where an item came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    pub file: String,
    /// 1-based line where the item starts.
    pub line: u64,
}

/// One unparsed JSON item.
#[derive(Debug, Clone)]
pub struct RawItem {
    pub source: SourceRef,
    pub text: String,
}

/// A file or item that could not be read: names the file, line and column (line 0: the
/// file as a whole, which the message shows without a line).
#[derive(Debug, Clone, Error, Serialize)]
#[error(
    "{file}{}{}: {message}",
    if *line > 0 { format!(":{line}") } else { String::new() },
    column.map(|c| format!(":{c}")).unwrap_or_default()
)]
pub struct ReadError {
    pub file: String,
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    pub message: String,
}

impl RawItem {
    /// Parses the item and imports the traces it holds.
    pub fn import(&self, format: InputFormat) -> Result<Vec<Trace>, ReadError> {
        let id = fallback_id(&self.source.file, self.source.line);
        if let Some(trace) = crate::openai_row::read(&self.text, format, &id) {
            return Ok(vec![trace]);
        }
        let value = tribunal_core::json::from_str(&self.text).map_err(|e| ReadError {
            file: self.source.file.clone(),
            line: self.source.line + e.line().saturating_sub(1) as u64,
            column: Some(e.column() as u64),
            message: format!("invalid JSON: {}", strip_position(&e.to_string())),
        })?;
        import_value(&value, format, &id).map_err(|e: ImportError| ReadError {
            file: self.source.file.clone(),
            line: self.source.line,
            column: None,
            message: if e.field.is_empty() {
                format!("expected {}", e.expected)
            } else {
                e.to_string()
            },
        })
    }
}

fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Expands directories into the supported files below them, in name order.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(p.clone());
        } else if p.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files, true).map_err(|e| io_error(p, e))?;
            files.sort();
            out.extend(files);
        } else if p.symlink_metadata().is_ok() {
            // A link to nothing is rejected when it is read, like a file that cannot be
            // opened, and the other files are still read.
            out.push(p.clone());
        } else {
            return Err(ReadError {
                file: p.display().to_string(),
                line: 0,
                column: None,
                message: "no such file or directory".into(),
            });
        }
    }
    Ok(out)
}

/// The `.json`, `.jsonl` and `.ndjson` files in a directory and below it, in name order.
pub fn json_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &mut out, false)?;
    out.sort();
    Ok(out)
}

/// Collects the JSON files below `dir`, and with `gz` the gzip-compressed ones too.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, gz: bool) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out, gz)?;
        } else if matches!(
            extension(&path).as_deref(),
            Some("json" | "jsonl" | "ndjson")
        ) || gz
            && extension(&path).as_deref() == Some("gz")
            && matches!(
                extension(Path::new(path.file_stem().unwrap_or_default())).as_deref(),
                Some("json" | "jsonl" | "ndjson")
            )
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A file's extension in lower case (`T.JSONL` is a JSONL file).
fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// The first bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads one opened file, as lines or as one document by its extension (the name without
/// `.gz` when the file is gzip, which its first bytes tell).
fn read_file(
    file: File,
    path: &Path,
    name: &str,
    emit: &mut impl FnMut(Result<RawItem, ReadError>) -> bool,
) -> bool {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let gzip = match reader.fill_buf() {
        Ok(head) => head.starts_with(&GZIP_MAGIC),
        Err(e) => return emit(Err(io_error(path, e))),
    };
    let kind = if gzip && extension(path).as_deref() == Some("gz") {
        extension(Path::new(path.file_stem().unwrap_or_default()))
    } else {
        extension(path)
    };
    let lines = matches!(kind.as_deref(), Some("jsonl" | "ndjson"));
    if gzip {
        let reader =
            BufReader::with_capacity(256 * 1024, flate2::bufread::MultiGzDecoder::new(reader));
        if lines {
            read_lines(reader, name, emit)
        } else {
            read_document(reader, name, emit)
        }
    } else if lines {
        read_lines(reader, name, emit)
    } else {
        read_document(reader, name, emit)
    }
}

fn io_error(p: &Path, e: io::Error) -> ReadError {
    ReadError {
        file: p.display().to_string(),
        line: 0,
        column: None,
        message: e.to_string(),
    }
}

/// Reads every path, calling `emit` with each item or error in order. `emit` returns `false`
/// to stop early. Errors in one file do not stop the others.
pub fn read_paths(
    paths: &[PathBuf],
    mut emit: impl FnMut(Result<RawItem, ReadError>) -> bool,
) -> Result<(), ReadError> {
    for path in expand_paths(paths)? {
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let keep_going = if path.as_os_str() == "-" {
            read_lines(io::stdin().lock(), &name, &mut emit)
        } else {
            match File::open(&path) {
                Ok(file) => read_file(file, &path, &name, &mut emit),
                Err(e) => emit(Err(io_error(&path, e))),
            }
        };
        if !keep_going {
            break;
        }
    }
    Ok(())
}

/// The longest line of a JSONL file that is read; a longer one is rejected (its number
/// given) and skipped, and the lines after it are read.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// One item per non-empty line. A line that is not UTF-8 or is longer than
/// [`MAX_LINE_BYTES`] is rejected with its number; reading goes on with the next line.
pub fn read_lines(
    reader: impl BufRead,
    file: &str,
    emit: &mut impl FnMut(Result<RawItem, ReadError>) -> bool,
) -> bool {
    read_lines_up_to(reader, file, MAX_LINE_BYTES, emit)
}

/// [`read_lines`] with the line limit given.
pub fn read_lines_up_to(
    mut reader: impl BufRead,
    file: &str,
    max_line: usize,
    emit: &mut impl FnMut(Result<RawItem, ReadError>) -> bool,
) -> bool {
    let mut line_no = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    let err = |line: u64, message: String| ReadError {
        file: file.to_owned(),
        line,
        column: None,
        message,
    };
    loop {
        buf.clear();
        line_no += 1;
        // Read up to the newline, keeping at most `max_line` bytes of it.
        let mut too_long = false;
        let mut ended = false;
        loop {
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return emit(Err(err(line_no, e.to_string()))),
            };
            if chunk.is_empty() {
                ended = true;
                break;
            }
            let (part, newline) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            if !too_long {
                if buf.len() + part.len() > max_line {
                    too_long = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(part);
                }
            }
            let used = part.len() + usize::from(newline);
            reader.consume(used);
            if newline {
                break;
            }
        }
        if too_long {
            if !emit(Err(err(
                line_no,
                format!("the line is longer than {max_line} bytes; skipped"),
            ))) {
                return false;
            }
        } else if !buf.is_empty() {
            match std::str::from_utf8(&buf) {
                Err(e) => {
                    if !emit(Err(ReadError {
                        file: file.to_owned(),
                        line: line_no,
                        column: Some(e.valid_up_to() as u64 + 1),
                        message: "invalid UTF-8; the line is skipped".into(),
                    })) {
                        return false;
                    }
                }
                Ok(text) => {
                    // A byte-order mark may start the file.
                    let text = if line_no == 1 {
                        text.strip_prefix('\u{feff}').unwrap_or(text)
                    } else {
                        text
                    };
                    let text = text.trim();
                    if !text.is_empty() {
                        let item = RawItem {
                            source: SourceRef {
                                file: file.to_owned(),
                                line: line_no,
                            },
                            text: text.to_owned(),
                        };
                        if !emit(Ok(item)) {
                            return false;
                        }
                    }
                }
            }
        }
        if ended {
            return true;
        }
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    fn read(input: &[u8], max: usize) -> Vec<Result<(u64, String), (u64, String)>> {
        let mut out = Vec::new();
        read_lines_up_to(input, "f.jsonl", max, &mut |r| {
            out.push(match r {
                Ok(i) => Ok((i.source.line, i.text)),
                Err(e) => Err((e.line, e.message)),
            });
            true
        });
        out
    }

    #[test]
    fn a_bad_line_is_rejected_with_its_number_and_the_rest_are_read() {
        let input = b"{\"a\":1}\n{\"b\":\"\xff\xfe\"}\n\n{\"c\":3}\r\n{\"d\":\"0123456789012345678901234567890123456789\"}\n{\"e\":5}";
        let got = read(input, 32);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], Ok((1, "{\"a\":1}".into())));
        assert!(
            matches!(&got[1], Err((2, m)) if m.contains("UTF-8")),
            "{got:?}"
        );
        assert_eq!(got[2], Ok((4, "{\"c\":3}".into())));
        assert!(
            matches!(&got[3], Err((5, m)) if m.contains("longer than 32")),
            "{got:?}"
        );
        assert_eq!(got[4], Ok((6, "{\"e\":5}".into())));
    }

    #[test]
    fn lines_split_across_reads_are_whole() {
        let text = "{\"x\":\"é\"}\n".repeat(50);
        let reader = io::BufReader::with_capacity(7, text.as_bytes());
        let mut n = 0;
        read_lines(reader, "f", &mut |r| {
            assert_eq!(r.unwrap().text, "{\"x\":\"é\"}");
            n += 1;
            true
        });
        assert_eq!(n, 50);
    }
}

/// A `.json` file: one document, or an array whose elements are split without parsing.
fn read_document(
    reader: impl BufRead,
    file: &str,
    emit: &mut impl FnMut(Result<RawItem, ReadError>) -> bool,
) -> bool {
    let mut bytes = reader.bytes().peekable();
    let mut line = 1u64;
    let mut col = 0u64;
    // Skip leading white space (and a byte-order mark) to see what the document is.
    while let Some(b) = bytes.peek() {
        match b {
            Ok(b'\n') => {
                line += 1;
                col = 0;
            }
            Ok(b' ' | b'\t' | b'\r' | 0xEF | 0xBB | 0xBF) => col += 1,
            Ok(_) => break,
            Err(_) => break,
        }
        bytes.next();
    }
    let start_line = line;
    if !matches!(bytes.peek(), Some(Ok(b'['))) {
        // A single document: read it whole.
        let mut text = Vec::new();
        for b in bytes {
            match b {
                Ok(b) => text.push(b),
                Err(e) => return emit(Err(read_err(file, line, e))),
            }
        }
        return emit_text(file, start_line, text, emit);
    }
    bytes.next(); // '['
    col += 1;
    let mut splitter = Splitter::default();
    let mut elements_seen = 0usize;
    // Chat-message arrays are one trace, not a list of traces: held until the end.
    let mut whole: Option<Vec<u8>> = None;
    let mut elem = Vec::new();
    let mut elem_line = line;
    for b in bytes {
        let b = match b {
            Ok(b) => b,
            Err(e) => return emit(Err(read_err(file, line, e))),
        };
        col += 1;
        match splitter.push(b) {
            Step::Inside => {
                if elem.is_empty() {
                    elem_line = line;
                }
                elem.push(b);
            }
            Step::Between => {}
            Step::End | Step::Separator => {
                let done = matches!(splitter.last, Step::End);
                let trimmed_len = elem.len();
                if trimmed_len > 0 {
                    elements_seen += 1;
                    if elements_seen == 1 && is_chat_message(&elem) {
                        whole = Some(Vec::new());
                    }
                    match whole.as_mut() {
                        Some(w) => {
                            if !w.is_empty() {
                                w.push(b',');
                            }
                            w.extend_from_slice(&elem);
                        }
                        None => {
                            let text = std::mem::take(&mut elem);
                            if !emit_text(file, elem_line, text, emit) {
                                return false;
                            }
                        }
                    }
                    elem.clear();
                } else if !done || elements_seen > 0 {
                    return emit(Err(ReadError {
                        file: file.to_owned(),
                        line,
                        column: Some(col),
                        message: "invalid JSON: expected a value before this separator".into(),
                    }));
                }
                if done {
                    break;
                }
            }
        }
        if b == b'\n' {
            line += 1;
            col = 0;
        }
    }
    if !matches!(splitter.last, Step::End) {
        return emit(Err(ReadError {
            file: file.to_owned(),
            line,
            column: Some(col),
            message: "invalid JSON: the array is not closed (EOF while parsing a list)".into(),
        }));
    }
    if let Some(mut w) = whole {
        w.insert(0, b'[');
        w.push(b']');
        return emit_text(file, start_line, w, emit);
    }
    true
}

/// Whether an array's first element is a message of one conversation (a chat message, or a
/// Responses API item such as a `function_call`, which a list of items may start with), so
/// that the array is one trace rather than a list of traces.
fn is_chat_message(elem: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(elem) {
        Ok(v @ serde_json::Value::Object(_)) => {
            v.get("role").is_some() || crate::responses::own_item(&v)
        }
        _ => false,
    }
}

fn emit_text(
    file: &str,
    line: u64,
    text: Vec<u8>,
    emit: &mut impl FnMut(Result<RawItem, ReadError>) -> bool,
) -> bool {
    match String::from_utf8(text) {
        Ok(text) => emit(Ok(RawItem {
            source: SourceRef {
                file: file.to_owned(),
                line,
            },
            text,
        })),
        Err(_) => emit(Err(ReadError {
            file: file.to_owned(),
            line,
            column: None,
            message: "not valid UTF-8".into(),
        })),
    }
}

fn read_err(file: &str, line: u64, e: io::Error) -> ReadError {
    ReadError {
        file: file.to_owned(),
        line,
        column: None,
        message: e.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Step {
    /// The byte belongs to an element.
    Inside,
    /// White space between elements.
    #[default]
    Between,
    /// A top-level comma.
    Separator,
    /// The closing bracket of the array.
    End,
}

/// Finds the top-level element boundaries of a JSON array, byte by byte.
#[derive(Debug, Default)]
struct Splitter {
    depth: u32,
    in_string: bool,
    escape: bool,
    last: Step,
}

impl Splitter {
    fn push(&mut self, b: u8) -> Step {
        let step = if self.in_string {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            Step::Inside
        } else {
            match b {
                b'"' => {
                    self.in_string = true;
                    Step::Inside
                }
                b'[' | b'{' => {
                    self.depth += 1;
                    Step::Inside
                }
                b']' | b'}' if self.depth > 0 => {
                    self.depth -= 1;
                    Step::Inside
                }
                b']' => Step::End,
                b',' if self.depth == 0 => Step::Separator,
                b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => Step::Between,
                _ => Step::Inside,
            }
        };
        self.last = step;
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that is not there is named without a line (it showed `:0`).
    #[test]
    fn a_missing_file_is_named_without_a_line() {
        let e = expand_paths(&[PathBuf::from("no-such-traces.jsonl")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no-such-traces.jsonl: no such file or directory"
        );
        let e = ReadError {
            file: "t.jsonl".into(),
            line: 3,
            column: Some(7),
            message: "invalid JSON".into(),
        };
        assert_eq!(e.to_string(), "t.jsonl:3:7: invalid JSON");
        // A record whose messages are not a list is told so, at `messages`.
        let e = crate::import_value(
            &serde_json::json!({"id": "b", "messages": "oops"}),
            InputFormat::Auto,
            "x",
        )
        .unwrap_err();
        assert_eq!(e.field, "messages", "{e}");
        assert!(e.to_string().contains("found a string"), "{e}");
    }

    fn collect(text: &str) -> Vec<Result<RawItem, ReadError>> {
        let mut out = Vec::new();
        read_document(text.as_bytes(), "t.json", &mut |r| {
            out.push(r);
            true
        });
        out
    }

    #[test]
    fn splits_arrays_of_traces_with_their_lines() {
        let items = collect("[\n {\"messages\": [{\"role\":\"user\",\"content\":\"a, [b]\"}]},\n {\"messages\": []}\n]\n");
        assert_eq!(items.len(), 2);
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.source.line, 2);
        assert!(first.text.starts_with("{\"messages\""));
        assert_eq!(items[1].as_ref().unwrap().source.line, 3);
    }

    #[test]
    fn chat_arrays_are_one_trace() {
        let items = collect(
            "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]",
        );
        assert_eq!(items.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&items[0].as_ref().unwrap().text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    #[test]
    fn responses_items_starting_with_a_call_are_one_trace() {
        let items = collect(concat!(
            "[{\"type\": \"function_call\", \"call_id\": \"c1\", \"name\": \"ls\", \"arguments\": \"{}\"},\n",
            " {\"type\": \"function_call_output\", \"call_id\": \"c1\", \"output\": \"a\"}]\n"
        ));
        assert_eq!(items.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&items[0].as_ref().unwrap().text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    #[test]
    fn unclosed_array_is_an_error_with_position() {
        let items = collect("[{\"messages\": []},\n");
        assert_eq!(items.len(), 2);
        let err = items[1].as_ref().unwrap_err();
        assert!(err.message.contains("not closed"), "{err}");
        assert_eq!(err.line, 2);
    }

    #[test]
    fn jsonl_errors_name_line_and_column() {
        let mut out = Vec::new();
        read_lines(
            "{\"messages\":[]}\n\n{\"messages\": [}\n".as_bytes(),
            "d.jsonl",
            &mut |r| {
                out.push(r.unwrap());
                true
            },
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].source.line, 3);
        let err = out[1].import(InputFormat::Auto).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.column.is_some());
        assert!(err.to_string().starts_with("d.jsonl:3:"), "{err}");
    }
}

#[cfg(test)]
mod gzip_tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Every item and error read from `paths`, as `file:line text` or `file:line error`.
    fn read_all(paths: &[PathBuf], root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        read_paths(paths, |r| {
            let strip = |f: &str| {
                f.strip_prefix(&format!("{}/", root.display()))
                    .unwrap_or(f)
                    .to_owned()
            };
            out.push(match r {
                Ok(i) => format!("{}:{} {}", strip(&i.source.file), i.source.line, i.text),
                Err(e) => format!("{}:{} error {}", strip(&e.file), e.line, e.message),
            });
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn compressed_trace_files_are_read_as_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("a.jsonl.gz"),
            gzip(b"{\"id\":\"a1\"}\n\n{\"id\":\"a2\"}\n"),
        )
        .unwrap();
        std::fs::write(
            d.join("b.json.gz"),
            gzip(b"[{\"id\":\"b1\"}, {\"id\":\"b2\"}]"),
        )
        .unwrap();
        // Two gzip members one after the other are one file, as `cat x.gz y.gz` makes it.
        let mut two = gzip(b"{\"id\":\"c1\"}\n");
        two.extend(gzip(b"{\"id\":\"c2\"}\n"));
        std::fs::write(d.join("c.NDJSON.GZ"), two).unwrap();
        // Compressed without saying so: known by its first bytes.
        std::fs::write(d.join("d.jsonl"), gzip(b"{\"id\":\"d1\"}\n")).unwrap();
        // Not trace files: left out of the folder's reading.
        std::fs::write(d.join("notes.txt.gz"), gzip(b"hello")).unwrap();
        std::fs::write(d.join("README.md"), b"# traces").unwrap();
        let got = read_all(&[d.to_path_buf()], d);
        assert_eq!(
            got,
            [
                "a.jsonl.gz:1 {\"id\":\"a1\"}",
                "a.jsonl.gz:3 {\"id\":\"a2\"}",
                "b.json.gz:1 {\"id\":\"b1\"}",
                "b.json.gz:1 {\"id\":\"b2\"}",
                "c.NDJSON.GZ:1 {\"id\":\"c1\"}",
                "c.NDJSON.GZ:2 {\"id\":\"c2\"}",
                "d.jsonl:1 {\"id\":\"d1\"}",
            ]
        );
    }

    #[test]
    fn a_damaged_compressed_file_keeps_what_was_read_and_names_where_it_broke() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let body: String = (0..2000)
            .map(|i| format!("{{\"id\":\"t{i}\"}}\n"))
            .collect();
        let whole = gzip(body.as_bytes());
        // Cut short, and with its middle overwritten.
        std::fs::write(d.join("cut.jsonl.gz"), &whole[..whole.len() / 2]).unwrap();
        let mut bad = whole.clone();
        let mid = bad.len() / 2;
        bad[mid..mid + 64].fill(0xff);
        std::fs::write(d.join("bad.jsonl.gz"), bad).unwrap();
        for name in ["cut.jsonl.gz", "bad.jsonl.gz"] {
            let got = read_all(&[d.join(name)], d);
            let (last, read) = got.split_last().unwrap();
            assert!(
                last.starts_with(&format!("{name}:")) && last.contains(" error "),
                "{name}: {last}"
            );
            assert!(
                read.len() > 100 && read.len() < 2000,
                "{name}: {} items",
                read.len()
            );
            // What came before the damage is read as written; a damaged middle may read as
            // other bytes (deflate finds it only at the checksum), which are judged as any
            // malformed line is, and the file's error still says it is damaged.
            let whole = if name == "cut.jsonl.gz" {
                read.len()
            } else {
                100
            };
            for (i, g) in read[..whole].iter().enumerate() {
                assert_eq!(g, &format!("{name}:{} {{\"id\":\"t{i}\"}}", i + 1));
            }
        }
    }
}
