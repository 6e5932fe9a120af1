//! A photo collection in one SQLite file: images, their faces (box, quality, embedding), the
//! people found by the last clustering, and the user's labels.
//!
//! Labels are stored as face-level constraints, so they survive re-clustering:
//! - naming a person, or merging two, *confirms* the person's current faces: confirmed faces of
//!   one person start every later clustering as one group (must-link), and two confirmed people
//!   never merge;
//! - "this face is not this person" removes the face and records a cannot-link between it and
//!   the person's confirmed faces, so it never comes back.
//!
//! Re-detection (the file changed, or the detector settings did): the image's new faces are
//! matched to its old ones by box overlap (IoU ≥ [`REDETECT_MIN_IOU`], best pairs first); a
//! matched face keeps its id, and with it its labels. Unmatched old faces are removed.
//!
//! A collection holds embeddings of one model (the first stored); others are refused with
//! [`ClusterError::ModelMismatch`].
//!
//! Clustering is always over every stored face, in a fixed order (image path, face index), so
//! adding photos and re-running gives the same groups as clustering the whole collection from
//! scratch; person ids carry over from the previous run by largest overlap.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{cluster, ClusterError, ClusterParams, FaceInput};
use crate::pipeline::AnalyzedImage;
use crate::quality::FaceQuality;

