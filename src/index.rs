//! Nearest-neighbour search over L2-normalized embeddings: an exact path (brute-force dot
//! products) and an approximate one (HNSW), behind one [`VectorIndex`].
//!
//! Similarity is cosine similarity in [-1, 1] (the dot product of unit vectors). Keys are the
//! caller's `u64` ids (for the gallery: face row ids; `u64::MAX` is reserved). The index only
//! knows vectors and keys; identities, models and thresholds live in the gallery.
//!
//! # Exact and approximate search
//!
//! * [`SearchMode::Exact`] compares the query with every stored vector (SIMD dot products) and
//!   returns the true top k. Cost grows linearly with the number of vectors.
//! * [`SearchMode::Approximate`] walks an HNSW graph (Malkov & Yashunin, "Efficient and robust
//!   approximate nearest neighbor search using Hierarchical Navigable Small World graphs", IEEE
//!   TPAMI 2018). Cost grows roughly with log n; a true neighbour may be missed (recall@10 ≥ 0.99
//!   at the defaults on 15,000 face-like 512-d vectors in `tests/index.rs`, 0.988 (f16) and 0.993
//!   (i8) on 1,000,000 LFW-like ones in BENCHMARKS.md; i.i.d. uniform vectors, the worst case, need a much larger
//!   `ef_search`).
//! * [`SearchMode::Auto`] (the default) searches exactly while the index holds fewer than
//!   [`IndexParams::exact_below`] vectors, and approximately above.
//!
//! Whatever the path, the similarities reported are recomputed from the stored vector and the
//! f32 query (rescoring), so both paths report the same number for the same pair. With f16
//! storage both paths rank by f16 scores first, take k + 8 candidates, rescore them and keep the
//! best k. With i8 storage they take k + 16 candidates by i8 cosine and rescore them from the
//! exact vectors, which the caller keeps ([`ExactVectors`]).
//!
//! # Storage and accuracy
//!
//! [`VectorStorage::F32`] keeps 4 bytes per component: reported similarities equal an f64
//! computation within 1e-5 (tested). [`VectorStorage::F16`] keeps 2 bytes per component (IEEE
//! half, round to nearest): each component of a unit vector is off by at most 2⁻¹¹ of itself, so a
//! rescored similarity (f32 query · f16 vector, f32 accumulation) is off by at most
//! 2⁻¹¹ · Σ|qᵢ·xᵢ| ≤ 2⁻¹¹ ≈ 4.9e-4 (Cauchy–Schwarz) plus f32 rounding; measured worst case over
//! the test's queries is far below that (BENCHMARKS.md). The HNSW walk itself uses the f16 query
//! and vectors; only the ordering of near-ties (closer than ~1e-3) can differ from f32.
//! Memory, measured with F16 at 1,000,000 × 512-d: 1,361 MiB (VmRSS) with M = 16 and 1,483 MiB
//! with M = 32, the default (1,024 B of vector per entry, the rest graph and bookkeeping).
//!
//! [`VectorStorage::I8`] keeps 1 byte per component and not the vectors themselves: each vector
//! is scaled so that its largest |component| is 127 and rounded (our own quantization; usearch's
//! default cast scales by the L2 norm and truncates, using about ±25 of the ±127 levels for a
//! 512-d unit vector), and the engine compares codes by cosine, which ignores the per-vector
//! scale. The i8 scores only pick candidates; the similarities reported are dot products of the
//! f32 query with the exact vectors read from the caller's [`ExactVectors`] (for the gallery,
//! its SQLite store), so they are exactly those of f32 storage (tested within 1e-5 of f64).
//! What i8 can change is which vectors become candidates: a true neighbour is lost only if more
//! than 16 others outrank it in i8 cosine (tested: the exact path returned the f64 top 20 on
//! every query of 15,000 face-like vectors). An index without a source refuses to search
//! ([`IndexError::NoExactSource`]) rather than report i8 similarities. Its file holds the codes
//! and the graph only. Measurements (BENCHMARKS.md "i8 storage"): at 200,000 × 512-d, M 32, the
//! engine held 253 MB against 387 MB for f16 and answered in about half the time at the same ef;
//! at 1,000,000 LFW-like vectors, M 32, this index held 1,008 MiB (VmRSS) and answered a top-10
//! query in 1.7–1.8 ms p50 at ef 64 with recall@10 0.993, against 1,483 MiB, 2.6–2.8 ms and
//! 0.988 for f16.
//!
//! # Why usearch
//!
//! The HNSW graph and the vector storage are the `usearch` crate (Unum's USearch, C++ core behind
//! a `cxx` binding, Apache-2.0, actively released). Compared with the pure-Rust `hnsw_rs` and
//! `instant-distance`, it is the one that has everything this index needs at once: real removal
//! (removed nodes are tombstoned, never returned, and their slots reused by later inserts),
//! f16/i8 storage of the vectors with SIMD distance kernels for them (runtime dispatch up to
//! AVX-512), an exact brute-force search over the same storage (so vectors are held once, not
//! twice — what makes 1M × 512 fit in 1.5 GB), thread-safe concurrent searches, and serialization
//! to a buffer
//! that this module wraps in its own checked file format. It builds here with the system C++
//! compiler and needs no download at build time.
//!
//! # Files
//!
//! [`VectorIndex::save`] writes (little-endian): magic `FPVECIDX`, format version (u32), header
//! length (u32), dim (u32), storage (u8), connectivity (u32), count (u64), tag length (u32) and
//! tag (UTF-8), then `count` keys (u64), the usearch blob length (u64) and blob, and last a CRC-32
//! of everything before it. It goes to a temporary file in the same directory, is fsynced, renamed
//! over the target and the directory fsynced. [`VectorIndex::load`] checks every length against
//! the file size before allocating, the checksum, the version and that the blob holds exactly the
//! listed keys; anything else is an [`IndexError::File`] naming the path and the problem.
//!
//! Neither saving nor loading holds the serialized index in memory: usearch streams its blob to
//! (or from) a temporary file of its own beside the index file (on loading, in the temporary
//! folder when that one is read-only), which is copied into (or out of) ours in 4 MiB pieces
//! with the checksum computed on the way. Memory while loading is the index's own, not twice it
//! (BENCHMARKS.md "Nearest-neighbour index"); the temporary file needs as much disk as the blob.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// What can go wrong in the index. Variants carry the facts a caller needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A vector of the wrong length.
    #[error("wrong vector dimension: expected {expected}, received {received}")]
    WrongDimension {
        /// The index's dimension.
        expected: usize,
        /// The vector's length.
        received: usize,
    },
    /// A vector with NaN or infinite components.
    #[error("vector for key {key} has non-finite components")]
    NonFinite {
        /// The key (0 for a query).
        key: u64,
    },
    /// A parameter outside its range.
    #[error("invalid index parameter {name}: {message}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An index file that cannot be read or written, or that is damaged.
    #[error("index file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An index with [`VectorStorage::I8`] was searched (or asked for a vector) before
    /// [`VectorIndex::set_exact_source`] gave it the exact vectors to rescore with.
    #[error("i8 storage reports exact similarities only: set an exact vector source (VectorIndex::set_exact_source) before searching")]
    NoExactSource,
    /// The exact vector source failed, or lacks a key the index holds.
    #[error("exact vector source, key {key}: {message}")]
    ExactSource {
        /// The key being read.
        key: u64,
        /// What went wrong.
        message: String,
    },
    /// The HNSW library reported a failure (out of memory, for instance).
    #[error("nearest-neighbour engine failed during {operation}: {message}")]
    Engine {
        /// What the index was doing.
        operation: &'static str,
        /// The library's message.
        message: String,
    },
}

