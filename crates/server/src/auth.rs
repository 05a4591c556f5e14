//! API keys with roles.
//!
//! Roles are ordered: `read` < `write` < `admin`; a key with a role may do
//! everything the lower roles may. A request presents its key as
//! `Authorization: Bearer KEY` or `X-Api-Key: KEY`. A missing or unknown key
//! gets 401; a known key without the route's role gets 403.
//!
//! Keys are compared in constant time: the presented key and every configured
//! key are hashed with SHA-256 and the 32-byte digests compared with
//! [`subtle::ConstantTimeEq`], visiting every configured key whatever
//! matches, so neither the position nor the length of a key leaks through
//! timing.
//!
//! Key files hold one key per line, `ROLE KEY` or `ROLE:KEY` (`#` starts a
//! comment, blank lines are skipped). The environment variable
//! `APKSIFT_API_KEYS` holds the same entries separated by commas or
//! whitespace, e.g. `read:k1,admin:k2`. Keys must be at least 16 characters.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Scan, search, read samples and collections.
    Read,
    /// Also insert, upsert and delete samples and rows.
    Write,
    /// Also create and drop collections.
    Admin,
}

impl Role {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The configured keys. `Debug` never prints them.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Role)>,
    /// Authentication switched off (`--no-auth`): every request is admin.
    open: bool,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .field("open", &self.open)
            .finish()
    }
}

/// Outcome of authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The key is valid with this role.
    Role(Role),
    /// No key was presented.
    Missing,
    /// A key was presented but matches none.
    Unknown,
}

impl ApiKeys {
    /// No keys and no access (every protected route answers 401).
    pub fn new() -> ApiKeys {
        ApiKeys::default()
    }

    /// Every request is treated as admin. For local experiments only.
    pub fn open() -> ApiKeys {
        ApiKeys {
            keys: Vec::new(),
            open: true,
        }
    }

    /// True when authentication is off.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Number of keys configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds a key.
    pub fn add(&mut self, role: Role, key: &str) -> Result<(), String> {
        if key.len() < MIN_KEY_LEN {
            return Err(format!(
                "API key for role {role} is {} characters; keys need at least {MIN_KEY_LEN}",
                key.len()
            ));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "API key for role {role} contains whitespace or control characters"
            ));
        }
        self.keys
            .push((Sha256::digest(key.as_bytes()).into(), role));
        Ok(())
    }

    /// Adds the entries of a key file (`ROLE KEY` or `ROLE:KEY` per line).
    pub fn add_file_text(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (role, key) = split_entry(line)
                .ok_or_else(|| format!("key file line {}: expected `ROLE KEY`", n + 1))?;
            let role = Role::parse(role).ok_or_else(|| {
                format!(
                    "key file line {}: unknown role {role:?} (read, write, admin)",
                    n + 1
                )
            })?;
            self.add(role, key)
                .map_err(|e| format!("key file line {}: {e}", n + 1))?;
        }
        Ok(())
    }

    /// Adds the entries of `APKSIFT_API_KEYS` (`ROLE:KEY` separated by commas or whitespace).
    pub fn add_env_text(&mut self, text: &str) -> Result<(), String> {
        for entry in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let (role, key) = entry
                .split_once(':')
                .ok_or_else(|| "APKSIFT_API_KEYS: expected ROLE:KEY entries".to_string())?;
            let role = Role::parse(role).ok_or_else(|| {
                format!("APKSIFT_API_KEYS: unknown role {role:?} (read, write, admin)")
            })?;
            self.add(role, key)
                .map_err(|e| format!("APKSIFT_API_KEYS: {e}"))?;
        }
        Ok(())
    }

    /// Looks a presented key up in constant time (with respect to the keys).
    pub fn authenticate(&self, presented: Option<&str>) -> AuthOutcome {
        if self.open {
            return AuthOutcome::Role(Role::Admin);
        }
        let Some(presented) = presented else {
            return AuthOutcome::Missing;
        };
        let h: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut best: Option<Role> = None;
        for (k, role) in &self.keys {
            let eq: bool = k.ct_eq(&h).into();
            if eq {
                best = Some(best.map_or(*role, |b| b.max(*role)));
            }
        }
        best.map_or(AuthOutcome::Unknown, AuthOutcome::Role)
    }
}

fn split_entry(line: &str) -> Option<(&str, &str)> {
    if let Some((r, k)) = line.split_once(char::is_whitespace) {
        return Some((r, k.trim()));
    }
    line.split_once(':')
}

/// Extracts the presented key from the headers.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION)
        && let Ok(s) = v.to_str()
    {
        let s = s.trim();
        if s.len() > 7 && s[..7].eq_ignore_ascii_case("bearer ") {
            return Some(s[7..].trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_roles_from_file_and_env() {
        let mut k = ApiKeys::new();
        k.add_file_text("# keys\nread  reader-key-0123456789\nwrite:writer-key-0123456789\n\n")
            .unwrap();
        k.add_env_text("admin:admin-key-0123456789, read:other-reader-0123456789")
            .unwrap();
        assert_eq!(k.len(), 4);
        assert_eq!(
            k.authenticate(Some("reader-key-0123456789")),
            AuthOutcome::Role(Role::Read)
        );
        assert_eq!(
            k.authenticate(Some("writer-key-0123456789")),
            AuthOutcome::Role(Role::Write)
        );
        assert_eq!(
            k.authenticate(Some("admin-key-0123456789")),
            AuthOutcome::Role(Role::Admin)
        );
        assert_eq!(k.authenticate(Some("nope")), AuthOutcome::Unknown);
        assert_eq!(k.authenticate(None), AuthOutcome::Missing);
        assert!(k.add_env_text("read:short").is_err());
        assert!(k.add_file_text("boss key-0123456789abcdef").is_err());
        assert!(!format!("{k:?}").contains("reader-key"));
    }

    #[test]
    fn auth_presented_key_headers() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "abc".parse().unwrap());
        assert_eq!(presented_key(&h), Some("abc"));
        h.insert("authorization", "Bearer  xyz ".parse().unwrap());
        assert_eq!(presented_key(&h), Some("xyz"));
    }
}