/// Minimum IoU for a re-detected face to take over an old face's id (and labels). 0.5 is the
/// PASCAL VOC / WIDER FACE detection match criterion.
pub const REDETECT_MIN_IOU: f32 = 0.5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, pipeline TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL, face_index INTEGER NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    quality TEXT NOT NULL, embedding BLOB NOT NULL, person_id INTEGER);
CREATE INDEX IF NOT EXISTS faces_image ON faces(image_id);
CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE IF NOT EXISTS confirmed (face_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (face_id INTEGER NOT NULL, person_id INTEGER NOT NULL, PRIMARY KEY (face_id, person_id));
";

/// The schema version written to `meta`.
const SCHEMA_VERSION: &str = "1";

/// One face as reported.
#[derive(Debug, Clone, Serialize)]
pub struct FaceRecord {
    /// The face's id in the collection (stable across runs and re-detection).
    pub face_id: u64,
    /// The image file.
    pub image: PathBuf,
    /// Index of the face in its image (largest first).
    pub face: usize,
    /// Box `[x1, y1, x2, y2]`, pixels in the oriented image.
    pub bbox: [f32; 4],
    /// Cosine similarity to its person's centroid (normalised mean embedding), in [-1, 1];
    /// `None` for faces in no person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// Why the quality gate refused it, for refused faces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One person and its faces.
#[derive(Debug, Clone, Serialize)]
pub struct Person {
    /// Person id (stable across runs).
    pub id: u64,
    /// The user's name for it.
    pub name: Option<String>,
    /// Member faces, most typical first (by similarity to the centroid).
    pub faces: Vec<FaceRecord>,
}

/// A person in [`Collection::people`].
#[derive(Debug, Clone, Serialize)]
pub struct PersonSummary {
    /// Person id.
    pub id: u64,
    /// Name, if given.
    pub name: Option<String>,
    /// Faces currently assigned.
    pub faces: usize,
    /// Faces the user confirmed (by naming or merging).
    pub confirmed: usize,
}

/// The result of [`Collection::recluster`].
#[derive(Debug, Clone, Serialize)]
pub struct CollectionReport {
    /// Images in the collection.
    pub images: usize,
    /// Faces in the collection (all, refused ones included).
    pub faces: usize,
    /// People, largest first.
    pub people: Vec<Person>,
    /// Faces clustered into no person (outliers).
    pub unassigned: Vec<FaceRecord>,
    /// Faces refused by the quality gate, not clustered.
    pub refused: Vec<FaceRecord>,
}

/// What [`Collection::ingest`] did with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Ingested {
    /// Same content and pipeline as stored: nothing changed.
    Unchanged,
    /// A new image.
    Added,
    /// Re-detected: faces matched by IoU kept their ids (`kept`), the rest were added / removed.
    Redetected {
        /// Old faces matched to new ones.
        kept: usize,
        /// New faces without an old match.
        added: usize,
        /// Old faces without a new match (removed, with their labels).
        removed: usize,
    },
}

/// A collection file. See the module docs.
pub struct Collection {
    conn: Connection,
    path: String,
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

struct StoredFace {
    id: u64,
    image_id: u64,
    path: String,
    face_index: usize,
    bbox: [f32; 4],
    quality: Option<FaceQuality>,
    embedding: Vec<f32>,
    person: Option<u64>,
}

impl Collection {
    /// Opens (creating if needed) the collection file at `path`.
    ///
    /// # Errors
    /// [`ClusterError::Store`] when the file cannot be opened or is not a collection.
    pub fn open(path: &Path) -> Result<Self, ClusterError> {
        let p = path.display().to_string();
        let conn = Connection::open(path).map_err(|e| ClusterError::Store { path: p.clone(), message: e.to_string() })?;
        Self::init(conn, p)
    }

    /// A collection held in memory only (for one-off runs and evaluations).
    ///
    /// # Errors
    /// [`ClusterError::Store`] if SQLite fails.
    pub fn in_memory() -> Result<Self, ClusterError> {
        let conn = Connection::open_in_memory().map_err(|e| ClusterError::Store { path: ":memory:".into(), message: e.to_string() })?;
        Self::init(conn, ":memory:".into())
    }

    fn init(conn: Connection, path: String) -> Result<Self, ClusterError> {
        let c = Collection { conn, path };
        c.conn
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;")
            .and_then(|_| c.conn.execute_batch(SCHEMA))
            .map_err(|e| c.err(e))?;
        match c.meta("schema")? {
            None => c.set_meta("schema", SCHEMA_VERSION)?,
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => return Err(ClusterError::Store { path: c.path.clone(), message: format!("schema version {v}, this build reads {SCHEMA_VERSION}") }),
        }
        Ok(c)
    }

    fn err(&self, e: rusqlite::Error) -> ClusterError {
        ClusterError::Store { path: self.path.clone(), message: e.to_string() }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, ClusterError> {
        self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(|e| self.err(e))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), ClusterError> {
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [key, value]).map(|_| ()).map_err(|e| self.err(e))
    }

    /// The file (or `:memory:`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The model id of the stored embeddings, once any is stored.
    ///
    /// # Errors
    /// [`ClusterError::Store`].
    pub fn model(&self) -> Result<Option<String>, ClusterError> {
        self.meta("model")
    }

    /// Checks that `model` may be stored here (it is the collection's model, or the collection has
    /// none yet).
    ///
    /// # Errors
    /// [`ClusterError::ModelMismatch`]; [`ClusterError::Store`].
    pub fn check_model(&self, model: &str) -> Result<(), ClusterError> {
        match self.model()? {
            Some(m) if m != model => Err(ClusterError::ModelMismatch { path: self.path.clone(), stored: m, given: model.to_string() }),
            _ => Ok(()),
        }
    }

    /// True when `path` is stored with this content hash and pipeline key (no need to analyse it
    /// again).
    ///
    /// # Errors
    /// [`ClusterError::Store`].
    pub fn is_current(&self, path: &Path, sha256: &str, pipeline: &str) -> Result<bool, ClusterError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row("SELECT sha256, pipeline FROM images WHERE path = ?1", [path.to_string_lossy()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.is_some_and(|(s, p)| s == sha256 && p == pipeline))
    }

    /// Stores the analysis of the image at `path` (content hash `sha256`, made under pipeline key
    /// `pipeline`). Faces need embeddings; faces without one are skipped.
    ///
    /// # Errors
    /// [`ClusterError::ModelMismatch`] for embeddings of another model;
    /// [`ClusterError::Store`].
    pub fn ingest(&mut self, path: &Path, sha256: &str, pipeline: &str, img: &AnalyzedImage) -> Result<Ingested, ClusterError> {
        for f in &img.faces {
            if let Some(e) = &f.embedding {
                self.check_model(&e.model.0)?;
            }
        }
        let key = path.to_string_lossy().into_owned();
        let tx = self.conn.transaction().map_err(|e| ClusterError::Store { path: self.path.clone(), message: e.to_string() })?;
        let res = (|| -> rusqlite::Result<Ingested> {
            if let Some(f) = img.faces.iter().find_map(|f| f.embedding.as_ref()) {
                tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('model', ?1)", [&f.model.0])?;
            }
            let old: Option<(i64, String, String)> = tx
                .query_row("SELECT id, sha256, pipeline FROM images WHERE path = ?1", [&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let image_id = match &old {
                Some((id, s, p)) if s == sha256 && p == pipeline => {
                    let _ = id;
                    return Ok(Ingested::Unchanged);
                }
                Some((id, _, _)) => {
                    tx.execute(
                        "UPDATE images SET sha256 = ?1, pipeline = ?2, width = ?3, height = ?4 WHERE id = ?5",
                        params![sha256, pipeline, img.width, img.height, id],
                    )?;
                    *id
                }
                None => {
                    tx.execute(
                        "INSERT INTO images (path, sha256, pipeline, width, height) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![key, sha256, pipeline, img.width, img.height],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            // Old faces of this image, matched to the new ones by IoU, best pairs first.
            let olds: Vec<(i64, [f32; 4])> = {
                let mut st = tx.prepare("SELECT id, x1, y1, x2, y2 FROM faces WHERE image_id = ?1 ORDER BY id")?;
                let rows = st.query_map([image_id], |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let news: Vec<&crate::pipeline::Face> = img.faces.iter().filter(|f| f.embedding.is_some()).collect();
            let mut cand: Vec<(f32, usize, usize)> = Vec::new();
            for (i, (_, ob)) in olds.iter().enumerate() {
                for (j, f) in news.iter().enumerate() {
                    let v = crate::detect::box_iou(ob, &f.detection.bbox);
                    if v >= REDETECT_MIN_IOU {
                        cand.push((v, i, j));
                    }
                }
            }
            cand.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
            let mut old_match: Vec<Option<usize>> = vec![None; olds.len()];
            let mut new_match: Vec<Option<usize>> = vec![None; news.len()];
            for (_, i, j) in cand {
                if old_match[i].is_none() && new_match[j].is_none() {
                    old_match[i] = Some(j);
                    new_match[j] = Some(i);
                }
            }
            let (mut kept, mut added, mut removed) = (0, 0, 0);
            for (i, (id, _)) in olds.iter().enumerate() {
                if old_match[i].is_none() {
                    tx.execute("DELETE FROM faces WHERE id = ?1", [id])?;
                    tx.execute("DELETE FROM confirmed WHERE face_id = ?1", [id])?;
                    tx.execute("DELETE FROM rejected WHERE face_id = ?1", [id])?;
                    removed += 1;
                }
            }
            for (j, f) in news.iter().enumerate() {
                let b = f.detection.bbox;
                let q = serde_json::to_string(&f.quality).unwrap_or_default();
                let emb = to_blob(&f.embedding.as_ref().map(|e| e.vector.clone()).unwrap_or_default());
                match new_match[j] {
                    Some(i) => {
                        tx.execute(
                            "UPDATE faces SET face_index = ?1, x1 = ?2, y1 = ?3, x2 = ?4, y2 = ?5, quality = ?6, embedding = ?7 WHERE id = ?8",
                            params![f.index as i64, b[0], b[1], b[2], b[3], q, emb, olds[i].0],
                        )?;
                        kept += 1;
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO faces (image_id, face_index, x1, y1, x2, y2, quality, embedding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            params![image_id, f.index as i64, b[0], b[1], b[2], b[3], q, emb],
                        )?;
                        added += 1;
                    }
                }
            }
            Ok(if old.is_some() { Ingested::Redetected { kept, added, removed } } else { Ingested::Added })
        })();
        match res {
            Ok(r) => {
                tx.commit().map_err(|e| ClusterError::Store { path: self.path.clone(), message: e.to_string() })?;
                Ok(r)
            }
            Err(e) => Err(ClusterError::Store { path: self.path.clone(), message: e.to_string() }),
        }
    }

    /// Removes images whose path is not in `keep` and no longer exists on disk, with their faces
    /// and labels. Returns how many were removed.
    ///
    /// # Errors
    /// [`ClusterError::Store`].
    pub fn prune_missing(&mut self) -> Result<usize, ClusterError> {
        let all: Vec<(i64, String)> = {
            let mut st = self.conn.prepare("SELECT id, path FROM images").map_err(|e| self.err(e))?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        let mut n = 0;
        for (id, p) in all {
            if !Path::new(&p).exists() {
                self.conn
                    .execute_batch(&format!(
                        "DELETE FROM confirmed WHERE face_id IN (SELECT id FROM faces WHERE image_id = {id});
                         DELETE FROM rejected WHERE face_id IN (SELECT id FROM faces WHERE image_id = {id});
                         DELETE FROM faces WHERE image_id = {id}; DELETE FROM images WHERE id = {id};"
                    ))
                    .map_err(|e| self.err(e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn load_faces(&self) -> Result<Vec<StoredFace>, ClusterError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT f.id, f.image_id, i.path, f.face_index, f.x1, f.y1, f.x2, f.y2, f.quality, f.embedding, f.person_id
                 FROM faces f JOIN images i ON i.id = f.image_id ORDER BY i.path, f.face_index, f.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                let q: String = r.get(8)?;
                let e: Vec<u8> = r.get(9)?;
                Ok(StoredFace {
                    id: r.get::<_, i64>(0)? as u64,
                    image_id: r.get::<_, i64>(1)? as u64,
                    path: r.get(2)?,
                    face_index: r.get::<_, i64>(3)? as usize,
                    bbox: [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                    quality: serde_json::from_str(&q).ok(),
                    embedding: from_blob(&e),
                    person: r.get::<_, Option<i64>>(10)?.map(|p| p as u64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    fn pairs_table(&self, sql: &str) -> Result<Vec<(u64, u64)>, ClusterError> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    fn record(f: &StoredFace, similarity: Option<f32>, refused: Option<String>) -> FaceRecord {
        FaceRecord { face_id: f.id, image: PathBuf::from(&f.path), face: f.face_index, bbox: f.bbox, similarity, refused }
    }

    /// Clusters every stored face with `params` and the stored labels, stores the people found
    /// (person ids carried over by largest overlap with the previous run), and reports them.
    ///
    /// # Errors
    /// [`ClusterError::InvalidParameter`], [`ClusterError::BadEmbedding`] (a damaged row),
    /// [`ClusterError::Store`].
    pub fn recluster(&mut self, params: &ClusterParams) -> Result<CollectionReport, ClusterError> {
        let faces = self.load_faces()?;
        let confirmed: HashMap<u64, u64> = self.pairs_table("SELECT face_id, person_id FROM confirmed")?.into_iter().collect();
        let mut rejected: HashMap<u64, Vec<u64>> = HashMap::new();
        for (f, p) in self.pairs_table("SELECT face_id, person_id FROM rejected ORDER BY face_id, person_id")? {
            rejected.entry(f).or_default().push(p);
        }
        let inputs: Vec<FaceInput<'_>> = faces
            .iter()
            .map(|f| FaceInput {
                vector: &f.embedding,
                photo: f.image_id,
                quality: f.quality,
                person: confirmed.get(&f.id).copied(),
                not_persons: rejected.get(&f.id).cloned().unwrap_or_default(),
            })
            .collect();
        let result = cluster(&inputs, params).map_err(|e| match e {
            ClusterError::BadEmbedding { face, message } => ClusterError::BadEmbedding { face: faces[face as usize].id, message },
            other => other,
        })?;
        // Person id per cluster: the confirmed person, else the previous person with the largest
        // overlap (not already taken), else a new one.
        let mut ids: Vec<Option<u64>> = result.clusters.iter().map(|c| c.person).collect();
        let mut taken: HashSet<u64> = ids.iter().flatten().copied().collect();
        let mut votes: Vec<(usize, usize, u64)> = Vec::new();
        for (ci, c) in result.clusters.iter().enumerate() {
            if ids[ci].is_some() {
                continue;
            }
            let mut count: HashMap<u64, usize> = HashMap::new();
            for &m in &c.members {
                if let Some(p) = faces[m].person {
                    *count.entry(p).or_default() += 1;
                }
            }
            votes.extend(count.into_iter().map(|(p, n)| (n, ci, p)));
        }
        votes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let existing: HashSet<u64> = self.pairs_table("SELECT id, id FROM people")?.into_iter().map(|(a, _)| a).collect();
        for (_, ci, p) in votes {
            if ids[ci].is_none() && !taken.contains(&p) && existing.contains(&p) {
                ids[ci] = Some(p);
                taken.insert(p);
            }
        }
        let tx = self.conn.transaction().map_err(|e| ClusterError::Store { path: self.path.clone(), message: e.to_string() })?;
        let path = self.path.clone();
        let serr = |e: rusqlite::Error| ClusterError::Store { path: path.clone(), message: e.to_string() };
        for (ci, id) in ids.iter_mut().enumerate() {
            if id.is_none() {
                tx.execute("INSERT INTO people (name) VALUES (NULL)", []).map_err(serr)?;
                *id = Some(tx.last_insert_rowid() as u64);
            }
            let _ = ci;
        }
        tx.execute("UPDATE faces SET person_id = NULL", []).map_err(serr)?;
        {
            let mut st = tx.prepare("UPDATE faces SET person_id = ?1 WHERE id = ?2").map_err(serr)?;
            for (ci, c) in result.clusters.iter().enumerate() {
                for &m in &c.members {
                    st.execute(params![ids[ci].map(|x| x as i64), faces[m].id as i64]).map_err(serr)?;
                }
            }
        }
        // People left without faces, a name or confirmed faces are gone.
        tx.execute(
            "DELETE FROM people WHERE name IS NULL AND id NOT IN (SELECT person_id FROM faces WHERE person_id IS NOT NULL)
             AND id NOT IN (SELECT person_id FROM confirmed)",
            [],
        )
        .map_err(serr)?;
        tx.commit().map_err(serr)?;
        let names: HashMap<u64, String> = {
            let mut st = self.conn.prepare("SELECT id, name FROM people WHERE name IS NOT NULL").map_err(|e| self.err(e))?;
            let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        let people = result
            .clusters
            .iter()
            .zip(&ids)
            .map(|(c, id)| {
                let id = id.unwrap_or_default();
                let mut fs: Vec<FaceRecord> =
                    c.members.iter().zip(&c.centroid_similarity).map(|(&m, &s)| Self::record(&faces[m], Some(s), None)).collect();
                fs.sort_by(|a, b| b.similarity.unwrap_or(-1.0).total_cmp(&a.similarity.unwrap_or(-1.0)).then(a.face_id.cmp(&b.face_id)));
                Person { id, name: names.get(&id).cloned(), faces: fs }
            })
            .collect();
        let images = self.conn.query_row("SELECT COUNT(*) FROM images", [], |r| r.get::<_, i64>(0)).map_err(|e| self.err(e))? as usize;
        Ok(CollectionReport {
            images,
            faces: faces.len(),
            people,
            unassigned: result.unassigned.iter().map(|&m| Self::record(&faces[m], None, None)).collect(),
            refused: result.gated.iter().map(|(m, why)| Self::record(&faces[*m], None, Some(why.to_string()))).collect(),
        })
    }

    fn person_exists(&self, id: u64) -> Result<bool, ClusterError> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM people WHERE id = ?1", [id as i64], |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Names person `id` and confirms its current faces (they stay together in later runs).
    ///
    /// # Errors
    /// [`ClusterError::NoPerson`]; [`ClusterError::InvalidParameter`] for an empty name, one
    /// over 256 characters or with control characters, or one another person already has;
    /// [`ClusterError::Store`].
    pub fn name_person(&mut self, id: u64, name: &str) -> Result<(), ClusterError> {
        if !self.person_exists(id)? {
            return Err(ClusterError::NoPerson(id));
        }
        if name.trim().is_empty() {
            return Err(ClusterError::InvalidParameter { name: "name", message: "empty name".into() });
        }
        // The gallery's limits on names (length, no control characters).
        let max = crate::gallery::MAX_NAME_CHARS;
        let chars = name.trim().chars().count();
        if chars > max || name.trim().chars().any(char::is_control) {
            let why = if chars > max { format!("{chars} characters, more than {max}") } else { "contains control characters".to_string() };
            return Err(ClusterError::InvalidParameter { name: "name", message: why });
        }
        // One name, one person: two people with the same name are one person split in two,
        // which `merge_people` is for.
        let holder: Option<i64> = self
            .conn
            .query_row("SELECT id FROM people WHERE name = ?1 AND id != ?2", params![name.trim(), id as i64], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(other) = holder {
            return Err(ClusterError::InvalidParameter {
                name: "name",
                message: format!("person {other} is already named \"{}\"; if they are the same person, merge them (people merge {other} {id})", name.trim()),
            });
        }
        self.conn
            .execute("UPDATE people SET name = ?1 WHERE id = ?2", params![name.trim(), id as i64])
            .and_then(|_| self.conn.execute("INSERT OR REPLACE INTO confirmed (face_id, person_id) SELECT id, person_id FROM faces WHERE person_id = ?1", [id as i64]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Merges person `from` into person `into`: all faces of both are confirmed as `into`, which
    /// keeps its name (or takes `from`'s if it had none); `from` is deleted.
    ///
    /// # Errors
    /// [`ClusterError::NoPerson`]; [`ClusterError::InvalidParameter`] when both are the same;
    /// [`ClusterError::Store`].
    pub fn merge_people(&mut self, into: u64, from: u64) -> Result<(), ClusterError> {
        for p in [into, from] {
            if !self.person_exists(p)? {
                return Err(ClusterError::NoPerson(p));
            }
        }
        if into == from {
            return Err(ClusterError::InvalidParameter { name: "merge", message: format!("person {into} cannot be merged with itself") });
        }
        let (i, f) = (into as i64, from as i64);
        let tx = self.conn.transaction().map_err(|e| ClusterError::Store { path: self.path.clone(), message: e.to_string() })?;
        let r = (|| -> rusqlite::Result<()> {
            tx.execute("UPDATE faces SET person_id = ?1 WHERE person_id = ?2", [i, f])?;
            tx.execute("UPDATE confirmed SET person_id = ?1 WHERE person_id = ?2", [i, f])?;
            tx.execute("INSERT OR REPLACE INTO confirmed (face_id, person_id) SELECT id, person_id FROM faces WHERE person_id = ?1", [i])?;
            tx.execute("UPDATE OR IGNORE rejected SET person_id = ?1 WHERE person_id = ?2", [i, f])?;
            tx.execute("DELETE FROM rejected WHERE person_id = ?1", [f])?;
            tx.execute("DELETE FROM rejected WHERE person_id = ?1 AND face_id IN (SELECT face_id FROM confirmed WHERE person_id = ?1)", [i])?;
            tx.execute("UPDATE people SET name = (SELECT name FROM people WHERE id = ?2) WHERE id = ?1 AND name IS NULL", [i, f])?;
            tx.execute("DELETE FROM people WHERE id = ?1", [f])?;
            Ok(())
        })();
        r.and_then(|_| tx.commit()).map_err(|e| ClusterError::Store { path: self.path.clone(), message: e.to_string() })
    }

    /// "This face is not this person": removes face `face` from person `person` (default: its
    /// current person) for good.
    ///
    /// # Errors
    /// [`ClusterError::NoFace`]; [`ClusterError::NoPerson`] when `person` does not exist;
    /// [`ClusterError::InvalidParameter`] when the face is in no person and none is given;
    /// [`ClusterError::Store`].
    pub fn reject_face(&mut self, face: u64, person: Option<u64>) -> Result<u64, ClusterError> {
        let current: Option<Option<i64>> =
            self.conn.query_row("SELECT person_id FROM faces WHERE id = ?1", [face as i64], |r| r.get(0)).optional().map_err(|e| self.err(e))?;
        let Some(current) = current else { return Err(ClusterError::NoFace(face)) };
        let p = match person.or(current.map(|c| c as u64)) {
            Some(p) => p,
            None => return Err(ClusterError::InvalidParameter { name: "person", message: format!("face {face} is in no person: name the person it is not") }),
        };
        if !self.person_exists(p)? {
            return Err(ClusterError::NoPerson(p));
        }
        let (fi, pi) = (face as i64, p as i64);
        self.conn
            .execute("DELETE FROM confirmed WHERE face_id = ?1 AND person_id = ?2", [fi, pi])
            .and_then(|_| self.conn.execute("INSERT OR IGNORE INTO rejected (face_id, person_id) VALUES (?1, ?2)", [fi, pi]))
            .and_then(|_| self.conn.execute("UPDATE faces SET person_id = NULL WHERE id = ?1 AND person_id = ?2", [fi, pi]))
            .map_err(|e| self.err(e))?;
        Ok(p)
    }

    /// Every person: id, name, faces assigned, faces confirmed; largest first.
    ///
    /// # Errors
    /// [`ClusterError::Store`].
    pub fn people(&self) -> Result<Vec<PersonSummary>, ClusterError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT p.id, p.name,
                        (SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id),
                        (SELECT COUNT(*) FROM confirmed c WHERE c.person_id = p.id)
                 FROM people p",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(PersonSummary {
                    id: r.get::<_, i64>(0)? as u64,
                    name: r.get(1)?,
                    faces: r.get::<_, i64>(2)? as usize,
                    confirmed: r.get::<_, i64>(3)? as usize,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut v: Vec<PersonSummary> = rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?;
        v.sort_by(|a, b| b.faces.cmp(&a.faces).then(a.id.cmp(&b.id)));
        Ok(v)
    }
}