/// How vectors are held in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorStorage {
    /// 4 bytes per component; exact.
    #[serde(alias = "F32")]
    F32,
    /// 2 bytes per component (IEEE half); similarity error below 1e-3 (bound 2⁻¹¹ ≈ 4.9e-4 for unit
    /// vectors, see the module docs). Components must lie within ±65504 (the f16 range).
    #[serde(alias = "F16")]
    F16,
    /// 1 byte per component: each vector scaled so that its largest |component| is 127 and
    /// rounded to the nearest integer, compared by cosine. The i8 scores only choose
    /// candidates; the similarities reported are recomputed from the exact vectors, which the
    /// index does not hold: the caller provides them ([`ExactVectors`],
    /// [`VectorIndex::set_exact_source`]; the gallery reads them from its store). See the
    /// module docs for accuracy and memory.
    #[serde(alias = "I8")]
    I8,
}

impl std::fmt::Display for VectorStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VectorStorage::F32 => "f32",
            VectorStorage::F16 => "f16",
            VectorStorage::I8 => "i8",
        })
    }
}

impl std::str::FromStr for VectorStorage {
    type Err = String;

    /// `f32`, `f16` or `i8` (as [`std::fmt::Display`] writes them).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(VectorStorage::F32),
            "f16" => Ok(VectorStorage::F16),
            "i8" => Ok(VectorStorage::I8),
            o => Err(format!("unknown vector storage {o:?}: expected f32, f16 or i8")),
        }
    }
}

impl VectorStorage {
    fn code(self) -> u8 {
        match self {
            VectorStorage::F32 => 0,
            VectorStorage::F16 => 1,
            VectorStorage::I8 => 2,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(VectorStorage::F32),
            1 => Some(VectorStorage::F16),
            2 => Some(VectorStorage::I8),
            _ => None,
        }
    }

    fn scalar(self) -> usearch::ScalarKind {
        match self {
            VectorStorage::F32 => usearch::ScalarKind::F32,
            VectorStorage::F16 => usearch::ScalarKind::F16,
            VectorStorage::I8 => usearch::ScalarKind::I8,
        }
    }

    /// The engine's metric: inner product for float storage (unit vectors), cosine for i8,
    /// whose codes are scaled per vector and so are not unit length.
    fn metric(self) -> usearch::MetricKind {
        match self {
            VectorStorage::F32 | VectorStorage::F16 => usearch::MetricKind::IP,
            VectorStorage::I8 => usearch::MetricKind::Cos,
        }
    }

    /// Candidates fetched beyond k for rescoring, so that a neighbour whose quantized score put
    /// it just outside the top k moves back in once rescored.
    fn rescore_extra(self) -> usize {
        match self {
            VectorStorage::F32 => 0,
            VectorStorage::F16 => F16_RESCORE_EXTRA,
            VectorStorage::I8 => I8_RESCORE_EXTRA,
        }
    }
}

