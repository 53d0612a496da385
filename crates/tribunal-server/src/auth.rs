//! Access control: bearer tokens (`trb_` + 32 random bytes, base64url), stored as SHA-256
//! hashes, each bound to one project and one role. Routes name the permission they need.

use crate::error::{ApiError, Code};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tribunal_store::{clock, Store, StoreError, TokenRecord};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Ask the gate for a decision, poll its escalations.
    Gate,
    /// Send traces (OTLP).
    Ingest,
    /// Read traces, runs, judges, policies, feedback, escalations, metrics.
    Read,
    /// Add feedback (labels) to traces.
    Annotate,
    /// Approve or deny escalated decisions.
    Review,
    /// Reload policies, verify the decision log.
    Admin,
}

/// The roles a token can have, from most to least powerful.
pub const ROLES: &[&str] = &["admin", "reviewer", "annotator", "viewer", "agent"];

/// Whether `role` grants `p`.
pub fn allows(role: &str, p: Permission) -> bool {
    use Permission::*;
    match role {
        "admin" => true,
        "reviewer" => matches!(p, Read | Review | Annotate),
        "annotator" => matches!(p, Read | Annotate),
        "viewer" => matches!(p, Read),
        "agent" => matches!(p, Gate | Ingest),
        _ => false,
    }
}

/// The caller behind a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub token_id: String,
    pub project: String,
    pub role: String,
    /// The agent the token is bound to, if it is.
    pub agent: Option<String>,
}

impl Caller {
    /// Whether the caller's role grants `p`.
    pub fn may(&self, p: Permission) -> bool {
        allows(&self.role, p)
    }

    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if allows(&self.role, p) {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                format!("a token with role {:?} may not do this", self.role),
            ))
        }
    }
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    crate::audit::hex(&Sha256::digest(secret.as_bytes()))
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS generator only fails on platforms without one; there is no safe fallback.
    getrandom::fill(&mut b).expect("the operating system's random generator");
    b
}

/// A random id made of `bytes` random bytes in lowercase hex.
pub fn random_id(prefix: &str) -> String {
    let b: [u8; 8] = random_bytes();
    format!("{prefix}{}", crate::audit::hex(&b))
}

/// A new token for `project` with `role`: the record to store and the secret, shown once.
pub async fn create_token(
    store: &Store,
    project: &str,
    role: &str,
    name: &str,
) -> Result<(TokenRecord, String), CreateTokenError> {
    create_token_for(store, project, role, name, None).await
}

/// [`create_token`], for an `agent` token bound to one agent when `agent` is given.
pub async fn create_token_for(
    store: &Store,
    project: &str,
    role: &str,
    name: &str,
    agent: Option<&str>,
) -> Result<(TokenRecord, String), CreateTokenError> {
    if !ROLES.contains(&role) {
        return Err(CreateTokenError::Role(role.to_owned()));
    }
    if let Some(a) = agent {
        if role != "agent" {
            return Err(CreateTokenError::AgentRole(role.to_owned()));
        }
        if a.trim().is_empty() || a.chars().any(char::is_control) || a.len() > 200 {
            return Err(CreateTokenError::Agent(a.to_owned()));
        }
    }
    if project.is_empty()
        || !project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(CreateTokenError::Project(project.to_owned()));
    }
    let secret = format!(
        "trb_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let record = TokenRecord {
        id: random_id("tok_"),
        project: project.to_owned(),
        role: role.to_owned(),
        name: name.to_owned(),
        hash: hash_secret(&secret),
        created_at: clock::now_rfc3339(),
        revoked_at: None,
        agent: agent.map(str::to_owned),
    };
    store.insert_token(&record).await?;
    Ok((record, secret))
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    #[error("--role: expected one of {roles}, found {0:?}", roles = ROLES.join(", "))]
    Role(String),
    #[error("--project: expected letters, digits, - or _, found {0:?}")]
    Project(String),
    #[error("--agent: only an agent token speaks for an agent; this one's role is {0:?}")]
    AgentRole(String),
    #[error("--agent: expected an agent's name (at most 200 characters, no control characters), found {0:?}")]
    Agent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The caller for an `Authorization` header value, or why not.
pub async fn authenticate(store: &Store, header: Option<&str>) -> Result<Caller, ApiError> {
    let Some(h) = header else {
        return Err(ApiError::new(
            Code::Unauthenticated,
            "missing Authorization: Bearer <token> header",
        ));
    };
    let secret = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                Code::Unauthenticated,
                "the Authorization header must be \"Bearer <token>\"",
            )
        })?;
    match store.token_by_hash(&hash_secret(secret)).await? {
        Some(t) if t.revoked_at.is_none() => Ok(Caller {
            token_id: t.id,
            project: t.project,
            role: t.role,
            agent: t.agent,
        }),
        Some(_) => Err(ApiError::new(
            Code::Unauthenticated,
            "this token was revoked",
        )),
        None => Err(ApiError::new(Code::Unauthenticated, "unknown token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        use Permission::*;
        let all = [Gate, Ingest, Read, Annotate, Review, Admin];
        let granted = |r: &str| all.iter().filter(|p| allows(r, **p)).count();
        assert_eq!(granted("admin"), 6);
        assert!(allows("agent", Gate) && allows("agent", Ingest) && !allows("agent", Read));
        assert!(allows("reviewer", Review) && !allows("reviewer", Admin));
        assert!(allows("annotator", Annotate) && !allows("annotator", Review));
        assert!(allows("viewer", Read) && !allows("viewer", Annotate));
        assert_eq!(granted("root"), 0);
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
