//! The library's top-level error type. Each stage has its own error enum; [`Error`] wraps them and
//! adds the file a problem belongs to, so a caller can branch on the kind and a user sees the path.

use std::path::PathBuf;

use crate::cache::CacheError;
use crate::calibrate::CalibrationError;
use crate::compare::CompareError;
use crate::eval::PairsError;
use crate::gallery::GalleryError;
use crate::quality::QualityFailure;
use crate::imageio::ImageError;
use crate::index::IndexError;
use crate::models::ModelError;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with. Variants are stable categories a caller can match on:
/// bad input ([`Error::Image`], [`Error::NoFace`], [`Error::FaceIndex`], [`Error::Quality`],
/// [`Error::Pairs`]), missing or bad model files
/// ([`Error::Model`]), misuse ([`Error::Compare`], [`Error::InvalidParameter`]) and inference failures
/// ([`Error::Inference`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image file could not be read or decoded.
    #[error("{path}: {source}")]
    Image {
        /// The file (or a label such as `<stdin>` for in-memory input).
        path: PathBuf,
        /// What was wrong with it.
        #[source]
        source: ImageError,
    },
    /// A model or the ONNX Runtime library is missing, altered or unusable.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// ONNX Runtime failed while running a model.
    #[error("inference failed in {model}: {message}")]
    Inference {
        /// Model id or file of the model that failed.
        model: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// An image in which the detector found no face, where one was required.
    #[error("{path}: no face detected (detection score threshold {score_threshold})")]
    NoFace {
        /// The image.
        path: PathBuf,
        /// The detection score threshold that was in force.
        score_threshold: f32,
    },
    /// A face index that does not exist in the image.
    #[error("{path}: face {index} requested but the image has {count} face(s) (0-based, sorted by size, largest first)")]
    FaceIndex {
        /// The image.
        path: PathBuf,
        /// The requested index.
        index: usize,
        /// How many faces were detected.
        count: usize,
    },
    /// Comparing embeddings that cannot be compared (different models or dimensions).
    #[error(transparent)]
    Compare(#[from] CompareError),
    /// A face below the quality minimums ([`crate::quality::QualityGate`]).
    #[error("{path}: face {face} fails the quality gate: {failure} (override with --no-quality-gate)")]
    Quality {
        /// The image.
        path: PathBuf,
        /// Index of the face (largest first).
        face: usize,
        /// The failed measure.
        failure: QualityFailure,
    },
    /// No usable calibration / operating point.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    /// The embedding cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The nearest-neighbour index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The gallery failed or refused the request ([`GalleryError::is_bad_input`] tells the
    /// caller's input apart).
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    /// Clustering or the people collection failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A labelled-pairs file that cannot be read.
    #[error(transparent)]
    Pairs(#[from] PairsError),
    /// A parameter outside its documented range.
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with its value.
        message: String,
    },
}

impl Error {
    /// True when the error is the caller's input (a bad image, no face, a wrong face index),
    /// as opposed to a setup problem (models) or an internal failure. The CLI maps this to its
    /// "bad input" exit code.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Image { .. } | Error::NoFace { .. } | Error::FaceIndex { .. } | Error::Quality { .. } | Error::Pairs(_))
    }
}
