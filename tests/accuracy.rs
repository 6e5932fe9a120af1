//! Same/different accuracy on labelled pairs of real photos: ../shared/data/deepface/pairs.tsv
//! (528 pairs, 27 same-person), full pipeline, largest face of each photo, the default model and
//! its calibrated operating point at FAR = 1e-3 (LFW). Acceptance: accuracy ≥ 95 %. The ROC AUC is
//! reported. An image
//! without a face would make its pairs count as errors (never dropped from the denominator).

mod common;

use std::collections::HashMap;

use faceprint::eval::{accuracy_at, roc_auc};

#[test]
fn deepface_pairs_accuracy_at_the_default_operating_point() {
    let Some(data) = common::shared_data("deepface_pairs_accuracy_at_the_default_operating_point") else { return };
    let root = data.join("deepface");
    let text = std::fs::read_to_string(root.join("pairs.tsv")).unwrap();
    let analyzer = common::analyzer();
    let threshold = analyzer.threshold_at_far(faceprint::calibrate::DEFAULT_FAR).unwrap();
    let mut cache: HashMap<String, Option<Vec<f32>>> = HashMap::new();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    let mut no_face_pairs = 0usize;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let same = cols[2].trim() == "1";
        let mut emb = |f: &str| {
            cache
                .entry(f.to_string())
                .or_insert_with(|| {
                    let r = analyzer.analyze_file(&root.join(f), true).unwrap_or_else(|e| panic!("{e}"));
                    r.faces.first().map(|x| x.embedding.clone().unwrap().vector)
                })
                .clone()
        };
        // A pair with a faceless image gets the lowest similarity: a miss for a genuine pair.
        let s = match (emb(cols[0]), emb(cols[1])) {
            (Some(a), Some(b)) => common::cosine(&a, &b) as f32,
            _ => {
                no_face_pairs += 1;
                -1.0
            }
        };
        if same {
            genuine.push(s)
        } else {
            impostor.push(s)
        }
    }
    let acc = accuracy_at(&genuine, &impostor, threshold.similarity);
    let auc = roc_auc(&genuine, &impostor);
    let fnm = genuine.iter().filter(|&&s| s < threshold.similarity).count();
    let fm = impostor.iter().filter(|&&s| s >= threshold.similarity).count();
    println!(
        "deepface pairs: {} genuine, {} impostor, {no_face_pairs} with a faceless image; threshold {} ({}): accuracy {:.4}, \
         false non-matches {fnm}, false matches {fm}; ROC AUC {auc:.4}",
        genuine.len(),
        impostor.len(),
        threshold.similarity,
        threshold.name,
        acc
    );
    assert_eq!(genuine.len() + impostor.len(), 528);
    assert!(acc >= 0.95, "accuracy {acc}");
    assert!(auc >= 0.95, "AUC {auc}");
}
