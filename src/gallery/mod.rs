//! Gallery and 1:N identification: enrolled identities and their faces, kept on disk, searched
//! open-set ("who is this, if anyone?").
//!
//! A gallery is one directory holding:
//! - `gallery.sqlite`: the store (identities, faces, embeddings, optional crops; see [`store`]
//!   for the schema and why SQLite), the source of truth;
//! - `index.bin`: the persisted search index ([`crate::index::VectorIndex`]), tagged with the
//!   store's generation counter. It is only a cache: on open, a missing, unreadable or
//!   mismatched index (other generation, other keys, other dimension) is rebuilt from the store.
//!
//! The index's vector storage ([`crate::index::VectorStorage`]) is chosen when the gallery is
//! created ([`GalleryOptions::index`]`.storage`, `gallery init --index-storage`) and recorded in
//! the store; opening uses the recorded one whatever the options say. `f32` (the default) and
//! `f16` hold the vectors in memory; `i8` holds 1-byte codes and rescores each search's
//! candidates with the exact embeddings read from the store by face id (a second, read-only use
//! of the SQLite file), so reported similarities, and so decisions, are those of `f32`, for a
//! quarter of the vector memory. Mean templates ([`Scoring::Mean`]) are not in the store: an
//! `i8` gallery keeps their index in f16, and rescores its candidates from the f32 template sums
//! held in memory, so mean-scoring similarities are also those of `f32`.
//!
//! [`Gallery`] is `Send + Sync`; all methods take `&self`. The store is behind a mutex and the
//! live index behind a read-write lock; the pipeline helpers ([`Gallery::enroll_image`],
//! [`Gallery::identify_image`]) run detection and embedding before taking either lock.
//! Another process writing the same gallery is noticed through the generation counter: a search
//! that finds the store at another generation than its index rebuilds the index first.
//!
//! ## Identification semantics
//! Open set. For a probe embedding, every identity gets a score (see [`Scoring`]); identities
//! are ranked by score, best first, and the decision at threshold `t` (a calibrated operating
//! point, [`IdentifyParams::threshold`]) and margin `m` ([`IdentifyParams::ambiguity_margin`]) is:
//! - [`Decision::Unknown`] when the best score is below `t` (or the gallery is empty);
//! - [`Decision::Ambiguous`] when the best two identities both score ≥ `t` and differ by less
//!   than `m`;
//! - [`Decision::Match`] otherwise: the best identity.
//!
//! The top-k list is returned in every case, so a caller sees the near misses.
//!
//! ## Multi-face photos
//! Enrollment ([`FacePolicy`]): a photo with several faces is refused unless the caller says
//! which face to take (an index, or the largest): a wrong label would poison every later search.
//! Identification searches every face of a probe photo.
//!
//! ## Enrollment rules
//! [`Gallery::enroll_images`] and [`Gallery::enroll_faces`] (what the CLI uses):
//! - an enrolled face must pass the enrollment gate ([`enrollment_gate`]: the quality gate with a
//!   minimum detection score of [`ENROLLMENT_MIN_DET_SCORE`], which a dog's face fails); probes
//!   keep the detector's threshold and are flagged ([`FaceIdentification::weak_detection`]);
//! - a new identity is created in the same transaction as its first face, never without one;
//! - a face already enrolled (same source content hash, box IoU ≥ [`DUPLICATE_FACE_IOU`]) is not
//!   added again: a no-op under the same identity, refused under another.
//!
//! The low-level [`Gallery::enroll`] / [`Gallery::enroll_many`] check only the model and the
//! embedding.

pub mod eval;
pub mod labels;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use image::RgbImage;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::compare::Threshold;
use crate::embed::{Embedding, ModelId};
use crate::index::{ExactVectors, IndexError, IndexParams, SearchMode, VectorIndex, VectorStorage};
use crate::pipeline::{AnalyzedImage, FaceAnalyzer};
use crate::quality::{FaceQuality, QualityGate};

pub use store::{FaceRecord, GalleryMeta, IdentityRecord, SCHEMA_VERSION, STORE_FILE};
use store::{FaceInsert, Store};

/// File name of the persisted index inside the gallery directory.
pub const INDEX_FILE: &str = "index.bin";

/// Default [`IdentifyParams::ambiguity_margin`]: 0.03 cosine similarity. On LFW with the default
/// model, same-person similarities spread over about 0.3–0.9 while the best impostor of a probe
/// sits around 0.1–0.2; two *different* enrolled people both matching a probe within 0.03 of each
/// other is then a case to show to a human rather than to decide (README "Gallery and
/// identification" gives how often it happens on LFW).
pub const DEFAULT_AMBIGUITY_MARGIN: f32 = 0.03;

/// Default false-positive identification rate (FPIR) that identification's threshold is chosen
/// for: 1 % of strangers matched to someone ([`Gallery::threshold_for_fpir`]). A 1:1 operating
/// point such as FAR 1e-3 does not hold in 1:N: on LFW with 4,281 identities it matched 94 % of
/// strangers (README, "Gallery and identification").
pub const DEFAULT_FPIR: f64 = 0.01;

/// Minimum detection score of a face to be enrolled: 0.68. Identification probes keep the
/// detector's own threshold (0.5) and are only flagged ([`FaceIdentification::weak_detection`]).
///
/// Measured with the default detector (SCRFD-500M, default parameters) and the largest face of
/// each photo (README "Gallery and identification", "Enrollment gate"):
/// - the dog of `dlib/examples/faces/dogs.jpg` is detected as a face with score 0.643, and its
///   other quality measures look like a face's (size 158 px, yaw 3°, pitch −19°, sharpness 1162),
///   so the detection score is the only measure that tells it apart;
/// - LFW (7,701 photos of `pairs.txt`): min 0.535, 0.1st percentile 0.667, 1st percentile 0.739,
///   median 0.856; 15 photos (0.19 %) score below 0.68;
/// - deepface's test photos (32 with one face): min 0.7007;
/// - the four mask photos and the two EXIF examples without a person give no detection at all.
///
/// 0.68 sits between the dog (0.643) and the lowest single-face deepface photo (0.701), at a cost
/// of 0.19 % of LFW's photos refused for enrollment (they can still be searched).
pub const ENROLLMENT_MIN_DET_SCORE: f32 = 0.68;

/// Two boxes of the same photo (same content hash) with an intersection over union at or above
/// this are the same face: enrolling it again is a no-op ([`FaceOutcome::AlreadyEnrolled`]).
/// With the same photo and detector the box is identical (IoU 1); 0.5 still matches boxes from
/// other detector settings, while two different faces of one photo never overlap that much.
pub const DUPLICATE_FACE_IOU: f32 = 0.5;

/// Default [`IdentifyParams::top_k`]: 5 identities.
pub const DEFAULT_TOP_K: usize = 5;

/// Largest accepted deviation of an embedding's L2 norm from 1 (embeddings from
/// [`crate::embed`] have norm 1 ± 1e-5).
pub const NORM_TOLERANCE: f32 = 1e-3;

/// What can go wrong with a gallery. Variants carry the facts a caller needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GalleryError {
    /// SQLite failed (cannot open, locked for longer than the busy timeout, corrupt, disk full).
    #[error("gallery store {path}: {source}")]
    Store {
        /// The store file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file or directory of the gallery cannot be created or read.
    #[error("gallery {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no gallery (or a file that is not one).
    #[error("{path} is not a faceprint gallery: {detail} (create one with `faceprint gallery init`)")]
    NotAGallery {
        /// The directory or store file.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// `create` on a directory that already holds a gallery.
    #[error("{path} already holds a gallery")]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// A store written by another schema version.
    #[error("gallery store {path} has schema version {found:?}; this faceprint reads version {supported}")]
    SchemaVersion {
        /// The store file.
        path: PathBuf,
        /// The version found (`None` when unreadable).
        found: Option<i64>,
        /// The version this code reads.
        supported: i64,
    },
    /// An embedding from another model than the gallery's.
    #[error("the gallery holds embeddings of model {gallery}, but this embedding comes from model {given}; embeddings of different models cannot be compared (use the gallery's model, another gallery, or `faceprint gallery reembed`)")]
    ModelMismatch {
        /// The gallery's model.
        gallery: ModelId,
        /// The embedding's model.
        given: ModelId,
    },
    /// An embedding of another length than the gallery's.
    #[error("wrong embedding dimension: the gallery holds {expected}-d embeddings, received {received}")]
    DimensionMismatch {
        /// The gallery's dimension.
        expected: usize,
        /// The embedding's length.
        received: usize,
    },
    /// An embedding with non-finite components or not L2-normalized.
    #[error("invalid embedding: {detail}")]
    BadEmbedding {
        /// What is wrong.
        detail: String,
    },
    /// No identity with this id or name.
    #[error("no identity {} in the gallery", cut(.identity))]
    UnknownIdentity {
        /// The id or name asked for.
        identity: String,
    },
    /// No face with this id.
    #[error("no face {face} in the gallery")]
    UnknownFace {
        /// The face id.
        face: i64,
    },
    /// A name already taken by another identity.
    #[error("an identity named {} already exists", shown(.name))]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A name that cannot be used.
    #[error("invalid identity name {}: {reason}", shown(.name))]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A photo with several faces offered for enrollment without saying which face to use.
    #[error("{path}: {count} faces found; enrollment takes one face per photo: choose one with --face N (0 = largest) or --largest")]
    SeveralFaces {
        /// The image.
        path: PathBuf,
        /// How many faces were found.
        count: usize,
    },
    /// A photo whose data ends early (a truncated file: the decoder filled the missing part in),
    /// offered for enrollment. Its face may be half gray and would match strangers.
    #[error("{path}: the file's image data ends early (truncated), so part of the photo was filled in by the decoder; a partial photo is not enrolled: use the complete file")]
    IncompleteImage {
        /// The image.
        path: PathBuf,
    },
    /// A face (same source photo content and box, [`DUPLICATE_FACE_IOU`]) that another identity
    /// already has: one photo of a face cannot belong to two people.
    #[error("{path}: this face is already enrolled as face {face} of identity {identity:?} (id {identity_id}); a face cannot belong to two identities: remove it there first (`faceprint gallery remove --face {face}`) or merge the identities")]
    DuplicateFace {
        /// The photo (empty when enrolled from an embedding).
        path: PathBuf,
        /// The enrolled face.
        face: i64,
        /// Its identity's id.
        identity_id: i64,
        /// Its identity's name.
        identity: String,
    },
    /// The labels file of bulk enrollment cannot be opened or read ([`labels::read_labels_csv`]).
    #[error("labels file {path}: {detail}")]
    LabelsFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The gallery's store file exists but cannot be read as a gallery (not an SQLite database,
    /// damaged, unreadable).
    #[error("gallery store {path} cannot be read: {detail}")]
    Unreadable {
        /// The store file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The index failed (other than a missing or damaged file, which causes a rebuild).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A parameter outside its documented range.
    #[error("invalid gallery parameter {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl GalleryError {
    /// True when the caller's input is at fault (unknown or duplicate identity, bad name, bad
    /// embedding, a photo with several faces, a face enrolled under another identity, a store
    /// file that cannot be read), as opposed to a setup problem or a failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            GalleryError::UnknownIdentity { .. }
                | GalleryError::UnknownFace { .. }
                | GalleryError::DuplicateName { .. }
                | GalleryError::InvalidName { .. }
                | GalleryError::BadEmbedding { .. }
                | GalleryError::SeveralFaces { .. }
                | GalleryError::IncompleteImage { .. }
                | GalleryError::DuplicateFace { .. }
                | GalleryError::Unreadable { .. }
                | GalleryError::LabelsFile { .. }
        )
    }

    /// True for misuse: a model or dimension mismatch, a missing gallery, a gallery path that is
    /// not a directory, a bad parameter.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            GalleryError::ModelMismatch { .. }
                | GalleryError::DimensionMismatch { .. }
                | GalleryError::NotAGallery { .. }
                | GalleryError::AlreadyExists { .. }
                | GalleryError::InvalidParameter { .. }
        )
    }
}

