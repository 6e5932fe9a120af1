//! The evaluation protocol end to end on a tiny synthetic LFW-format set built at test time from
//! the sample photos, and the embedding cache. Needs only the installed models.

mod common;

use std::path::{Path, PathBuf};

use faceprint::cache::EmbeddingCache;
use faceprint::eval;
use faceprint::imageio::{self, DecodeOptions};
use faceprint::pipeline::{AnalyzerConfig, FaceAnalyzer};
use image::RgbImage;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("faceprint-evalp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn save(img: &RgbImage, root: &Path, name: &str, k: u32) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    img.save(dir.join(format!("{name}_{k:04}.jpg"))).unwrap();
}

/// Crops a face of a photo with a margin, as a portrait.
fn portrait(photo: &RgbImage, bbox: [f32; 4]) -> RgbImage {
    let (w, h) = (bbox[2] - bbox[0], bbox[3] - bbox[1]);
    let x0 = (bbox[0] - w * 0.6).max(0.0) as u32;
    let y0 = (bbox[1] - h * 0.6).max(0.0) as u32;
    let x1 = ((bbox[2] + w * 0.6) as u32).min(photo.width());
    let y1 = ((bbox[3] + h * 0.6) as u32).min(photo.height());
    image::imageops::crop_imm(photo, x0, y0, x1 - x0, y1 - y0).to_image()
}

#[test]
fn lfw_protocol_on_a_tiny_synthetic_set() {
    let root = tmpdir("lfw");
    let a = common::analyzer();
    let yao = imageio::open(&common::sample("yaoming.jpg"), &DecodeOptions::default()).unwrap().image;
    let t1 = imageio::open(&common::sample("t1.jpg"), &DecodeOptions::default()).unwrap().image;
    let faces = a.analyze(Path::new("t1"), &imageio::decode(&std::fs::read(common::sample("t1.jpg")).unwrap(), &DecodeOptions::default()).unwrap(), false).unwrap();
    // Identities: Yao (two versions of his portrait), P0..P2 (t1's people, one portrait each,
    // second image a brightened copy), Blank (no face at all).
    save(&yao, &root, "Yao", 1);
    save(&image::imageops::brighten(&image::imageops::resize(&yao, 180, 180, image::imageops::FilterType::Triangle), 20), &root, "Yao", 2);
    for (i, f) in faces.faces.iter().take(3).enumerate() {
        let p = portrait(&t1, f.detection.bbox);
        save(&p, &root, &format!("P{i}"), 1);
        save(&image::imageops::brighten(&p, 25), &root, &format!("P{i}"), 2);
    }
    save(&RgbImage::from_pixel(120, 120, image::Rgb([128, 128, 128])), &root, "Blank", 1);
    save(&RgbImage::from_pixel(120, 120, image::Rgb([60, 60, 60])), &root, "Blank", 2);
    // 2 folds × (2 same + 2 different). The Blank same-pair has no face: it must count as an error.
    let pairs_txt = root.join("pairs.txt");
    std::fs::write(
        &pairs_txt,
        "2\t2\nYao\t1\t2\nP0\t1\t2\nYao\t1\tP0\t1\nP1\t1\tP2\t1\nP1\t1\t2\nBlank\t1\t2\nP2\t1\tYao\t2\nP0\t2\tBlank\t1\n",
    )
    .unwrap();
    let pairs = eval::read_lfw_pairs(&pairs_txt, &root).unwrap();
    let (rep, cache_err) = eval::evaluate(a, &pairs, None, None, |_, _| {}).unwrap();
    assert!(cache_err.is_none());
    assert_eq!((rep.pairs, rep.genuine_pairs, rep.impostor_pairs), (8, 4, 4));
    assert_eq!(rep.images, 9, "P2_0002 is in no pair");
    assert_eq!(rep.no_face, 2, "both Blank images");
    assert_eq!(rep.no_face_pairs, 2);
    assert_eq!(rep.folds.len(), 2);
    // Fold 1 holds the faceless same-person pair: 3 of 4 right at best. Fold 0: all right.
    assert_eq!(rep.folds[0].accuracy, 1.0, "{:?}", rep.folds);
    assert_eq!(rep.folds[1].accuracy, 0.75, "{:?}", rep.folds);
    assert!((rep.accuracy_mean - 0.875).abs() < 1e-12);
    assert!((rep.accuracy_std - 0.125).abs() < 1e-12);
    assert_eq!(rep.similarities[5], eval::NO_FACE_SIMILARITY);
    assert!(rep.similarities[0] > 0.5, "Yao vs his own brightened portrait: {}", rep.similarities[0]);
    assert!(rep.similarities[2] < 0.3, "Yao vs P0: {}", rep.similarities[2]);
    // At a fixed threshold: FAR/FRR reported; the faceless genuine pair is a false reject.
    let (rep, _) = eval::evaluate(a, &pairs, Some((0.3, "test".into())), None, |_, _| {}).unwrap();
    assert!(rep.folds.is_empty());
    assert_eq!(rep.frr, Some(0.25));
    assert_eq!(rep.far, Some(0.0));
}

#[test]
fn cache_hits_by_content_and_separates_pipelines() {
    let dir = tmpdir("cache");
    let cache_path = dir.join("cache.sqlite");
    let photo = common::sample("t1.jpg");
    let copy = dir.join("renamed copy.jpg");
    std::fs::copy(&photo, &copy).unwrap();
    let cfg = AnalyzerConfig { cache: Some(cache_path.clone()), ..Default::default() };
    let analyzer = FaceAnalyzer::load(cfg.clone()).unwrap();
    let mut first = Vec::new();
    analyzer.analyze_files(&[photo.clone()], true, |_, r| first.push(r.unwrap())).unwrap();
    let cache = EmbeddingCache::open(&cache_path).unwrap();
    assert_eq!(cache.len().unwrap(), 1);
    // The renamed copy is a hit: same faces and embeddings, its own path, nothing new stored.
    let mut second = Vec::new();
    analyzer.analyze_files(&[copy.clone()], true, |_, r| second.push(r.unwrap())).unwrap();
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(second[0].path, copy);
    assert_eq!(second[0].faces.len(), 6);
    for (x, y) in first[0].faces.iter().zip(&second[0].faces) {
        assert_eq!(x.embedding, y.embedding);
        assert_eq!(x.detection, y.detection);
    }
    // Another pipeline configuration (flip test) is a different key: a miss, stored separately.
    let flip = FaceAnalyzer::load(AnalyzerConfig { flip: true, ..cfg }).unwrap();
    assert_ne!(flip.pipeline_key(), analyzer.pipeline_key());
    let mut third = Vec::new();
    flip.analyze_files(&[photo], true, |_, r| third.push(r.unwrap())).unwrap();
    assert_eq!(cache.len().unwrap(), 2);
    let c = common::cosine(&third[0].faces[0].embedding.as_ref().unwrap().vector, &first[0].faces[0].embedding.as_ref().unwrap().vector);
    assert!(c > 0.9 && c < 0.99999, "flip-test embedding close to, not equal to, the plain one: {c}");
}
