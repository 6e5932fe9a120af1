//! Embedding: an ArcFace-style recogniser turns aligned 112×112 crops into L2-normalized vectors.
//!
//! Preprocessing follows insightface `python-package/insightface/model_zoo/arcface_onnx.py`, the
//! reference for the default model `w600k_mbf.onnx` (ArcFace loss, Deng et al., CVPR 2019;
//! MobileFaceNet trained on WebFace600K): RGB, `(x − 127.5) / 127.5`, NCHW; the raw output is
//! then divided by its L2 norm. Faces are embedded in batches ([`ArcFaceRecognizer::embed`]).

use std::fmt;
use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::Array4;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::align::ALIGNED_SIZE;
use crate::error::{Error, Result};
use crate::models::{ModelError, Role};
use crate::runtime::{RuntimeOptions, SessionPool};

/// Identifies the model that made an embedding: the model's name (the default pack's name for
/// its files, else the file stem) and the first 16 hex digits of its SHA-256, e.g.
/// `w600k_mbf-9cc6e4a75f0e2bf0`. Embeddings with different ids are never compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct ModelId(pub String);

impl ModelId {
    /// The id of the model file named `stem` with SHA-256 `sha256` (lowercase hex). A file whose
    /// content is a default-pack model gets that model's name whatever it is called, so a copy or
    /// a renamed file makes the same embeddings under the same id.
    pub fn from_file(stem: &str, sha256: &str) -> Self {
        let name = crate::models::DEFAULT_PACK
            .iter()
            .flat_map(|w| w.members.iter())
            .find(|f| f.sha256 == sha256)
            .and_then(|f| std::path::Path::new(f.install_path).file_stem().and_then(|s| s.to_str()))
            .unwrap_or(stem);
        ModelId(format!("{name}-{}", &sha256[..sha256.len().min(16)]))
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A face embedding: `[D]` f32 (D = 512 for the default model), L2-normalized (norm 1 ± 1e-5),
/// tagged with the model that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// The model that made it.
    pub model: ModelId,
    /// The unit vector.
    pub vector: Vec<f32>,
}

/// Default number of faces per inference call. 32 is where the default recogniser's throughput
/// levels off on a 2-core CPU (see BENCHMARKS.md).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// The batch size a call with `n` faces runs at when the largest batch is `max` (n ≤ max): the
/// next power of two up to 8, then the next multiple of 8, never above `max`. So a recogniser
/// with the default batch of 32 runs only batches of 1, 2, 4, 8, 16, 24 and 32 (the extra rows
/// are zeros, and their outputs are dropped), at most 7 rows more than asked.
///
/// Why: ONNX Runtime keeps memory for each input shape it has run (its CPU arena and the memory
/// pattern it plans per shape). A service whose shared batches take every size from 1 to 32 kept
/// growing its RSS as rarer sizes turned up (BENCHMARKS.md, "HTTP service"); with a fixed set of
/// shapes, run once each at start-up ([`ArcFaceRecognizer::warm_up`]), the memory is all taken
/// before the first request.
pub fn padded_batch(n: usize, max: usize) -> usize {
    let b = if n <= 8 { n.next_power_of_two() } else { n.div_ceil(8) * 8 };
    b.min(max).max(n)
}

/// An ArcFace-style recogniser: one input `[N, 3, 112, 112]`, one output `[N, D]`.
/// Thread-safe; one inference at a time per instance.
pub struct ArcFaceRecognizer {
    sessions: SessionPool,
    input_name: String,
    dim: usize,
    fixed_batch: Option<usize>,
    id: ModelId,
    path: PathBuf,
    batch_size: usize,
    warmed: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for ArcFaceRecognizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArcFaceRecognizer").field("id", &self.id).field("dim", &self.dim).finish()
    }
}

fn incompatible(path: &Path, detail: String) -> Error {
    Error::Model(ModelError::Incompatible { role: Role::Recognizer.to_string(), path: path.to_path_buf(), detail })
}