/// Options for opening or creating a gallery. Defaults: [`IndexParams::default`], crops not stored.
#[derive(Debug, Clone, Default)]
pub struct GalleryOptions {
    /// Search index parameters (exact-search size limit, HNSW parameters). Its `storage` is
    /// used by [`Gallery::create`] and recorded; [`Gallery::open`] uses the recorded storage.
    pub index: IndexParams,
    /// For [`Gallery::create`]: store aligned 112×112 crops (PNG) at enrollment by default.
    /// Off by default (face images are personal data); needed for [`Gallery::reembed_into`].
    pub store_crops: bool,
}

/// An identity given by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRef {
    /// By id.
    Id(i64),
    /// By exact name.
    Name(String),
}

impl IdentityRef {
    /// How the CLI reads an identity argument: `id:N` is an id; anything else is a name.
    pub fn parse(s: &str) -> IdentityRef {
        match s.strip_prefix("id:").and_then(|n| n.parse().ok()) {
            Some(id) => IdentityRef::Id(id),
            None => IdentityRef::Name(s.to_string()),
        }
    }
}

impl std::fmt::Display for IdentityRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityRef::Id(id) => write!(f, "id:{id}"),
            IdentityRef::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl From<&str> for IdentityRef {
    fn from(s: &str) -> Self {
        IdentityRef::Name(s.to_string())
    }
}

impl From<i64> for IdentityRef {
    fn from(id: i64) -> Self {
        IdentityRef::Id(id)
    }
}

/// A face to enroll.
#[derive(Debug, Clone)]
pub struct NewFace {
    /// Its embedding (model and dimension must be the gallery's; L2-normalized).
    pub embedding: Embedding,
    /// SHA-256 (hex) of the source image file's bytes; empty when there is none.
    pub image_sha256: String,
    /// Box `[x1, y1, x2, y2]` in the source image, pixels (zeros when unknown).
    pub bbox: [f32; 4],
    /// Quality measures, when known.
    pub quality: Option<FaceQuality>,
    /// The aligned 112×112 crop, stored only when given.
    pub crop: Option<RgbImage>,
}

/// How an identity's score is computed from its enrolled faces.
///
/// Measured on LFW (`faceprint eval identification`, README "Gallery and identification"):
/// with several faces per identity, the mean template gives a higher rank-1 accuracy (99.85 %
/// vs 99.77 %) and a lower FNIR at the same FPIR (0.46 % vs 0.77 % at FPIR 1 %, 21 % vs 33 % at
/// FPIR 0.1 %) than the max over faces, which also lifts impostors' scores. Hence the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scoring {
    /// The similarity to the identity's template: the L2-normalized mean of its face
    /// embeddings. The default.
    #[default]
    Mean,
    /// The highest similarity over the identity's faces.
    Max,
}

/// Parameters of [`Gallery::identify`].
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyParams {
    /// Identities returned, best first (≥ 1). Default [`DEFAULT_TOP_K`].
    pub top_k: usize,
    /// Operating point: scores below it are not matches. Usually
    /// [`FaceAnalyzer::threshold_at_far`]`(1e-3)`.
    pub threshold: Threshold,
    /// Two identities both above threshold and closer than this (cosine similarity, ≥ 0) make
    /// the decision ambiguous. Default [`DEFAULT_AMBIGUITY_MARGIN`].
    pub ambiguity_margin: f32,
    /// Per-identity scoring. Default [`Scoring::Mean`].
    pub scoring: Scoring,
    /// Exact or approximate search. Default [`SearchMode::Auto`] (exact below
    /// [`IndexParams::exact_below`] faces).
    pub search: SearchMode,
}

impl IdentifyParams {
    /// Defaults around `threshold`.
    pub fn new(threshold: Threshold) -> Self {
        IdentifyParams { top_k: DEFAULT_TOP_K, threshold, ambiguity_margin: DEFAULT_AMBIGUITY_MARGIN, scoring: Scoring::default(), search: SearchMode::Auto }
    }

    fn validate(&self) -> Result<(), GalleryError> {
        if self.top_k == 0 {
            return Err(GalleryError::InvalidParameter { name: "top_k", message: "must be ≥ 1".into() });
        }
        if !(self.ambiguity_margin >= 0.0 && self.ambiguity_margin <= 2.0) {
            return Err(GalleryError::InvalidParameter { name: "ambiguity_margin", message: format!("{} is outside [0, 2]", self.ambiguity_margin) });
        }
        if !(self.threshold.similarity >= -1.0 && self.threshold.similarity <= 1.0) {
            return Err(GalleryError::InvalidParameter { name: "threshold", message: format!("{} is outside [-1, 1]", self.threshold.similarity) });
        }
        Ok(())
    }
}

/// The decision of an identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The best identity is above threshold and clearly ahead.
    Match,
    /// Nobody enrolled scores at or above the threshold.
    Unknown,
    /// The best two identities both score above threshold, within the margin.
    Ambiguous,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decision::Match => "match",
            Decision::Unknown => "unknown",
            Decision::Ambiguous => "ambiguous",
        })
    }
}

/// One candidate identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// Identity id.
    pub identity_id: i64,
    /// Identity name.
    #[serde(rename = "identity")]
    pub name: String,
    /// Its score: cosine similarity in [−1, 1] (see [`Scoring`]).
    pub similarity: f32,
    /// The enrolled face that scored best ([`Scoring::Max`]); `None` under [`Scoring::Mean`].
    pub face: Option<i64>,
}

/// The result of an identification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identification {
    /// Match, unknown or ambiguous.
    pub decision: Decision,
    /// Up to `top_k` identities, best first.
    pub matches: Vec<Match>,
    /// The threshold used.
    pub threshold: Threshold,
    /// The ambiguity margin used.
    pub ambiguity_margin: f32,
    /// The scoring used.
    pub scoring: Scoring,
}

/// An identity with its faces.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityDetail {
    /// The identity.
    #[serde(flatten)]
    pub identity: IdentityRecord,
    /// Its faces, by id.
    #[serde(rename = "face_list")]
    pub faces: Vec<FaceRecord>,
}

/// What [`Gallery::check`] found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Problems reported by SQLite's integrity and foreign-key checks (empty: sound).
    pub store_problems: Vec<String>,
    /// Differences between the live search index and the store (empty: in step).
    pub index_problems: Vec<String>,
    /// Number of identities.
    pub identities: usize,
    /// Number of faces.
    pub faces: usize,
    /// Current generation.
    pub generation: u64,
    /// How the index was obtained at open: `loaded` or `rebuilt: <reason>`.
    pub index_origin: String,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.store_problems.is_empty() && self.index_problems.is_empty()
    }
}

/// The in-memory, searchable state, in step with the store at `generation`.
struct Live {
    generation: u64,
    /// False when another process changed the store since: rebuild before use.
    index: VectorIndex,
    face_identity: HashMap<u64, i64>,
    names: HashMap<i64, String>,
    /// Mean templates, built on first use by [`Scoring::Mean`].
    templates: Option<Templates>,
    /// The live index differs from the saved file.
    dirty: bool,
}

struct Templates {
    sums: HashMap<i64, (Vec<f32>, usize)>,
    index: VectorIndex,
}

/// A gallery: identities, faces and a search index. `Send + Sync`; see the module docs.
pub struct Gallery {
    dir: PathBuf,
    meta: GalleryMeta,
    params: IndexParams,
    /// The store, read by face id, for an index with i8 storage (None otherwise).
    source: Option<Arc<dyn ExactVectors>>,
    store: Mutex<Store>,
    live: RwLock<Live>,
    index_origin: String,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery").field("dir", &self.dir).field("model", &self.meta.model).finish()
    }
}

const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Gallery>();
};

/// Extra mean-template candidates rescored from the f32 sums when the template index is not
/// f32 (f16 scores are within 4.9e-4, so ties closer than that may re-order).
const TEMPLATE_RESCORE_EXTRA: usize = 8;

/// Longest identity name, in characters (also the limit on a collection's person names).
pub const MAX_NAME_CHARS: usize = 256;

/// A name as error messages show it: quoted, and cut after 80 characters (a 100 kB name is not
/// echoed back whole).
fn shown(name: &str) -> String {
    match head(name) {
        None => format!("{name:?}"),
        Some((h, n)) => format!("{h:?}… ({n} characters)"),
    }
}

/// `text` cut after 80 characters, not quoted (for names already quoted, or ids).
fn cut(text: &str) -> String {
    match head(text) {
        None => text.to_string(),
        Some((h, n)) => format!("{h}… ({n} characters)"),
    }
}

