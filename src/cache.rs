//! Embedding cache: each image is analysed once per pipeline configuration.
//!
//! Entries are keyed by the SHA-256 of the file's bytes (so a renamed or copied photo is still a
//! hit, and an edited one is a miss) and by a pipeline key naming everything that changes the
//! result: detector file hash, recogniser model id, detector parameters and decoding options
//! ([`crate::pipeline::FaceAnalyzer::pipeline_key`]). Embeddings of different models therefore
//! never mix.
//!
//! Storage is SQLite (through `rusqlite`, compiled in): one file, transactional writes, safe
//! against a crash mid-write, readable by standard tools. Default location
//! `<data>/cache/embeddings.sqlite`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::pipeline::AnalyzedImage;

/// Errors of the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// SQLite failed (cannot open, locked, corrupt, disk full).
    #[error("embedding cache {path}: {source}")]
    Sqlite {
        /// The cache file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored entry that cannot be decoded (written by an incompatible version).
    #[error("embedding cache {path}: unreadable entry: {detail}")]
    BadEntry {
        /// The cache file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The cache directory cannot be created.
    #[error("embedding cache {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A persistent map (content SHA-256, pipeline key) → analysed image (faces with embeddings).
/// Thread-safe.
#[derive(Debug)]
pub struct EmbeddingCache {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// Version of the stored analysis. 2: [`AnalyzedImage::truncated`] added (entries of version 1
/// cannot say whether their photo was complete, so they are analysed again).
const SCHEMA_VERSION: i64 = 2;

impl EmbeddingCache {
    /// The default cache file under the data directory.
    pub fn default_path(data: &Path) -> PathBuf {
        data.join("cache").join("embeddings.sqlite")
    }

    /// Opens (creating if needed) the cache at `path`.
    ///
    /// # Errors
    /// [`CacheError::Io`] when the directory cannot be created, [`CacheError::Sqlite`] when the
    /// file cannot be opened as a database.
    pub fn open(path: &Path) -> Result<Self, CacheError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CacheError::Io { path: dir.to_path_buf(), source })?;
        }
        let err = |source| CacheError::Sqlite { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS analyses (
                 content_sha256 TEXT NOT NULL,
                 pipeline_key   TEXT NOT NULL,
                 schema_version INTEGER NOT NULL,
                 result_json    TEXT NOT NULL,
                 PRIMARY KEY (content_sha256, pipeline_key)
             ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(EmbeddingCache { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored analysis of the image with content hash `sha256` under `pipeline_key`, if any.
    /// The returned image's `path` is whatever path it was stored with; callers set their own.
    ///
    /// # Errors
    /// [`CacheError::Sqlite`], or [`CacheError::BadEntry`] for an undecodable entry.
    pub fn get(&self, sha256: &str, pipeline_key: &str) -> Result<Option<AnalyzedImage>, CacheError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let row: Option<(i64, String)> = conn
            .query_row(
                "SELECT schema_version, result_json FROM analyses WHERE content_sha256 = ?1 AND pipeline_key = ?2",
                params![sha256, pipeline_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|source| CacheError::Sqlite { path: self.path.clone(), source })?;
        match row {
            Some((SCHEMA_VERSION, json)) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| CacheError::BadEntry { path: self.path.clone(), detail: e.to_string() }),
            _ => Ok(None),
        }
    }

    /// Stores analyses in one transaction (all or none).
    ///
    /// # Errors
    /// [`CacheError::Sqlite`].
    pub fn put_many(&self, entries: &[(String, String, &AnalyzedImage)]) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let err = |source| CacheError::Sqlite { path: self.path.clone(), source };
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO analyses (content_sha256, pipeline_key, schema_version, result_json) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            for (sha, key, img) in entries {
                let json = serde_json::to_string(img).map_err(|e| CacheError::BadEntry { path: self.path.clone(), detail: e.to_string() })?;
                stmt.execute(params![sha, key, SCHEMA_VERSION, json]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Number of stored analyses.
    ///
    /// # Errors
    /// [`CacheError::Sqlite`].
    pub fn len(&self) -> Result<usize, CacheError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row("SELECT COUNT(*) FROM analyses", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(|source| CacheError::Sqlite { path: self.path.clone(), source })
    }

    /// True when the cache holds nothing.
    ///
    /// # Errors
    /// [`CacheError::Sqlite`].
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }
}