impl ArcFaceRecognizer {
    /// Loads a recogniser. The file is verified first (the default pack's file must match its
    /// pinned SHA-256); its [`ModelId`] is derived from its SHA-256. ONNX Runtime must have been
    /// initialised with [`crate::runtime::init`].
    ///
    /// # Errors
    /// [`Error::Model`]: missing or altered file, ONNX Runtime failure, or an input that is not
    /// `[N, 3, 112, 112]` / an output that is not `[N, D]`.
    pub fn load(path: &Path, opts: &RuntimeOptions) -> Result<Self> {
        let sha256 = crate::models::verify_file(path, Role::Recognizer)?;
        let sessions = SessionPool::new(path, opts)?;
        let session = sessions.acquire();
        if session.inputs().len() != 1 || session.outputs().is_empty() {
            return Err(incompatible(path, "expected 1 input and at least 1 output".into()));
        }
        let input = &session.inputs()[0];
        let in_dims: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .ok_or_else(|| incompatible(path, "input is not a tensor".into()))?;
        let size = ALIGNED_SIZE as i64;
        if in_dims.len() != 4 || in_dims[1] != 3 || in_dims[2] != size || in_dims[3] != size {
            return Err(incompatible(path, format!("input shape {in_dims:?}, expected [N, 3, 112, 112]")));
        }
        let out_dims: Vec<i64> = session.outputs()[0]
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .ok_or_else(|| incompatible(path, "output is not a tensor".into()))?;
        if out_dims.len() != 2 || out_dims[1] <= 0 {
            return Err(incompatible(path, format!("output shape {out_dims:?}, expected [N, D]")));
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let input_name = input.name().to_string();
        drop(session);
        Ok(ArcFaceRecognizer {
            sessions,
            input_name,
            dim: out_dims[1] as usize,
            fixed_batch: (in_dims[0] > 0).then_some(in_dims[0] as usize),
            id: ModelId::from_file(stem, &sha256),
            path: path.to_path_buf(),
            batch_size: DEFAULT_BATCH_SIZE,
            warmed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets the number of faces per inference call (≥ 1; default [`DEFAULT_BATCH_SIZE`]).
    /// Ignored for models with a fixed batch dimension.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The batch sizes this recogniser runs with: the model's fixed batch, or every
    /// [`padded_batch`] size up to the configured batch size, ascending.
    pub fn batch_shapes(&self) -> Vec<usize> {
        match self.fixed_batch {
            Some(b) => vec![b],
            None => {
                let mut v: Vec<usize> = (1..=self.batch_size).map(|n| padded_batch(n, self.batch_size)).collect();
                v.dedup();
                v
            }
        }
    }

    /// Runs every [`Self::batch_shapes`] size once on every session (zero input), so that ONNX
    /// Runtime has allocated all the memory it will keep before real work starts. Takes about
    /// 87 faces' worth of inference per session at the default batch of 32; later calls return
    /// at once.
    ///
    /// # Errors
    /// [`Error::Inference`] when ONNX Runtime fails.
    pub fn warm_up(&self) -> Result<()> {
        let s = ALIGNED_SIZE as usize;
        let infer_err = |e: ort::Error| Error::Inference { model: self.id.to_string(), message: e.to_string() };
        if self.warmed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        for i in 0..self.sessions.len() {
            let mut session = self.sessions.session(i);
            for n in self.batch_shapes() {
                let input = Array4::<f32>::zeros((n, 3, s, s));
                let tensor = TensorRef::from_array_view(&input).map_err(infer_err)?;
                session.run(ort::inputs![self.input_name.as_str() => tensor]).map_err(infer_err)?;
            }
        }
        self.warmed.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The model id every embedding of this recogniser carries.
    pub fn model_id(&self) -> &ModelId {
        &self.id
    }

    /// Embedding dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds aligned 112×112 RGB crops, in batches. Returns one embedding per crop, in order.
    ///
    /// With `flip`, each crop is also embedded mirrored left–right and the two raw outputs are
    /// summed before normalization (the flip test of insightface's verification evaluation,
    /// `recognition/arcface_torch/eval/verification.py`): more accurate, twice the model time.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a crop that is not 112×112; [`Error::Inference`] when ONNX
    /// Runtime fails or returns a non-finite or zero vector.
    pub fn embed_with(&self, crops: &[&RgbImage], flip: bool) -> Result<Vec<Embedding>> {
        let mirrored: Vec<RgbImage> = if flip { crops.iter().map(|c| image::imageops::flip_horizontal(*c)).collect() } else { Vec::new() };
        let mut all: Vec<&RgbImage> = crops.to_vec();
        all.extend(mirrored.iter());
        let mut raw = Vec::with_capacity(all.len() * self.dim);
        let batch = self.fixed_batch.unwrap_or(self.batch_size);
        for chunk in all.chunks(batch) {
            let rows = self.fixed_batch.unwrap_or_else(|| padded_batch(chunk.len(), batch));
            raw.extend(self.run_raw(chunk, rows)?.into_iter().take(chunk.len() * self.dim));
        }
        let n = crops.len();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut v: Vec<f64> = raw[i * self.dim..(i + 1) * self.dim].iter().map(|x| *x as f64).collect();
            if flip {
                for (a, b) in v.iter_mut().zip(&raw[(n + i) * self.dim..(n + i + 1) * self.dim]) {
                    *a += *b as f64;
                }
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if !(norm.is_finite() && norm > 0.0) {
                return Err(Error::Inference { model: self.id.to_string(), message: format!("output vector has norm {norm}") });
            }
            out.push(Embedding { model: self.id.clone(), vector: v.iter().map(|x| (x / norm) as f32).collect() });
        }
        Ok(out)
    }

    /// [`Self::embed_with`] without the flip test.
    ///
    /// # Errors
    /// As [`Self::embed_with`].
    pub fn embed(&self, crops: &[&RgbImage]) -> Result<Vec<Embedding>> {
        self.embed_with(crops, false)
    }

    /// Runs the model on up to `n` crops (zero-padded to `n` for fixed-batch models) and returns
    /// the raw, unnormalized outputs, `[n·D]` row-major. This is the model time measured by the
    /// benchmark against raw ONNX Runtime.
    pub fn run_raw(&self, crops: &[&RgbImage], n: usize) -> Result<Vec<f32>> {
        let s = ALIGNED_SIZE as usize;
        let plane = s * s;
        let mut input = Array4::<f32>::zeros((n.max(crops.len()), 3, s, s));
        {
            let buf = input.as_slice_mut().expect("standard layout");
            for (b, crop) in crops.iter().enumerate() {
                if crop.width() != ALIGNED_SIZE || crop.height() != ALIGNED_SIZE {
                    return Err(Error::InvalidParameter {
                        name: "crop",
                        message: format!("{}×{} crop, expected 112×112", crop.width(), crop.height()),
                    });
                }
                let base = b * 3 * plane;
                for (i, px) in crop.as_raw().chunks_exact(3).enumerate() {
                    buf[base + i] = (px[0] as f32 - 127.5) / 127.5;
                    buf[base + plane + i] = (px[1] as f32 - 127.5) / 127.5;
                    buf[base + 2 * plane + i] = (px[2] as f32 - 127.5) / 127.5;
                }
            }
        }
        self.run_tensor(&input)
    }

    /// Runs the model on a prepared `[N, 3, 112, 112]` tensor and returns `[N·D]` raw outputs.
    pub fn run_tensor(&self, input: &Array4<f32>) -> Result<Vec<f32>> {
        let infer_err = |e: ort::Error| Error::Inference { model: self.id.to_string(), message: e.to_string() };
        let tensor = TensorRef::from_array_view(input).map_err(infer_err)?;
        let mut session = self.sessions.acquire();
        let outputs = session.run(ort::inputs![self.input_name.as_str() => tensor]).map_err(infer_err)?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(infer_err)?;
        if data.len() != input.shape()[0] * self.dim {
            return Err(Error::Inference {
                model: self.id.to_string(),
                message: format!("{} output values for {} faces of dimension {}", data.len(), input.shape()[0], self.dim),
            });
        }
        Ok(data.to_vec())
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::padded_batch;

    #[test]
    fn padded_batch_sizes() {
        let got: Vec<usize> = (1..=32).map(|n| padded_batch(n, 32)).collect();
        let want = [1, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16, 24, 24, 24, 24, 24, 24, 24, 24, 32, 32, 32, 32, 32, 32, 32, 32];
        assert_eq!(got, want);
        // Never above the largest batch, never below n.
        assert_eq!(padded_batch(9, 10), 10);
        assert_eq!(padded_batch(3, 3), 3);
        assert_eq!(padded_batch(1, 1), 1);
    }
}
