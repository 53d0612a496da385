//! Facts extracted from text once, in Rust, so gates can reason about them with set lookups
//! instead of scanning strings: URL hosts, email addresses and markdown image URLs.

/// What a piece of text points at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Links {
    /// Lower-cased host names of `http://` and `https://` URLs.
    pub hosts: Vec<String>,
    /// Lower-cased email addresses.
    pub emails: Vec<String>,
    /// Markdown images `![alt](url)`: (url, lower-cased host).
    pub images: Vec<(String, String)>,
}

impl tribunal_core::Heap for Links {
    fn heap(&self) -> usize {
        self.hosts.heap() + self.emails.heap() + self.images.heap()
    }
}

impl Links {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.emails.is_empty() && self.images.is_empty()
    }

    /// Adds the links found in `text`.
    pub fn scan(&mut self, text: &str) {
        if text.contains("://") {
            for (_, host) in urls(text) {
                push_unique(&mut self.hosts, host);
            }
            scan_images(text, &mut self.images);
        }
        if text.contains('@') {
            for e in emails(text) {
                push_unique(&mut self.emails, e);
            }
        }
    }
}

/// The links in a tool call's arguments and, for a sensitive call, every argument string one
/// per line (the text leak checks look in: `arguments_text` in the policy input).
pub fn argument_facts(arguments: &serde_json::Value, sensitive: bool) -> (Links, String) {
    let mut links = Links::default();
    let mut text = String::new();
    crate::strings_of(arguments, &mut |t| {
        links.scan(t);
        if sensitive {
            text.push_str(t);
            text.push('\n');
        }
    });
    (links, text)
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// (url, lower-cased host) of every http(s) URL.
pub fn urls(text: &str) -> Vec<(String, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = text[i..].find("://") {
        let at = i + pos;
        let scheme_start = if at >= 5 && text[..at].to_ascii_lowercase().ends_with("https") {
            at - 5
        } else if at >= 4 && text[..at].to_ascii_lowercase().ends_with("http") {
            at - 4
        } else {
            i = at + 3;
            continue;
        };
        let host_start = at + 3;
        let mut end = host_start;
        while end < bytes.len() && is_host_byte(bytes[end]) {
            end += 1;
        }
        let host = text[host_start..end]
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut url_end = end;
        while url_end < bytes.len()
            && !bytes[url_end].is_ascii_whitespace()
            && !matches!(bytes[url_end], b')' | b'"' | b'\'' | b'<' | b'>')
        {
            url_end += 1;
        }
        if !host.is_empty() {
            out.push((text[scheme_start..url_end].to_owned(), host));
        }
        i = end.max(at + 3);
    }
    out
}

/// Lower-cased email addresses.
pub fn emails(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (at, _) in text.match_indices('@') {
        let mut start = at;
        while start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || b"._%+-".contains(&bytes[start - 1]))
        {
            start -= 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && is_host_byte(bytes[end]) {
            end += 1;
        }
        let domain = text[at + 1..end].trim_end_matches(['.', '-']);
        let local = &text[start..at];
        let tld_ok = domain.rsplit_once('.').is_some_and(|(head, tld)| {
            !head.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if !local.is_empty() && tld_ok {
            out.push(format!("{local}@{domain}").to_ascii_lowercase());
        }
    }
    out
}

fn scan_images(text: &str, out: &mut Vec<(String, String)>) {
    let mut i = 0;
    while let Some(pos) = text[i..].find("![") {
        let start = i + pos + 2;
        i = start;
        let Some(close) = text[start..].find("](") else {
            break;
        };
        let alt = &text[start..start + close];
        if alt.contains('\n') {
            continue;
        }
        let rest = text[start + close + 2..].trim_start();
        if let Some((url, host)) = urls(rest).into_iter().next() {
            if rest.starts_with(&url[..url.len().min(5)]) {
                let entry = (url, host);
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hosts_emails_and_images() {
        let mut l = Links::default();
        l.scan("See https://Docs.Example.com/a?b=1, mail Bob.Smith@Example.org. ![x](https://img.evil.io/p.png?d=1) and HTTP://x.y");
        assert_eq!(l.hosts, vec!["docs.example.com", "img.evil.io", "x.y"]);
        assert_eq!(l.emails, vec!["bob.smith@example.org"]);
        assert_eq!(
            l.images,
            vec![(
                "https://img.evil.io/p.png?d=1".to_owned(),
                "img.evil.io".to_owned()
            )]
        );
    }

    #[test]
    fn ignores_non_links() {
        let mut l = Links::default();
        l.scan("ftp://a.b user@localhost @handle a@b.c1 ![alt] (https://x.y) mailto:");
        assert_eq!(
            l.hosts,
            vec!["x.y"],
            "only the http(s) URL has a host: {l:?}"
        );
        assert!(l.emails.is_empty(), "{l:?}");
        assert!(l.images.is_empty(), "{l:?}");
    }
}

/// Tool classes declared as data (`data.tribunal.config.sensitive_tools` and
/// `tools.destructive_patterns`) and compiled once, so that each tool call in the policy
/// input says whether it is `sensitive` (acts on the world: sends, pays, deletes, runs) and
/// whether it is `destructive`.
#[derive(Debug, Clone, Default)]
pub struct ToolClasses {
    sensitive_names: Vec<String>,
    sensitive: Option<regex::Regex>,
    destructive: Option<regex::Regex>,
}

impl ToolClasses {
    /// Reads the classes from the merged policy data. Errors name the data field.
    pub fn from_data(config: &serde_json::Value) -> Result<ToolClasses, String> {
        let list = |path: &[&str]| -> Result<Vec<String>, String> {
            let mut v = config;
            for p in path {
                match v.get(p) {
                    Some(x) => v = x,
                    None => return Ok(Vec::new()),
                }
            }
            match v {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_owned).ok_or_else(|| {
                            format!("{}: expected a list of strings", path.join("."))
                        })
                    })
                    .collect(),
                serde_json::Value::Null => Ok(Vec::new()),
                _ => Err(format!("{}: expected a list of strings", path.join("."))),
            }
        };
        let compile = |path: &[&str]| -> Result<Option<regex::Regex>, String> {
            let patterns = list(path)?;
            if patterns.is_empty() {
                return Ok(None);
            }
            for p in &patterns {
                regex::Regex::new(p)
                    .map_err(|e| format!("{}: invalid pattern {p:?}: {e}", path.join(".")))?;
            }
            let joined = patterns
                .iter()
                .map(|p| format!("(?:{p})"))
                .collect::<Vec<_>>()
                .join("|");
            // Names are matched ignoring case (no lower-cased copy per call).
            regex::RegexBuilder::new(&joined)
                .case_insensitive(true)
                .build()
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.join(".")))
        };
        Ok(ToolClasses {
            sensitive_names: list(&["sensitive_tools", "names"])?,
            sensitive: compile(&["sensitive_tools", "patterns"])?,
            destructive: compile(&["tools", "destructive_patterns"])?,
        })
    }

    pub fn is_sensitive(&self, name: &str) -> bool {
        self.sensitive_names.iter().any(|n| n == name)
            || self.sensitive.as_ref().is_some_and(|r| r.is_match(name))
    }

    pub fn is_destructive(&self, name: &str) -> bool {
        self.destructive.as_ref().is_some_and(|r| r.is_match(name))
    }
}