/// Exact vectors for rescoring the candidates of an index with [`VectorStorage::I8`]: whatever
/// holds them (a database, a file) outside the index's memory. Called from the searching
/// threads, so it must be `Send + Sync`.
pub trait ExactVectors: Send + Sync {
    /// Writes the exact vector stored under `key` into `out` (length: the index's dimension,
    /// L2-normalized as it was added). Returns `Ok(false)` when the source no longer has `key`
    /// (a row deleted since: the candidate is dropped), `Err(message)` when it cannot be read.
    fn read(&self, key: u64, out: &mut [f32]) -> Result<bool, String>;
}

/// `v` as i8 codes for [`VectorStorage::I8`]: scaled so that the largest |component| is 127 and
/// rounded to nearest (the engine's own cast scales by the L2 norm and truncates, which for a
/// 512-d unit vector uses about ±25 of the ±127 levels). Cosine ignores the scale.
fn quantize_i8(v: &[f32]) -> Vec<i8> {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return vec![0; v.len()];
    }
    let scale = 127.0 / max;
    v.iter().map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8).collect()
}

/// Index parameters. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexParams {
    /// [`SearchMode::Auto`] searches exactly below this many vectors. Default 5,000: measured on
    /// 512-d f16 vectors (BENCHMARKS.md), brute force and HNSW cost the same near 2,000 vectors
    /// (≈ 0.2 ms per top-10 query); at 5,000 brute force takes ≈ 0.45 ms against ≈ 0.27 ms, and
    /// the gap then grows linearly, so below 5,000 exact answers cost almost nothing extra.
    pub exact_below: usize,
    /// HNSW links per node (M), 2..=256. Default 32: on 1,000,000 LFW-like 512-d f16 vectors
    /// (BENCHMARKS.md "1,000,000 vectors, LFW-like data") M = 32 at ef 64 found recall@10 0.988
    /// at p50 2.6 ms, where M = 16 needed ef 128 for 0.973 at 2.7 ms (same machine state); it
    /// costs about 120 MiB more per million vectors and twice the insert time.
    pub connectivity: usize,
    /// HNSW candidate list size while building (efConstruction), ≥ 1. Default 128.
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (ef), ≥ 1, raised to the number of candidates
    /// wanted when that is larger. Default 64: with M = 32 on 1,000,000 LFW-like vectors
    /// recall@10 was 0.952 at ef 32, 0.978 at 48, 0.988 at 64 and 0.991 at 96 (BENCHMARKS.md);
    /// smaller indexes do better at the same ef.
    pub ef_search: usize,
    /// In-memory vector format. Default [`VectorStorage::F32`] (exact, no source needed);
    /// [`VectorStorage::I8`] is the one that meets 1,000,000 vectors in ≤ 1.5 GB at ≤ 2 ms
    /// (module docs) but needs an [`ExactVectors`] source.
    pub storage: VectorStorage,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams { exact_below: 5_000, connectivity: 32, ef_construction: 128, ef_search: 64, storage: VectorStorage::F32 }
    }
}

impl IndexParams {
    fn validate(&self) -> Result<(), IndexError> {
        if !(2..=256).contains(&self.connectivity) {
            return Err(IndexError::InvalidParameter { name: "connectivity", message: format!("{} is outside 2..=256", self.connectivity) });
        }
        if self.ef_construction == 0 {
            return Err(IndexError::InvalidParameter { name: "ef_construction", message: "must be ≥ 1".into() });
        }
        if self.ef_search == 0 {
            return Err(IndexError::InvalidParameter { name: "ef_search", message: "must be ≥ 1".into() });
        }
        Ok(())
    }
}

/// Which search path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Exact below [`IndexParams::exact_below`] vectors, approximate above. The default.
    #[default]
    Auto,
    /// Brute force over every vector.
    Exact,
    /// HNSW.
    Approximate,
}

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor {
    /// The caller's key.
    pub key: u64,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// Bounds the number of threads inside usearch at once: usearch keeps one search/insert context
/// per reserved thread and fails a call when none is free, so callers wait here instead.
struct ContextPool {
    free: Mutex<usize>,
    returned: Condvar,
}

struct ContextGuard<'a>(&'a ContextPool);

impl ContextPool {
    fn new(n: usize) -> Self {
        ContextPool { free: Mutex::new(n), returned: Condvar::new() }
    }

    fn acquire(&self) -> ContextGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        ContextGuard(self)
    }
}

impl Drop for ContextGuard<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.returned.notify_one();
    }
}

/// Number of usearch thread contexts reserved: enough for every core plus concurrent callers
/// (a context costs a few kilobytes). More simultaneous callers wait for a free one.
fn engine_threads() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (cores * 4).max(16)
}

fn worker_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Extra candidates fetched beyond k for rescoring when vectors are stored as f16, so that a
/// neighbour whose f16 score put it just outside the top k can move back in after rescoring.
const F16_RESCORE_EXTRA: usize = 8;

/// Extra candidates beyond k for i8 storage (see [`VectorStorage::rescore_extra`]): i8 codes
/// round each component to 1/127 of the vector's largest one (about 1/30 of a typical 512-d
/// component), far coarser than f16's relative 2⁻¹¹, so more near-ties are re-ordered by
/// rescoring. 16 returned the f64 top 20 on every query of `tests/index.rs`
/// (`i8_storage_rescores_exactly`).
const I8_RESCORE_EXTRA: usize = 16;

const MAGIC: &[u8; 8] = b"FPVECIDX";
const FORMAT_VERSION: u32 = 1;
/// Reserved by usearch to mark removed slots.
const RESERVED_KEY: u64 = u64::MAX;

