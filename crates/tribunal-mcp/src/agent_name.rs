//! The agent name a proxy gives the gate when none is chosen (`--agent`): one per upstream
//! MCP server. The gate pins tool definitions per project, agent and tool, so two servers
//! behind proxies of one agent name would share the pins of their tools of the same name
//! (one server's `search` seen as a changed definition of the other's, or an approved
//! definition of one covering the other).

use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The MCP server a proxy stands in front of.
#[derive(Debug, Clone, Copy)]
pub enum Upstream<'a> {
    /// A command run over stdio, with its arguments.
    Command(&'a [String]),
    /// A Streamable HTTP endpoint.
    Url(&'a str),
}

/// Longest readable part of a default name, in characters.
const READABLE_CHARS: usize = 64;

/// The default agent name for `upstream`: `mcp:`, a readable part, `#` and the first 8 hex
/// digits of the SHA-256 of the whole command line (arguments separated by NUL) or URL.
/// The readable part is the program's file name and the file name of its first argument
/// that is not an option (`mcp:npx server-github#…`), or the URL's host, port and path
/// without credentials or query (`mcp:127.0.0.1:9000/mcp#…`). The same command line or URL
/// always gives the same name, so a restarted proxy keeps its tools' pins; a different one
/// gives a different name.
pub fn default_agent_name(upstream: Upstream<'_>) -> String {
    let mut digest = Sha256::new();
    let readable = match upstream {
        Upstream::Command(args) => {
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    digest.update([0u8]);
                }
                digest.update(a.as_bytes());
            }
            let program = args.first().map(|p| file_name(p));
            let subject = args
                .iter()
                .skip(1)
                .find(|a| !a.starts_with('-'))
                .map(|a| file_name(a));
            program
                .into_iter()
                .chain(subject)
                .collect::<Vec<_>>()
                .join(" ")
        }
        Upstream::Url(url) => {
            digest.update(url.trim().as_bytes());
            url_place(url.trim())
        }
    };
    let hash = digest.finalize();
    let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("mcp:{}#{short}", clean(&readable))
}

/// The last part of a path (`/usr/bin/python3` → `python3`), or the whole text.
fn file_name(s: &str) -> String {
    s.trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .filter(|last| !last.is_empty())
        .unwrap_or(s)
        .to_owned()
}

/// Host, port and path of a URL, leaving out its scheme, credentials, query and fragment.
fn url_place(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let path = u.path().trim_end_matches('/');
            format!("{host}{port}{path}")
        }
        Err(_) => url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Without control characters, at most [`READABLE_CHARS`] characters.
fn clean(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let s = s.trim();
    match s.char_indices().nth(READABLE_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// The pin file every proxy of one folder shared when none was given: read once by a proxy
/// whose own file ([`default_pins_path`]) does not exist yet, so pins made there still hold.
pub const SHARED_PINS: &str = ".tribunal/mcp-pins.json";

/// Where a proxy of `agent` pins its tools' descriptions when no file is given: a file of
/// its own under `.tribunal/mcp-pins/`, named after the agent (ASCII letters, digits, `.`,
/// `-` and `_` kept, other characters as `_`, at most 64) and the first 8 hex digits of the
/// SHA-256 of the whole name, so proxies of different agents started in one folder never
/// share pins, and names that read alike still get files of their own.
pub fn default_pins_path(agent: &str) -> PathBuf {
    let readable: String = agent
        .chars()
        .take(READABLE_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = Sha256::digest(agent.as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(".tribunal/mcp-pins").join(format!("{readable}-{short}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        default_agent_name(Upstream::Command(&args))
    }

    fn hash_part(name: &str) -> &str {
        name.rsplit_once('#').unwrap().1
    }

    #[test]
    fn a_command_is_named_by_its_program_and_first_argument() {
        let name = command(&["npx", "-y", "@modelcontextprotocol/server-github"]);
        assert!(name.starts_with("mcp:npx server-github#"), "{name}");
        assert_eq!(hash_part(&name).len(), 8, "{name}");
        let name = command(&["/usr/bin/python3", "/srv/tools/server.py", "--port", "1"]);
        assert!(name.starts_with("mcp:python3 server.py#"), "{name}");
        let name = command(&["my-server"]);
        assert!(name.starts_with("mcp:my-server#"), "{name}");
    }

    #[test]
    fn the_same_upstream_gives_the_same_name_and_another_a_different_one() {
        let a = command(&["python3", "server.py"]);
        assert_eq!(a, command(&["python3", "server.py"]));
        // Arguments that differ only after the readable part still give another name, and
        // argument boundaries count.
        let others = [
            command(&["python3", "server.py", "--db", "b"]),
            command(&["python3", "server.p", "y"]),
            command(&["python3", "other/server.py"]),
        ];
        for o in &others {
            assert_ne!(&a, o);
        }
        assert_ne!(others[0], command(&["python3", "server.py", "--db", "c"]));
        let u = default_agent_name(Upstream::Url("http://127.0.0.1:9000/mcp"));
        assert_eq!(
            u,
            default_agent_name(Upstream::Url("http://127.0.0.1:9000/mcp"))
        );
        assert_ne!(
            u,
            default_agent_name(Upstream::Url("http://127.0.0.1:9001/mcp"))
        );
    }

    #[test]
    fn a_url_is_named_by_its_place_without_credentials_or_query() {
        let name = default_agent_name(Upstream::Url(
            "https://user:secret@tools.example.com:8443/mcp/?token=abc#frag",
        ));
        assert!(
            name.starts_with("mcp:tools.example.com:8443/mcp#"),
            "{name}"
        );
        assert!(!name.contains("secret") && !name.contains("abc"), "{name}");
        let name = default_agent_name(Upstream::Url("not a url?token=abc"));
        assert!(name.starts_with("mcp:not a url#"), "{name}");
    }

    #[test]
    fn names_are_short_and_free_of_control_characters() {
        let long = "x".repeat(500);
        let name = command(&[&long, "a\nb"]);
        assert!(name.chars().count() <= 4 + READABLE_CHARS + 1 + 9, "{name}");
        assert!(!name.chars().any(char::is_control), "{name}");
        assert!(command(&["srv", "a\nb"]).starts_with("mcp:srv a?b#"));
    }

    #[test]
    fn each_agent_pins_in_a_file_of_its_own() {
        let a = default_pins_path("mcp:npx server-github#1a2b3c4d");
        let b = default_pins_path("mcp:npx server-slack#5e6f7a8b");
        assert_ne!(a, b);
        assert_eq!(a, default_pins_path("mcp:npx server-github#1a2b3c4d"));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("mcp_npx_server-github_1a2b3c4d-"),
            "{name}"
        );
        assert!(a.starts_with(".tribunal/mcp-pins"));
        // Names that read alike are told apart by their hash; none leaves the folder.
        assert_ne!(default_pins_path("a/b"), default_pins_path("a:b"));
        let up = default_pins_path("../../etc/passwd");
        assert_eq!(
            up.parent().unwrap(),
            std::path::Path::new(".tribunal/mcp-pins")
        );
    }
}
