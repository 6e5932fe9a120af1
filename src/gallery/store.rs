//! The gallery's persistent store: one SQLite file, `gallery.sqlite`, in the gallery directory.
//!
//! Why SQLite (through `rusqlite`, compiled in): it is the most tested embedded storage engine
//! there is, it is already the engine of the embedding cache, a file can be inspected with
//! standard tools, and it gives what a gallery needs without a server:
//! - **Atomic, durable writes.** Every change is one transaction. The database runs in WAL mode
//!   with `synchronous=FULL`, so a transaction is on disk (the WAL is fsynced) before the call
//!   that made it returns: an acknowledged enrollment survives `kill -9` and power loss, and a
//!   crash mid-write leaves the previous state (SQLite rolls back the unfinished transaction).
//!   `tests/gallery_crash.rs` kills a writer with SIGKILL at random moments to check it.
//! - **Readers alongside one writer** (WAL), across processes: the CLI can enroll while the
//!   HTTP server identifies. A busy timeout of 10 s waits for another writer.
//! - **Self-checks**: `PRAGMA integrity_check` (`Store::integrity_check`, `faceprint gallery check`).
//!
//! redb or LMDB would also be crash-safe, but would add a second storage engine to the project
//! and give no query language for the relational part (identities ↔ faces, unique names).
//!
//! Schema (version [`SCHEMA_VERSION`], in table `schema_version`):
//! - `gallery`: one row: model id, embedding dimension, created (UTC, RFC 3339), `generation`
//!   (bumped by every change; the persisted search index carries the generation it was saved at),
//!   `store_crops` (whether enrollment keeps aligned crops by default);
//! - `settings`: key/value text; `index_storage` is the search index's vector storage
//!   (`f32`, `f16` or `i8`, see [`crate::index::VectorStorage`]). Galleries made before this
//!   table existed have none and use `f32`; older builds ignore it (same answers, more memory);
//! - `identities`: id, unique name, metadata (JSON object), created;
//! - `faces`: id, identity, embedding (`dim` little-endian f32), model id, source image content
//!   SHA-256 (hex), box `[x1, y1, x2, y2]` (pixels, JSON), quality (JSON of
//!   [`crate::quality::FaceQuality`], or null), added (UTC), aligned 112×112 crop (PNG, or null).
//!
//! Ids use `AUTOINCREMENT`, so an id is never reused after a deletion: a stale index entry can
//! never point at a different face or identity.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::GalleryError;
use crate::index::{ExactVectors, VectorStorage};
use crate::embed::ModelId;
use crate::quality::FaceQuality;

/// Version of the schema this code writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// File name of the store inside the gallery directory.
pub const STORE_FILE: &str = "gallery.sqlite";

/// The gallery's facts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GalleryMeta {
    /// Model whose embeddings the gallery holds.
    pub model: ModelId,
    /// Embedding dimension.
    pub dim: usize,
    /// Creation time, UTC, RFC 3339.
    pub created: String,
    /// Change counter, bumped by every committed change.
    pub generation: u64,
    /// Whether enrollment stores aligned crops by default.
    pub store_crops: bool,
    /// How the search index holds the vectors (chosen at creation, `f32` for galleries made
    /// before the choice existed). With `i8` the index rescores candidates from the store.
    #[serde(serialize_with = "as_text")]
    pub index_storage: VectorStorage,
}

fn as_text<S: serde::Serializer>(v: &VectorStorage, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// One identity as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IdentityRecord {
    /// Identity id (never reused).
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Free metadata (a JSON object).
    pub metadata: serde_json::Value,
    /// Creation time, UTC, RFC 3339.
    pub created: String,
    /// Number of enrolled faces.
    pub faces: usize,
}