/// The first 80 characters of `text` and its length in characters, when it is longer than that.
fn head(text: &str) -> Option<(String, usize)> {
    const MAX: usize = 80;
    let n = text.chars().count();
    (n > MAX).then(|| (text.chars().take(MAX).collect(), n))
}

fn check_name(name: &str) -> Result<String, GalleryError> {
    let n = name.trim();
    let bad = |reason: &str| Err(GalleryError::InvalidName { name: name.to_string(), reason: reason.into() });
    if n.is_empty() {
        return bad("empty");
    }
    if n.chars().count() > MAX_NAME_CHARS {
        return bad(&format!("longer than {MAX_NAME_CHARS} characters"));
    }
    if n.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    if n.starts_with("id:") {
        return bad("names starting with `id:` are read as identity ids");
    }
    if n.chars().all(|c| c.is_ascii_digit()) {
        return bad("a name made only of digits is read as an identity id (in the HTTP API's paths); add a letter");
    }
    Ok(n.to_string())
}

/// Why a stored embedding cannot be used, if it cannot: wrong length, non-finite values, or not
/// unit length (enrollment accepts only L2-normalized embeddings, within [`NORM_TOLERANCE`]).
pub(crate) fn damaged_embedding(v: &[f32], dim: usize) -> Option<String> {
    if v.len() != dim {
        return Some(format!("{} values, the gallery's dimension is {dim}", v.len()));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Some("non-finite values".into());
    }
    let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if (norm - 1.0).abs() > NORM_TOLERANCE as f64 {
        return Some(format!("L2 norm {norm:.4}, not 1"));
    }
    None
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32;
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

fn png_bytes(img: &RgbImage) -> Result<Vec<u8>, GalleryError> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| GalleryError::InvalidParameter { name: "crop", message: format!("cannot encode the crop as PNG: {e}") })?;
    Ok(out.into_inner())
}

impl Gallery {
    /// The default gallery directory: `<data dir>/gallery`.
    pub fn default_dir(data: &Path) -> PathBuf {
        data.join("gallery")
    }

    /// Creates a gallery in `dir` (created if needed) for embeddings of `model` with `dim`
    /// components.
    ///
    /// # Errors
    /// [`GalleryError::AlreadyExists`] when `dir` already holds one;
    /// [`GalleryError::InvalidParameter`] when `dir` is a file; [`GalleryError::Io`],
    /// [`GalleryError::Store`]; [`GalleryError::InvalidParameter`] for `dim == 0`.
    pub fn create(dir: &Path, model: &ModelId, dim: usize, options: GalleryOptions) -> Result<Gallery, GalleryError> {
        if dim == 0 {
            return Err(GalleryError::InvalidParameter { name: "dim", message: "must be > 0".into() });
        }
        if dir.exists() && !dir.is_dir() {
            return Err(GalleryError::InvalidParameter { name: "gallery", message: format!("{} exists and is not a directory", dir.display()) });
        }
        std::fs::create_dir_all(dir).map_err(|source| GalleryError::Io { path: dir.to_path_buf(), source })?;
        let path = dir.join(STORE_FILE);
        if path.exists() {
            return Err(GalleryError::AlreadyExists { path: dir.to_path_buf() });
        }
        let _ = std::fs::remove_file(dir.join(INDEX_FILE));
        Store::create(&path, model, dim, options.store_crops, options.index.storage)?;
        Self::open(dir, options)
    }

    /// Opens the gallery in `dir`, loading its index or rebuilding it from the store when the
    /// file is missing, unreadable or not at the store's generation.
    ///
    /// # Errors
    /// [`GalleryError::NotAGallery`] when `dir` holds no store (or is not a directory);
    /// [`GalleryError::Unreadable`] when the store file is not a database or cannot be read;
    /// [`GalleryError::SchemaVersion`]; [`GalleryError::Store`].
    pub fn open(dir: &Path, options: GalleryOptions) -> Result<Gallery, GalleryError> {
        let path = dir.join(STORE_FILE);
        if !path.is_file() {
            let detail = if dir.is_file() {
                "it is a file; a gallery is a directory".to_string()
            } else if !dir.exists() {
                "no such directory".to_string()
            } else if path.exists() {
                format!("{STORE_FILE} is not a file")
            } else {
                format!("no {STORE_FILE}")
            };
            return Err(GalleryError::NotAGallery { path: dir.to_path_buf(), detail });
        }
        let store = Store::open(&path)?;
        let meta = store.meta()?;
        // The storage is the gallery's, chosen at creation; the other parameters are the caller's.
        let params = IndexParams { storage: meta.index_storage, ..options.index.clone() };
        let source = match params.storage {
            VectorStorage::I8 => Some(Arc::new(store::EmbeddingReader::open(&path)?) as Arc<dyn ExactVectors>),
            VectorStorage::F32 | VectorStorage::F16 => None,
        };
        let (live, index_origin) = Self::load_live(&store, &meta, dir, &params, &source)?;
        Ok(Gallery { dir: dir.to_path_buf(), meta, params, source, store: Mutex::new(store), live: RwLock::new(live), index_origin })
    }

    fn load_live(store: &Store, meta: &GalleryMeta, dir: &Path, params: &IndexParams, source: &Option<Arc<dyn ExactVectors>>) -> Result<(Live, String), GalleryError> {
        let generation = store.generation()?;
        let names: HashMap<i64, String> = store.names()?.into_iter().collect();
        let mut face_identity = HashMap::new();
        let mut templates = None;
        // The file is trusted only when its tag is the store's generation, its dimension the
        // gallery's and its keys exactly the store's faces.
        let loaded = match VectorIndex::load(&dir.join(INDEX_FILE), params.clone()) {
            Ok((_, tag)) if tag != generation.to_string() => Err(format!("index file is at generation {tag}, the store at {generation}")),
            Ok((index, _)) if index.dim() != meta.dim => Err(format!("index file has dimension {}, the gallery {}", index.dim(), meta.dim)),
            Ok((mut index, _)) => {
                if let Some(s) = source {
                    index.set_exact_source(s.clone());
                }
                Ok(index)
            }
            Err(e) => Err(e.to_string()),
        };
        let (index, origin) = match loaded {
            Ok(index) => {
                let mut ids = Vec::new();
                store.for_each_face_identity(|f, i| ids.push((f, i)))?;
                // Every face indexed, except damaged rows (which a rebuild leaves out too).
                let missing: Vec<i64> = ids.iter().filter(|(f, _)| !index.contains(*f as u64)).map(|(f, _)| *f).collect();
                let only_damaged_missing = index.len() + missing.len() == ids.len()
                    && missing.iter().all(|f| matches!(store.embedding(*f), Ok(Some(v)) if damaged_embedding(&v, meta.dim).is_some()));
                if only_damaged_missing {
                    face_identity.extend(ids.into_iter().map(|(f, i)| (f as u64, i)));
                    (index, "loaded".to_string())
                } else {
                    let (index, fi, t) = Self::build_index(store, meta, params, source)?;
                    face_identity = fi;
                    templates = Some(t);
                    (index, "rebuilt: the index file's keys differ from the store's faces".to_string())
                }
            }
            Err(reason) => {
                let (index, fi, t) = Self::build_index(store, meta, params, source)?;
                face_identity = fi;
                templates = Some(t);
                (index, format!("rebuilt: {reason}"))
            }
        };
        let dirty = origin != "loaded";
        Ok((Live { generation, index, face_identity, names, templates, dirty }, origin))
    }

    /// Reads every embedding: the face index, face → identity, and the mean templates.
    fn build_index(
        store: &Store,
        meta: &GalleryMeta,
        params: &IndexParams,
        source: &Option<Arc<dyn ExactVectors>>,
    ) -> Result<(VectorIndex, HashMap<u64, i64>, Templates), GalleryError> {
        let mut index = VectorIndex::new(meta.dim, params.clone())?;
        if let Some(s) = source {
            index.set_exact_source(s.clone());
        }
        let mut fi = HashMap::new();
        let mut sums: HashMap<i64, (Vec<f32>, usize)> = HashMap::new();
        let mut err = None;
        store.for_each_embedding(|face, identity, v| {
            // A damaged row (wrong length, non-finite values: never written by faceprint) is
            // left out of the index, so the gallery still opens; `check` reports it.
            if err.is_none() && damaged_embedding(&v, meta.dim).is_none() {
                if let Err(e) = index.add(face as u64, &v) {
                    err = Some(e);
                }
                fi.insert(face as u64, identity);
                let e = sums.entry(identity).or_insert_with(|| (vec![0.0; v.len()], 0));
                for (a, b) in e.0.iter_mut().zip(&v) {
                    *a += b;
                }
                e.1 += 1;
            }
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        Ok((index, fi, Templates::from_sums(sums, meta.dim, params)?))
    }

    /// Brings the live state to the store's current generation (after another process wrote).
    fn sync(&self) -> Result<(), GalleryError> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let g = store.generation()?;
        if self.live.read().unwrap_or_else(|e| e.into_inner()).generation == g {
            return Ok(());
        }
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let names = store.names()?.into_iter().collect();
        let (index, fi, t) = Self::build_index(&store, &self.meta, &self.params, &self.source)?;
        *live = Live { generation: g, index, face_identity: fi, names, templates: Some(t), dirty: true };
        Ok(())
    }

    /// Runs a write transaction and applies `apply` to the live state when it was in step
    /// before; otherwise marks the live state stale so the next search rebuilds it.
    fn write<T>(
        &self,
        change: impl FnOnce(&rusqlite::Transaction, &Path) -> Result<T, GalleryError>,
        apply: impl FnOnce(&mut Live, &T) -> Result<(), GalleryError>,
    ) -> Result<T, GalleryError> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let path = store.path().to_path_buf();
        let (out, g) = store.write(|tx| change(tx, &path))?;
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        if live.generation.checked_add(1) == Some(g) {
            if let Err(e) = apply(&mut live, &out) {
                live.generation = u64::MAX; // committed but not applied: rebuild on next use
                return Err(e);
            }
            live.generation = g;
        } else {
            live.generation = u64::MAX;
        }
        live.dirty = true;
        Ok(out)
    }

    /// The gallery directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model whose embeddings the gallery holds.
    pub fn model_id(&self) -> &ModelId {
        &self.meta.model
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.meta.dim
    }

