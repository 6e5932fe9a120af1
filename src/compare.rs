//! Comparison of embeddings: cosine similarity, Euclidean distance and a same/different decision
//! at a named threshold.
//!
//! For unit vectors `a`, `b`: `‖a − b‖² = 2 − 2·cos(a, b)`, so distance in [0, 2] and similarity
//! in [−1, 1] order pairs identically; faceprint decides on similarity.

use serde::{Deserialize, Serialize};

use crate::embed::{Embedding, ModelId};

/// Errors of comparing embeddings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// The embeddings come from different models and live in different spaces.
    #[error("embeddings from different models cannot be compared: {a} vs {b}")]
    ModelMismatch {
        /// Model of the first embedding.
        a: ModelId,
        /// Model of the second embedding.
        b: ModelId,
    },
    /// The vectors have different lengths.
    #[error("embedding dimensions differ: {a} vs {b}")]
    DimensionMismatch {
        /// Length of the first vector.
        a: usize,
        /// Length of the second vector.
        b: usize,
    },
}

/// Cosine similarity of two embeddings of the same model, in [−1, 1] (the dot product, since
/// both are L2-normalized; clamped against rounding).
///
/// # Errors
/// [`CompareError::ModelMismatch`] or [`CompareError::DimensionMismatch`].
pub fn similarity(a: &Embedding, b: &Embedding) -> Result<f32, CompareError> {
    if a.model != b.model {
        return Err(CompareError::ModelMismatch { a: a.model.clone(), b: b.model.clone() });
    }
    if a.vector.len() != b.vector.len() {
        return Err(CompareError::DimensionMismatch { a: a.vector.len(), b: b.vector.len() });
    }
    Ok(dot(&a.vector, &b.vector).clamp(-1.0, 1.0))
}

/// Dot product of two equal-length slices (f32 accumulated in 8 lanes for speed).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Euclidean distance between unit vectors with cosine similarity `sim`: `√(2 − 2·sim)`, in [0, 2].
pub fn distance_from_similarity(sim: f32) -> f32 {
    (2.0 - 2.0 * sim).max(0.0).sqrt()
}

/// A decision threshold on cosine similarity, with what it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Pairs with similarity ≥ this are decided "same person". In [−1, 1].
    pub similarity: f32,
    /// Short name of the operating point, e.g. `FAR=1e-3` or `user`.
    pub name: String,
    /// Where the value comes from and what is known of its error rates.
    pub note: String,
    /// FAR measured at this threshold on the calibration pairs, when calibrated.
    pub far: Option<f64>,
    /// FRR measured at this threshold on the calibration pairs, when calibrated.
    pub frr: Option<f64>,
}

impl Threshold {
    /// A threshold the user chose; nothing is claimed about its error rates.
    pub fn user(similarity: f32) -> Self {
        Threshold {
            similarity,
            name: "user".into(),
            note: "chosen by the user; no error rates known".into(),
            far: None,
            frr: None,
        }
    }
}

/// The outcome of a 1:1 comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Cosine similarity in [−1, 1].
    pub similarity: f32,
    /// Euclidean distance between the unit vectors in [0, 2]; `d² = 2 − 2·similarity`.
    pub distance: f32,
    /// The threshold the decision used.
    pub threshold: Threshold,
    /// `similarity ≥ threshold.similarity`.
    pub same: bool,
}

/// Compares two embeddings at `threshold`.
///
/// # Errors
/// [`CompareError::ModelMismatch`] or [`CompareError::DimensionMismatch`].
pub fn compare(a: &Embedding, b: &Embedding, threshold: &Threshold) -> Result<Comparison, CompareError> {
    let s = similarity(a, b)?;
    Ok(Comparison {
        similarity: s,
        distance: distance_from_similarity(s),
        threshold: threshold.clone(),
        same: s >= threshold.similarity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(model: &str, v: &[f32]) -> Embedding {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Embedding { model: ModelId(model.into()), vector: v.iter().map(|x| x / n).collect() }
    }

    #[test]
    fn similarity_and_distance_relation() {
        let a = emb("m", &[1.0, 0.0, 0.0]);
        let b = emb("m", &[1.0, 1.0, 0.0]);
        let s = similarity(&a, &b).unwrap();
        assert!((s - 0.5f32.sqrt()).abs() < 1e-6);
        let d = distance_from_similarity(s);
        let direct: f32 = a.vector.iter().zip(&b.vector).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt();
        assert!((d - direct).abs() < 1e-6);
        assert!((distance_from_similarity(-1.0) - 2.0).abs() < 1e-6);
        assert_eq!(distance_from_similarity(1.0), 0.0);
    }

    #[test]
    fn different_models_are_refused() {
        let a = emb("m1", &[1.0, 0.0]);
        let b = emb("m2", &[1.0, 0.0]);
        assert!(matches!(similarity(&a, &b), Err(CompareError::ModelMismatch { .. })));
        let c = emb("m1", &[1.0, 0.0, 0.0]);
        assert!(matches!(similarity(&a, &c), Err(CompareError::DimensionMismatch { a: 2, b: 3 })));
    }

    #[test]
    fn decision_at_threshold() {
        let a = emb("m", &[1.0, 0.0]);
        let b = emb("m", &[1.0, 1.0]);
        let t = Threshold::user(0.7);
        assert!(compare(&a, &b, &t).unwrap().same);
        let t = Threshold::user(0.71);
        assert!(!compare(&a, &b, &t).unwrap().same);
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..515).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let b: Vec<f32> = (0..515).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - naive).abs() < 1e-3);
    }
}