/// One enrolled face as stored (without its embedding and crop).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaceRecord {
    /// Face id (never reused); the key in the search index.
    pub id: i64,
    /// The identity it belongs to.
    pub identity: i64,
    /// Model that made its embedding.
    pub model: ModelId,
    /// SHA-256 (hex) of the source image file's bytes, or empty when enrolled from an embedding
    /// without a source.
    pub image_sha256: String,
    /// Box `[x1, y1, x2, y2]` in the source image, pixels (zeros when unknown).
    pub bbox: [f32; 4],
    /// Quality measures at enrollment, when known.
    pub quality: Option<FaceQuality>,
    /// When it was added, UTC, RFC 3339.
    pub added: String,
    /// Whether an aligned crop is stored.
    pub has_crop: bool,
}

/// A face to insert.
pub(crate) struct FaceInsert<'a> {
    pub identity: i64,
    pub vector: &'a [f32],
    pub model: &'a ModelId,
    pub image_sha256: &'a str,
    pub bbox: [f32; 4],
    pub quality: Option<&'a FaceQuality>,
    pub crop_png: Option<&'a [u8]>,
}

/// The SQLite store. Not synchronised: [`super::Gallery`] keeps it behind a mutex.
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

fn vec_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn blob_to_vec(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Store {
    fn err(&self) -> impl Fn(rusqlite::Error) -> GalleryError + '_ {
        move |source| GalleryError::Store { path: self.path.clone(), source }
    }

    fn connect(path: &Path) -> Result<Connection, GalleryError> {
        let err = |source| GalleryError::Store { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        // WAL + synchronous=FULL: a committed transaction is fsynced before commit returns.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;").map_err(err)?;
        Ok(conn)
    }

    /// Creates a new store file at `path` (which must not exist). The store is built in
    /// `<path>.creating` and renamed into place, so a crash during creation leaves either no
    /// gallery or a complete, empty one.
    pub fn create(path: &Path, model: &ModelId, dim: usize, store_crops: bool, index_storage: VectorStorage) -> Result<Self, GalleryError> {
        let tmp = path.with_extension("sqlite.creating");
        for f in [tmp.clone(), tmp.with_extension("creating-wal"), tmp.with_extension("creating-shm")] {
            let _ = std::fs::remove_file(f);
        }
        {
            let conn = Self::connect(&tmp)?;
            let s = Store { conn, path: tmp.clone() };
            let sql = format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES ({SCHEMA_VERSION});
                 CREATE TABLE gallery (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     model_id TEXT NOT NULL,
                     dim INTEGER NOT NULL,
                     created TEXT NOT NULL,
                     generation INTEGER NOT NULL,
                     store_crops INTEGER NOT NULL
                 );
                 CREATE TABLE identities (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     name TEXT NOT NULL UNIQUE,
                     metadata TEXT NOT NULL,
                     created TEXT NOT NULL
                 );
                 CREATE TABLE faces (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
                     embedding BLOB NOT NULL,
                     model_id TEXT NOT NULL,
                     image_sha256 TEXT NOT NULL,
                     bbox TEXT NOT NULL,
                     quality TEXT,
                     added TEXT NOT NULL,
                     crop_png BLOB
                 );
                 CREATE INDEX faces_identity ON faces(identity_id);
                 CREATE INDEX faces_source ON faces(image_sha256);
                 CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            );
            s.conn.execute_batch(&sql).map_err(s.err())?;
            s.conn
                .execute(
                    &format!("INSERT INTO gallery (id, model_id, dim, created, generation, store_crops) VALUES (1, ?1, ?2, {NOW}, 0, ?3)"),
                    params![model.0, dim as i64, store_crops],
                )
                .map_err(s.err())?;
            s.conn.execute("INSERT INTO settings (key, value) VALUES ('index_storage', ?1)", params![index_storage.to_string()]).map_err(s.err())?;
            s.conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);").map_err(s.err())?;
            // Closing the last connection checkpoints the WAL into the file and removes it.
        }
        let io = |source| GalleryError::Io { path: path.to_path_buf(), source };
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            // Make the rename durable.
            std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io)?;
        }
        Self::open(path)
    }

    /// Opens an existing store and checks its schema version.
    pub fn open(path: &Path) -> Result<Self, GalleryError> {
        // A file that is not a database (or is damaged, or unreadable) fails here, as bad input.
        let conn = Self::connect(path).map_err(|e| match e {
            GalleryError::Store { path, source } => {
                let mut detail = source.to_string();
                if let Some(dir) = path.parent().filter(|d| !writable(d)) {
                    detail.push_str(&format!(
                        "; the folder {} is not writable, and SQLite's write-ahead log needs its -wal and -shm files there even to search: make the folder writable, or copy the gallery to one that is",
                        dir.display()
                    ));
                }
                GalleryError::Unreadable { path, detail }
            }
            e => e,
        })?;
        let s = Store { conn, path: path.to_path_buf() };
        let version: Option<i64> = s
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(|e| GalleryError::NotAGallery { path: path.to_path_buf(), detail: format!("no schema version table ({e})") })?;
        match version {
            Some(SCHEMA_VERSION) => Ok(s),
            found => Err(GalleryError::SchemaVersion { path: path.to_path_buf(), found, supported: SCHEMA_VERSION }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn meta(&self) -> Result<GalleryMeta, GalleryError> {
        let has_settings: bool = self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'settings')", [], |r| r.get(0))
            .map_err(self.err())?;
        let index_storage = if has_settings {
            let v: Option<String> =
                self.conn.query_row("SELECT value FROM settings WHERE key = 'index_storage'", [], |r| r.get(0)).optional().map_err(self.err())?;
            match v {
                None => VectorStorage::F32,
                Some(v) => v.parse().map_err(|e: String| GalleryError::Unreadable { path: self.path.clone(), detail: format!("setting index_storage: {e}") })?,
            }
        } else {
            VectorStorage::F32
        };
        self.conn
            .query_row("SELECT model_id, dim, created, generation, store_crops FROM gallery WHERE id = 1", [], |r| {
                Ok(GalleryMeta {
                    model: ModelId(r.get(0)?),
                    dim: r.get::<_, i64>(1)? as usize,
                    created: r.get(2)?,
                    generation: r.get::<_, i64>(3)? as u64,
                    store_crops: r.get(4)?,
                    index_storage,
                })
            })
            .map_err(self.err())
    }

    pub fn generation(&self) -> Result<u64, GalleryError> {
        self.conn.query_row("SELECT generation FROM gallery WHERE id = 1", [], |r| r.get::<_, i64>(0)).map(|g| g as u64).map_err(self.err())
    }

    /// Runs `f` in one IMMEDIATE transaction that also bumps the generation; returns `f`'s value
    /// and the new generation. Nothing is written when `f` fails.
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, GalleryError>) -> Result<(T, u64), GalleryError> {
        let path = self.path.clone();
        let err = |source| GalleryError::Store { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let out = f(&tx)?;
        tx.execute("UPDATE gallery SET generation = generation + 1 WHERE id = 1", []).map_err(err)?;
        let g: i64 = tx.query_row("SELECT generation FROM gallery WHERE id = 1", [], |r| r.get(0)).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok((out, g as u64))
    }

    fn identity_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, String, String, String, i64)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    }

    fn to_identity(&self, row: (i64, String, String, String, i64)) -> IdentityRecord {
        let (id, name, metadata, created, faces) = row;
        // Metadata is always written as valid JSON; an unreadable value (edited by hand) is shown as a string.
        let metadata = serde_json::from_str(&metadata).unwrap_or(serde_json::Value::String(metadata));
        IdentityRecord { id, name, metadata, created, faces: faces as usize }
    }

    const IDENTITY_SELECT: &'static str =
        "SELECT i.id, i.name, i.metadata, i.created, (SELECT COUNT(*) FROM faces f WHERE f.identity_id = i.id) FROM identities i";

    pub fn identities(&self) -> Result<Vec<IdentityRecord>, GalleryError> {
        let mut stmt = self.conn.prepare(&format!("{} ORDER BY i.name", Self::IDENTITY_SELECT)).map_err(self.err())?;
        let rows = stmt.query_map([], Self::identity_row).map_err(self.err())?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.to_identity(r.map_err(self.err())?));
        }
        Ok(out)
    }

    pub fn identity_by_name(&self, name: &str) -> Result<Option<IdentityRecord>, GalleryError> {
        let row = self
            .conn
            .query_row(&format!("{} WHERE i.name = ?1", Self::IDENTITY_SELECT), params![name], Self::identity_row)
            .optional()
            .map_err(self.err())?;
        Ok(row.map(|r| self.to_identity(r)))
    }

    pub fn identity_by_id(&self, id: i64) -> Result<Option<IdentityRecord>, GalleryError> {
        let row = self
            .conn
            .query_row(&format!("{} WHERE i.id = ?1", Self::IDENTITY_SELECT), params![id], Self::identity_row)
            .optional()
            .map_err(self.err())?;
        Ok(row.map(|r| self.to_identity(r)))
    }

    fn face_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, i64, String, String, String, Option<String>, String, bool)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
    }

    const FACE_SELECT: &'static str =
        "SELECT id, identity_id, model_id, image_sha256, bbox, quality, added, crop_png IS NOT NULL FROM faces";

    fn to_face(row: (i64, i64, String, String, String, Option<String>, String, bool)) -> FaceRecord {
        let (id, identity, model, image_sha256, bbox, quality, added, has_crop) = row;
        FaceRecord {
            id,
            identity,
            model: ModelId(model),
            image_sha256,
            bbox: serde_json::from_str(&bbox).unwrap_or([0.0; 4]),
            quality: quality.and_then(|q| serde_json::from_str(&q).ok()),
            added,
            has_crop,
        }
    }

    pub fn faces_of(&self, identity: i64) -> Result<Vec<FaceRecord>, GalleryError> {
        let mut stmt = self.conn.prepare(&format!("{} WHERE identity_id = ?1 ORDER BY id", Self::FACE_SELECT)).map_err(self.err())?;
        let rows = stmt.query_map(params![identity], Self::face_row).map_err(self.err())?;
        let mut out = Vec::new();
        for r in rows {
            out.push(Self::to_face(r.map_err(self.err())?));
        }
        Ok(out)
    }

    pub fn face(&self, id: i64) -> Result<Option<FaceRecord>, GalleryError> {
        let row = self.conn.query_row(&format!("{} WHERE id = ?1", Self::FACE_SELECT), params![id], Self::face_row).optional().map_err(self.err())?;
        Ok(row.map(Self::to_face))
    }

    /// The stored crop (PNG bytes) of face `id`, if any.
    pub fn crop(&self, id: i64) -> Result<Option<Vec<u8>>, GalleryError> {
        let c: Option<Option<Vec<u8>>> =
            self.conn.query_row("SELECT crop_png FROM faces WHERE id = ?1", params![id], |r| r.get(0)).optional().map_err(self.err())?;
        Ok(c.flatten())
    }

    /// True when a face from the image with content hash `sha256` is enrolled under `identity`.
    pub fn has_source(&self, identity: i64, sha256: &str) -> Result<bool, GalleryError> {
        self.conn
            .query_row("SELECT EXISTS (SELECT 1 FROM faces WHERE identity_id = ?1 AND image_sha256 = ?2)", params![identity, sha256], |r| r.get(0))
            .map_err(self.err())
    }

    /// The stored embedding of face `id` (as stored: its length is not checked), if the face exists.
    pub fn embedding(&self, id: i64) -> Result<Option<Vec<f32>>, GalleryError> {
        let b: Option<Vec<u8>> = self.conn.query_row("SELECT embedding FROM faces WHERE id = ?1", params![id], |r| r.get(0)).optional().map_err(self.err())?;
        Ok(b.map(|b| blob_to_vec(&b)))
    }

    /// Calls `f(face id, identity id, embedding)` for every face, in id order.
    pub fn for_each_embedding(&self, mut f: impl FnMut(i64, i64, Vec<f32>)) -> Result<(), GalleryError> {
        let mut stmt = self.conn.prepare("SELECT id, identity_id, embedding FROM faces ORDER BY id").map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let (id, identity, blob): (i64, i64, Vec<u8>) = (r.get(0).map_err(self.err())?, r.get(1).map_err(self.err())?, r.get(2).map_err(self.err())?);
            f(id, identity, blob_to_vec(&blob));
        }
        Ok(())
    }

    /// Calls `f(face record, embedding)` for every face, in id order (for clustering the
    /// gallery's faces without their images).
    pub fn for_each_face_with_embedding(&self, mut f: impl FnMut(FaceRecord, Vec<f32>)) -> Result<(), GalleryError> {
        let sql = "SELECT id, identity_id, model_id, image_sha256, bbox, quality, added, crop_png IS NOT NULL, embedding FROM faces ORDER BY id";
        let mut stmt = self.conn.prepare(sql).map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let record = Self::to_face(Self::face_row(r).map_err(self.err())?);
            let blob: Vec<u8> = r.get(8).map_err(self.err())?;
            f(record, blob_to_vec(&blob));
        }
        Ok(())
    }

    /// Calls `f(face id, identity id)` for every face.
    pub fn for_each_face_identity(&self, mut f: impl FnMut(i64, i64)) -> Result<(), GalleryError> {
        let mut stmt = self.conn.prepare("SELECT id, identity_id FROM faces").map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            f(r.get(0).map_err(self.err())?, r.get(1).map_err(self.err())?);
        }
        Ok(())
    }

    /// Identity id → name for every identity.
    pub fn names(&self) -> Result<Vec<(i64, String)>, GalleryError> {
        let mut stmt = self.conn.prepare("SELECT id, name FROM identities").map_err(self.err())?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`: an empty list when the store is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>, GalleryError> {
        let mut problems = Vec::new();
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(self.err())?;
        for r in rows {
            let line = r.map_err(self.err())?;
            if line != "ok" {
                problems.push(line);
            }
        }
        let mut stmt = self.conn.prepare("PRAGMA foreign_key_check").map_err(self.err())?;
        let rows = stmt.query_map([], |r| Ok(format!("foreign key violation in table {} row {:?}", r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))).map_err(self.err())?;
        for r in rows {
            problems.push(r.map_err(self.err())?);
        }
        Ok(problems)
    }
}

/// The exact embeddings an index with [`VectorStorage::I8`] rescores with, read by face id
/// through a connection of its own (searches never wait for the gallery's writer lock; a
/// committed face is visible to it before the index lists it).
pub(crate) struct EmbeddingReader {
    conn: std::sync::Mutex<Connection>,
}

impl EmbeddingReader {
    pub(crate) fn open(path: &Path) -> Result<Self, GalleryError> {
        Ok(EmbeddingReader { conn: std::sync::Mutex::new(Store::connect(path)?) })
    }
}

impl ExactVectors for EmbeddingReader {
    fn read(&self, key: u64, out: &mut [f32]) -> Result<bool, String> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare_cached("SELECT embedding FROM faces WHERE id = ?1").map_err(|e| e.to_string())?;
        let blob: Option<Vec<u8>> = stmt.query_row(params![key as i64], |r| r.get(0)).optional().map_err(|e| e.to_string())?;
        let Some(blob) = blob else { return Ok(false) };
        // A damaged row (changed behind faceprint's back; `gallery check` names it) is treated
        // as absent: the candidate is dropped, as a rebuilt index would not hold it.
        let v = blob_to_vec(&blob);
        if super::damaged_embedding(&v, out.len()).is_some() {
            return Ok(false);
        }
        out.copy_from_slice(&v);
        Ok(true)
    }
}

// Statements run inside `Store::write` transactions.

pub(crate) fn tx_err(path: &Path) -> impl Fn(rusqlite::Error) -> GalleryError + '_ {
    move |source| GalleryError::Store { path: path.to_path_buf(), source }
}

pub(crate) fn insert_identity(tx: &Transaction, path: &Path, name: &str, metadata: &serde_json::Value) -> Result<i64, GalleryError> {
    let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM identities WHERE name = ?1)", params![name], |r| r.get(0)).map_err(tx_err(path))?;
    if exists {
        return Err(GalleryError::DuplicateName { name: name.to_string() });
    }
    tx.execute(&format!("INSERT INTO identities (name, metadata, created) VALUES (?1, ?2, {NOW})"), params![name, metadata.to_string()])
        .map_err(tx_err(path))?;
    Ok(tx.last_insert_rowid())
}

pub(crate) fn insert_face(tx: &Transaction, path: &Path, f: &FaceInsert) -> Result<i64, GalleryError> {
    let bbox = serde_json::to_string(&f.bbox).unwrap_or_else(|_| "[0,0,0,0]".into());
    let quality = f.quality.and_then(|q| serde_json::to_string(q).ok());
    tx.execute(
        &format!(
            "INSERT INTO faces (identity_id, embedding, model_id, image_sha256, bbox, quality, added, crop_png) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW}, ?7)"
        ),
        params![f.identity, vec_to_blob(f.vector), f.model.0, f.image_sha256, bbox, quality, f.crop_png],
    )
    .map_err(tx_err(path))?;
    Ok(tx.last_insert_rowid())
}

pub(crate) fn face_ids_of(tx: &Transaction, path: &Path, identity: i64) -> Result<Vec<i64>, GalleryError> {
    let mut stmt = tx.prepare("SELECT id FROM faces WHERE identity_id = ?1").map_err(tx_err(path))?;
    let rows = stmt.query_map(params![identity], |r| r.get(0)).map_err(tx_err(path))?;
    rows.collect::<Result<Vec<i64>, _>>().map_err(tx_err(path))
}

pub(crate) fn identity_exists(tx: &Transaction, path: &Path, id: i64) -> Result<bool, GalleryError> {
    tx.query_row("SELECT EXISTS (SELECT 1 FROM identities WHERE id = ?1)", params![id], |r| r.get(0)).map_err(tx_err(path))
}

pub(crate) fn embedding_of(tx: &Transaction, path: &Path, face: i64) -> Result<Vec<f32>, GalleryError> {
    let b: Vec<u8> = tx.query_row("SELECT embedding FROM faces WHERE id = ?1", params![face], |r| r.get(0)).map_err(tx_err(path))?;
    Ok(blob_to_vec(&b))
}

/// An enrolled face of a given source photo.
pub(crate) struct SourceFace {
    pub face: i64,
    pub identity: i64,
    pub name: String,
    pub bbox: [f32; 4],
}

/// The faces enrolled from the image with content hash `sha256`. Runs on a connection or inside
/// a transaction.
pub(crate) fn faces_from_source(conn: &Connection, path: &Path, sha256: &str) -> Result<Vec<SourceFace>, GalleryError> {
    let mut stmt = conn
        .prepare("SELECT f.id, f.identity_id, i.name, f.bbox FROM faces f JOIN identities i ON i.id = f.identity_id WHERE f.image_sha256 = ?1 ORDER BY f.id")
        .map_err(tx_err(path))?;
    let rows = stmt.query_map(params![sha256], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(tx_err(path))?;
    let mut out = Vec::new();
    for r in rows {
        let (face, identity, name, b): (i64, i64, String, String) = r.map_err(tx_err(path))?;
        out.push(SourceFace { face, identity, name, bbox: serde_json::from_str(&b).unwrap_or([0.0; 4]) });
    }
    Ok(out)
}

/// The id of the identity named `name`, if any (inside a transaction).
pub(crate) fn identity_id_by_name(tx: &Transaction, path: &Path, name: &str) -> Result<Option<i64>, GalleryError> {
    tx.query_row("SELECT id FROM identities WHERE name = ?1", params![name], |r| r.get(0)).optional().map_err(tx_err(path))
}

/// True when this process may create files in `dir` (access(2) with W_OK; a read-only mount
/// counts as not writable).
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    match std::ffi::CString::new(dir.as_os_str().as_bytes()) {
        // SAFETY: access only reads the NUL-terminated path it is given.
        Ok(c) => unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 },
        Err(_) => true,
    }
}
