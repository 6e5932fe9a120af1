//! Configuration of the HTTP service: every setting with its default, read from an optional TOML
//! file and overridden by environment variables and flags (done by the CLI, `faceprint serve`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ServerError;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Detection, embedding, verification, identification, reading the gallery.
    Read,
    /// Everything `read` may, plus gallery writes (enrollment, rename, merge, removal).
    Admin,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope {other:?}: use read or admin")),
        }
    }
}

/// An API key as stored: never the key itself, only the SHA-256 of its UTF-8 bytes (lowercase
/// hex). Keys are random tokens (e.g. from `faceprint serve --generate-key`, 256 bits), so a
/// plain SHA-256 is enough: unlike passwords they cannot be guessed from a dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// Name for logs (who made the request); never secret.
    pub name: String,
    /// What the key may do.
    pub scope: Scope,
    /// SHA-256 of the key, 64 lowercase hex digits.
    pub sha256: String,
}

impl std::str::FromStr for ApiKeyEntry {
    type Err = String;
    /// `NAME:SCOPE:SHA256`, the form of `--api-key` and `FACEPRINT_API_KEYS` (comma-separated).
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().splitn(3, ':').collect();
        if parts.len() != 3 {
            return Err(format!("{s:?}: expected NAME:SCOPE:SHA256 (scope read or admin)"));
        }
        Ok(ApiKeyEntry { name: parts[0].to_string(), scope: parts[1].parse()?, sha256: parts[2].to_ascii_lowercase() })
    }
}

/// SHA-256 of an API key, lowercase hex: what [`ApiKeyEntry::sha256`] holds.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Settings of the service. Every field has a default (shown in brackets); a TOML file may set any
/// of them by name (`bind = "127.0.0.1:8080"`, `[[api_keys]] name = … scope = … sha256 = …`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on [127.0.0.1:8080]. Loopback by default: exposing the service is a
    /// decision, made by setting e.g. `0.0.0.0:8080` (which then needs API keys).
    pub bind: SocketAddr,
    /// Largest accepted request body, bytes [16 MiB]: two photos of a few MB each, base64-encoded.
    pub max_body_bytes: usize,
    /// Largest accepted image, pixels (width × height) [40,000,000: above a 36 MP camera, and a
    /// decoded RGB image of at most 120 MB]. Checked from the header before decoding (pixel bombs).
    pub max_pixels: u64,
    /// Time limit of a `/v1` request, milliseconds, including the wait for an inference slot
    /// (default 30,000). Past it the answer is 503 `timeout` with Retry-After.
    pub request_timeout_ms: u64,
    /// Requests running inference at once (default 8). More wait in the queue.
    pub max_concurrent_inferences: usize,
    /// Requests that may wait for an inference slot (default 64). Past it the answer is 503 `overloaded`
    /// with Retry-After at once: the queue never grows without bound.
    pub max_queue: usize,
    /// Seconds sent in Retry-After with 503 answers (default 1).
    pub retry_after_s: u64,
    /// Embed the faces of concurrent requests together (default true).
    pub batching: bool,
    /// Longest a face waits for others before its batch runs, microseconds (default 2,000): a batch runs
    /// when `max_batch` faces are waiting or this long after its first face arrived.
    pub batch_wait_us: u64,
    /// Faces per shared batch, and the recogniser's largest batch (default 8). The recogniser runs and
    /// warms up at start every padded batch size up to it (`embed::padded_batch`), so it sets the
    /// memory the service holds: 172 MiB RSS when ready at 8, 416 MiB at 32 (2 sessions,
    /// BENCHMARKS.md "HTTP service").
    pub max_batch: usize,
    /// Allowed CORS origins; empty (the default) = no CORS headers, browsers on other origins
    /// are refused. `["*"]` allows any origin.
    pub cors_origins: Vec<String>,
    /// API keys. With none, the service runs without authentication, which is only allowed on a
    /// loopback address unless `allow_unauthenticated` is set.
    pub api_keys: Vec<ApiKeyEntry>,
    /// Allow running without API keys on a non-loopback address (default false).
    pub allow_unauthenticated: bool,
    /// Operating point of decisions when the request names none: FAR (default 1e-3).
    pub default_far: f64,
    /// Gallery directory (default `<data>/gallery`); `None` = the default.
    pub gallery: Option<PathBuf>,
    /// Create an empty gallery when `gallery` holds none (default false). Without it a missing gallery is
    /// refused, as the CLI commands refuse it (`faceprint gallery init` creates one).
    pub create_gallery: bool,
    /// Log format: `text` or `json` (default `text`).
    pub log_format: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 16 * 1024 * 1024,
            max_pixels: 40_000_000,
            request_timeout_ms: 30_000,
            max_concurrent_inferences: 8,
            max_queue: 64,
            retry_after_s: 1,
            batching: true,
            batch_wait_us: 2_000,
            max_batch: 8,
            cors_origins: Vec::new(),
            api_keys: Vec::new(),
            allow_unauthenticated: false,
            default_far: 1e-3,
            gallery: None,
            create_gallery: false,
            log_format: "text".into(),
        }
    }
}

impl ServerConfig {
    /// Reads a TOML file; fields it does not set keep their defaults.
    ///
    /// # Errors
    /// [`ServerError::Config`] naming the file for an unreadable file, bad TOML or unknown keys.
    pub fn from_toml_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
    }

    /// The request time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks ranges and the authentication rule.
    ///
    /// # Errors
    /// [`ServerError::Config`] naming the setting.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        if self.max_body_bytes < 1024 {
            return bad(format!("max_body_bytes {} is below 1024", self.max_body_bytes));
        }
        if self.max_pixels == 0 {
            return bad("max_pixels must be at least 1".into());
        }
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms must be at least 1".into());
        }
        if self.max_concurrent_inferences == 0 {
            return bad("max_concurrent_inferences must be at least 1".into());
        }
        if self.max_batch == 0 || self.max_batch > 1024 {
            return bad(format!("max_batch {} outside 1..=1024", self.max_batch));
        }
        if self.batch_wait_us > 1_000_000 {
            return bad(format!("batch_wait_us {} is over 1 s", self.batch_wait_us));
        }
        if !(self.default_far > 0.0 && self.default_far < 1.0) {
            return bad(format!("default_far {} outside (0, 1)", self.default_far));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad(format!("log_format {:?}: use text or json", self.log_format));
        }
        for k in &self.api_keys {
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(format!("API key {:?}: sha256 must be 64 hex digits (`faceprint serve --hash-key` prints it)", k.name));
            }
        }
        if self.api_keys.is_empty() && !self.bind.ip().is_loopback() && !self.allow_unauthenticated {
            return bad(format!(
                "binding to {} without API keys: add keys (api_keys / --api-key) or set allow_unauthenticated",
                self.bind
            ));
        }
        Ok(())
    }

    /// The keys by hash.
    pub(crate) fn key_table(&self) -> HashMap<String, (String, Scope)> {
        self.api_keys.iter().map(|k| (k.sha256.to_ascii_lowercase(), (k.name.clone(), k.scope))).collect()
    }
}
