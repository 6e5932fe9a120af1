//! LFW verification from the raw funneled photos (../shared/data/lfw): the standard 10-fold
//! protocol, side by side with the insightface reference run by
//! tools/reference/eval_lfw_insightface.py (results in tools/reference/results/), and a check
//! that a threshold calibrated on some people holds on other people.
//!
//! Uses the embedding cache under the data directory, so only the first run embeds the 7,701
//! photos (a few minutes per pipeline configuration); later runs take seconds.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use faceprint::calibrate::{all_pairs_similarities, Calibration};
use faceprint::eval::{self, LabelledPair};
use faceprint::pipeline::{AnalyzerConfig, FaceAnalyzer};

/// The two tests embed the same 7,701 photos: one at a time, so that on a cold cache the second
/// reads what the first stored instead of embedding everything again in parallel.
static LFW_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn analyzer(flip: bool) -> FaceAnalyzer {
    let data = faceprint::models::data_dir(None);
    FaceAnalyzer::load(AnalyzerConfig {
        flip,
        workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cache: Some(faceprint::cache::EmbeddingCache::default_path(&data)),
        ..Default::default()
    })
    .unwrap()
}

fn lfw_pairs(data: &std::path::Path) -> Vec<LabelledPair> {
    let root = data.join("lfw/lfw_funneled");
    eval::read_lfw_pairs(&data.join("lfw/pairs.txt"), &root).unwrap()
}

fn reference_accuracy() -> f64 {
    let text = std::fs::read_to_string(common::repo().join("tools/reference/results/lfw_insightface.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["accuracy_mean"].as_f64().unwrap()
}

#[test]
fn lfw_10_fold_accuracy() {
    let Some(data) = common::shared_data("lfw_10_fold_accuracy") else { return };
    let _one_at_a_time = LFW_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let pairs = lfw_pairs(&data);
    assert_eq!(pairs.len(), 6000);
    let reference = reference_accuracy();
    for (flip, floor) in [(false, 0.995), (true, 0.9965)] {
        let a = analyzer(flip);
        let (r, cache_err) = eval::evaluate(&a, &pairs, None, None, |_, _| {}).unwrap();
        assert!(cache_err.is_none(), "{cache_err:?}");
        println!(
            "LFW flip={flip}: accuracy {:.4} ± {:.4}, AUC {:.5}, EER {:.4}, no-face images {}, fold thresholds {:?} (reference insightface {:.4})",
            r.accuracy_mean,
            r.accuracy_std,
            r.auc,
            r.eer,
            r.no_face,
            r.folds.iter().map(|f| f.threshold).collect::<Vec<_>>(),
            reference
        );
        assert_eq!(r.pairs, 6000, "no pair is dropped");
        assert_eq!(r.folds.len(), 10);
        assert!(r.accuracy_mean >= reference, "at least the reference: {} < {reference}", r.accuracy_mean);
        assert!(r.accuracy_mean >= floor, "flip={flip}: {} below {floor}", r.accuracy_mean);
    }
}

/// The threshold of best accuracy, fitted on the standard pairs of five folds, must hold on
/// *other* pairs drawn from the photos of the other five folds (different people: LFW's folds are
/// identity-disjoint): every same-person pair among those photos that is not a standard pair, and
/// as many different-person pairs sampled (seeded) from them. And the FAR = 1e-2 operating point,
/// calibrated on all pairs among the first half's photos, must give a FAR within [0.5 %, 2 %] on
/// all different-person pairs of the second half.
#[test]
fn calibrated_threshold_generalises_to_other_people() {
    let Some(data) = common::shared_data("calibrated_threshold_generalises_to_other_people") else { return };
    let _one_at_a_time = LFW_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let pairs = lfw_pairs(&data);
    let a = analyzer(false);
    let mut images: Vec<PathBuf> = pairs.iter().flat_map(|p| [p.a.clone(), p.b.clone()]).collect();
    images.sort();
    images.dedup();
    let (outcomes, _) = eval::embed_pair_images(&a, &images, None, |_, _| {});
    let fold_of: HashMap<&PathBuf, usize> = pairs.iter().flat_map(|p| [(&p.a, p.fold.unwrap()), (&p.b, p.fold.unwrap())]).collect();
    let standard: std::collections::HashSet<(&PathBuf, &PathBuf)> = pairs.iter().flat_map(|p| [(&p.a, &p.b), (&p.b, &p.a)]).collect();
    let identity = |p: &PathBuf| p.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    for (calib_half, test_half) in [(0..5, 5..10), (5..10, 0..5)] {
        // Best-accuracy threshold on the calibration half's standard pairs.
        let train: Vec<LabelledPair> = pairs.iter().filter(|p| calib_half.contains(&p.fold.unwrap())).cloned().collect();
        let (sims, _) = eval::pair_similarities(&train, &outcomes);
        let (g, i) = eval::split_by_label(&train, &sims);
        let (t, train_acc) = eval::fit_threshold(&g, &i).unwrap();
        // Other pairs from the held-out half's photos.
        let held: Vec<(&PathBuf, String, &Vec<f32>)> = images
            .iter()
            .filter(|p| test_half.contains(&fold_of[p]))
            .filter_map(|p| outcomes[p].embedding.as_ref().map(|e| (p, identity(p), e)))
            .collect();
        let (mut hg, mut all_impostors) = (Vec::new(), Vec::new());
        for x in 0..held.len() {
            for y in x + 1..held.len() {
                let s = faceprint::compare::dot(held[x].2, held[y].2);
                if held[x].1 == held[y].1 {
                    if !standard.contains(&(held[x].0, held[y].0)) {
                        hg.push(s);
                    }
                } else {
                    all_impostors.push(s);
                }
            }
        }
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let hi: Vec<f32> = (0..hg.len())
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                all_impostors[(rng % all_impostors.len() as u64) as usize]
            })
            .collect();
        let acc = eval::accuracy_at(&hg, &hi, t);
        // FAR operating point from all pairs of the calibration half's photos.
        let items: Vec<(String, Vec<f32>)> = images
            .iter()
            .filter(|p| calib_half.contains(&fold_of[p]))
            .filter_map(|p| outcomes[p].embedding.clone().map(|e| (identity(p), e)))
            .collect();
        let (cg, ci) = all_pairs_similarities(&items);
        let cal = Calibration::compute(a.model_id().unwrap().clone(), "test".into(), &cg, &ci, &[1e-2]).unwrap();
        let t2 = cal.threshold_at(1e-2).unwrap().similarity;
        let far = all_impostors.iter().filter(|&&s| s >= t2).count() as f64 / all_impostors.len() as f64;
        println!(
            "folds {calib_half:?} → {test_half:?}: threshold {t:.4} (train accuracy {train_acc:.4}) gives {acc:.4} on {} other same-person and {} \
             sampled different-person pairs; FAR=1e-2 threshold {t2:.4} gives FAR {far:.4} on {} held-out different-person pairs",
            hg.len(),
            hi.len(),
            all_impostors.len()
        );
        assert!(acc >= 0.99, "held-out accuracy {acc}");
        assert!((0.005..=0.02).contains(&far), "held-out FAR {far} at the 1e-2 operating point");
    }
}
