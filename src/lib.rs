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
//!
//! ```no_run
//! use faceprint::pipeline::{AnalyzerConfig, FaceAnalyzer, FaceSelection};
//!
//! # fn main() -> faceprint::Result<()> {
//! let analyzer = FaceAnalyzer::load(AnalyzerConfig::default())?; // verifies the model files
//! let a = analyzer.analyze_file("a.jpg".as_ref(), true)?; // faces, largest first
//! let b = analyzer.analyze_file("b.jpg".as_ref(), true)?;
//! let t = analyzer.threshold_at_far(1e-3)?; // calibrated operating point
//! let v = analyzer.verify(&a, &b, FaceSelection::Largest, FaceSelection::Largest, &t)?;
//! println!("{} {} (threshold {})", v.comparison.similarity, v.comparison.same, v.comparison.threshold.similarity);
//! # Ok(())
//! # }
//! ```

pub mod align;
pub mod cache;
pub mod calibrate;
pub mod cluster;
pub mod compare;
pub mod detect;
pub mod embed;
pub mod error;
pub mod eval;
pub mod gallery;
pub mod imageio;
pub mod index;
pub mod models;
pub mod pipeline;
pub mod plot;
pub mod quality;
pub mod runtime;
pub mod server;

pub use error::{Error, Result};