    /// The gallery's facts, with the current generation.
    ///
    /// # Errors
    /// [`GalleryError::Store`].
    pub fn meta(&self) -> Result<GalleryMeta, GalleryError> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).meta()
    }

    /// Changes the search index's vector storage: records it in the store (for every later
    /// open) and rebuilds the index with it from the stored embeddings, then saves it. Takes
    /// about as long as enrolling every face again into the index (at 1,000,000 faces, tens of
    /// CPU-minutes: BENCHMARKS.md); nothing is re-embedded and no identity changes. A no-op when
    /// the gallery already has `storage`. Other processes with the gallery open (a running
    /// service) keep their storage until they reopen it.
    ///
    /// # Errors
    /// [`GalleryError::Store`]; [`GalleryError::Index`] when the rebuilt index cannot be saved
    /// (the storage is recorded and in use all the same).
    pub fn set_index_storage(&mut self, storage: VectorStorage) -> Result<(), GalleryError> {
        if self.meta.index_storage == storage && self.params.storage == storage {
            return Ok(()); // already so: nothing to record or rebuild
        }
        let store = self.store.get_mut().unwrap_or_else(|e| e.into_inner());
        let path = store.path().to_path_buf();
        let (_, generation) = store.write(|tx| {
            tx.execute_batch("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)").map_err(store::tx_err(&path))?;
            tx.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('index_storage', ?1)", [storage.to_string()]).map_err(store::tx_err(&path))?;
            Ok(())
        })?;
        self.meta.index_storage = storage;
        self.params.storage = storage;
        self.source = match storage {
            VectorStorage::I8 => Some(Arc::new(store::EmbeddingReader::open(&path)?) as Arc<dyn ExactVectors>),
            VectorStorage::F32 | VectorStorage::F16 => None,
        };
        let names = store.names()?.into_iter().collect();
        let (index, face_identity, t) = Self::build_index(store, &self.meta, &self.params, &self.source)?;
        *self.live.get_mut().unwrap_or_else(|e| e.into_inner()) = Live { generation, index, face_identity, names, templates: Some(t), dirty: true };
        self.index_origin = format!("rebuilt: storage changed to {storage}");
        self.save_index()
    }

    /// How the index was obtained when the gallery was opened: `loaded`, or `rebuilt: <why>`.
    pub fn index_origin(&self) -> &str {
        &self.index_origin
    }

    /// Number of faces in the live index.
    pub fn len(&self) -> usize {
        self.live.read().unwrap_or_else(|e| e.into_inner()).index.len()
    }

    /// True when no face is enrolled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an identity. `metadata` must be a JSON object (`null` is stored as `{}`).
    ///
    /// # Errors
    /// [`GalleryError::InvalidName`], [`GalleryError::DuplicateName`],
    /// [`GalleryError::InvalidParameter`] for metadata that is not an object; [`GalleryError::Store`].
    pub fn add_identity(&self, name: &str, metadata: serde_json::Value) -> Result<IdentityRecord, GalleryError> {
        let id = self.add_identities(vec![(name.to_string(), metadata)])?[0];
        self.identity_record(&IdentityRef::Id(id))
    }

    /// Adds several identities in one transaction (all or none); returns their ids in input order.
    ///
    /// # Errors
    /// As [`Self::add_identity`], for the first bad one (nothing is added).
    pub fn add_identities(&self, identities: Vec<(String, serde_json::Value)>) -> Result<Vec<i64>, GalleryError> {
        let mut checked = Vec::with_capacity(identities.len());
        for (name, metadata) in identities {
            let name = check_name(&name)?;
            let metadata = match metadata {
                serde_json::Value::Null => serde_json::json!({}),
                m @ serde_json::Value::Object(_) => m,
                _ => return Err(GalleryError::InvalidParameter { name: "metadata", message: "must be a JSON object".into() }),
            };
            checked.push((name, metadata));
        }
        self.write(
            |tx, path| checked.iter().map(|(name, metadata)| store::insert_identity(tx, path, name, metadata)).collect::<Result<Vec<i64>, _>>(),
            |live, ids| {
                for (id, (name, _)) in ids.iter().zip(&checked) {
                    live.names.insert(*id, name.clone());
                }
                Ok(())
            },
        )
    }

    /// All identities, by name, with their face counts.
    ///
    /// # Errors
    /// [`GalleryError::Store`].
    pub fn identities(&self) -> Result<Vec<IdentityRecord>, GalleryError> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).identities()
    }

    fn identity_record(&self, r: &IdentityRef) -> Result<IdentityRecord, GalleryError> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let found = match r {
            IdentityRef::Id(id) => store.identity_by_id(*id)?,
            IdentityRef::Name(n) => store.identity_by_name(n.trim())?,
        };
        found.ok_or_else(|| GalleryError::UnknownIdentity { identity: r.to_string() })
    }

    /// Looks up an identity; `None` when absent.
    ///
    /// # Errors
    /// [`GalleryError::Store`].
    pub fn find_identity(&self, r: &IdentityRef) -> Result<Option<IdentityRecord>, GalleryError> {
        match self.identity_record(r) {
            Ok(i) => Ok(Some(i)),
            Err(GalleryError::UnknownIdentity { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An identity with its faces.
    ///
    /// # Errors
    /// [`GalleryError::UnknownIdentity`], [`GalleryError::Store`].
    pub fn identity(&self, r: &IdentityRef) -> Result<IdentityDetail, GalleryError> {
        let identity = self.identity_record(r)?;
        let faces = self.store.lock().unwrap_or_else(|e| e.into_inner()).faces_of(identity.id)?;
        Ok(IdentityDetail { identity, faces })
    }

    /// One face record.
    ///
    /// # Errors
    /// [`GalleryError::UnknownFace`], [`GalleryError::Store`].
    pub fn face(&self, id: i64) -> Result<FaceRecord, GalleryError> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).face(id)?.ok_or(GalleryError::UnknownFace { face: id })
    }

    /// The stored aligned crop of a face (112×112 RGB), if one was stored.
    ///
    /// # Errors
    /// [`GalleryError::UnknownFace`], [`GalleryError::Store`]; [`GalleryError::InvalidParameter`]
    /// when the stored PNG cannot be decoded.
    pub fn crop(&self, face: i64) -> Result<Option<RgbImage>, GalleryError> {
        self.face(face)?;
        let png = self.store.lock().unwrap_or_else(|e| e.into_inner()).crop(face)?;
        match png {
            None => Ok(None),
            Some(b) => image::load_from_memory_with_format(&b, image::ImageFormat::Png)
                .map(|i| Some(i.to_rgb8()))
                .map_err(|e| GalleryError::InvalidParameter { name: "crop", message: format!("stored crop of face {face} is unreadable: {e}") }),
        }
    }

    /// True when a face from the image with content hash `sha256` is enrolled under `identity`.
    ///
    /// # Errors
    /// [`GalleryError::Store`].
    pub fn has_source(&self, identity: i64, sha256: &str) -> Result<bool, GalleryError> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).has_source(identity, sha256)
    }

    /// Renames an identity.
    ///
    /// # Errors
    /// [`GalleryError::UnknownIdentity`], [`GalleryError::InvalidName`], [`GalleryError::DuplicateName`].
    pub fn rename(&self, r: &IdentityRef, new_name: &str) -> Result<IdentityRecord, GalleryError> {
        let new_name = check_name(new_name)?;
        let id = self.identity_record(r)?.id;
        self.write(
            |tx, path| {
                let taken: Option<i64> =
                    rusqlite::OptionalExtension::optional(tx.query_row("SELECT id FROM identities WHERE name = ?1", [&new_name], |r| r.get(0)))
                        .map_err(store::tx_err(path))?;
                if taken.is_some_and(|t| t != id) {
                    return Err(GalleryError::DuplicateName { name: new_name.clone() });
                }
                let n = tx.execute("UPDATE identities SET name = ?1 WHERE id = ?2", rusqlite::params![new_name, id]).map_err(store::tx_err(path))?;
                if n == 0 {
                    return Err(GalleryError::UnknownIdentity { identity: r.to_string() });
                }
                Ok(())
            },
            |live, _| {
                live.names.insert(id, new_name.clone());
                Ok(())
            },
        )?;
        self.identity_record(&IdentityRef::Id(id))
    }

    /// Moves every face of `from` to `into` and removes `from`. Returns the merged identity.
    ///
    /// # Errors
    /// [`GalleryError::UnknownIdentity`]; [`GalleryError::InvalidParameter`] when both are the same.
    pub fn merge(&self, from: &IdentityRef, into: &IdentityRef) -> Result<IdentityRecord, GalleryError> {
        let (f, t) = (self.identity_record(from)?.id, self.identity_record(into)?.id);
        if f == t {
            return Err(GalleryError::InvalidParameter { name: "merge", message: "an identity cannot be merged into itself".into() });
        }
        self.write(
            |tx, path| {
                let moved = store::face_ids_of(tx, path, f)?;
                tx.execute("UPDATE faces SET identity_id = ?1 WHERE identity_id = ?2", [t, f]).map_err(store::tx_err(path))?;
                tx.execute("DELETE FROM identities WHERE id = ?1", [f]).map_err(store::tx_err(path))?;
                Ok(moved)
            },
            |live, moved| {
                for m in moved {
                    live.face_identity.insert(*m as u64, t);
                }
                live.names.remove(&f);
                if let Some(tp) = &mut live.templates {
                    tp.merge(f, t)?;
                }
                Ok(())
            },
        )?;
        self.identity_record(&IdentityRef::Id(t))
    }

    /// Removes an identity and all its faces. Returns the removed face ids.
    ///
    /// # Errors
    /// [`GalleryError::UnknownIdentity`], [`GalleryError::Store`].
    pub fn remove_identity(&self, r: &IdentityRef) -> Result<Vec<i64>, GalleryError> {
        self.remove_identities(std::slice::from_ref(r))
    }

    /// Removes several identities with all their faces in one transaction (all or none).
    /// Returns the removed face ids.
    ///
    /// # Errors
    /// [`GalleryError::UnknownIdentity`] for the first unknown one (nothing is removed);
    /// [`GalleryError::Store`].
    pub fn remove_identities(&self, refs: &[IdentityRef]) -> Result<Vec<i64>, GalleryError> {
        let mut ids = Vec::with_capacity(refs.len());
        for r in refs {
            ids.push(self.identity_record(r)?.id);
        }
        let removed = self.write(
            |tx, path| {
                let mut all = Vec::new();
                for id in &ids {
                    let faces = store::face_ids_of(tx, path, *id)?;
                    tx.execute("DELETE FROM faces WHERE identity_id = ?1", [id]).map_err(store::tx_err(path))?;
                    if tx.execute("DELETE FROM identities WHERE id = ?1", [id]).map_err(store::tx_err(path))? == 0 {
                        return Err(GalleryError::UnknownIdentity { identity: format!("id:{id}") });
                    }
                    all.push((*id, faces));
                }
                Ok(all)
            },
            |live, all| {
                for (id, faces) in all {
                    for f in faces {
                        live.index.remove(*f as u64);
                        live.face_identity.remove(&(*f as u64));
                    }
                    live.names.remove(id);
                    if let Some(t) = &mut live.templates {
                        t.sums.remove(id);
                        t.index.remove(*id as u64);
                    }
                }
                Ok(())
            },
        )?;
        Ok(removed.into_iter().flat_map(|(_, f)| f).collect())
    }

    /// Removes one face. Its identity stays, even with no face left.
    ///
    /// # Errors
    /// [`GalleryError::UnknownFace`], [`GalleryError::Store`].
    pub fn remove_face(&self, face: i64) -> Result<(), GalleryError> {
        let rec = self.face(face)?;
        self.write(
            |tx, path| {
                let v = store::embedding_of(tx, path, face)?;
                let n = tx.execute("DELETE FROM faces WHERE id = ?1", [face]).map_err(store::tx_err(path))?;
                if n == 0 {
                    return Err(GalleryError::UnknownFace { face });
                }
                Ok(v)
            },
            |live, v| {
                live.index.remove(face as u64);
                live.face_identity.remove(&(face as u64));
                // A damaged row was never in the templates.
                if let (Some(t), None) = (&mut live.templates, damaged_embedding(v, self.meta.dim)) {
                    t.subtract(rec.identity, v)?;
                }
                Ok(())
            },
        )
        .map(|_| ())
    }

    fn check_embedding(&self, e: &Embedding) -> Result<(), GalleryError> {
        if e.model != self.meta.model {
            return Err(GalleryError::ModelMismatch { gallery: self.meta.model.clone(), given: e.model.clone() });
        }
        if e.vector.len() != self.meta.dim {
            return Err(GalleryError::DimensionMismatch { expected: self.meta.dim, received: e.vector.len() });
        }
        if e.vector.iter().any(|x| !x.is_finite()) {
            return Err(GalleryError::BadEmbedding { detail: "non-finite components".into() });
        }
        let norm = e.vector.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        if (norm - 1.0).abs() > NORM_TOLERANCE as f64 {
            return Err(GalleryError::BadEmbedding { detail: format!("L2 norm {norm:.6}, expected 1 ± {NORM_TOLERANCE}") });
        }
        Ok(())
    }

    /// Enrolls a face under an existing identity; returns the new face id. The face is durable
    /// (committed and fsynced) when this returns, and searchable at once.
    ///
    /// # Errors
    /// [`GalleryError::ModelMismatch`], [`GalleryError::DimensionMismatch`],
    /// [`GalleryError::BadEmbedding`], [`GalleryError::UnknownIdentity`], [`GalleryError::Store`].
    pub fn enroll(&self, identity: &IdentityRef, face: NewFace) -> Result<i64, GalleryError> {
        let id = self.identity_record(identity)?.id;
        Ok(self.enroll_many(vec![(id, face)])?[0])
    }

    /// Enrolls many faces (identity ids) in one transaction: all or none. Returns the face ids in
    /// input order.
    ///
    /// # Errors
    /// As [`Self::enroll`]; nothing is enrolled when any face fails.
    pub fn enroll_many(&self, faces: Vec<(i64, NewFace)>) -> Result<Vec<i64>, GalleryError> {
        let mut crops = Vec::with_capacity(faces.len());
        for (_, f) in &faces {
            self.check_embedding(&f.embedding)?;
            crops.push(f.crop.as_ref().map(png_bytes).transpose()?);
        }
        self.write(
            |tx, path| {
                let mut ids = Vec::with_capacity(faces.len());
                for ((identity, f), crop) in faces.iter().zip(&crops) {
                    if !store::identity_exists(tx, path, *identity)? {
                        return Err(GalleryError::UnknownIdentity { identity: format!("id:{identity}") });
                    }
                    ids.push(store::insert_face(
                        tx,
                        path,
                        &FaceInsert {
                            identity: *identity,
                            vector: &f.embedding.vector,
                            model: &f.embedding.model,
                            image_sha256: &f.image_sha256,
                            bbox: f.bbox,
                            quality: f.quality.as_ref(),
                            crop_png: crop.as_deref(),
                        },
                    )?);
                }
                Ok(ids)
            },
            |live, ids| {
                for (id, (identity, f)) in ids.iter().zip(&faces) {
                    live.index.add(*id as u64, &f.embedding.vector)?;
                    live.face_identity.insert(*id as u64, *identity);
                    if let Some(t) = &mut live.templates {
                        t.add(*identity, &f.embedding.vector)?;
                    }
                }
                Ok(())
            },
        )
    }

    /// Enrolls faces under `target` in one transaction, with the enrollment rules the
    /// pipeline-level calls and the CLI use (unlike the low-level [`Self::enroll_many`]):
    /// - **Atomic identity creation.** Under [`EnrollTarget::GetOrCreate`] a missing identity is
    ///   created in the same transaction as its first face, and only when at least one face is
    ///   added: a failed enrollment never leaves an identity without faces behind.
    /// - **No duplicate faces.** A face whose source photo (same non-empty `image_sha256`) is
    ///   already enrolled with an overlapping box (IoU ≥ [`DUPLICATE_FACE_IOU`]) is not added
    ///   again: under the same identity it is [`FaceOutcome::AlreadyEnrolled`] (a no-op), under
    ///   another one [`FaceOutcome::EnrolledElsewhere`] (refused; the other faces still go in).
    ///   Duplicates within `faces` count the same way.
    ///
    /// Returns one outcome per face, in input order.
    ///
    /// # Errors
    /// [`GalleryError::UnknownIdentity`] for [`EnrollTarget::Existing`];
    /// [`GalleryError::InvalidName`] / [`GalleryError::InvalidParameter`] for a bad new name or
    /// metadata; as [`Self::enroll`] for a bad embedding (nothing is written then).
    pub fn enroll_faces(&self, target: &EnrollTarget, faces: Vec<NewFace>) -> Result<EnrollCommit, GalleryError> {
        let mut crops = Vec::with_capacity(faces.len());
        for f in &faces {
            self.check_embedding(&f.embedding)?;
            crops.push(f.crop.as_ref().map(png_bytes).transpose()?);
        }
        let (existing, new) = match target {
            EnrollTarget::Existing(r) => (Some(self.identity_record(r)?.id), None),
            EnrollTarget::GetOrCreate { name, metadata } => {
                let metadata = match metadata {
                    serde_json::Value::Null => serde_json::json!({}),
                    m @ serde_json::Value::Object(_) => m.clone(),
                    _ => return Err(GalleryError::InvalidParameter { name: "metadata", message: "must be a JSON object".into() }),
                };
                (None, Some((check_name(name)?, metadata)))
            }
        };
        struct Done {
            identity: Option<i64>,
            created: Option<String>,
            outcomes: Vec<FaceOutcome>,
        }
        let done = self.write(
            |tx, path| {
                let mut identity = match (&existing, &new) {
                    (Some(id), _) => {
                        if !store::identity_exists(tx, path, *id)? {
                            return Err(GalleryError::UnknownIdentity { identity: format!("id:{id}") });
                        }
                        Some(*id)
                    }
                    (None, Some((name, _))) => store::identity_id_by_name(tx, path, name)?,
                    (None, None) => None,
                };
                let mut created = None;
                let mut outcomes = Vec::with_capacity(faces.len());
                // Faces added by this call: (sha, box, face id), for duplicates within the batch.
                let mut added: Vec<(&str, [f32; 4], i64)> = Vec::new();
                for (f, crop) in faces.iter().zip(&crops) {
                    if !f.image_sha256.is_empty() {
                        let earlier = added.iter().find(|(sha, b, _)| *sha == f.image_sha256 && crate::detect::box_iou(b, &f.bbox) >= DUPLICATE_FACE_IOU);
                        if let Some((_, _, face_id)) = earlier {
                            outcomes.push(FaceOutcome::AlreadyEnrolled { face_id: *face_id });
                            continue;
                        }
                        let enrolled = store::faces_from_source(tx, path, &f.image_sha256)?;
                        if let Some(e) = enrolled.into_iter().find(|e| crate::detect::box_iou(&e.bbox, &f.bbox) >= DUPLICATE_FACE_IOU) {
                            outcomes.push(if Some(e.identity) == identity {
                                FaceOutcome::AlreadyEnrolled { face_id: e.face }
                            } else {
                                FaceOutcome::EnrolledElsewhere { face_id: e.face, identity_id: e.identity, identity: e.name }
                            });
                            continue;
                        }
                    }
                    let id = match identity {
                        Some(id) => id,
                        None => {
                            let Some((name, metadata)) = &new else {
                                return Err(GalleryError::InvalidParameter { name: "identity", message: "no identity to enroll under".into() });
                            };
                            let id = store::insert_identity(tx, path, name, metadata)?;
                            created = Some(name.clone());
                            identity = Some(id);
                            id
                        }
                    };
                    let face_id = store::insert_face(
                        tx,
                        path,
                        &FaceInsert {
                            identity: id,
                            vector: &f.embedding.vector,
                            model: &f.embedding.model,
                            image_sha256: &f.image_sha256,
                            bbox: f.bbox,
                            quality: f.quality.as_ref(),
                            crop_png: crop.as_deref(),
                        },
                    )?;
                    added.push((&f.image_sha256, f.bbox, face_id));
                    outcomes.push(FaceOutcome::Added { face_id });
                }
                Ok(Done { identity, created, outcomes })
            },
            |live, done| {
                if let (Some(id), Some(name)) = (done.identity, &done.created) {
                    live.names.insert(id, name.clone());
                }
                for (o, f) in done.outcomes.iter().zip(&faces) {
                    if let (FaceOutcome::Added { face_id }, Some(identity)) = (o, done.identity) {
                        live.index.add(*face_id as u64, &f.embedding.vector)?;
                        live.face_identity.insert(*face_id as u64, identity);
                        if let Some(t) = &mut live.templates {
                            t.add(identity, &f.embedding.vector)?;
                        }
                    }
                }
                Ok(())
            },
        )?;
        let identity = done.identity.map(|id| self.identity_record(&IdentityRef::Id(id))).transpose()?;
        Ok(EnrollCommit { identity, created: done.created.is_some(), outcomes: done.outcomes })
    }

    /// Whether enrollment stores crops by default (set at creation).
    pub fn stores_crops(&self) -> bool {
        self.meta.store_crops
    }

    /// The decision threshold that keeps the false-positive identification rate of this gallery
    /// at or under `fpir` (in (0, 1), e.g. [`DEFAULT_FPIR`]), from the model's `calibration`:
    /// [`crate::calibrate::Calibration::threshold_for_identification`] with N = the number of
    /// identities with at least one face for [`Scoring::Mean`] (one template each) or of faces for
    /// [`Scoring::Max`].
    ///
    /// # Errors
    /// [`crate::Error::Calibration`] when no calibrated operating point is strict enough for this
    /// many templates (pass an explicit threshold then); [`crate::Error::Gallery`] when the store
    /// cannot be read.
    pub fn threshold_for_fpir(&self, calibration: &crate::calibrate::Calibration, fpir: f64, scoring: Scoring) -> crate::Result<Threshold> {
        let n = match scoring {
            // Identities without a face are never returned, so they are not comparisons.
            Scoring::Mean => self.identities()?.iter().filter(|i| i.faces > 0).count(),
            Scoring::Max => self.len(),
        };
        Ok(calibration.threshold_for_identification(fpir, n)?)
    }

    /// 1:N open-set identification of one probe embedding (see the module docs for the
    /// decision rule).
    ///
    /// # Errors
    /// [`GalleryError::ModelMismatch`], [`GalleryError::DimensionMismatch`],
    /// [`GalleryError::BadEmbedding`], [`GalleryError::InvalidParameter`], [`GalleryError::Store`]
    /// (when the index must be rebuilt after another process's change).
    pub fn identify(&self, probe: &Embedding, params: &IdentifyParams) -> Result<Identification, GalleryError> {
        params.validate()?;
        self.check_embedding(probe)?;
        self.sync()?;
        if params.scoring == Scoring::Mean {
            self.ensure_templates()?;
        }
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let want = params.top_k.max(2);
        let q = &probe.vector;
        let mut ranked: Vec<Match> = Vec::new();
        match params.scoring {
            Scoring::Max => {
                let n = live.index.len();
                let mut k = want.saturating_mul(4).min(n);
                while k > 0 {
                    let hits = live.index.search(q, k, params.search)?;
                    ranked.clear();
                    let mut seen = std::collections::HashSet::new();
                    for h in &hits {
                        let Some(&identity) = live.face_identity.get(&h.key) else { continue };
                        if seen.insert(identity) {
                            ranked.push(Match {
                                identity_id: identity,
                                name: live.names.get(&identity).cloned().unwrap_or_default(),
                                similarity: h.similarity.clamp(-1.0, 1.0),
                                face: Some(h.key as i64),
                            });
                        }
                    }
                    if ranked.len() >= want || k >= n {
                        break;
                    }
                    k = k.saturating_mul(4).min(n);
                }
            }
            Scoring::Mean => {
                if let Some(t) = &live.templates {
                    // The template index ranks (in f16 for an i8 gallery); similarities come from
                    // the f32 sums, normalized as the f32 index stores them, so every storage
                    // reports the same number. A few extra candidates let near-ties re-order.
                    let extra = if self.params.storage == VectorStorage::F32 { 0 } else { TEMPLATE_RESCORE_EXTRA };
                    for h in t.index.search(q, (want + extra).min(t.index.len()), params.search)? {
                        let identity = h.key as i64;
                        let similarity = match t.sums.get(&identity) {
                            Some((sum, _)) => crate::compare::dot(&normalized(sum), q),
                            None => h.similarity,
                        };
                        ranked.push(Match {
                            identity_id: identity,
                            name: live.names.get(&identity).cloned().unwrap_or_default(),
                            similarity: similarity.clamp(-1.0, 1.0),
                            face: None,
                        });
                    }
                    ranked.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then(a.identity_id.cmp(&b.identity_id)));
                    ranked.truncate(want);
                }
            }
        }
        Ok(decide(ranked, params))
    }

    fn ensure_templates(&self) -> Result<(), GalleryError> {
        if self.live.read().unwrap_or_else(|e| e.into_inner()).templates.is_some() {
            return Ok(());
        }
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        if live.templates.is_some() {
            return Ok(());
        }
        let mut sums: HashMap<i64, (Vec<f32>, usize)> = HashMap::new();
        store.for_each_embedding(|_, identity, v| {
            if damaged_embedding(&v, self.meta.dim).is_some() {
                return;
            }
            let e = sums.entry(identity).or_insert_with(|| (vec![0.0; v.len()], 0));
            for (a, b) in e.0.iter_mut().zip(&v) {
                *a += b;
            }
            e.1 += 1;
        })?;
        let t = Templates::from_sums(sums, self.meta.dim, &self.params)?;
        live.templates = Some(t);
        Ok(())
    }

    /// Writes the live index to `index.bin` with the current generation as its tag, if it
    /// changed since it was loaded or last saved. Also done when the gallery is dropped.
    ///
    /// # Errors
    /// [`GalleryError::Index`] when the file cannot be written (the gallery stays correct: the
    /// index is rebuilt from the store on the next open).
    pub fn save_index(&self) -> Result<(), GalleryError> {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        if !live.dirty || live.generation == u64::MAX {
            return Ok(());
        }
        live.index.save(&self.dir.join(INDEX_FILE), &live.generation.to_string())?;
        live.dirty = false;
        Ok(())
    }

    /// Every enrolled face with its stored embedding (length [`Self::dim`], unit norm), in face
    /// id order, read from the store (no image is needed). For clustering the gallery
    /// ([`crate::cluster::gallery`]).
    ///
    /// # Errors
    /// [`GalleryError::Store`].
    pub fn faces_with_embeddings(&self) -> Result<Vec<(FaceRecord, Vec<f32>)>, GalleryError> {
        let mut out = Vec::new();
        self.store.lock().unwrap_or_else(|e| e.into_inner()).for_each_face_with_embedding(|f, v| out.push((f, v)))?;
        Ok(out)
    }

    /// Checks the store (`PRAGMA integrity_check`, foreign keys) and that the live index holds
    /// exactly the store's faces.
    ///
    /// # Errors
    /// [`GalleryError::Store`] when the checks cannot run.
    pub fn check(&self) -> Result<CheckReport, GalleryError> {
        self.sync()?;
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut store_problems = store.integrity_check()?;
        let mut damaged = std::collections::HashSet::new();
        store.for_each_embedding(|f, _, v| {
            if let Some(why) = damaged_embedding(&v, self.meta.dim) {
                damaged.insert(f);
                store_problems.push(format!("face {f}: damaged stored embedding ({why}); it is not searched: remove it with `faceprint gallery remove --face {f}`"));
            }
        })?;
        if !damaged.is_empty() {
            // An index loaded from its file may still hold such a face (changed behind
            // faceprint's back): take it out, as a rebuild would.
            let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
            for f in &damaged {
                if live.index.remove(*f as u64) {
                    live.dirty = true;
                }
            }
        }
        let identities = store.identities()?.len();
        let generation = store.generation()?;
        let mut in_store = Vec::new();
        store.for_each_face_identity(|f, i| in_store.push((f, i)))?;
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let mut index_problems = Vec::new();
        for (f, i) in in_store.iter().filter(|(f, _)| !damaged.contains(f)) {
            if !live.index.contains(*f as u64) {
                index_problems.push(format!("face {f} is in the store but not in the index"));
            } else if live.face_identity.get(&(*f as u64)) != Some(i) {
                index_problems.push(format!("face {f} belongs to identity {i} in the store but not in the index"));
            }
        }
        if live.index.len() + damaged.len() != in_store.len() {
            index_problems.push(format!("the index holds {} faces, the store {} ({} damaged)", live.index.len(), in_store.len(), damaged.len()));
        }
        Ok(CheckReport { store_problems, index_problems, identities, faces: in_store.len(), generation, index_origin: self.index_origin.clone() })
    }

    // ---------------------------------------------------------------------------------------
    // Pipeline-level helpers.

    /// Picks the face to enroll from an analysed image (with embeddings), applies the
    /// enrollment gate ([`enrollment_gate`] of the analyzer's quality gate with
    /// [`ENROLLMENT_MIN_DET_SCORE`]), and builds the [`NewFace`]. `image` is the decoded image,
    /// needed only when `store_crop` (the crop is re-aligned from it).
    ///
    /// # Errors
    /// [`GalleryError::IncompleteImage`] for a truncated file; [`crate::Error::NoFace`];
    /// [`GalleryError::SeveralFaces`] under [`FacePolicy::Only`];
    /// [`crate::Error::FaceIndex`]; [`crate::Error::Quality`] (measure `score` when the face is
    /// below the enrollment's minimum detection score).
    pub fn face_to_enroll(
        analyzer: &FaceAnalyzer,
        analysed: &AnalyzedImage,
        image_sha256: &str,
        policy: FacePolicy,
        image: Option<&RgbImage>,
    ) -> crate::Result<(NewFace, usize)> {
        Self::face_to_enroll_gated(analyzer, analysed, image_sha256, policy, image, ENROLLMENT_MIN_DET_SCORE)
    }

    /// [`Self::face_to_enroll`] with another minimum detection score for enrollment (in [0, 1];
    /// the analyzer's own gate minimum applies when it is higher).
    ///
    /// # Errors
    /// As [`Self::face_to_enroll`].
    pub fn face_to_enroll_gated(
        analyzer: &FaceAnalyzer,
        analysed: &AnalyzedImage,
        image_sha256: &str,
        policy: FacePolicy,
        image: Option<&RgbImage>,
        min_det_score: f32,
    ) -> crate::Result<(NewFace, usize)> {
        let path = &analysed.path;
        if analysed.truncated {
            return Err(GalleryError::IncompleteImage { path: path.clone() }.into());
        }
        if analysed.faces.is_empty() {
            return Err(crate::Error::NoFace { path: path.clone(), score_threshold: analyzer.config().detector_params.score_threshold });
        }
        let index = match policy {
            FacePolicy::Only if analysed.faces.len() > 1 => {
                return Err(GalleryError::SeveralFaces { path: path.clone(), count: analysed.faces.len() }.into())
            }
            FacePolicy::Only | FacePolicy::Largest => 0,
            FacePolicy::Index(i) => i,
        };
        let face = analysed.faces.get(index).ok_or(crate::Error::FaceIndex { path: path.clone(), index, count: analysed.faces.len() })?;
        enrollment_gate(&analyzer.config().quality_gate, min_det_score)
            .check(&face.quality)
            .map_err(|failure| crate::Error::Quality { path: path.clone(), face: index, failure })?;
        let embedding = face.embedding.clone().ok_or(crate::Error::InvalidParameter { name: "embed", message: "the image was analysed without embeddings".into() })?;
        let crop = image.and_then(|img| crate::align::align_face(img, &face.detection.landmarks)).map(|a| a.image);
        Ok((NewFace { embedding, image_sha256: image_sha256.to_string(), bbox: face.detection.bbox, quality: Some(face.quality), crop }, index))
    }

    /// Enrolls one face of the photo at `path` under `identity` (which must exist): decodes,
    /// detects, embeds (no lock held), picks the face by `opts.faces`, applies the enrollment
    /// gate, and stores the crop when `opts.store_crop` (default: the gallery's setting). The same
    /// face enrolled again under the same identity is a no-op
    /// ([`EnrolledFace::already_enrolled`]); see [`Self::enroll_images`].
    ///
    /// # Errors
    /// [`crate::Error::Image`] naming the file; [`crate::Error::NoFace`]; [`crate::Error::Quality`];
    /// [`crate::Error::FaceIndex`]; [`crate::Error::Gallery`] ([`GalleryError::SeveralFaces`],
    /// [`GalleryError::DuplicateFace`], [`GalleryError::ModelMismatch`],
    /// [`GalleryError::UnknownIdentity`], …).
    pub fn enroll_image(&self, analyzer: &FaceAnalyzer, identity: &IdentityRef, path: &Path, opts: &EnrollImageOptions) -> crate::Result<EnrolledFace> {
        let r = self.enroll_images(analyzer, &EnrollTarget::Existing(identity.clone()), &[path.to_path_buf()], opts)?;
        r.results.into_iter().next().map(|(_, r)| r).unwrap_or_else(|| Err(crate::Error::InvalidParameter { name: "images", message: "no result".into() }))
    }

    /// Enrolls one face from each photo of `paths` under `target`, in one transaction
    /// ([`Self::enroll_faces`]): every photo is decoded, analysed and gated first (no lock held);
    /// a photo that fails (unreadable, no face, several faces, below the enrollment gate, a face
    /// another identity already has) is reported in its result and the others are enrolled. A new
    /// identity ([`EnrollTarget::GetOrCreate`]) is created only when at least one face is
    /// enrolled. Decoding warnings (a truncated JPEG) are returned with each photo.
    ///
    /// # Errors
    /// Only failures that concern the whole call: [`GalleryError::ModelMismatch`] (the analyzer's
    /// model is not the gallery's), [`GalleryError::UnknownIdentity`], a bad name or metadata,
    /// [`GalleryError::Store`], inference errors.
    pub fn enroll_images(&self, analyzer: &FaceAnalyzer, target: &EnrollTarget, paths: &[PathBuf], opts: &EnrollImageOptions) -> crate::Result<ImagesEnrollment> {
        let model = analyzer.model_id()?;
        if *model != self.meta.model {
            return Err(GalleryError::ModelMismatch { gallery: self.meta.model.clone(), given: model.clone() }.into());
        }
        if let EnrollTarget::Existing(r) = target {
            self.identity_record(r)?;
        }
        if !(0.0..=1.0).contains(&opts.min_det_score) {
            return Err(GalleryError::InvalidParameter { name: "min_det_score", message: format!("{} is outside [0, 1]", opts.min_det_score) }.into());
        }
        let store_crop = opts.store_crop.unwrap_or(self.meta.store_crops);
        let mut results: Vec<(PathBuf, Option<crate::Result<EnrolledFace>>)> = Vec::with_capacity(paths.len());
        let mut faces = Vec::new();
        let mut pending = Vec::new(); // (index in results, EnrolledFace without id)
        for path in paths {
            let prepared = (|| -> crate::Result<(NewFace, EnrolledFace)> {
                let image_err = |source| crate::Error::Image { path: path.to_path_buf(), source };
                if path.is_dir() {
                    return Err(image_err(crate::imageio::ImageError::Io(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory, not an image file"))));
                }
                let bytes = std::fs::read(path).map_err(|e| image_err(crate::imageio::ImageError::Io(e)))?;
                let sha = hex::encode(Sha256::digest(&bytes));
                let img = crate::imageio::decode(&bytes, &analyzer.config().decode).map_err(image_err)?;
                let analysed = analyzer.analyze(path, &img, true)?;
                let (face, index) = Self::face_to_enroll_gated(analyzer, &analysed, &sha, opts.faces, store_crop.then_some(&img.image), opts.min_det_score)?;
                let e = EnrolledFace {
                    path: path.to_path_buf(),
                    face_id: 0,
                    identity_id: 0,
                    face: index,
                    faces_in_image: analysed.faces.len(),
                    bbox: face.bbox,
                    image_sha256: sha,
                    already_enrolled: false,
                    warnings: analysed.warnings.clone(),
                };
                Ok((face, e))
            })();
            match prepared {
                Ok((face, e)) => {
                    faces.push(face);
                    pending.push((results.len(), e));
                    results.push((path.to_path_buf(), None));
                }
                Err(e) => results.push((path.to_path_buf(), Some(Err(e)))),
            }
        }
        let commit = self.enroll_faces(target, faces)?;
        let identity_id = commit.identity.as_ref().map_or(0, |i| i.id);
        for ((slot, mut e), outcome) in pending.into_iter().zip(&commit.outcomes) {
            e.identity_id = identity_id;
            results[slot].1 = Some(match outcome {
                FaceOutcome::Added { face_id } => Ok(EnrolledFace { face_id: *face_id, ..e }),
                FaceOutcome::AlreadyEnrolled { face_id } => Ok(EnrolledFace { face_id: *face_id, already_enrolled: true, ..e }),
                FaceOutcome::EnrolledElsewhere { face_id, identity_id, identity } => {
                    Err(GalleryError::DuplicateFace { path: e.path.clone(), face: *face_id, identity_id: *identity_id, identity: identity.clone() }.into())
                }
            });
        }
        let results = results
            .into_iter()
            .map(|(p, r)| {
                let r = r.unwrap_or_else(|| Err(crate::Error::InvalidParameter { name: "images", message: "no outcome".into() }));
                (p, r)
            })
            .collect();
        Ok(ImagesEnrollment { identity: commit.identity, created: commit.created, results })
    }

    /// Identifies every face of an analysed image (with embeddings). Faces failing the
    /// analyzer's quality gate are listed as refused and not searched.
    ///
    /// # Errors
    /// As [`Self::identify`].
    pub fn identify_analysed(&self, analyzer: &FaceAnalyzer, analysed: &AnalyzedImage, params: &IdentifyParams) -> Result<ImageIdentification, GalleryError> {
        let mut faces = Vec::with_capacity(analysed.faces.len());
        for f in &analysed.faces {
            let refused = analyzer.config().quality_gate.check(&f.quality).err().map(|q| q.to_string());
            let identification = match (&refused, &f.embedding) {
                (None, Some(e)) => Some(self.identify(e, params)?),
                _ => None,
            };
            let weak_detection = f.detection.score < ENROLLMENT_MIN_DET_SCORE;
            faces.push(FaceIdentification { face: f.index, bbox: f.detection.bbox, score: f.detection.score, weak_detection, refused, identification });
        }
        Ok(ImageIdentification { path: analysed.path.clone(), width: analysed.width, height: analysed.height, warnings: analysed.warnings.clone(), faces })
    }

    /// Identifies every face of the photo at `path` (inference runs before any lock is taken).
    ///
    /// # Errors
    /// [`crate::Error::Image`] naming the file; [`crate::Error::Gallery`] as [`Self::identify`];
    /// inference errors.
    pub fn identify_image(&self, analyzer: &FaceAnalyzer, path: &Path, params: &IdentifyParams) -> crate::Result<ImageIdentification> {
        let model = analyzer.model_id()?;
        if *model != self.meta.model {
            return Err(GalleryError::ModelMismatch { gallery: self.meta.model.clone(), given: model.clone() }.into());
        }
        let analysed = analyzer.analyze_file(path, true)?;
        Ok(self.identify_analysed(analyzer, &analysed, params)?)
    }

    /// Re-embeds every stored crop with `analyzer`'s recogniser into a new gallery at `dir`
    /// (created for the analyzer's model, with crops stored), keeping every identity (name,
    /// metadata) and each face's source hash, box and quality. Faces without a stored crop are
    /// skipped and counted.
    ///
    /// # Errors
    /// [`GalleryError::InvalidParameter`] when no face has a stored crop (nothing to re-embed:
    /// re-enroll from the photos instead); [`GalleryError::AlreadyExists`]; inference errors.
    pub fn reembed_into(&self, analyzer: &FaceAnalyzer, dir: &Path, mut progress: impl FnMut(usize, usize)) -> crate::Result<ReembedReport> {
        let rec = analyzer.recognizer().ok_or(crate::Error::InvalidParameter { name: "load_recognizer", message: "the analyzer was loaded without a recogniser".into() })?;
        let identities = self.identities()?;
        let mut details = Vec::with_capacity(identities.len());
        let (mut with_crop, mut total) = (0usize, 0usize);
        for i in &identities {
            let d = self.identity(&IdentityRef::Id(i.id))?;
            total += d.faces.len();
            with_crop += d.faces.iter().filter(|f| f.has_crop).count();
            details.push(d);
        }
        if with_crop == 0 {
            return Err(GalleryError::InvalidParameter {
                name: "reembed",
                message: format!(
                    "gallery {} stores no face crops ({total} faces enrolled without them), so its faces cannot be re-embedded; \
                     re-enroll from the photos (`faceprint index` / `faceprint enroll`), and create galleries with --store-crops to allow this later",
                    self.dir.display()
                ),
            }
            .into());
        }
        let new = Gallery::create(dir, rec.model_id(), rec.dim(), GalleryOptions { index: self.params.clone(), store_crops: true })?;
        let (mut done, mut reembedded, mut skipped) = (0usize, 0usize, 0usize);
        for d in &details {
            let ni = new.add_identity(&d.identity.name, d.identity.metadata.clone())?;
            let mut batch = Vec::new();
            for f in &d.faces {
                done += 1;
                progress(done, total);
                match self.crop(f.id)? {
                    Some(crop) => {
                        let e = rec.embed(&[&crop])?.into_iter().next().ok_or(crate::Error::Inference { model: rec.model_id().to_string(), message: "no output".into() })?;
                        batch.push((ni.id, NewFace { embedding: e, image_sha256: f.image_sha256.clone(), bbox: f.bbox, quality: f.quality, crop: Some(crop) }));
                    }
                    None => skipped += 1,
                }
            }
            reembedded += batch.len();
            new.enroll_many(batch)?;
        }
        new.save_index().ok();
        Ok(ReembedReport { identities: details.len(), faces: reembedded, skipped_without_crop: skipped, model: rec.model_id().clone() })
    }
}

impl Drop for Gallery {
    fn drop(&mut self) {
        // Best effort: a failure only means a rebuild on the next open.
        let _ = self.save_index();
    }
}

impl Templates {
    /// The templates' index: the faces' parameters, but f16 for an i8 gallery, since the
    /// templates (means) are not in the store to rescore from (one per identity, far fewer
    /// vectors than faces).
    fn from_sums(sums: HashMap<i64, (Vec<f32>, usize)>, dim: usize, params: &IndexParams) -> Result<Templates, GalleryError> {
        let storage = match params.storage {
            VectorStorage::I8 => VectorStorage::F16,
            s => s,
        };
        let mut index = VectorIndex::new(dim, IndexParams { storage, ..params.clone() })?;
        for (identity, (sum, _)) in &sums {
            index.add(*identity as u64, &normalized(sum))?;
        }
        Ok(Templates { sums, index })
    }

    fn add(&mut self, identity: i64, v: &[f32]) -> Result<(), GalleryError> {
        let e = self.sums.entry(identity).or_insert_with(|| (vec![0.0; v.len()], 0));
        for (a, b) in e.0.iter_mut().zip(v) {
            *a += b;
        }
        e.1 += 1;
        self.index.add(identity as u64, &normalized(&e.0))?;
        Ok(())
    }

    fn merge(&mut self, from: i64, into: i64) -> Result<(), GalleryError> {
        let Some((sum, n)) = self.sums.remove(&from) else { return Ok(()) };
        self.index.remove(from as u64);
        let e = self.sums.entry(into).or_insert_with(|| (vec![0.0; sum.len()], 0));
        for (a, b) in e.0.iter_mut().zip(&sum) {
            *a += b;
        }
        e.1 += n;
        self.index.add(into as u64, &normalized(&e.0))?;
        Ok(())
    }

    fn subtract(&mut self, identity: i64, v: &[f32]) -> Result<(), GalleryError> {
        if let Some(e) = self.sums.get_mut(&identity) {
            for (a, b) in e.0.iter_mut().zip(v) {
                *a -= b;
            }
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                self.sums.remove(&identity);
                self.index.remove(identity as u64);
            } else {
                self.index.add(identity as u64, &normalized(&e.0))?;
            }
        }
        Ok(())
    }
}

/// Applies the decision rule (module docs) to identities ranked best first.
pub fn decide(mut ranked: Vec<Match>, params: &IdentifyParams) -> Identification {
    let t = params.threshold.similarity;
    let decision = match (ranked.first(), ranked.get(1)) {
        (None, _) => Decision::Unknown,
        (Some(b), _) if b.similarity < t => Decision::Unknown,
        (Some(b), Some(s)) if s.similarity >= t && b.similarity - s.similarity < params.ambiguity_margin => Decision::Ambiguous,
        _ => Decision::Match,
    };
    ranked.truncate(params.top_k);
    Identification { decision, matches: ranked, threshold: params.threshold.clone(), ambiguity_margin: params.ambiguity_margin, scoring: params.scoring }
}

/// Which face of a photo enrollment takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FacePolicy {
    /// The photo must show exactly one face; several faces are refused
    /// ([`GalleryError::SeveralFaces`]). The default.
    #[default]
    Only,
    /// The largest face (index 0).
    Largest,
    /// The face with this index (0-based, largest first).
    Index(usize),
}

