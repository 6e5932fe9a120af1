//! Gallery library tests on synthetic embeddings: CRUD, model enforcement, decisions, exact
//! search against a naive computation, stale data after restart, index rebuilds.

use std::path::PathBuf;

use faceprint::compare::Threshold;
use faceprint::embed::{Embedding, ModelId};
use faceprint::gallery::{
    Decision, EnrollTarget, FaceOutcome, Gallery, GalleryError, GalleryOptions, IdentifyParams, IdentityRef, NewFace, Scoring, INDEX_FILE,
};
use faceprint::index::SearchMode;

const MODEL: &str = "test-model-0123456789abcdef";

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("faceprint-gallery-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Deterministic pseudo-random numbers (xorshift64*), uniform in [-0.5, 0.5).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        unit((0..dim).map(|_| self.next()).collect())
    }
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn emb(v: Vec<f32>) -> Embedding {
    Embedding { model: ModelId(MODEL.into()), vector: v }
}

fn face(v: Vec<f32>) -> NewFace {
    NewFace { embedding: emb(v), image_sha256: "ab".repeat(32), bbox: [1.0, 2.0, 3.0, 4.0], quality: None, crop: None }
}

fn params(t: f32) -> IdentifyParams {
    IdentifyParams::new(Threshold::user(t))
}

fn create(dir: &std::path::Path, dim: usize) -> Gallery {
    Gallery::create(dir, &ModelId(MODEL.into()), dim, GalleryOptions::default()).unwrap()
}

/// `a` rotated towards an orthogonal direction so that cos(result, a) = c exactly (in exact arithmetic).
fn at_cosine(a: &[f32], other: &[f32], c: f32) -> Vec<f32> {
    // Gram–Schmidt: o ⟂ a, then c·a + √(1−c²)·o.
    let d: f32 = a.iter().zip(other).map(|(x, y)| x * y).sum();
    let o = unit(other.iter().zip(a).map(|(y, x)| y - d * x).collect());
    let s = (1.0 - c * c).sqrt();
    unit(a.iter().zip(&o).map(|(x, y)| c * x + s * y).collect())
}

