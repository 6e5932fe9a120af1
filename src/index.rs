//! Nearest-neighbour search over L2-normalized embeddings: an exact path (brute-force dot
//! products) and an approximate one (HNSW), behind one [`VectorIndex`].
//!
//! Similarity is cosine similarity in [-1, 1] (the dot product of unit vectors). Keys are the
//! caller's `u64` ids (for the gallery: face row ids). The index only knows vectors and keys;
//! identities, models and thresholds live in [`crate::gallery`].
//!
//! [`SearchMode::Auto`] uses the exact path while the index holds fewer than
//! [`IndexParams::exact_below`] vectors, and the approximate one above.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
}

/// How vectors are held in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VectorStorage {
    /// 4 bytes per component; exact.
    F32,
    /// 2 bytes per component (IEEE half); similarity error below 1e-3.
    F16,
}

/// Index parameters. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexParams {
    /// [`SearchMode::Auto`] searches exactly below this many vectors. Default 20,000.
    pub exact_below: usize,
    /// HNSW links per node (M). Default 16.
    pub connectivity: usize,
    /// HNSW candidate list size while building (efConstruction). Default 128.
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (ef), raised to k when k is larger. Default 64.
    pub ef_search: usize,
    /// In-memory vector format. Default [`VectorStorage::F32`].
    pub storage: VectorStorage,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams { exact_below: 20_000, connectivity: 16, ef_construction: 128, ef_search: 64, storage: VectorStorage::F32 }
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

/// Vectors with keys, searchable exactly or approximately. Not internally synchronised: wrap it in
/// an `RwLock` to search from many threads while one thread adds.
pub struct VectorIndex {
    dim: usize,
    params: IndexParams,
    keys: Vec<u64>,
    vectors: Vec<f32>,
    slot: HashMap<u64, usize>,
}

impl VectorIndex {
    /// An empty index for `dim`-dimensional vectors.
    ///
    /// Errors: [`IndexError::InvalidParameter`] for `dim == 0`.
    pub fn new(dim: usize, params: IndexParams) -> Result<Self, IndexError> {
        if dim == 0 {
            return Err(IndexError::InvalidParameter { name: "dim", message: "must be > 0".into() });
        }
        Ok(VectorIndex { dim, params, keys: Vec::new(), vectors: Vec::new(), slot: HashMap::new() })
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

    /// All keys, in no particular order.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    fn check(&self, key: u64, v: &[f32]) -> Result<(), IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::WrongDimension { expected: self.dim, received: v.len() });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::NonFinite { key });
        }
        Ok(())
    }

    /// Adds `vector` (length [`Self::dim`], L2-normalized by the caller) under `key`, replacing
    /// any vector already under that key.
    ///
    /// Errors: [`IndexError::WrongDimension`], [`IndexError::NonFinite`].
    pub fn add(&mut self, key: u64, vector: &[f32]) -> Result<(), IndexError> {
        self.check(key, vector)?;
        if let Some(&i) = self.slot.get(&key) {
            self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(vector);
        } else {
            self.slot.insert(key, self.keys.len());
            self.keys.push(key);
            self.vectors.extend_from_slice(vector);
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: u64) -> bool {
        let Some(i) = self.slot.remove(&key) else { return false };
        let last = self.keys.len() - 1;
        if i != last {
            let moved = self.keys[last];
            self.keys[i] = moved;
            let (head, tail) = self.vectors.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.slot.insert(moved, i);
        }
        self.keys.pop();
        self.vectors.truncate(last * self.dim);
        true
    }

    /// The `k` nearest vectors to `query` by cosine similarity, best first (ties by key).
    ///
    /// Errors: [`IndexError::WrongDimension`], [`IndexError::NonFinite`].
    pub fn search(&self, query: &[f32], k: usize, mode: SearchMode) -> Result<Vec<Neighbor>, IndexError> {
        self.check(0, query)?;
        let _ = mode; // only the exact path so far
        Ok(self.search_exact(query, k))
    }

    fn search_exact(&self, query: &[f32], k: usize) -> Vec<Neighbor> {
        let k = k.min(self.len());
        if k == 0 {
            return Vec::new();
        }
        let mut all: Vec<Neighbor> = self
            .vectors
            .chunks_exact(self.dim)
            .zip(&self.keys)
            .map(|(v, &key)| Neighbor { key, similarity: crate::compare::dot(v, query) })
            .collect();
        let cmp = |a: &Neighbor, b: &Neighbor| b.similarity.total_cmp(&a.similarity).then(a.key.cmp(&b.key));
        if k < all.len() {
            all.select_nth_unstable_by(k - 1, cmp);
            all.truncate(k);
        }
        all.sort_by(cmp);
        all
    }

    /// Writes the index to `path` (atomically: a temporary file renamed over it), with the
    /// caller's consistency `tag` (the gallery stores its generation counter there).
    ///
    /// Errors: [`IndexError::File`].
    pub fn save(&self, path: &Path, tag: &str) -> Result<(), IndexError> {
        let _ = (path, tag);
        Err(IndexError::File { path: path.into(), message: "saving is not implemented yet".into() })
    }

    /// Reads an index written by [`Self::save`]; returns it with its tag.
    ///
    /// Errors: [`IndexError::File`] when the file is missing, damaged or of another version.
    pub fn load(path: &Path, params: IndexParams) -> Result<(Self, String), IndexError> {
        let _ = params;
        Err(IndexError::File { path: path.into(), message: "loading is not implemented yet".into() })
    }
}