/// Options of [`Gallery::enroll_image`] and [`Gallery::enroll_images`].
#[derive(Debug, Clone)]
pub struct EnrollImageOptions {
    /// Which face to take. Default [`FacePolicy::Only`].
    pub faces: FacePolicy,
    /// Store the aligned crop; `None` (default) follows the gallery's setting.
    pub store_crop: Option<bool>,
    /// Minimum detection score of an enrolled face, in [0, 1]. Default
    /// [`ENROLLMENT_MIN_DET_SCORE`]; it does not apply when the analyzer's quality gate is off
    /// ([`QualityGate::off`]).
    pub min_det_score: f32,
}

impl Default for EnrollImageOptions {
    fn default() -> Self {
        EnrollImageOptions { faces: FacePolicy::default(), store_crop: None, min_det_score: ENROLLMENT_MIN_DET_SCORE }
    }
}

/// The quality gate of enrollment: `gate` with its minimum detection score raised to
/// `min_det_score` ([`ENROLLMENT_MIN_DET_SCORE`] by default). A gate that is off
/// ([`QualityGate::off`], `--no-quality-gate`) stays off.
pub fn enrollment_gate(gate: &QualityGate, min_det_score: f32) -> QualityGate {
    if *gate == QualityGate::off() {
        return *gate;
    }
    QualityGate { min_score: gate.min_score.max(min_det_score), ..*gate }
}