/// Vectors with keys, searchable exactly or approximately. Not internally synchronised for
/// writes: wrap it in an `RwLock` to search from many threads while one thread adds. Searches
/// through `&self` may run concurrently.
pub struct VectorIndex {
    dim: usize,
    params: IndexParams,
    keys: Vec<u64>,
    slot: HashMap<u64, usize>,
    engine: usearch::Index,
    pool: ContextPool,
    /// Where [`VectorStorage::I8`] rescoring reads exact vectors.
    exact: Option<std::sync::Arc<dyn ExactVectors>>,
}

fn engine_err<E: std::fmt::Display>(operation: &'static str) -> impl Fn(E) -> IndexError {
    move |e| IndexError::Engine { operation, message: e.to_string() }
}

fn new_engine(dim: usize, params: &IndexParams) -> Result<usearch::Index, IndexError> {
    let options = usearch::IndexOptions {
        dimensions: dim,
        metric: params.storage.metric(),
        quantization: params.storage.scalar(),
        connectivity: params.connectivity,
        expansion_add: params.ef_construction,
        expansion_search: params.ef_search,
        multi: false,
    };
    usearch::Index::new(&options).map_err(engine_err("creating the index"))
}

fn by_similarity(a: &Neighbor, b: &Neighbor) -> std::cmp::Ordering {
    b.similarity.total_cmp(&a.similarity).then(a.key.cmp(&b.key))
}

