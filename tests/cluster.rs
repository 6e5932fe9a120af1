//! Clustering a collection into people: the metric arithmetic, the cannot-link rule, incremental
//! runs, labels surviving re-runs and re-detection (on made-up embeddings, no models needed), and
//! the real-data checks through the CLI (deepface, dlib's bald_guys collage, no-face photos, LFW).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use faceprint::cluster::store::Ingested;
use faceprint::cluster::gallery::{cluster_gallery, GalleryClustering};
use faceprint::cluster::{cluster, evaluate, ClusterError, ClusterParams, Collection, CollectionReport, FaceInput};
use faceprint::gallery::{Gallery, GalleryOptions, IdentityRef, NewFace};
use faceprint::detect::Detection;
use faceprint::embed::{Embedding, ModelId};
use faceprint::pipeline::{AnalyzedImage, Face};
use faceprint::quality::FaceQuality;

// ------------------------------------------------------------------------------------------
// Made-up embeddings

const DIM: usize = 64;
const MODEL: &str = "test-model-0000000000000000";

/// A unit vector near identity `id`'s centre: the centre is a fixed pseudo-random direction,
/// `noise` the size of the per-face perturbation (0.35 gives same-identity similarity ≈ 0.9,
/// different identities ≈ 0).
fn face_vector(id: u64, sample: u64, noise: f32) -> Vec<f32> {
    let mut s = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let centre: Vec<f32> = (0..DIM).map(|_| next()).collect();
    let mut t = sample.wrapping_mul(0xA076_1D64_78BD_642F) ^ id;
    let mut noise_next = || {
        t = t.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = t;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let cn = centre.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut v: Vec<f32> = centre.iter().map(|c| c / cn + noise * noise_next() / (DIM as f32 / 12.0).sqrt()).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn good_quality() -> FaceQuality {
    FaceQuality { size: 100.0, score: 0.9, roll: 0.0, yaw: 0.0, pitch: 0.0, sharpness: 100.0 }
}

/// A face at box `[x, 10, x + 50, 60]` with embedding `v`.
fn face(index: usize, x: f32, v: Vec<f32>) -> Face {
    let bbox = [x, 10.0, x + 50.0, 60.0];
    Face {
        index,
        detection: Detection { bbox, landmarks: [[x + 15.0, 25.0], [x + 35.0, 25.0], [x + 25.0, 35.0], [x + 17.0, 45.0], [x + 33.0, 45.0]], score: 0.9 },
        size: 50.0,
        quality: good_quality(),
        embedding: Some(Embedding { model: ModelId(MODEL.into()), vector: v }),
    }
}

fn image(path: &str, faces: Vec<Face>) -> AnalyzedImage {
    AnalyzedImage { path: PathBuf::from(path), width: 400, height: 100, orientation: 1, warnings: Vec::new(), truncated: false, faces }
}

/// Photo `p{id}_{sample}.jpg` holding one face of identity `id`.
fn portrait(id: u64, sample: u64) -> AnalyzedImage {
    image(&format!("/photos/p{id}_{sample}.jpg"), vec![face(0, 10.0, face_vector(id, sample, 0.35))])
}

fn ingest(c: &mut Collection, img: &AnalyzedImage, pipeline: &str) -> Ingested {
    let sha = format!("sha-of-{}", img.path.display());
    c.ingest(&img.path, &sha, pipeline, img).unwrap()
}

fn params() -> ClusterParams {
    ClusterParams { threshold: 0.5, ..Default::default() }
}

/// The people as sets of (image, face index), sorted: comparable across collections.
fn partition(r: &CollectionReport) -> Vec<Vec<(PathBuf, usize)>> {
    let mut v: Vec<Vec<(PathBuf, usize)>> = r
        .people
        .iter()
        .map(|p| {
            let mut f: Vec<(PathBuf, usize)> = p.faces.iter().map(|f| (f.image.clone(), f.face)).collect();
            f.sort();
            f
        })
        .collect();
    v.sort();
    v
}

fn person_of(r: &CollectionReport, image: &str) -> Option<u64> {
    r.people.iter().find(|p| p.faces.iter().any(|f| f.image == Path::new(image))).map(|p| p.id)
}

// ------------------------------------------------------------------------------------------
// Metric arithmetic

#[test]
fn metrics_on_hand_computed_cases() {
    // Truth: a a a b b; predicted: {0,1} {2,3} {4}.
    // Pairs: predicted (0,1),(2,3) = 2; true (0,1),(0,2),(1,2),(3,4) = 4; correct (0,1) = 1.
    // BCubed P: faces 0,1 → 1; 2,3 → 1/2; 4 → 1: (1+1+.5+.5+1)/5 = 0.8.
    // BCubed R: faces 0,1 → 2/3; 2 → 1/3; 3 → 1/2; 4 → 1/2: (2/3+2/3+1/3+1/2+1/2)/5 = 8/15.
    let truth = ["a", "a", "a", "b", "b"];
    let pred = [Some(1), Some(1), Some(2), Some(2), Some(3)];
    let m = evaluate(&pred, &truth);
    assert_eq!((m.predicted_pairs, m.true_pairs, m.correct_pairs), (2, 4, 1));
    assert!((m.pairwise.precision - 0.5).abs() < 1e-12);
    assert!((m.pairwise.recall - 0.25).abs() < 1e-12);
    assert!((m.pairwise.f1 - 1.0 / 3.0).abs() < 1e-12);
    assert!((m.bcubed.precision - 0.8).abs() < 1e-12);
    assert!((m.bcubed.recall - 8.0 / 15.0).abs() < 1e-12);
    assert!((m.bcubed.f1 - 2.0 * 0.8 * (8.0 / 15.0) / (0.8 + 8.0 / 15.0)).abs() < 1e-12);
    assert_eq!(m.clusters, 3);
    assert_eq!(m.identities, 2);
    // Unassigned faces are singletons: two unassigned faces of "a" never make a pair.
    let m = evaluate(&[None, None, Some(7)], &["a", "a", "a"]);
    assert_eq!((m.predicted_pairs, m.correct_pairs, m.true_pairs), (0, 0, 3));
    assert_eq!(m.pairwise.precision, 1.0);
    assert_eq!(m.pairwise.recall, 0.0);
    assert!((m.bcubed.precision - 1.0).abs() < 1e-12);
    assert!((m.bcubed.recall - 1.0 / 3.0).abs() < 1e-12);
    assert!((m.unassigned_share - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(m.clusters, 1);
    // Everything in one cluster: recall 1, precision = true pairs / all pairs = (1 + 0) / 3.
    let m = evaluate(&[Some(0), Some(0), Some(0)], &["a", "a", "b"]);
    assert!((m.pairwise.precision - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(m.pairwise.recall, 1.0);
    // BCubed P: a,a → 2/3 each, b → 1/3: 5/9.
    assert!((m.bcubed.precision - 5.0 / 9.0).abs() < 1e-12);
}

// ------------------------------------------------------------------------------------------
// Constraints and parameters

#[test]
fn same_photo_faces_never_share_a_person() {
    // Three photos, each holding two faces of the same identity (a collage-like case) plus
    // portraits: with the rule on, no person holds two faces of one photo.
    let vs: Vec<Vec<f32>> = (0..6).map(|s| face_vector(1, s, 0.35)).collect();
    let mut faces: Vec<FaceInput> = vs.iter().enumerate().map(|(i, v)| FaceInput { vector: v, photo: (i / 2) as u64, quality: None, person: None, not_persons: vec![] }).collect();
    let on = cluster(&faces, &params()).unwrap();
    for c in &on.clusters {
        let mut photos: Vec<u64> = c.members.iter().map(|&m| faces[m].photo).collect();
        photos.sort();
        let n = photos.len();
        photos.dedup();
        assert_eq!(photos.len(), n, "two faces of one photo in {:?}", c.members);
    }
    assert_eq!(on.clusters.iter().map(|c| c.members.len()).max(), Some(3), "one face per photo can still group");
    let off = cluster(&faces, &ClusterParams { same_photo_cannot_link: false, ..params() }).unwrap();
    assert_eq!(off.clusters.len(), 1);
    assert_eq!(off.clusters[0].members.len(), 6);
    // Gated faces are reported, not clustered.
    faces[0].quality = Some(FaceQuality { size: 5.0, ..good_quality() });
    let g = cluster(&faces, &ClusterParams { same_photo_cannot_link: false, ..params() }).unwrap();
    assert_eq!(g.gated.len(), 1);
    assert_eq!(g.gated[0].0, 0);
    assert_eq!(g.gated[0].1.measure, "size");
    assert!(!g.clusters[0].members.contains(&0));
}

#[test]
fn min_faces_and_bad_input() {
    let vs: Vec<Vec<f32>> = vec![face_vector(1, 0, 0.35), face_vector(1, 1, 0.35), face_vector(2, 0, 0.35)];
    let faces: Vec<FaceInput> = vs.iter().enumerate().map(|(i, v)| FaceInput { vector: v, photo: i as u64, quality: None, person: None, not_persons: vec![] }).collect();
    let c = cluster(&faces, &params()).unwrap();
    assert_eq!(c.clusters.len(), 1);
    assert_eq!(c.unassigned, vec![2]);
    let c = cluster(&faces, &ClusterParams { min_faces: 3, ..params() }).unwrap();
    assert!(c.clusters.is_empty());
    assert_eq!(c.unassigned, vec![0, 1, 2]);
    for v in [vec![1.0f32, f32::NAN], vec![1.0]] {
        let mut bad = faces.clone();
        bad.push(FaceInput { vector: &v, photo: 9, quality: None, person: None, not_persons: vec![] });
        assert!(matches!(cluster(&bad, &params()), Err(ClusterError::BadEmbedding { face: 3, .. })));
    }
    assert!(matches!(cluster(&faces, &ClusterParams { threshold: 1.5, ..params() }), Err(ClusterError::InvalidParameter { name: "threshold", .. })));
    assert!(matches!(cluster(&faces, &ClusterParams { min_faces: 0, ..params() }), Err(ClusterError::InvalidParameter { name: "min_faces", .. })));
    assert!(cluster(&[], &params()).unwrap().clusters.is_empty());
}

// ------------------------------------------------------------------------------------------
// The collection: incremental runs, labels, re-detection, model

#[test]
fn new_photos_join_existing_people_and_rerun_equals_scratch() {
    let first: Vec<AnalyzedImage> = (0..4).flat_map(|id| (0..3).map(move |s| portrait(id, s))).collect();
    let later: Vec<AnalyzedImage> = (0..5).flat_map(|id| (3..5).map(move |s| portrait(id, s))).collect();
    let mut inc = Collection::in_memory().unwrap();
    for img in &first {
        assert_eq!(ingest(&mut inc, img, "k"), Ingested::Added);
    }
    let r1 = inc.recluster(&params()).unwrap();
    assert_eq!(r1.people.len(), 4);
    let before: Vec<Option<u64>> = (0..4).map(|id| person_of(&r1, &format!("/photos/p{id}_0.jpg"))).collect();
    for img in &later {
        ingest(&mut inc, img, "k");
    }
    // Stored images are not changed by ingesting them again.
    assert_eq!(ingest(&mut inc, &first[0], "k"), Ingested::Unchanged);
    let r2 = inc.recluster(&params()).unwrap();
    assert_eq!(r2.people.len(), 5, "the new person (id 4, two photos) appears");
    for id in 0..4u64 {
        for s in 3..5 {
            assert_eq!(person_of(&r2, &format!("/photos/p{id}_{s}.jpg")), before[id as usize], "new photo of {id} joins its person");
        }
        assert_eq!(person_of(&r2, &format!("/photos/p{id}_0.jpg")), before[id as usize], "person ids carry over");
    }
    // From scratch, in another order: the same people.
    let mut scratch = Collection::in_memory().unwrap();
    for img in later.iter().rev().chain(first.iter()) {
        ingest(&mut scratch, img, "k");
    }
    let r3 = scratch.recluster(&params()).unwrap();
    assert_eq!(partition(&r2), partition(&r3));
    // And a re-run changes nothing.
    assert_eq!(partition(&inc.recluster(&params()).unwrap()), partition(&r2));
}

/// Two groups of one person that the threshold keeps apart (two "looks"), one impostor face.
fn labelled_collection() -> (Collection, Vec<AnalyzedImage>) {
    let mut c = Collection::in_memory().unwrap();
    let mut imgs: Vec<AnalyzedImage> = (0..3).map(|s| portrait(1, s)).collect();
    imgs.extend((0..3).map(|s| portrait(2, s)));
    for img in &imgs {
        ingest(&mut c, img, "k");
    }
    (c, imgs)
}

#[test]
fn labels_survive_reruns() {
    let (mut c, _) = labelled_collection();
    let r = c.recluster(&params()).unwrap();
    assert_eq!(r.people.len(), 2);
    let a = person_of(&r, "/photos/p1_0.jpg").unwrap();
    let b = person_of(&r, "/photos/p2_0.jpg").unwrap();
    c.name_person(a, "Ann").unwrap();
    // One name, one person: naming the other group "Ann" too is refused (it says to merge).
    match c.name_person(b, " Ann ") {
        Err(ClusterError::InvalidParameter { message, .. }) => assert!(message.contains("already named") && message.contains("merge"), "{message}"),
        other => panic!("a second person named Ann: {other:?}"),
    }
    c.name_person(a, "Ann").unwrap();
    let long = "x".repeat(5000);
    match c.name_person(b, &long) {
        Err(ClusterError::InvalidParameter { message, .. }) => assert!(message.contains("more than 256") && message.len() < 100, "{message}"),
        other => panic!("a 5,000-character name: {other:?}"),
    }
    // Merge: the user says both groups are one person; it stays so.
    c.merge_people(a, b).unwrap();
    let r = c.recluster(&params()).unwrap();
    assert_eq!(r.people.len(), 1);
    assert_eq!(r.people[0].id, a);
    assert_eq!(r.people[0].name.as_deref(), Some("Ann"));
    assert_eq!(r.people[0].faces.len(), 6);
    // Reject one face: removed at once, and not back after re-runs.
    let f = r.people[0].faces.iter().find(|f| f.image == Path::new("/photos/p2_1.jpg")).unwrap().face_id;
    assert_eq!(c.reject_face(f, None).unwrap(), a);
    for _ in 0..2 {
        let r = c.recluster(&params()).unwrap();
        let ann = r.people.iter().find(|p| p.id == a).unwrap();
        assert_eq!(ann.name.as_deref(), Some("Ann"));
        assert!(ann.faces.iter().all(|x| x.face_id != f), "rejected face came back");
        assert_eq!(ann.faces.len(), 5);
    }
    let people = c.people().unwrap();
    assert_eq!(people.iter().find(|p| p.id == a).map(|p| (p.faces, p.confirmed)), Some((5, 5)));
    // Errors name what is missing.
    assert!(matches!(c.name_person(999, "x"), Err(ClusterError::NoPerson(999))));
    assert!(matches!(c.merge_people(a, a), Err(ClusterError::InvalidParameter { .. })));
    assert!(matches!(c.reject_face(12345, Some(a)), Err(ClusterError::NoFace(12345))));
}

#[test]
fn labels_survive_redetection() {
    let (mut c, imgs) = labelled_collection();
    let r = c.recluster(&params()).unwrap();
    let a = person_of(&r, "/photos/p1_0.jpg").unwrap();
    c.name_person(a, "Ann").unwrap();
    let rejected = r.people.iter().find(|p| p.id == a).unwrap().faces.iter().find(|f| f.image == Path::new("/photos/p1_2.jpg")).unwrap().face_id;
    c.reject_face(rejected, None).unwrap();
    // Re-detection with other settings: boxes move by a few pixels, embeddings change slightly,
    // and an extra (background) face appears in one photo.
    for (i, img) in imgs.iter().enumerate() {
        let mut again = img.clone();
        for f in &mut again.faces {
            f.detection.bbox = [f.detection.bbox[0] + 3.0, f.detection.bbox[1] - 2.0, f.detection.bbox[2] + 4.0, f.detection.bbox[3] + 1.0];
            if let Some(e) = &mut f.embedding {
                e.vector = face_vector(if i < 3 { 1 } else { 2 }, 100 + i as u64, 0.35);
            }
        }
        if i == 0 {
            again.faces.push(face(1, 300.0, face_vector(9, 0, 0.35)));
        }
        let out = ingest(&mut c, &again, "k2");
        let want = if i == 0 { Ingested::Redetected { kept: 1, added: 1, removed: 0 } } else { Ingested::Redetected { kept: 1, added: 0, removed: 0 } };
        assert_eq!(out, want);
    }
    let r = c.recluster(&params()).unwrap();
    let ann = r.people.iter().find(|p| p.id == a).expect("named person kept");
    assert_eq!(ann.name.as_deref(), Some("Ann"));
    let imgs_of: Vec<&Path> = ann.faces.iter().map(|f| f.image.as_path()).collect();
    assert!(imgs_of.contains(&Path::new("/photos/p1_0.jpg")) && imgs_of.contains(&Path::new("/photos/p1_1.jpg")));
    assert!(!imgs_of.contains(&Path::new("/photos/p1_2.jpg")), "the rejected face stays out after re-detection");
    // A box that moved too far is a new face: its labels are gone with the old one.
    let mut moved = imgs[1].clone();
    moved.faces[0].detection.bbox = [200.0, 10.0, 250.0, 60.0];
    assert_eq!(ingest(&mut c, &moved, "k3"), Ingested::Redetected { kept: 0, added: 1, removed: 1 });
}

#[test]
fn collection_file_keeps_one_model() {
    let dir = std::env::temp_dir().join(format!("faceprint-cluster-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("people.sqlite");
    let _ = std::fs::remove_file(&path);
    {
        let mut c = Collection::open(&path).unwrap();
        ingest(&mut c, &portrait(1, 0), "k");
        ingest(&mut c, &portrait(1, 1), "k");
        let r = c.recluster(&params()).unwrap();
        c.name_person(r.people[0].id, "Bo").unwrap();
    }
    let mut c = Collection::open(&path).unwrap();
    assert_eq!(c.model().unwrap().as_deref(), Some(MODEL));
    assert_eq!(c.people().unwrap()[0].name.as_deref(), Some("Bo"));
    let mut other = portrait(3, 0);
    other.faces[0].embedding.as_mut().unwrap().model = ModelId("other-model-1111111111111111".into());
    let err = c.ingest(&other.path, "x", "k", &other).unwrap_err();
    assert!(matches!(&err, ClusterError::ModelMismatch { stored, .. } if stored == MODEL), "{err}");
    assert!(c.check_model("other-model-1111111111111111").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------------------------------
// Real photos, through the CLI

fn faceprint(args: &[&str]) -> (serde_json::Value, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_faceprint")).args(args).output().expect("run faceprint");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (v, stderr, out.status.code().unwrap_or(-1))
}

fn people_images(v: &serde_json::Value) -> Vec<Vec<String>> {
    v["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["faces"].as_array().unwrap().iter().map(|f| f["image"].as_str().unwrap().to_string()).collect())
        .collect()
}

#[test]
fn deepface_groups_become_13_people_without_merges_and_dogs_are_nobody() {
    let Some(data) = common::shared_data("deepface_groups_become_13_people") else { return };
    let dir = data.join("deepface");
    let tsv = std::fs::read_to_string(dir.join("identities.tsv")).unwrap();
    let mut group_of = std::collections::HashMap::new();
    let mut args: Vec<String> = vec!["--json".into(), "cluster".into(), "--no-state".into()];
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (file, group) = (cols.next().unwrap(), cols.next().unwrap());
        let p = std::fs::canonicalize(dir.join(file)).unwrap();
        group_of.insert(p.display().to_string(), group.to_string());
        args.push(p.display().to_string());
    }
    // No-face photos and the dog picture go in the same run: they must be nobody.
    let no_face: Vec<PathBuf> = ["dlib/examples/faces/dogs.jpg", "insightface_pypi/insightface/data/images/mask_white.jpg", "insightface_pypi/insightface/data/images/mask_black.jpg", "insightface_pypi/insightface/data/images/mask_blue.jpg", "insightface_pypi/insightface/data/images/mask_green.jpg"]
        .iter()
        .map(|f| std::fs::canonicalize(data.join(f)).unwrap())
        .collect();
    args.extend(no_face.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (v, stderr, code) = faceprint(&args);
    assert_eq!(code, 0, "{stderr}");
    let people = people_images(&v);
    let groups: std::collections::HashSet<&String> = group_of.values().collect();
    assert_eq!(groups.len(), 13);
    assert_eq!(people.len(), 13, "{people:?}");
    let mut seen = std::collections::HashSet::new();
    for p in &people {
        let gs: std::collections::HashSet<&String> = p.iter().map(|i| group_of.get(i).unwrap_or_else(|| panic!("{i} in a person"))).collect();
        assert_eq!(gs.len(), 1, "a person mixes groups: {p:?}");
        assert!(seen.insert(*gs.iter().next().unwrap()), "a group split into two people");
    }
    for p in &no_face {
        assert!(!people.iter().flatten().any(|i| i == &p.display().to_string()), "{} is in a person", p.display());
    }
}

#[test]
fn bald_guys_collage_is_4_people_only_with_the_same_photo_rule_off() {
    let Some(data) = common::shared_data("bald_guys_collage") else { return };
    let img = data.join("dlib/examples/faces/bald_guys.jpg");
    let img = img.to_str().unwrap();
    let (off, stderr, code) = faceprint(&["--json", "cluster", "--no-state", "--allow-same-photo", img]);
    assert_eq!(code, 0, "{stderr}");
    let sizes: Vec<usize> = people_images(&off).iter().map(Vec::len).collect();
    assert_eq!(sizes.len(), 4, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s >= 2), "{sizes:?}");
    let (on, stderr, code) = faceprint(&["--json", "cluster", "--no-state", img]);
    assert_eq!(code, 0, "{stderr}");
    for p in people_images(&on) {
        assert!(p.len() <= 1, "two faces of the one photo share a person: {p:?}");
    }
    assert_eq!(on["unassigned"].as_array().unwrap().len(), off["faces"].as_u64().unwrap() as usize - on["refused_by_quality"].as_array().unwrap().len());
}

/// LFW, all 7,701 photos, default parameters: pairwise precision ≥ 0.99. Takes seconds from the
/// warm embedding cache (the LFW tests share it); a cold cache embeds the photos first (minutes).
#[test]
fn lfw_pairwise_precision_at_defaults() {
    let Some(data) = common::shared_data("lfw_pairwise_precision_at_defaults") else { return };
    let root = data.join("lfw/lfw_funneled");
    let (v, stderr, code) = faceprint(&["--json", "cluster", "--no-state", "--truth", "folders", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let m = &v["metrics"];
    println!("LFW clustering at defaults: {m}");
    assert_eq!(m["faces"].as_u64(), Some(7701));
    assert_eq!(m["identities"].as_u64(), Some(4281));
    let p = m["pairwise"]["precision"].as_f64().unwrap();
    let r = m["pairwise"]["recall"].as_f64().unwrap();
    assert!(p >= 0.99, "pairwise precision {p}");
    assert!(r >= 0.95, "pairwise recall {r} (0.978 measured)");
}

fn faceprint_raw(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_faceprint")).args(args).output().expect("run faceprint");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code().unwrap_or(-1))
}

/// The whole loop on real photos with a state file: cluster, a broken file reported, name a
/// person, reject a face, re-run: the labels hold; label errors give clear exit codes.
#[test]
fn cli_state_labels_and_broken_files() {
    let Some(data) = common::shared_data("cli_state_labels_and_broken_files") else { return };
    let dir = std::env::temp_dir().join(format!("faceprint-cluster-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("people.sqlite");
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a JPEG").unwrap();
    let ds = data.join("deepface/tests/unit/dataset");
    let photos: Vec<String> = ["img5.jpg", "img6.jpg", "img11.jpg", "img12.jpg", "img53.jpg", "img55.jpg"].iter().map(|f| ds.join(f).display().to_string()).collect();
    let st = state.to_str().unwrap();
    let mut args: Vec<&str> = vec!["--json", "cluster", "--state", st];
    args.extend(photos.iter().map(String::as_str));
    args.push(broken.to_str().unwrap());
    let (out, err, code) = faceprint_raw(&args);
    assert_eq!(code, 3, "a broken file gives exit 3: {err}");
    assert!(err.contains("broken.jpg"), "the broken file is named: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failed"].as_array().unwrap().len(), 1);
    let people = v["people"].as_array().unwrap();
    assert!(people.len() >= 2, "{v}");
    let first = &people[0];
    let pid = first["id"].as_u64().unwrap();
    let faces: Vec<u64> = first["faces"].as_array().unwrap().iter().map(|f| f["face_id"].as_u64().unwrap()).collect();
    assert!(faces.len() >= 3);
    let (_, err, code) = faceprint_raw(&["people", "--state", st, "name", &pid.to_string(), "Ann"]);
    assert_eq!(code, 0, "{err}");
    let (_, err, code) = faceprint_raw(&["people", "--state", st, "reject", &faces[0].to_string()]);
    assert_eq!(code, 0, "{err}");
    // Re-run without the broken file: the named person keeps its name and lacks the rejected face.
    let mut args: Vec<&str> = vec!["--json", "cluster", "--state", st];
    args.extend(photos.iter().map(String::as_str));
    let (out, err, code) = faceprint_raw(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ann = v["people"].as_array().unwrap().iter().find(|p| p["id"].as_u64() == Some(pid)).expect("person kept");
    assert_eq!(ann["name"].as_str(), Some("Ann"));
    let now: Vec<u64> = ann["faces"].as_array().unwrap().iter().map(|f| f["face_id"].as_u64().unwrap()).collect();
    assert!(!now.contains(&faces[0]), "rejected face is back: {now:?}");
    assert_eq!(now.len(), faces.len() - 1);
    let (out, _, code) = faceprint_raw(&["--json", "people", "--state", st, "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"Ann\""), "{out}");
    // Errors: unknown person (3), merging a person with itself (2), no collection (3).
    assert_eq!(faceprint_raw(&["people", "--state", st, "name", "999999", "X"]).2, 3);
    assert_eq!(faceprint_raw(&["people", "--state", st, "merge", &pid.to_string(), &pid.to_string()]).2, 2);
    let (_, err, code) = faceprint_raw(&["people", "--state", dir.join("none.sqlite").to_str().unwrap(), "list"]);
    assert_eq!(code, 3);
    assert!(err.contains("no collection"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------------------------------
// Clustering the faces of a gallery (made-up embeddings through the library API)

fn gallery_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("faceprint-cluster-gallery-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A face to enroll: embedding `v`, from image `sha` at box `[x, 10, x + 50, 60]`.
fn new_face(v: Vec<f32>, sha: &str, x: f32) -> NewFace {
    NewFace { embedding: Embedding { model: ModelId(MODEL.into()), vector: v }, image_sha256: sha.into(), bbox: [x, 10.0, x + 50.0, 60.0], quality: Some(good_quality()), crop: None }
}

/// Enrolls `faces` under a new identity `name`; returns the face ids.
fn enroll(g: &Gallery, name: &str, faces: Vec<NewFace>) -> Vec<i64> {
    let id = g.add_identity(name, serde_json::Value::Null).unwrap().id;
    faces.into_iter().map(|f| g.enroll(&IdentityRef::Id(id), f).unwrap()).collect()
}

/// A gallery with every problem the audit looks for:
/// - Ann's photos enrolled under two names, "Ann" and "Ann B." (split enrollment);
/// - one of Carl's photos enrolled under "Bob" (mislabelled);
/// - Dora's two faces from one group photo (never one person while the same-photo rule is on);
/// - one face of one of Eve's photos enrolled twice, as "Eve" and as "Eve 2";
/// - an identity without faces.
///
/// Returns the gallery and the face ids: (ann, ann_b, bob, carl_as_bob, carl, dora, eve, eve2).
#[allow(clippy::type_complexity)]
fn audited_gallery(name: &str) -> (Gallery, PathBuf, [Vec<i64>; 8]) {
    let dir = gallery_dir(name);
    let g = Gallery::create(&dir, &ModelId(MODEL.into()), DIM, GalleryOptions::default()).unwrap();
    let v = |id: u64, s: u64| face_vector(id, s, 0.35);
    let ann = enroll(&g, "Ann", (0..4).map(|s| new_face(v(1, s), &format!("a{s}"), 10.0)).collect());
    let ann_b = enroll(&g, "Ann B.", (4..6).map(|s| new_face(v(1, s), &format!("a{s}"), 10.0)).collect());
    let mut bob_faces: Vec<NewFace> = (0..4).map(|s| new_face(v(2, s), &format!("b{s}"), 10.0)).collect();
    bob_faces.push(new_face(v(3, 9), "c9", 10.0));
    let bob_all = enroll(&g, "Bob", bob_faces);
    let (bob, carl_as_bob) = (bob_all[..4].to_vec(), bob_all[4..].to_vec());
    let carl = enroll(&g, "Carl", (0..3).map(|s| new_face(v(3, s), &format!("c{s}"), 10.0)).collect());
    let dora = enroll(&g, "Dora", vec![new_face(v(4, 0), "group", 10.0), new_face(v(4, 1), "group", 200.0)]);
    let eve = enroll(&g, "Eve", vec![new_face(v(5, 0), "e0", 10.0), new_face(v(5, 1), "e1", 10.0)]);
    // The same face of e0 again (box shifted by 2 px: IoU 0.92).
    let eve2 = enroll(&g, "Eve 2", vec![new_face(v(5, 0), "e0", 12.0)]);
    g.add_identity("Nobody", serde_json::Value::Null).unwrap();
    (g, dir, [ann, ann_b, bob, carl_as_bob, carl, dora, eve, eve2])
}

fn person_with(r: &GalleryClustering, face: i64) -> Option<usize> {
    r.people.iter().find(|p| p.faces.iter().any(|f| f.face_id == face)).map(|p| p.person)
}

#[test]
fn gallery_audit_finds_split_and_mislabelled_enrollments() {
    let (g, dir, [ann, ann_b, bob, carl_as_bob, carl, dora, eve, eve2]) = audited_gallery("audit");
    let r = cluster_gallery(&g, &params()).unwrap();
    assert_eq!(r.faces, 19);
    assert_eq!(r.identities, 7, "identities with faces");
    assert!(r.refused.is_empty());
    // Ann and Ann B. are one person; Bob's face of Carl sits with Carl.
    let ann_p = person_with(&r, ann[0]).expect("Ann is a person");
    assert!(ann.iter().chain(&ann_b).all(|&f| person_with(&r, f) == Some(ann_p)));
    let carl_p = person_with(&r, carl[0]).expect("Carl is a person");
    assert_eq!(person_with(&r, carl_as_bob[0]), Some(carl_p));
    let bob_p = person_with(&r, bob[0]).expect("Bob is a person");
    assert!(bob.iter().all(|&f| person_with(&r, f) == Some(bob_p)));
    for p in &r.people {
        assert!(p.faces.iter().all(|f| f.similarity.is_some_and(|s| s > 0.5)), "{p:?}");
    }
    // Same person: Ann + Ann B. (all their faces), Carl + 1 of Bob's 5, Eve + Eve 2.
    let same: Vec<(usize, Vec<(String, usize, usize)>)> =
        r.same_person.iter().map(|s| (s.person, s.identities.iter().map(|i| (i.name.clone(), i.faces, i.of)).collect())).collect();
    assert_eq!(same.len(), 3, "{same:?}");
    let find = |p: usize| same.iter().find(|s| s.0 == p).map(|s| s.1.clone()).unwrap_or_else(|| panic!("person {p} not reported: {same:?}"));
    assert_eq!(find(ann_p), vec![("Ann".to_string(), 4, 4), ("Ann B.".to_string(), 2, 2)]);
    assert_eq!(find(carl_p), vec![("Carl".to_string(), 3, 3), ("Bob".to_string(), 1, 5)]);
    let eve_p = person_with(&r, eve[0]).expect("Eve is a person");
    assert_eq!(find(eve_p), vec![("Eve".to_string(), 2, 2), ("Eve 2".to_string(), 1, 1)]);
    assert!(r.same_person.iter().all(|s| s.similarity > 0.5));
    // Mixed: only Bob, 4 faces with Bob, 1 with Carl.
    assert_eq!(r.mixed_identities.len(), 1, "{:?}", r.mixed_identities);
    let m = &r.mixed_identities[0];
    assert_eq!((m.name.as_str(), m.faces), ("Bob", 5));
    assert_eq!(m.people.iter().map(|p| (p.person, p.faces.clone(), p.majority.clone())).collect::<Vec<_>>(), vec![(bob_p, bob.clone(), "Bob".into()), (carl_p, carl_as_bob.clone(), "Carl".into())]);
    // Dora's two faces share a photo: never one person, so both are unassigned.
    assert!(dora.iter().all(|&f| person_with(&r, f).is_none()));
    let lone: Vec<i64> = r.unassigned.iter().map(|f| f.face_id).collect();
    assert_eq!(lone, dora);
    // Eve's face enrolled twice is one face, reported.
    assert_eq!(r.duplicate_faces.len(), 1);
    assert_eq!(r.duplicate_faces[0].face_ids, vec![eve[0], eve2[0]]);
    assert_eq!(r.duplicate_faces[0].identities, vec!["Eve".to_string(), "Eve 2".to_string()]);
    assert_eq!(person_with(&r, eve2[0]), Some(eve_p));
    // Agreement with the identities: merges (P < 1) and splits (R < 1) both show.
    assert!(r.agreement.pairwise.precision < 1.0 && r.agreement.pairwise.recall < 1.0, "{:?}", r.agreement);
    assert_eq!(r.agreement.faces, 19);
    // With the same-photo rule off, Dora's faces are one person, and the rest does not change.
    let off = cluster_gallery(&g, &ClusterParams { same_photo_cannot_link: false, ..params() }).unwrap();
    let dora_p = person_with(&off, dora[0]).expect("Dora is a person with the rule off");
    assert_eq!(person_with(&off, dora[1]), Some(dora_p));
    assert_eq!(off.same_person.len(), 3);
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gallery_audit_of_a_clean_gallery_reports_nothing_and_gates_quality() {
    let dir = gallery_dir("clean");
    let g = Gallery::create(&dir, &ModelId(MODEL.into()), DIM, GalleryOptions::default()).unwrap();
    for id in 1..=5u64 {
        enroll(&g, &format!("P{id}"), (0..3).map(|s| new_face(face_vector(id, s, 0.35), &format!("{id}-{s}"), 10.0)).collect());
    }
    // A tiny face (12 px, under the default 20 px minimum) is refused, not clustered.
    let mut tiny = new_face(face_vector(1, 7, 0.35), "tiny", 10.0);
    tiny.quality = Some(FaceQuality { size: 12.0, ..good_quality() });
    let tiny_id = g.enroll(&IdentityRef::Name("P1".into()), tiny).unwrap();
    let r = cluster_gallery(&g, &params()).unwrap();
    assert_eq!(r.people.len(), 5);
    assert!(r.people.iter().all(|p| p.identities.len() == 1 && p.faces.len() == 3));
    assert!(r.same_person.is_empty() && r.mixed_identities.is_empty() && r.duplicate_faces.is_empty() && r.unassigned.is_empty());
    assert_eq!(r.refused.iter().map(|f| f.face.face_id).collect::<Vec<_>>(), vec![tiny_id]);
    assert!(r.refused[0].reason.contains("size"), "{}", r.refused[0].reason);
    assert_eq!(r.agreement.pairwise.precision, 1.0);
    assert_eq!(r.agreement.pairwise.recall, 1.0);
    // Bad parameters are refused before anything is read.
    assert!(matches!(cluster_gallery(&g, &ClusterParams { min_faces: 0, ..params() }), Err(ClusterError::InvalidParameter { name: "min_faces", .. })));
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Through the CLI on real photos: the deepface photos enrolled with two deliberate mistakes
/// (G01's img5 under another name, G02's img12 under G03) are both found.
#[test]
fn cli_gallery_audit_on_deepface_enrollments() {
    let Some(data) = common::shared_data("cli_gallery_audit_on_deepface_enrollments") else { return };
    let dir = gallery_dir("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let gal = dir.join("gallery");
    let gal_s = gal.to_str().unwrap();
    let deepface = data.join("deepface");
    let tsv = std::fs::read_to_string(deepface.join("identities.tsv")).unwrap();
    let mut csv = String::from("file,label\n");
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (file, group) = (cols.next().unwrap(), cols.next().unwrap());
        let label = if file.ends_with("/img5.jpg") {
            "G01 again"
        } else if file.ends_with("/img12.jpg") {
            "G03"
        } else {
            group
        };
        csv.push_str(&format!("{file},{label}\n"));
    }
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let (_, err, code) = faceprint_raw(&["gallery", "init", "--gallery", gal_s]);
    assert_eq!(code, 0, "{err}");
    let (_, err, code) = faceprint_raw(&["index", deepface.to_str().unwrap(), "--labels", labels.to_str().unwrap(), "--largest", "--gallery", gal_s]);
    assert_eq!(code, 0, "{err}");
    let (v, err, code) = faceprint(&["--json", "cluster", "--gallery", gal_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["faces"].as_u64(), Some(33), "{v}");
    let same: Vec<Vec<String>> = v["same_person"].as_array().unwrap().iter().map(|s| s["identities"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()).collect();
    assert!(same.contains(&vec!["G01".to_string(), "G01 again".to_string()]), "{same:?}");
    assert!(same.iter().any(|s| s.contains(&"G02".to_string()) && s.contains(&"G03".to_string())), "{same:?}");
    assert_eq!(same.len(), 2, "only the two mistakes: {same:?}");
    let mixed: Vec<&str> = v["mixed_identities"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(mixed, vec!["G03"], "{v}");
    assert_eq!(v["people"].as_array().unwrap().len(), 13);
    // The human report, with the gallery from FACEPRINT_GALLERY; the threshold came from the
    // default model's calibration.
    let out = Command::new(env!("CARGO_BIN_EXE_faceprint")).args(["cluster", "--gallery"]).env("FACEPRINT_GALLERY", &gal).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Probably the same person") && text.contains("G01 again") && text.contains("merge threshold 0.350"), "{text}");
    // Not a gallery, and --gallery with photo inputs: usage (2), as for the gallery commands.
    let (_, err, code) = faceprint_raw(&["cluster", "--gallery", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a faceprint gallery"), "{err}");
    assert_eq!(faceprint_raw(&["cluster", "--gallery", gal_s, deepface.to_str().unwrap()]).2, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