/// Which identity [`Gallery::enroll_faces`] / [`Gallery::enroll_images`] enroll under.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrollTarget {
    /// An existing identity; [`GalleryError::UnknownIdentity`] when absent.
    Existing(IdentityRef),
    /// The identity with this name; when there is none, it is created with `metadata` (a JSON
    /// object, or null) in the same transaction as its first face, and only if a face is added.
    GetOrCreate {
        /// The name.
        name: String,
        /// Metadata of a new identity (ignored when it exists).
        metadata: serde_json::Value,
    },
}

/// What [`Gallery::enroll_faces`] did with one face.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FaceOutcome {
    /// Added as a new face.
    Added {
        /// The new face id.
        face_id: i64,
    },
    /// The same face (same photo content, overlapping box) is already enrolled under this
    /// identity: nothing was added.
    AlreadyEnrolled {
        /// The enrolled face.
        face_id: i64,
    },
    /// The same face is enrolled under another identity: refused.
    EnrolledElsewhere {
        /// The enrolled face.
        face_id: i64,
        /// Its identity's id.
        identity_id: i64,
        /// Its identity's name.
        identity: String,
    },
}

/// The result of [`Gallery::enroll_faces`].
#[derive(Debug, Clone, Serialize)]
pub struct EnrollCommit {
    /// The identity, or `None` when it did not exist and nothing was added (it was not created).
    pub identity: Option<IdentityRecord>,
    /// True when the identity was created by this call.
    pub created: bool,
    /// One outcome per face, in input order.
    pub outcomes: Vec<FaceOutcome>,
}