impl VectorIndex {
    /// An empty index for `dim`-dimensional vectors.
    ///
    /// Errors: [`IndexError::InvalidParameter`] for `dim == 0` or a parameter outside its range,
    /// [`IndexError::Engine`] if the HNSW library cannot allocate.
    pub fn new(dim: usize, params: IndexParams) -> Result<Self, IndexError> {
        if dim == 0 {
            return Err(IndexError::InvalidParameter { name: "dim", message: "must be > 0".into() });
        }
        params.validate()?;
        let engine = new_engine(dim, &params)?;
        let threads = engine_threads();
        engine.reserve_capacity_and_threads(1024, threads).map_err(engine_err("reserving memory"))?;
        Ok(VectorIndex { dim, params, keys: Vec::new(), slot: HashMap::new(), engine, pool: ContextPool::new(threads), exact: None })
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The parameters in force.
    pub fn params(&self) -> &IndexParams {
        &self.params
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when `key` is in the index.
    pub fn contains(&self, key: u64) -> bool {
        self.slot.contains_key(&key)
    }

    /// All keys, in no particular order (the order of [`Self::knn_graph`]'s rows).
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// Changes the search-time candidate list size (HNSW ef, ≥ 1) without rebuilding.
    ///
    /// Errors: [`IndexError::InvalidParameter`] for 0.
    pub fn set_ef_search(&mut self, ef: usize) -> Result<(), IndexError> {
        if ef == 0 {
            return Err(IndexError::InvalidParameter { name: "ef_search", message: "must be ≥ 1".into() });
        }
        self.params.ef_search = ef;
        self.engine.change_expansion_search(ef);
        Ok(())
    }

    /// Gives an index with [`VectorStorage::I8`] the exact vectors its searches rescore with
    /// (required before searching it; ignored by float storage, which rescores from its own
    /// vectors). The source must hold every key added, under the same vector.
    pub fn set_exact_source(&mut self, source: std::sync::Arc<dyn ExactVectors>) {
        self.exact = Some(source);
    }

    /// Changes [`IndexParams::exact_below`].
    pub fn set_exact_below(&mut self, n: usize) {
        self.params.exact_below = n;
    }

    /// Bytes the HNSW library holds (vectors and graph), as it reports them.
    pub fn memory_usage(&self) -> usize {
        self.engine.memory_usage()
    }

    fn check(&self, key: u64, v: &[f32]) -> Result<(), IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::WrongDimension { expected: self.dim, received: v.len() });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::NonFinite { key });
        }
        if self.params.storage == VectorStorage::F16 && v.iter().any(|x| x.abs() > 65504.0) {
            return Err(IndexError::InvalidParameter {
                name: "vector",
                message: format!("vector for key {key} has components beyond ±65504, which f16 storage cannot hold"),
            });
        }
        Ok(())
    }

    fn check_key(key: u64) -> Result<(), IndexError> {
        if key == RESERVED_KEY {
            return Err(IndexError::InvalidParameter { name: "key", message: format!("{RESERVED_KEY} (u64::MAX) is reserved") });
        }
        Ok(())
    }

    /// Makes room for `additional` more vectors, so that a bulk load does not grow the index
    /// step by step.
    ///
    /// Errors: [`IndexError::Engine`] when the memory cannot be allocated.
    pub fn reserve(&mut self, additional: usize) -> Result<(), IndexError> {
        let want = self.keys.len().saturating_add(additional);
        if want > self.engine.capacity() {
            self.engine.reserve_capacity_and_threads(want, engine_threads()).map_err(engine_err("reserving memory"))?;
        }
        Ok(())
    }

    fn grow_for(&mut self, extra: usize) -> Result<(), IndexError> {
        let want = self.keys.len() + extra;
        let cap = self.engine.capacity();
        if want > cap {
            let target = want.max(cap.saturating_mul(2)).max(1024);
            self.engine.reserve_capacity_and_threads(target, engine_threads()).map_err(engine_err("reserving memory"))?;
        }
        Ok(())
    }

    /// Adds `vector` (length [`Self::dim`], L2-normalized by the caller) under `key`, replacing
    /// any vector already under that key. Also inserts it into the HNSW graph (about 0.1–1 ms at
    /// the defaults, see BENCHMARKS.md).
    ///
    /// Errors: [`IndexError::WrongDimension`], [`IndexError::NonFinite`],
    /// [`IndexError::InvalidParameter`] for the reserved key `u64::MAX` or an f16-unrepresentable
    /// component, [`IndexError::Engine`] when memory runs out.
    pub fn add(&mut self, key: u64, vector: &[f32]) -> Result<(), IndexError> {
        Self::check_key(key)?;
        self.check(key, vector)?;
        if self.slot.contains_key(&key) {
            self.engine.remove(key).map_err(engine_err("replacing a vector"))?;
            if let Err(e) = self.engine_add(key, vector) {
                // The old vector is gone from the engine: keep the bookkeeping consistent.
                self.forget(key);
                return Err(engine_err("replacing a vector")(e));
            }
            return Ok(());
        }
        self.grow_for(1)?;
        self.engine_add(key, vector).map_err(engine_err("adding a vector"))?;
        self.slot.insert(key, self.keys.len());
        self.keys.push(key);
        Ok(())
    }

    /// Adds many vectors at once: `vectors` holds `keys.len()` rows of
    /// [`Self::dim`] components, row-major. Same semantics as calling [`Self::add`] for each row in
    /// order (a key present twice keeps its last row). All rows are checked before any is added.
    ///
    /// Errors: as [`Self::add`]; [`IndexError::InvalidParameter`] when `vectors.len()` is not
    /// `keys.len() × dim`.
    pub fn add_batch(&mut self, keys: &[u64], vectors: &[f32]) -> Result<(), IndexError> {
        if vectors.len() != keys.len().saturating_mul(self.dim) {
            return Err(IndexError::InvalidParameter {
                name: "vectors",
                message: format!("{} values for {} keys of dimension {}", vectors.len(), keys.len(), self.dim),
            });
        }
        let mut last: HashMap<u64, usize> = HashMap::with_capacity(keys.len());
        for (i, (&key, v)) in keys.iter().zip(vectors.chunks_exact(self.dim)).enumerate() {
            Self::check_key(key)?;
            self.check(key, v)?;
            last.insert(key, i);
        }
        let rows: Vec<usize> = (0..keys.len()).filter(|&i| last.get(&keys[i]) == Some(&i)).collect();
        for &i in &rows {
            if self.slot.contains_key(&keys[i]) {
                self.engine.remove(keys[i]).map_err(engine_err("replacing a vector"))?;
                self.forget(keys[i]);
            }
        }
        self.grow_for(rows.len())?;
        // One at a time: concurrent inserts into the usearch graph (tried with 2 threads) left
        // parts of it unreachable — recall@10 stuck at 0.986 on 5,000 face-like vectors whatever
        // ef, against 1.000 for the same vectors inserted serially — so the build is serial.
        // This is usearch issue #735 ("Concurrent add() creates nodes unreachable by search()"),
        // open in 2.26 with a proposed fix (pull request #772); revisit when a release has it.
        for &i in &rows {
            let v = &vectors[i * self.dim..(i + 1) * self.dim];
            self.engine_add(keys[i], v).map_err(engine_err("adding vectors"))?;
            self.slot.insert(keys[i], self.keys.len());
            self.keys.push(keys[i]);
        }
        Ok(())
    }

    fn engine_add(&self, key: u64, v: &[f32]) -> Result<(), String> {
        match self.params.storage {
            VectorStorage::I8 => self.engine.add(key, &quantize_i8(v)),
            _ => self.engine.add(key, v),
        }
        .map_err(|e| e.to_string())
    }

    /// Drops `key` from the bookkeeping (not from the engine).
    fn forget(&mut self, key: u64) {
        let Some(i) = self.slot.remove(&key) else { return };
        self.keys.swap_remove(i);
        if let Some(&moved) = self.keys.get(i) {
            self.slot.insert(moved, i);
        }
    }

    /// Removes `key`; returns whether it was present. A removed key is never returned by a
    /// search (its HNSW node becomes a tombstone whose slot a later insert reuses).
    pub fn remove(&mut self, key: u64) -> bool {
        if !self.slot.contains_key(&key) {
            return false;
        }
        // usearch's remove only fails when the key lookup table is disabled, which it never is here.
        let _ = self.engine.remove(key);
        self.forget(key);
        true
    }

    /// The stored vector under `key` (as f32; with f16 storage, the f16 values widened; with i8
    /// storage, read from the exact source), or `None` when absent (or, for i8, when no source
    /// is set or it fails).
    pub fn vector(&self, key: u64) -> Option<Vec<f32>> {
        if !self.contains(key) {
            return None;
        }
        let mut v = vec![0f32; self.dim];
        if self.params.storage == VectorStorage::I8 {
            return match self.exact.as_ref()?.read(key, &mut v) {
                Ok(true) => Some(v),
                _ => None,
            };
        }
        match self.engine.get(key, &mut v) {
            Ok(1) => Some(v),
            _ => None,
        }
    }

    fn use_exact(&self, mode: SearchMode) -> bool {
        match mode {
            SearchMode::Exact => true,
            SearchMode::Approximate => false,
            SearchMode::Auto => self.len() < self.params.exact_below,
        }
    }

    /// The `k` nearest vectors to `query` by cosine similarity, best first (ties by key).
    /// Returns fewer than `k` when the index holds fewer.
    ///
    /// Errors: [`IndexError::WrongDimension`], [`IndexError::NonFinite`], [`IndexError::Engine`];
    /// with i8 storage, [`IndexError::NoExactSource`] before [`Self::set_exact_source`] and
    /// [`IndexError::ExactSource`] when the source fails.
    pub fn search(&self, query: &[f32], k: usize, mode: SearchMode) -> Result<Vec<Neighbor>, IndexError> {
        self.check(0, query)?;
        self.search_checked(query, k, self.use_exact(mode), None)
    }

    fn search_checked(&self, query: &[f32], k: usize, exact: bool, skip: Option<u64>) -> Result<Vec<Neighbor>, IndexError> {
        let k = k.min(self.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let storage = self.params.storage;
        let source = match (storage, &self.exact) {
            (VectorStorage::I8, None) => return Err(IndexError::NoExactSource),
            (VectorStorage::I8, Some(s)) => Some(s.as_ref()),
            _ => None,
        };
        let extra = usize::from(skip.is_some()) + storage.rescore_extra();
        let want = (k + extra).min(self.len());
        let matches = {
            let _ctx = self.pool.acquire();
            match (storage, exact) {
                (VectorStorage::I8, true) => self.engine.exact_search(&quantize_i8(query), want).map_err(engine_err("exact search"))?,
                (VectorStorage::I8, false) => self.engine.search(&quantize_i8(query), want).map_err(engine_err("approximate search"))?,
                (_, true) => self.engine.exact_search(query, want).map_err(engine_err("exact search"))?,
                (_, false) => self.engine.search(query, want).map_err(engine_err("approximate search"))?,
            }
        };
        let mut buf = vec![0f32; self.dim];
        let mut out = Vec::with_capacity(matches.keys.len());
        for (&key, &distance) in matches.keys.iter().zip(&matches.distances) {
            // Only keys the index lists: a removed key can never come back, whatever the engine.
            if Some(key) == skip || !self.slot.contains_key(&key) {
                continue;
            }
            let similarity = match source {
                Some(source) => match source.read(key, &mut buf) {
                    Ok(true) => crate::compare::dot(&buf, query),
                    // Deleted from the source since (removed from the index a moment later).
                    Ok(false) => continue,
                    Err(message) => return Err(IndexError::ExactSource { key, message }),
                },
                None => match self.engine.get(key, &mut buf) {
                    Ok(1) => crate::compare::dot(&buf, query),
                    // Cannot happen for a key the engine just returned; fall back to its own score.
                    _ => 1.0 - distance,
                },
            };
            out.push(Neighbor { key, similarity });
        }
        out.sort_by(by_similarity);
        out.truncate(k);
        Ok(out)
    }

    /// [`Self::search`] for many queries (`queries` holds rows of [`Self::dim`] components,
    /// row-major), in parallel on every core. Row i of the result answers query i.
    ///
    /// Errors: as [`Self::search`]; [`IndexError::InvalidParameter`] when `queries.len()` is not
    /// a multiple of the dimension.
    pub fn search_batch(&self, queries: &[f32], k: usize, mode: SearchMode) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        if queries.len() % self.dim != 0 {
            return Err(IndexError::InvalidParameter {
                name: "queries",
                message: format!("{} values is not a multiple of the dimension {}", queries.len(), self.dim),
            });
        }
        for q in queries.chunks_exact(self.dim) {
            self.check(0, q)?;
        }
        let exact = self.use_exact(mode);
        let n = queries.len() / self.dim;
        self.parallel_rows(n, |i| self.search_checked(&queries[i * self.dim..(i + 1) * self.dim], k, exact, None))
    }

    /// The `k` nearest neighbours of every stored vector, itself excluded: row i belongs to
    /// `self.keys()[i]`, best first. With [`SearchMode::Auto`] this is approximate (HNSW) from
    /// [`IndexParams::exact_below`] vectors on, exact below; runs on every core. For the
    /// clustering's kNN graph: 100,000 × 512-d, k = 10 took 73 s of CPU, ≈ 37 s on 2 idle cores
    /// (BENCHMARKS.md).
    ///
    /// Errors: [`IndexError::Engine`]; with i8 storage, [`IndexError::NoExactSource`] and
    /// [`IndexError::ExactSource`] as [`Self::search`].
    pub fn knn_graph(&self, k: usize, mode: SearchMode) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        if self.params.storage == VectorStorage::I8 && self.exact.is_none() {
            return Err(IndexError::NoExactSource);
        }
        let exact = self.use_exact(mode);
        self.parallel_rows(self.len(), |i| {
            let key = self.keys[i];
            let v = self.vector(key).ok_or_else(|| IndexError::Engine {
                operation: "kNN graph",
                message: format!("key {key} is listed but its vector is missing"),
            })?;
            self.search_checked(&v, k, exact, Some(key))
        })
    }

    fn parallel_rows<F>(&self, n: usize, f: F) -> Result<Vec<Vec<Neighbor>>, IndexError>
    where
        F: Fn(usize) -> Result<Vec<Neighbor>, IndexError> + Sync,
    {
        let threads = worker_threads().min(n.max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let parts: Vec<Result<Vec<(usize, Vec<Neighbor>)>, IndexError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= n {
                                return Ok(done);
                            }
                            done.push((i, f(i)?));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(IndexError::Engine { operation: "parallel search", message: "a worker thread panicked".into() })))
                .collect()
        });
        let mut out = vec![Vec::new(); n];
        for part in parts {
            for (i, row) in part? {
                out[i] = row;
            }
        }
        Ok(out)
    }

    /// Writes the index to `path` (atomically: a temporary file in the same directory, fsynced,
    /// renamed over `path`, directory fsynced), with the caller's consistency `tag` (the gallery
    /// stores its generation counter there). Needs transient memory about the size of the index.
    ///
    /// Errors: [`IndexError::File`].
    pub fn save(&self, path: &Path, tag: &str) -> Result<(), IndexError> {
        let ferr = |message: String| IndexError::File { path: path.into(), message };
        let dir = folder_of(path);
        let name = path.file_name().ok_or_else(|| ferr("not a file path".into()))?;
        // The engine streams its part to a file of its own, which is then copied into ours: the
        // index is never serialized into memory beside itself (1M × 512-d f16 is 1.3 GB).
        let blob_file = TempFile(dir.join(format!(".{}.engine{}", name.to_string_lossy(), unique_suffix())));
        {
            let blob_path = blob_file.0.to_str().ok_or_else(|| ferr("the folder's path is not UTF-8, which the engine needs".into()))?;
            let _ctx = self.pool.acquire();
            self.engine.save(blob_path).map_err(|e| ferr(format!("serializing the index: {e}")))?;
        }
        let mut blob = std::fs::File::open(&blob_file.0).map_err(|e| ferr(format!("reading the serialized index: {e}")))?;
        let blob_len = blob.metadata().map_err(|e| ferr(format!("reading the serialized index: {e}")))?.len();
        let mut head = Vec::with_capacity(64 + tag.len() + self.keys.len() * 8);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&(HEADER_FIXED as u32).to_le_bytes());
        head.extend_from_slice(&(self.dim as u32).to_le_bytes());
        head.push(self.params.storage.code());
        head.extend_from_slice(&(self.params.connectivity as u32).to_le_bytes());
        head.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        head.extend_from_slice(&(tag.len() as u32).to_le_bytes());
        debug_assert_eq!(head.len(), HEADER_FIXED);
        head.extend_from_slice(tag.as_bytes());
        for k in &self.keys {
            head.extend_from_slice(&k.to_le_bytes());
        }
        head.extend_from_slice(&blob_len.to_le_bytes());

        let tmp = TempFile(dir.join(format!(".{}.tmp{}", name.to_string_lossy(), unique_suffix())));
        let mut write = || -> std::io::Result<()> {
            let mut f = std::io::BufWriter::with_capacity(COPY_CHUNK, std::fs::File::create(&tmp.0)?);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&head);
            f.write_all(&head)?;
            let copied = copy_with_crc(&mut blob, &mut f, blob_len, &mut crc)?;
            if copied != blob_len {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the serialized index changed while being copied"));
            }
            f.write_all(&crc.finalize().to_le_bytes())?;
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp.0, path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|e| ferr(format!("writing: {e}")))
    }

    /// Reads an index written by [`Self::save`]; returns it with its tag. The file's dimension,
    /// storage and connectivity are kept (and must match `params`, else the caller should rebuild);
    /// `exact_below`, `ef_search` and `ef_construction` come from `params`.
    ///
    /// Errors: [`IndexError::File`] when the file is missing, truncated, damaged (checksum), of
    /// another format version, or built with another storage or connectivity than `params`;
    /// [`IndexError::InvalidParameter`] for invalid `params`.
    pub fn load(path: &Path, params: IndexParams) -> Result<(Self, String), IndexError> {
        params.validate()?;
        let ferr = |message: String| IndexError::File { path: path.into(), message };
        let mut f = std::fs::File::open(path).map_err(|e| ferr(format!("opening: {e}")))?;
        let size = f.metadata().map_err(|e| ferr(format!("reading: {e}")))?.len();
        let mut head = vec![0u8; HEADER_FIXED];
        if size < (HEADER_FIXED + 12) as u64 {
            return Err(ferr(format!("truncated: {size} bytes, shorter than the smallest index file")));
        }
        f.read_exact(&mut head).map_err(|e| ferr(format!("reading: {e}")))?;
        if &head[0..8] != MAGIC {
            return Err(ferr("not a faceprint index file (bad magic bytes)".into()));
        }
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |b: &[u8], o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let version = u32_at(&head, 8);
        if version != FORMAT_VERSION {
            return Err(ferr(format!("format version {version}, this build reads version {FORMAT_VERSION}: rebuild the index")));
        }
        let header_len = u32_at(&head, 12) as usize;
        if header_len != HEADER_FIXED {
            return Err(ferr(format!("damaged header (length {header_len}, expected {HEADER_FIXED})")));
        }
        let dim = u32_at(&head, 16) as usize;
        let storage = VectorStorage::from_code(head[20]).ok_or_else(|| ferr(format!("damaged header (unknown storage code {})", head[20])))?;
        let connectivity = u32_at(&head, 21) as usize;
        let count = u64_at(&head, 25);
        let tag_len = u32_at(&head, 33) as u64;
        // Lengths must fit the file before anything is allocated from them.
        let fixed = HEADER_FIXED as u64 + tag_len;
        let keys_bytes = count.checked_mul(8).ok_or_else(|| ferr("damaged header (key count overflows)".into()))?;
        let before_blob = fixed.checked_add(keys_bytes).and_then(|x| x.checked_add(8)).filter(|&x| x + 4 <= size);
        let Some(before_blob) = before_blob else {
            return Err(ferr(format!("truncated or damaged: header announces {count} keys and a {tag_len}-byte tag, file has {size} bytes")));
        };
        let mut rest = vec![0u8; (before_blob - HEADER_FIXED as u64) as usize];
        f.read_exact(&mut rest).map_err(|e| ferr(format!("reading: {e}")))?;
        let blob_len = u64_at(&rest, rest.len() - 8);
        let expected = before_blob.checked_add(blob_len).and_then(|x| x.checked_add(4));
        if expected != Some(size) {
            return Err(ferr(format!(
                "truncated or damaged: {size} bytes, the header announces {}",
                expected.map_or("an impossible length".to_string(), |e| e.to_string())
            )));
        }
        // The engine's part is copied to a file of its own (checksummed on the way) that the
        // engine then reads itself: the file is never held in memory beside the index.
        let dir = folder_of(path);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Next to the index (same file system, usually room for it), else in the temporary
        // folder (a read-only gallery folder).
        let temp = format!(".{name}.load{}", unique_suffix());
        let (blob_file, created) = match std::fs::File::create(dir.join(&temp)) {
            Ok(file) => (TempFile(dir.join(&temp)), file),
            Err(_) => {
                let p = std::env::temp_dir().join(&temp);
                let file = std::fs::File::create(&p).map_err(|e| ferr(format!("cannot create a temporary file in {} or {}: {e}", dir.display(), p.display())))?;
                (TempFile(p), file)
            }
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&rest);
        let copy = || -> std::io::Result<u64> {
            let mut out = std::io::BufWriter::with_capacity(COPY_CHUNK, created);
            let n = copy_with_crc(&mut f, &mut out, blob_len, &mut crc)?;
            out.flush()?;
            Ok(n)
        };
        match copy() {
            Ok(n) if n == blob_len => {}
            Ok(n) => return Err(ferr(format!("truncated: the vector data ends after {n} of {blob_len} bytes"))),
            Err(e) => return Err(ferr(format!("reading (through the temporary file {}): {e}", blob_file.0.display()))),
        }
        let mut tail = [0u8; 4];
        f.read_exact(&mut tail).map_err(|e| ferr(format!("reading: {e}")))?;
        if crc.finalize() != u32::from_le_bytes(tail) {
            return Err(ferr("damaged: checksum mismatch".into()));
        }
        // From here the bytes are what `save` wrote; remaining checks guard against logic errors.
        if dim == 0 {
            return Err(ferr("damaged header (dimension 0)".into()));
        }
        if storage != params.storage {
            return Err(ferr(format!("built with {storage} storage, {} was asked for (the index must be rebuilt)", params.storage)));
        }
        if connectivity != params.connectivity {
            return Err(ferr(format!("built with connectivity {connectivity} but {} was asked for: rebuild the index", params.connectivity)));
        }
        let tag = String::from_utf8(rest[..tag_len as usize].to_vec()).map_err(|_| ferr("damaged: tag is not UTF-8".into()))?;
        let keys: Vec<u64> = rest[tag_len as usize..rest.len() - 8].chunks_exact(8).map(|c| u64_at(c, 0)).collect();

        let mut index = VectorIndex::new(dim, params)?;
        {
            let _ctx = index.pool.acquire();
            let blob_path = blob_file.0.to_str().ok_or_else(|| ferr("the folder's path is not UTF-8, which the engine needs".into()))?;
            index.engine.load(blob_path).map_err(|e| ferr(format!("damaged vector data: {e}")))?;
        }
        drop(blob_file);
        index.engine.change_expansion_search(index.params.ef_search);
        index.engine.change_expansion_add(index.params.ef_construction);
        // usearch reserves one context per hardware thread on load; reserve ours again.
        let cap = index.engine.capacity().max(keys.len());
        index.engine.reserve_capacity_and_threads(cap, engine_threads()).map_err(engine_err("reserving memory"))?;
        if index.engine.dimensions() != dim || index.engine.size() != keys.len() {
            return Err(ferr(format!(
                "inconsistent: header lists {} keys of dimension {dim}, vector data holds {} of dimension {}",
                keys.len(),
                index.engine.size(),
                index.engine.dimensions()
            )));
        }
        for (i, &k) in keys.iter().enumerate() {
            if k == RESERVED_KEY || !index.engine.contains(k) || index.slot.insert(k, i).is_some() {
                return Err(ferr(format!("inconsistent: key {k} is listed but not stored once")));
            }
        }
        index.keys = keys;
        Ok((index, tag))
    }
}

/// Length of the fixed part of the file header (magic … tag length).
const HEADER_FIXED: usize = 8 + 4 + 4 + 4 + 1 + 4 + 8 + 4;

/// The folder holding `path` (`.` for a bare file name): where temporary files go.
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Bytes copied at a time when an index file is written or read.
const COPY_CHUNK: usize = 4 << 20;

/// A temporary file next to an index file, deleted when dropped (whatever happened).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Process id and a per-process counter: temporary names no other save or load uses.
fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}.{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Copies up to `len` bytes from `from` to `to`, feeding them to `crc`; returns how many were
/// copied (fewer when `from` ends early).
fn copy_with_crc(from: &mut impl Read, to: &mut impl Write, len: u64, crc: &mut crc32fast::Hasher) -> std::io::Result<u64> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(COPY_CHUNK as u64) as usize;
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}
