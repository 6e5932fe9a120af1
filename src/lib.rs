//! faceprint: face detection, alignment, embedding and comparison.
//!
//! The pipeline, one module per stage, data flowing one way:
//!
//! ```text
//! bytes ──imageio──▶ DecodedImage (RGB8, EXIF orientation applied)
//!       ──detect───▶ Vec<Detection> { bbox, landmarks, score }   (pixels in the oriented image)
//!       ──align────▶ AlignedFace (112×112 RGB8, ArcFace template)
//!       ──embed────▶ Embedding { model, vector: [512] f32, L2-normalized }
//!       ──compare──▶ Comparison { similarity, distance, threshold, same }
//! ```
//!
//! [`pipeline::FaceAnalyzer`] ties the stages together and is the API the CLI uses.
//! [`quality`] measures each face and gates poor ones; [`eval`] and [`calibrate`] turn labelled
//! pairs into accuracy figures and operating points with stated error rates; [`cache`] keeps
//! embeddings so each image is analysed once per model.
//! [`models`] installs and verifies the model files; [`runtime`] loads ONNX Runtime.
//!
//! All coordinates are pixels in the oriented image (after EXIF orientation), x right, y down.

pub mod align;
pub mod cache;
pub mod calibrate;
pub mod compare;
pub mod detect;
pub mod embed;
pub mod error;
pub mod eval;
pub mod imageio;
pub mod models;
pub mod pipeline;
pub mod plot;
pub mod quality;
pub mod runtime;

pub use error::{Error, Result};