/// The result of [`Gallery::enroll_images`].
#[derive(Debug)]
pub struct ImagesEnrollment {
    /// The identity, or `None` when it did not exist and no photo could be enrolled.
    pub identity: Option<IdentityRecord>,
    /// True when the identity was created by this call.
    pub created: bool,
    /// Per photo, in input order: the enrolled face, or why the photo was not enrolled.
    pub results: Vec<(PathBuf, crate::Result<EnrolledFace>)>,
}

/// A face enrolled from a photo.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolledFace {
    /// The photo.
    pub path: PathBuf,
    /// New face id.
    pub face_id: i64,
    /// The identity.
    pub identity_id: i64,
    /// Index of the face used in the photo (largest first).
    pub face: usize,
    /// Faces found in the photo.
    pub faces_in_image: usize,
    /// Its box, pixels.
    pub bbox: [f32; 4],
    /// SHA-256 of the photo's bytes.
    pub image_sha256: String,
    /// True when this face was already enrolled under the identity (nothing was added;
    /// `face_id` is the existing face).
    pub already_enrolled: bool,
    /// Decoding and analysis warnings (e.g. a truncated JPEG whose missing part was filled in).
    pub warnings: Vec<String>,
}

/// Identification of one face of a probe photo.
#[derive(Debug, Clone, Serialize)]
pub struct FaceIdentification {
    /// Face index in the photo (largest first).
    pub face: usize,
    /// Box `[x1, y1, x2, y2]`, pixels.
    pub bbox: [f32; 4],
    /// Detection score.
    pub score: f32,
    /// True when the detection score is below [`ENROLLMENT_MIN_DET_SCORE`]: the face is still
    /// searched (probes keep the detector's threshold), but it may not be a human face (a dog's
    /// face scored 0.643), so treat a match with care.
    pub weak_detection: bool,
    /// Why the face was not searched (quality gate), if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The identification, when searched.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub identification: Option<Identification>,
}

/// Identification of every face of a probe photo.
#[derive(Debug, Clone, Serialize)]
pub struct ImageIdentification {
    /// The photo.
    pub path: PathBuf,
    /// Oriented width, pixels.
    pub width: u32,
    /// Oriented height, pixels.
    pub height: u32,
    /// Decoding and analysis warnings (e.g. a truncated JPEG whose missing part was filled in).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Its faces, largest first.
    pub faces: Vec<FaceIdentification>,
}

/// What [`Gallery::reembed_into`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ReembedReport {
    /// Identities copied.
    pub identities: usize,
    /// Faces re-embedded.
    pub faces: usize,
    /// Faces skipped because no crop was stored.
    pub skipped_without_crop: usize,
    /// The new gallery's model.
    pub model: ModelId,
}