#[test]
fn crud_and_persistence() {
    let dir = tmpdir("crud");
    let mut rng = Rng(7);
    {
        let g = create(&dir, 16);
        assert!(matches!(Gallery::create(&dir, &ModelId(MODEL.into()), 16, GalleryOptions::default()), Err(GalleryError::AlreadyExists { .. })));
        let alice = g.add_identity("Alice", serde_json::json!({"team": "red"})).unwrap();
        let bob = g.add_identity("Bob", serde_json::Value::Null).unwrap();
        assert!(matches!(g.add_identity("Alice", serde_json::Value::Null), Err(GalleryError::DuplicateName { .. })));
        assert!(matches!(g.add_identity("  ", serde_json::Value::Null), Err(GalleryError::InvalidName { .. })));
        // Digits only would be read as an id in the HTTP paths.
        assert!(matches!(g.add_identity("12345", serde_json::Value::Null), Err(GalleryError::InvalidName { .. })));
        assert!(matches!(g.add_identity("x", serde_json::json!([1])), Err(GalleryError::InvalidParameter { .. })));
        let f1 = g.enroll(&"Alice".into(), face(rng.unit(16))).unwrap();
        let f2 = g.enroll(&IdentityRef::Id(alice.id), face(rng.unit(16))).unwrap();
        let f3 = g.enroll(&"Bob".into(), face(rng.unit(16))).unwrap();
        assert!(matches!(g.enroll(&"Carol".into(), face(rng.unit(16))), Err(GalleryError::UnknownIdentity { .. })));
        let d = g.identity(&"Alice".into()).unwrap();
        assert_eq!(d.identity.faces, 2);
        assert_eq!(d.identity.metadata["team"], "red");
        assert_eq!(d.faces.iter().map(|f| f.id).collect::<Vec<_>>(), vec![f1, f2]);
        assert_eq!(d.faces[0].bbox, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(g.identities().unwrap().iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), vec!["Alice", "Bob"]);
        // Rename, with the name taken refused.
        assert!(matches!(g.rename(&"Bob".into(), "Alice"), Err(GalleryError::DuplicateName { .. })));
        assert_eq!(g.rename(&"Bob".into(), "Robert").unwrap().name, "Robert");
        // Merge moves faces and removes the source.
        let merged = g.merge(&"Robert".into(), &"Alice".into()).unwrap();
        assert_eq!(merged.faces, 3);
        assert!(g.find_identity(&IdentityRef::Id(bob.id)).unwrap().is_none());
        assert!(matches!(g.merge(&"Alice".into(), &"Alice".into()), Err(GalleryError::InvalidParameter { .. })));
        // Remove a face.
        g.remove_face(f3).unwrap();
        assert!(matches!(g.remove_face(f3), Err(GalleryError::UnknownFace { .. })));
        assert_eq!(g.identity(&"Alice".into()).unwrap().identity.faces, 2);
        assert_eq!(g.len(), 2);
        assert!(g.check().unwrap().ok());
    }
    // Everything is there after reopening, and the index is rebuilt or loaded consistently.
    let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    assert_eq!(g.model_id().0, MODEL);
    assert_eq!(g.dim(), 16);
    assert_eq!(g.len(), 2);
    assert_eq!(g.identities().unwrap().len(), 1);
    let r = g.check().unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.faces, 2);
    // Ids are never reused.
    let f4 = g.enroll(&"Alice".into(), face(rng.unit(16))).unwrap();
    assert!(f4 > 3);
    assert!(matches!(Gallery::open(&dir.join("nope"), GalleryOptions::default()), Err(GalleryError::NotAGallery { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn model_and_dimension_are_enforced() {
    let dir = tmpdir("model");
    let g = create(&dir, 8);
    g.add_identity("A", serde_json::Value::Null).unwrap();
    let mut rng = Rng(3);
    let other = Embedding { model: ModelId("other-model-ffffffffffffffff".into()), vector: rng.unit(8) };
    let e = g.enroll(&"A".into(), NewFace { embedding: other.clone(), image_sha256: String::new(), bbox: [0.0; 4], quality: None, crop: None }).unwrap_err();
    assert!(matches!(e, GalleryError::ModelMismatch { .. }));
    assert!(e.to_string().contains("other-model-ffffffffffffffff") && e.to_string().contains(MODEL), "{e}");
    assert!(matches!(g.identify(&other, &params(0.3)), Err(GalleryError::ModelMismatch { .. })));
    assert!(matches!(g.enroll(&"A".into(), face(rng.unit(9))), Err(GalleryError::DimensionMismatch { expected: 8, received: 9 })));
    assert!(matches!(g.identify(&emb(rng.unit(4)), &params(0.3)), Err(GalleryError::DimensionMismatch { .. })));
    let mut not_unit = rng.unit(8);
    not_unit[0] += 0.5;
    assert!(matches!(g.enroll(&"A".into(), face(not_unit)), Err(GalleryError::BadEmbedding { .. })));
    let mut nan = rng.unit(8);
    nan[1] = f32::NAN;
    assert!(matches!(g.identify(&emb(nan), &params(0.3)), Err(GalleryError::BadEmbedding { .. })));
    assert_eq!(g.len(), 0, "nothing was enrolled");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_match_and_ambiguous_decisions() {
    let dir = tmpdir("decide");
    let dim = 32;
    let g = create(&dir, dim);
    let mut rng = Rng(11);
    let probe = rng.unit(dim);
    for n in ["A", "B", "C"] {
        g.add_identity(n, serde_json::Value::Null).unwrap();
    }
    // Empty gallery → unknown with no matches.
    let id = g.identify(&emb(probe.clone()), &params(0.3)).unwrap();
    assert_eq!(id.decision, Decision::Unknown);
    assert!(id.matches.is_empty());
    g.enroll(&"A".into(), face(at_cosine(&probe, &rng.unit(dim), 0.60))).unwrap();
    g.enroll(&"B".into(), face(at_cosine(&probe, &rng.unit(dim), 0.40))).unwrap();
    g.enroll(&"C".into(), face(at_cosine(&probe, &rng.unit(dim), 0.58))).unwrap();
    let p = |t: f32, m: f32| IdentifyParams { ambiguity_margin: m, ..params(t) };
    // Best 0.60 below threshold 0.65 → unknown, matches still listed.
    let id = g.identify(&emb(probe.clone()), &p(0.65, 0.03)).unwrap();
    assert_eq!(id.decision, Decision::Unknown);
    assert_eq!(id.matches.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), vec!["A", "C", "B"]);
    assert!((id.matches[0].similarity - 0.60).abs() < 1e-4);
    // A and C both above 0.5 and 0.02 apart: ambiguous with margin 0.03, match with margin 0.01.
    assert_eq!(g.identify(&emb(probe.clone()), &p(0.5, 0.03)).unwrap().decision, Decision::Ambiguous);
    let id = g.identify(&emb(probe.clone()), &p(0.5, 0.01)).unwrap();
    assert_eq!(id.decision, Decision::Match);
    assert_eq!(id.matches[0].name, "A");
    // C below threshold: not ambiguous even within the margin.
    assert_eq!(g.identify(&emb(probe.clone()), &p(0.59, 0.05)).unwrap().decision, Decision::Match);
    // top_k limits the list; invalid parameters are refused.
    assert_eq!(g.identify(&emb(probe.clone()), &IdentifyParams { top_k: 1, ..p(0.5, 0.01) }).unwrap().matches.len(), 1);
    assert!(matches!(g.identify(&emb(probe.clone()), &IdentifyParams { top_k: 0, ..p(0.5, 0.01) }), Err(GalleryError::InvalidParameter { .. })));
    assert!(matches!(g.identify(&emb(probe), &p(0.5, -1.0)), Err(GalleryError::InvalidParameter { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Per-identity scores computed naively in f64: max over faces, or the normalized mean template.
fn naive(faces: &[(usize, Vec<f32>)], q: &[f32], mean: bool) -> Vec<(usize, f64)> {
    let mut by: std::collections::BTreeMap<usize, Vec<&Vec<f32>>> = Default::default();
    for (i, v) in faces {
        by.entry(*i).or_default().push(v);
    }
    let dot = |a: &[f64], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * *y as f64).sum::<f64>();
    let mut out: Vec<(usize, f64)> = by
        .into_iter()
        .map(|(i, vs)| {
            let s = if mean {
                let mut m = vec![0f64; q.len()];
                for v in &vs {
                    for (a, b) in m.iter_mut().zip(v.iter()) {
                        *a += *b as f64;
                    }
                }
                let n = m.iter().map(|x| x * x).sum::<f64>().sqrt();
                dot(&m.iter().map(|x| x / n).collect::<Vec<_>>(), q)
            } else {
                vs.iter().map(|v| dot(&v.iter().map(|x| *x as f64).collect::<Vec<_>>(), q)).fold(f64::MIN, f64::max)
            };
            (i, s)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

#[test]
fn exact_search_equals_naive_computation() {
    let dir = tmpdir("naive");
    let dim = 64;
    let g = create(&dir, dim);
    let mut rng = Rng(12345);
    let mut faces = Vec::new();
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(g.add_identity(&format!("id{i:02}"), serde_json::Value::Null).unwrap().id);
    }
    let mut batch = Vec::new();
    for k in 0..400 {
        let i = (k * 7 + k / 3) % 60;
        let v = rng.unit(dim);
        faces.push((i, v.clone()));
        batch.push((ids[i], face(v)));
    }
    g.enroll_many(batch).unwrap();
    for scoring in [Scoring::Max, Scoring::Mean] {
        for _ in 0..20 {
            let q = rng.unit(dim);
            let p = IdentifyParams { top_k: 10, scoring, search: SearchMode::Exact, ..params(0.0) };
            let got = g.identify(&emb(q.clone()), &p).unwrap();
            let want = naive(&faces, &q, scoring == Scoring::Mean);
            assert_eq!(got.matches.len(), 10);
            for (m, (i, s)) in got.matches.iter().zip(&want) {
                assert_eq!(m.name, format!("id{i:02}"), "{scoring:?}");
                assert!((m.similarity as f64 - s).abs() < 1e-5, "{scoring:?}: {} vs {s}", m.similarity);
            }
            // Auto (exact below the size limit) gives the same answer.
            let auto = g.identify(&emb(q), &IdentifyParams { search: SearchMode::Auto, ..p }).unwrap();
            assert_eq!(auto.matches, got.matches);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deleted_identity_never_returns_after_restart() {
    let dir = tmpdir("stale");
    let dim = 32;
    let mut rng = Rng(99);
    let target = rng.unit(dim);
    {
        let g = create(&dir, dim);
        for n in ["keep", "gone"] {
            g.add_identity(n, serde_json::Value::Null).unwrap();
        }
        g.enroll(&"gone".into(), face(target.clone())).unwrap();
        g.enroll(&"gone".into(), face(at_cosine(&target, &rng.unit(dim), 0.9))).unwrap();
        g.enroll(&"keep".into(), face(at_cosine(&target, &rng.unit(dim), 0.3))).unwrap();
        assert_eq!(g.identify(&emb(target.clone()), &params(0.5)).unwrap().matches[0].name, "gone");
        // Warm the mean templates too, so their incremental removal is exercised.
        g.identify(&emb(target.clone()), &IdentifyParams { scoring: Scoring::Mean, ..params(0.5) }).unwrap();
        g.remove_identity(&"gone".into()).unwrap();
        for scoring in [Scoring::Max, Scoring::Mean] {
            let id = g.identify(&emb(target.clone()), &IdentifyParams { scoring, ..params(0.5) }).unwrap();
            assert!(id.matches.iter().all(|m| m.name != "gone"));
            assert_eq!(id.decision, Decision::Unknown);
        }
    }
    // Restart: the index file (if any) and the store must agree.
    for round in 0..3 {
        let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
        for scoring in [Scoring::Max, Scoring::Mean] {
            for mode in [SearchMode::Exact, SearchMode::Auto, SearchMode::Approximate] {
                let id = g.identify(&emb(target.clone()), &IdentifyParams { scoring, search: mode, top_k: 10, ..params(0.5) }).unwrap();
                assert!(id.matches.iter().all(|m| m.name != "gone"), "round {round}: {id:?}");
                assert_eq!(id.matches.len(), 1);
            }
        }
        assert!(g.check().unwrap().ok());
        // A damaged index file is never trusted.
        drop(g);
        if round == 1 {
            std::fs::write(dir.join(INDEX_FILE), b"garbage").unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_handle_sees_changes_made_through_another() {
    // Two handles on one directory behave like two processes sharing the gallery.
    let dir = tmpdir("two");
    let dim = 16;
    let mut rng = Rng(5);
    let a = create(&dir, dim);
    let b = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    let v = rng.unit(dim);
    a.add_identity("X", serde_json::Value::Null).unwrap();
    a.enroll(&"X".into(), face(v.clone())).unwrap();
    let id = b.identify(&emb(v.clone()), &params(0.5)).unwrap();
    assert_eq!(id.decision, Decision::Match);
    assert_eq!(id.matches[0].name, "X");
    a.remove_identity(&"X".into()).unwrap();
    let id = b.identify(&emb(v.clone()), &params(0.5)).unwrap();
    assert!(id.matches.is_empty(), "{id:?}");
    // b writes, a sees it.
    b.add_identity("Y", serde_json::Value::Null).unwrap();
    b.enroll(&"Y".into(), face(v.clone())).unwrap();
    assert_eq!(a.identify(&emb(v), &params(0.5)).unwrap().matches[0].name, "Y");
    assert!(a.check().unwrap().ok() && b.check().unwrap().ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_identify_while_enrolling() {
    let dir = tmpdir("threads");
    let dim = 32;
    let g = std::sync::Arc::new(create(&dir, dim));
    g.add_identity("P", serde_json::Value::Null).unwrap();
    let mut rng = Rng(8);
    let q = rng.unit(dim);
    std::thread::scope(|s| {
        let g2 = g.clone();
        s.spawn(move || {
            let mut rng = Rng(9);
            for _ in 0..50 {
                g2.enroll(&"P".into(), face(rng.unit(dim))).unwrap();
            }
        });
        for _ in 0..4 {
            let g3 = g.clone();
            let q = q.clone();
            s.spawn(move || {
                for _ in 0..100 {
                    let id = g3.identify(&emb(q.clone()), &params(0.9)).unwrap();
                    assert!(id.matches.len() <= 1);
                }
            });
        }
    });
    assert_eq!(g.len(), 50);
    assert!(g.check().unwrap().ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mean_templates_stay_in_step_with_changes() {
    let dir = tmpdir("templates");
    let dim = 24;
    let g = create(&dir, dim);
    let mut rng = Rng(2024);
    // (identity index, face id, vector) kept alongside, to recompute naively.
    let mut faces: Vec<(usize, i64, Vec<f32>)> = Vec::new();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(g.add_identity(&format!("id{i:02}"), serde_json::Value::Null).unwrap().id);
        for _ in 0..4 {
            let v = rng.unit(dim);
            let f = g.enroll(&IdentityRef::Id(ids[i]), face(v.clone())).unwrap();
            faces.push((i, f, v));
        }
    }
    let q = rng.unit(dim);
    let p = IdentifyParams { top_k: 10, scoring: Scoring::Mean, search: SearchMode::Exact, ..params(0.0) };
    let check = |g: &Gallery, faces: &[(usize, i64, Vec<f32>)], what: &str| {
        let list: Vec<(usize, Vec<f32>)> = faces.iter().map(|(i, _, v)| (*i, v.clone())).collect();
        let want = naive(&list, &q, true);
        let got = g.identify(&emb(q.clone()), &p).unwrap();
        assert_eq!(got.matches.len(), want.len(), "{what}");
        for (m, (i, s)) in got.matches.iter().zip(&want) {
            assert_eq!(m.name, format!("id{i:02}"), "{what}");
            assert!((m.similarity as f64 - s).abs() < 1e-5, "{what}");
        }
    };
    check(&g, &faces, "initial");
    // Merge id01 into id02 (faces relabelled), remove two faces, enroll one more.
    g.merge(&IdentityRef::Id(ids[1]), &IdentityRef::Id(ids[2])).unwrap();
    for f in faces.iter_mut().filter(|f| f.0 == 1) {
        f.0 = 2;
    }
    for k in [0usize, 5] {
        let (_, fid, _) = faces.remove(k);
        g.remove_face(fid).unwrap();
    }
    let v = rng.unit(dim);
    let fid = g.enroll(&IdentityRef::Id(ids[3]), face(v.clone())).unwrap();
    faces.push((3, fid, v));
    g.remove_identity(&IdentityRef::Id(ids[9])).unwrap();
    faces.retain(|f| f.0 != 9);
    check(&g, &faces, "after changes");
    drop(g);
    let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    check(&g, &faces, "after reopening");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_index_file_is_rebuilt_not_trusted() {
    let dir = tmpdir("stalefile");
    let dim = 16;
    let mut rng = Rng(31);
    let v = rng.unit(dim);
    {
        let g = create(&dir, dim);
        g.add_identity("gone", serde_json::Value::Null).unwrap();
        g.enroll(&"gone".into(), face(v.clone())).unwrap();
        g.save_index().ok();
    }
    // Keep the index file of the generation where "gone" is enrolled (if the index can be saved).
    let index = dir.join(INDEX_FILE);
    let old = std::fs::read(&index).ok();
    {
        let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
        g.remove_identity(&"gone".into()).unwrap();
    }
    if let Some(old) = &old {
        std::fs::write(&index, old).unwrap(); // as if the process died before saving its index
    }
    let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    assert!(g.index_origin().starts_with("rebuilt"), "{}", g.index_origin());
    assert!(g.identify(&emb(v), &params(0.0)).unwrap().matches.is_empty());
    assert!(g.check().unwrap().ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn index_is_persisted_with_the_generation_and_loaded() {
    let dir = tmpdir("persist");
    let dim = 16;
    let mut rng = Rng(77);
    let v = rng.unit(dim);
    {
        let g = create(&dir, dim);
        g.add_identity("A", serde_json::Value::Null).unwrap();
        g.enroll(&"A".into(), face(v.clone())).unwrap();
        g.save_index().unwrap();
    }
    {
        let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
        assert_eq!(g.index_origin(), "loaded");
        assert_eq!(g.identify(&emb(v.clone()), &params(0.5)).unwrap().matches[0].name, "A");
        g.add_identity("B", serde_json::Value::Null).unwrap();
        g.enroll(&"B".into(), face(rng.unit(dim))).unwrap();
        // Dropped without an explicit save: Drop saves.
    }
    let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    assert_eq!(g.index_origin(), "loaded");
    assert_eq!(g.len(), 2);
    assert!(g.check().unwrap().ok());
    drop(g);
    // An index file built with other graph parameters (M 16, the default before M 32) is not
    // used: it is rebuilt from the store, and searches find the same faces.
    let m16 = GalleryOptions { index: faceprint::index::IndexParams { connectivity: 16, ..Default::default() }, ..Default::default() };
    {
        let g = Gallery::open(&dir, m16.clone()).unwrap();
        assert!(g.index_origin().starts_with("rebuilt") && g.index_origin().contains("connectivity"), "{}", g.index_origin());
        g.save_index().unwrap();
    }
    assert_eq!(Gallery::open(&dir, m16).unwrap().index_origin(), "loaded");
    let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    assert!(g.index_origin().starts_with("rebuilt"), "{}", g.index_origin());
    assert_eq!(g.len(), 2);
    assert_eq!(g.identify(&emb(v), &params(0.5)).unwrap().matches[0].name, "A");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The open-set threshold by FPIR counts the templates a stranger is compared with: identities
/// with at least one face under mean scoring, faces under max scoring.
#[test]
fn fpir_threshold_counts_only_searchable_templates() {
    use faceprint::calibrate::Calibration;
    let dir = tmpdir("fpir");
    let g = create(&dir, 8);
    let mut rng = Rng(7);
    for name in ["a", "b", "c"] {
        g.add_identity(name, serde_json::Value::Null).unwrap();
    }
    // "a" gets two faces, "b" one, "c" none.
    for (who, n) in [("a", 2), ("b", 1)] {
        for _ in 0..n {
            g.enroll(&IdentityRef::Name(who.into()), face(rng.unit(8))).unwrap();
        }
    }
    let impostor: Vec<f32> = (0..100_000).map(|i| -0.5 + i as f32 / 100_000.0).collect();
    let genuine: Vec<f32> = (0..100).map(|i| 0.3 + i as f32 / 200.0).collect();
    let cal = Calibration::compute(ModelId(MODEL.into()), "synthetic".into(), &genuine, &impostor, &[1e-2, 5e-3, 1e-3, 1e-4]).unwrap();
    let mean = g.threshold_for_fpir(&cal, 1e-2, Scoring::Mean).unwrap();
    assert!(mean.name.contains("N=2"), "{}", mean.name);
    // 1 − 0.99^(1/2) = 5.0e-3 → the 5e-3 point.
    assert_eq!(mean.similarity, cal.threshold_at(5e-3).unwrap().similarity);
    let max = g.threshold_for_fpir(&cal, 1e-2, Scoring::Max).unwrap();
    assert!(max.name.contains("N=3"), "{}", max.name);
    // 1 − 0.99^(1/3) = 3.3e-3 → the 1e-3 point (conservative).
    assert_eq!(max.similarity, cal.threshold_at(1e-3).unwrap().similarity);
    let _ = std::fs::remove_dir_all(&dir);
}

fn sourced(v: Vec<f32>, sha: &str, bbox: [f32; 4]) -> NewFace {
    NewFace { embedding: emb(v), image_sha256: sha.to_string(), bbox, quality: None, crop: None }
}

#[test]
fn a_new_identity_is_created_only_with_a_face() {
    let dir = tmpdir("atomic");
    let g = create(&dir, 8);
    let mut rng = Rng(21);
    let target = |n: &str| EnrollTarget::GetOrCreate { name: n.into(), metadata: serde_json::json!({"k": 1}) };
    // Nothing to enroll (every photo failed before): no identity.
    let c = g.enroll_faces(&target("Empty"), vec![]).unwrap();
    assert!(c.identity.is_none() && !c.created && c.outcomes.is_empty());
    assert!(g.find_identity(&"Empty".into()).unwrap().is_none(), "no identity without a face");
    // A bad embedding: the whole call fails and nothing is created.
    assert!(matches!(g.enroll_faces(&target("Bad"), vec![face(rng.unit(9))]), Err(GalleryError::DimensionMismatch { .. })));
    assert!(g.find_identity(&"Bad".into()).unwrap().is_none());
    // One face: identity and face in one transaction, with its metadata.
    let c = g.enroll_faces(&target("Ann"), vec![sourced(rng.unit(8), "aa", [0.0, 0.0, 10.0, 10.0])]).unwrap();
    assert!(c.created);
    let ann = c.identity.unwrap();
    assert_eq!((ann.name.as_str(), ann.faces, ann.metadata["k"].as_i64()), ("Ann", 1, Some(1)));
    assert!(matches!(c.outcomes[..], [FaceOutcome::Added { .. }]));
    // The same face for a new identity: refused, and the new identity is not created.
    let c = g.enroll_faces(&target("Bob"), vec![sourced(rng.unit(8), "aa", [0.0, 0.0, 10.0, 10.0])]).unwrap();
    assert!(c.identity.is_none() && !c.created);
    assert!(matches!(&c.outcomes[..], [FaceOutcome::EnrolledElsewhere { identity, identity_id, .. }] if identity == "Ann" && *identity_id == ann.id));
    assert!(g.find_identity(&"Bob".into()).unwrap().is_none(), "no empty identity left behind");
    // An existing name is reused (get or create), not duplicated.
    let c = g.enroll_faces(&target("Ann"), vec![sourced(rng.unit(8), "bb", [0.0, 0.0, 10.0, 10.0])]).unwrap();
    assert!(!c.created && c.identity.as_ref().unwrap().id == ann.id && c.identity.unwrap().faces == 2);
    // Unknown existing identity.
    assert!(matches!(g.enroll_faces(&EnrollTarget::Existing("Zed".into()), vec![face(rng.unit(8))]), Err(GalleryError::UnknownIdentity { .. })));
    assert_eq!(g.identities().unwrap().len(), 1);
    assert!(g.check().unwrap().ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_same_face_of_the_same_photo_is_enrolled_once() {
    let dir = tmpdir("dedupe");
    let g = create(&dir, 8);
    let mut rng = Rng(22);
    g.add_identity("Ann", serde_json::Value::Null).unwrap();
    g.add_identity("Bob", serde_json::Value::Null).unwrap();
    let (ann, bob) = (EnrollTarget::Existing("Ann".into()), EnrollTarget::Existing("Bob".into()));
    let b0 = [10.0, 10.0, 110.0, 130.0];
    let c = g.enroll_faces(&ann, vec![sourced(rng.unit(8), "photo1", b0)]).unwrap();
    let FaceOutcome::Added { face_id } = c.outcomes[0] else { panic!("{:?}", c.outcomes) };
    // Re-enrolling it (a box moved by a pixel, as with other detector settings): a no-op.
    let moved = [11.0, 10.0, 111.0, 131.0];
    let c = g.enroll_faces(&ann, vec![sourced(rng.unit(8), "photo1", moved)]).unwrap();
    assert_eq!(c.outcomes, vec![FaceOutcome::AlreadyEnrolled { face_id }]);
    assert_eq!(g.len(), 1);
    // The same photo twice in one call: one face.
    let c = g.enroll_faces(&ann, vec![sourced(rng.unit(8), "photo2", b0), sourced(rng.unit(8), "photo2", b0)]).unwrap();
    let FaceOutcome::Added { face_id: f2 } = c.outcomes[0] else { panic!("{:?}", c.outcomes) };
    assert_eq!(c.outcomes[1], FaceOutcome::AlreadyEnrolled { face_id: f2 });
    assert_eq!(g.len(), 2);
    // The same face for another identity: refused, naming the identity that has it; the other
    // face of the call goes in.
    let other_face = [300.0, 10.0, 400.0, 130.0];
    let c = g.enroll_faces(&bob, vec![sourced(rng.unit(8), "photo1", b0), sourced(rng.unit(8), "photo1", other_face)]).unwrap();
    assert!(matches!(&c.outcomes[0], FaceOutcome::EnrolledElsewhere { face_id: f, identity, .. } if *f == face_id && identity == "Ann"));
    assert!(matches!(c.outcomes[1], FaceOutcome::Added { .. }), "another face of the same photo is another person");
    assert_eq!(g.identity(&"Bob".into()).unwrap().faces.len(), 1);
    // Faces without a source photo are never deduplicated.
    for _ in 0..2 {
        g.enroll_faces(&bob, vec![sourced(rng.unit(8), "", [0.0; 4])]).unwrap();
    }
    assert_eq!(g.identity(&"Bob".into()).unwrap().faces.len(), 3);
    assert!(g.check().unwrap().ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn labels_csv_reports_bad_rows_with_line_numbers() {
    let dir = tmpdir("labels");
    std::fs::create_dir_all(&dir).unwrap();
    let photos = dir.join("photos");
    let csv = dir.join("labels.csv");
    std::fs::write(
        &csv,
        format!(
            "file,label\n\
             a/1.jpg,Ann\n\
             a/2.jpg,\n\
             ../outside.jpg,Ann\n\
             /etc/passwd,Bob\n\
             # a comment\n\
             \n\
             b/1.jpg,\"Smith, Bob\"\n\
             c/1.jpg,Carl,extra\n\
             {}/d/1.jpg,Dan\n\
             ,Eve\n\
             ./e/../e/1.jpg,Eve\n\
             f/1.jpg,id:7\n",
            photos.display()
        ),
    )
    .unwrap();
    let l = faceprint::gallery::labels::read_labels_csv(&photos, &csv).unwrap();
    let got: Vec<(u64, String, PathBuf)> = l.files.iter().map(|f| (f.line, f.label.clone(), f.path.clone())).collect();
    assert_eq!(
        got,
        vec![
            (2, "Ann".to_string(), photos.join("a/1.jpg")),
            (8, "Smith, Bob".to_string(), photos.join("b/1.jpg")),
            (10, "Dan".to_string(), photos.join("d/1.jpg")),
        ]
    );
    let bad: Vec<u64> = l.bad_rows.iter().map(|b| b.line).collect();
    assert_eq!(bad, vec![3, 4, 5, 9, 11, 12, 13], "{:?}", l.bad_rows);
    assert!(l.bad_rows[0].message.contains("empty label"), "{:?}", l.bad_rows[0]);
    assert!(l.bad_rows[1].message.contains("outside"), "{:?}", l.bad_rows[1]);
    assert!(l.bad_rows[2].message.contains("outside"), "{:?}", l.bad_rows[2]);
    assert!(l.bad_rows[3].message.contains("expected 2"), "{:?}", l.bad_rows[3]);
    assert!(l.bad_rows[6].message.contains("id:"), "{:?}", l.bad_rows[6]);
    // The file itself missing, or a directory: an error naming it.
    assert!(matches!(faceprint::gallery::labels::read_labels_csv(&photos, &dir.join("none.csv")), Err(GalleryError::LabelsFile { .. })));
    assert!(matches!(faceprint::gallery::labels::read_labels_csv(&photos, &dir), Err(GalleryError::LabelsFile { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn enrollment_gate_raises_the_detection_score_minimum_only() {
    use faceprint::gallery::{enrollment_gate, ENROLLMENT_MIN_DET_SCORE};
    use faceprint::quality::QualityGate;
    let g = enrollment_gate(&QualityGate::default(), ENROLLMENT_MIN_DET_SCORE);
    assert_eq!(g.min_score, 0.68);
    assert_eq!(QualityGate { min_score: QualityGate::default().min_score, ..g }, QualityGate::default());
    // A stricter user gate is kept; a gate that is off stays off.
    assert_eq!(enrollment_gate(&QualityGate { min_score: 0.9, ..QualityGate::default() }, ENROLLMENT_MIN_DET_SCORE).min_score, 0.9);
    assert_eq!(enrollment_gate(&QualityGate::off(), ENROLLMENT_MIN_DET_SCORE), QualityGate::off());
}

#[test]
fn a_rate_outside_0_1_names_the_range_and_the_operating_points() {
    use faceprint::calibrate::{Calibration, CalibrationError};
    let genuine: Vec<f32> = (0..100).map(|i| 0.5 + i as f32 / 400.0).collect();
    let impostor: Vec<f32> = (0..10_000).map(|i| -0.2 + i as f32 / 40_000.0).collect();
    let c = Calibration::compute(ModelId(MODEL.into()), "test".into(), &genuine, &impostor, &[1e-2, 1e-3]).unwrap();
    for far in [2.0, 0.0, -1e-3, 1.0, f64::NAN] {
        let e = c.threshold_at(far).unwrap_err();
        assert!(matches!(e, CalibrationError::InvalidRate { what: "FAR", .. }), "{e}");
        let m = e.to_string();
        assert!(m.contains("(0, 1)") && m.contains("1e-2") && m.contains("1e-3"), "{m}");
    }
    let e = c.threshold_for_identification(2.0, 10).unwrap_err();
    assert!(matches!(e, CalibrationError::InvalidRate { what: "FPIR", .. }), "{e}");
    assert!(c.threshold_at(1e-2).is_ok());
}

/// A gallery created with i8 index storage: the storage is recorded in the store (reopening
/// with other options keeps it), candidates are rescored from the store (faces) or the f32 sums
/// (mean templates) so similarities equal a naive f64 computation within 1e-5 on the exact and
/// the approximate path, the saved index is
/// loaded again, and a deleted identity never comes back after a restart.
#[test]
fn i8_gallery_rescores_from_the_store() {
    use faceprint::index::{IndexParams, VectorStorage};
    let dir = tmpdir("i8");
    let dim = 64;
    let mut rng = Rng(4242);
    // exact_below 50: Auto takes the HNSW path with 400 faces.
    let options = GalleryOptions { index: IndexParams { storage: VectorStorage::I8, exact_below: 50, ..Default::default() }, ..Default::default() };
    let mut faces = Vec::new();
    let queries: Vec<Vec<f32>> = (0..15).map(|_| rng.unit(dim)).collect();
    {
        let g = Gallery::create(&dir, &ModelId(MODEL.into()), dim, options.clone()).unwrap();
        assert_eq!(g.meta().unwrap().index_storage, VectorStorage::I8);
        let ids: Vec<i64> = (0..60).map(|i| g.add_identity(&format!("id{i:02}"), serde_json::Value::Null).unwrap().id).collect();
        let mut batch = Vec::new();
        for k in 0..400 {
            let i = (k * 7 + k / 3) % 60;
            let v = rng.unit(dim);
            faces.push((i, v.clone()));
            batch.push((ids[i], face(v)));
        }
        g.enroll_many(batch).unwrap();
    }
    let check = |g: &Gallery, faces: &[(usize, Vec<f32>)]| {
        for scoring in [Scoring::Max, Scoring::Mean] {
            // Mean templates: ranked in f16, rescored from the f32 sums; faces: from the store.
            let tol = 1e-5;
            for mode in [SearchMode::Exact, SearchMode::Auto] {
                for q in &queries {
                    let p = IdentifyParams { top_k: 5, scoring, search: mode, ..params(0.0) };
                    let got = g.identify(&emb(q.clone()), &p).unwrap();
                    let want = naive(faces, q, scoring == Scoring::Mean);
                    assert_eq!(got.matches.len(), 5);
                    for m in &got.matches {
                        let (_, s) = want.iter().find(|(i, _)| format!("id{i:02}") == m.name).unwrap();
                        assert!((m.similarity as f64 - s).abs() < tol, "{scoring:?} {mode:?}: {} vs {s}", m.similarity);
                    }
                    if mode == SearchMode::Exact {
                        let (i, s) = &want[0];
                        assert!(got.matches[0].name == format!("id{i:02}") || (got.matches[0].similarity as f64 - s).abs() < tol);
                    }
                }
            }
        }
    };
    // Reopened with the default options (f32): the gallery's own i8 storage is used, and the
    // index saved on drop is loaded.
    let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    assert_eq!(g.meta().unwrap().index_storage, VectorStorage::I8);
    assert_eq!(g.index_origin(), "loaded");
    check(&g, &faces);
    assert!(g.check().unwrap().ok());
    // Remove an identity; after a restart it never comes back.
    let target = faces.iter().find(|(i, _)| *i == 3).unwrap().1.clone();
    assert_eq!(g.identify(&emb(target.clone()), &params(0.5)).unwrap().matches[0].name, "id03");
    g.remove_identity(&"id03".into()).unwrap();
    faces.retain(|(i, _)| *i != 3);
    drop(g);
    let g = Gallery::open(&dir, options).unwrap();
    assert_eq!(g.index_origin(), "loaded");
    for mode in [SearchMode::Exact, SearchMode::Approximate] {
        let id = g.identify(&emb(target.clone()), &IdentifyParams { search: mode, top_k: 10, ..params(0.5) }).unwrap();
        assert!(id.matches.iter().all(|m| m.name != "id03"), "{mode:?}: {id:?}");
    }
    check(&g, &faces);
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A damaged stored embedding (written by hand; faceprint never writes one) does not make the
/// gallery unopenable: the rebuilt index leaves it out, `check` names it, the saved index is
/// loaded again on the next open (not rebuilt every time), and removing the face clears it.
#[test]
fn a_damaged_stored_embedding_is_reported_not_fatal() {
    use faceprint::index::{IndexParams, VectorStorage};
    for storage in [VectorStorage::F32, VectorStorage::I8] {
        let dir = tmpdir(&format!("damaged-{storage}"));
        let dim = 16;
        let mut rng = Rng(31);
        let vs: Vec<Vec<f32>> = (0..3).map(|_| rng.unit(dim)).collect();
        let options = GalleryOptions { index: IndexParams { storage, ..Default::default() }, ..Default::default() };
        let mut faces = Vec::new();
        {
            let g = Gallery::create(&dir, &ModelId(MODEL.into()), dim, options.clone()).unwrap();
            for (i, v) in vs.iter().enumerate() {
                g.add_identity(&format!("p{i}"), serde_json::Value::Null).unwrap();
                faces.push(g.enroll(&format!("p{i}").as_str().into(), face(v.clone())).unwrap());
            }
        }
        let damaged_face = faces[1];
        let conn = rusqlite::Connection::open(dir.join(faceprint::gallery::STORE_FILE)).unwrap();
        conn.execute("UPDATE faces SET embedding = x'00000000' WHERE id = ?1", [damaged_face]).unwrap();
        // Face of p2 scaled by 3: the right length, but not an L2-normalized embedding.
        let scaled: Vec<u8> = vs[2].iter().flat_map(|x| (3.0 * x).to_le_bytes()).collect();
        conn.execute("UPDATE faces SET embedding = ?1 WHERE id = ?2", rusqlite::params![scaled, faces[2]]).unwrap();
        drop(conn);
        {
            // The saved index is loaded (a direct edit does not change the generation). An i8
            // search drops the damaged candidates instead of failing; `check` names both faces
            // and takes them out of the live index, for every storage.
            let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
            assert_eq!(g.index_origin(), "loaded");
            if storage == VectorStorage::I8 {
                for q in &vs {
                    let id = g.identify(&emb(q.clone()), &IdentifyParams { scoring: Scoring::Max, top_k: 5, ..params(0.0) }).unwrap();
                    assert!(id.matches.iter().all(|m| m.name == "p0"), "{id:?}");
                }
            }
            let r = g.check().unwrap();
            assert!(r.index_problems.is_empty(), "{r:?}");
            assert!(r.store_problems.iter().any(|p| p.contains(&format!("face {}: damaged stored embedding (L2 norm 3.0000", faces[2]))), "{r:?}");
            let id = g.identify(&emb(vs[2].clone()), &IdentifyParams { scoring: Scoring::Max, top_k: 5, ..params(0.0) }).unwrap();
            assert!(id.matches.iter().all(|m| m.name == "p0"), "{storage}: {id:?}");
        }
        std::fs::remove_file(dir.join(INDEX_FILE)).unwrap();
        for round in 0..2 {
            let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
            assert_eq!(g.index_origin().starts_with("rebuilt"), round == 0, "{}", g.index_origin());
            for scoring in [Scoring::Max, Scoring::Mean] {
                for q in &vs {
                    let id = g.identify(&emb(q.clone()), &IdentifyParams { scoring, top_k: 5, ..params(0.0) }).unwrap();
                    assert!(id.matches.iter().all(|m| m.name == "p0"), "{storage} {scoring:?}: {id:?}");
                }
            }
            let r = g.check().unwrap();
            assert!(!r.ok());
            assert!(r.store_problems.iter().any(|p| p.contains(&format!("face {damaged_face}: damaged stored embedding"))), "{r:?}");
        }
        let g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
        g.remove_face(damaged_face).unwrap();
        g.remove_face(faces[2]).unwrap();
        assert!(g.check().unwrap().ok());
        assert_eq!(g.identify(&emb(vs[0].clone()), &params(0.5)).unwrap().matches[0].name, "p0");
        drop(g);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `set_index_storage` changes the storage of an existing gallery, including one made before
/// the setting existed (no settings table): recorded, the index rebuilt and saved (the next open
/// loads it), and the answers unchanged.
#[test]
fn index_storage_can_be_changed_later() {
    use faceprint::index::VectorStorage;
    let dir = tmpdir("set-storage");
    let dim = 32;
    let mut rng = Rng(8);
    let vs: Vec<Vec<f32>> = (0..40).map(|_| rng.unit(dim)).collect();
    {
        let g = create(&dir, dim);
        for (i, v) in vs.iter().enumerate() {
            g.add_identity(&format!("p{}", i % 10), serde_json::Value::Null).ok();
            g.enroll(&format!("p{}", i % 10).as_str().into(), face(v.clone())).unwrap();
        }
    }
    // As a gallery made before the setting: no settings table at all.
    let conn = rusqlite::Connection::open(dir.join(faceprint::gallery::STORE_FILE)).unwrap();
    conn.execute_batch("DROP TABLE settings").unwrap();
    drop(conn);
    let q = rng.unit(dim);
    let answer = |g: &Gallery| {
        [Scoring::Max, Scoring::Mean].map(|scoring| g.identify(&emb(q.clone()), &IdentifyParams { scoring, top_k: 5, ..params(0.0) }).unwrap().matches)
    };
    let mut g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
    assert_eq!(g.meta().unwrap().index_storage, VectorStorage::F32);
    let before = answer(&g);
    for storage in [VectorStorage::I8, VectorStorage::F16, VectorStorage::I8] {
        g.set_index_storage(storage).unwrap();
        assert_eq!(g.meta().unwrap().index_storage, storage);
        let now = answer(&g);
        for (a, b) in now.iter().zip(&before) {
            assert_eq!(a.iter().map(|m| &m.name).collect::<Vec<_>>(), b.iter().map(|m| &m.name).collect::<Vec<_>>(), "{storage}");
        }
        drop(g);
        g = Gallery::open(&dir, GalleryOptions::default()).unwrap();
        assert_eq!(g.meta().unwrap().index_storage, storage);
        assert_eq!(g.index_origin(), "loaded", "{storage}");
        assert!(g.check().unwrap().ok());
    }
    // i8 rescores from the store: the same similarities as f32, exactly.
    assert_eq!(answer(&g), before);
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}
