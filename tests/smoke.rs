//! Detection smoke checks with known answers on ../shared/data: face counts of the dlib PASCAL-VOC
//! group photos (upstream boxes, faces down to 37 px), photos with no human face, and the
//! group photos of the installed samples.

mod common;

#[test]
fn dlib_group_photo_face_counts() {
    let Some(data) = common::shared_data("dlib_group_photo_face_counts") else { return };
    let root = data.join("dlib");
    let labels = std::fs::read_to_string(root.join("labels.tsv")).unwrap();
    let analyzer = common::analyzer();
    let mut checked = 0;
    for line in labels.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        // Only rows with an exact upstream count (not "~24", and not the dogs photo, on which the
        // reference detector also fires once, score 0.64).
        let Ok(expected) = cols[1].trim().parse::<usize>() else { continue };
        if expected == 0 {
            continue;
        }
        let r = analyzer.analyze_file(&root.join(cols[0]), false).unwrap();
        println!("{}: {} faces, upstream {expected}", cols[0], r.faces.len());
        // Every upstream face found; at most one more (unlabelled background faces exist).
        assert!(r.faces.len() >= expected && r.faces.len() <= expected + 1, "{}: {} faces, upstream {expected}", cols[0], r.faces.len());
        checked += 1;
    }
    assert_eq!(checked, 10);
}

#[test]
fn photos_without_a_human_face() {
    let Some(data) = common::shared_data("photos_without_a_human_face") else { return };
    let analyzer = common::analyzer();
    for f in [
        "insightface_pypi/insightface/data/images/mask_black.jpg",
        "insightface_pypi/insightface/data/images/mask_blue.jpg",
        "insightface_pypi/insightface/data/images/mask_green.jpg",
        "insightface_pypi/insightface/data/images/mask_white.jpg",
        "exif_orientation_examples/Landscape_1.jpg",
        "exif_orientation_examples/Portrait_6.jpg",
    ] {
        let r = analyzer.analyze_file(&data.join(f), false).unwrap();
        assert!(r.faces.is_empty(), "{f}: {} face(s) found", r.faces.len());
    }
}

#[test]
fn group_photos_of_the_samples() {
    let analyzer = common::analyzer();
    assert_eq!(analyzer.analyze_file(&common::sample("t1.jpg"), false).unwrap().faces.len(), 6);
    let players = analyzer.analyze_file(&common::sample("players.jpg"), false).unwrap();
    assert!(players.faces.len() >= 16, "players.jpg: {}", players.faces.len());
    assert_eq!(analyzer.analyze_file(&common::sample("yaoming.jpg"), false).unwrap().faces.len(), 1);
}

/// The recogniser pads a call to a fixed set of batch sizes (`embed::padded_batch`): the six
/// faces of t1.jpg embedded together (run as a batch of 8, two zero rows) must give the same
/// embeddings as each face alone (batch 1). Tolerance: cosine ≥ 0.99999 (batch composition only
/// changes floating-point summation order).
#[test]
fn padded_batches_give_the_same_embeddings() {
    let analyzer = common::analyzer();
    let path = common::sample("t1.jpg");
    let img = analyzer.decode_file(&path).unwrap();
    let prepared = analyzer.prepare(&path, &img).unwrap();
    let crops = prepared.crops();
    assert_eq!(crops.len(), 6);
    let rec = analyzer.recognizer().unwrap();
    assert_eq!(rec.batch_shapes(), vec![1, 2, 4, 8, 16, 24, 32]);
    let together = analyzer.embed_crops(&crops).unwrap();
    for (i, crop) in crops.iter().enumerate() {
        let alone = analyzer.embed_crops(&[*crop]).unwrap();
        let cos = faceprint::compare::dot(&alone[0].vector, &together[i].vector);
        assert!(cos >= 0.99999, "face {i}: cosine {cos} between batch-of-8 and batch-of-1 embeddings");
    }
    rec.warm_up().unwrap();
}
