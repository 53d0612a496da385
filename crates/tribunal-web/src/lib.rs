//! The web UI: one page (`index.html`) and its script and style, compiled into the binary
//! and served by `tribunal-server`. The script is a client of the REST API like any other:
//! every action it offers is an API call described in the OpenAPI document. It renders
//! whatever comes from a trace as text (`textContent`, never HTML), and the server sends it
//! with a content security policy that allows only these files.

/// One file of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file of the UI, by the path it is served at.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
    },
];

/// The content security policy the pages are served with: scripts, styles and requests
/// only from the server itself, no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The asset served at `path`.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_no_inline_script() {
        let page = asset("/").unwrap().body;
        assert!(page.contains(r#"<script src="/ui/app.js""#));
        assert!(page.contains(r#"href="/ui/app.css""#));
        // Inline script would be refused by the policy.
        assert_eq!(page.matches("<script").count(), 1);
        for handler in ["onclick=", "onload=", "onerror=", "onsubmit="] {
            assert!(!page.contains(handler), "inline handler {handler}");
        }
        for a in ASSETS {
            assert!(asset(a.path).is_some());
        }
    }

    #[test]
    fn the_script_never_writes_html() {
        let js = asset("/ui/app.js").unwrap().body;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
    }
}
