//! Verification evaluation: accuracy, ROC, AUC, EER, TAR at a FAR, threshold fitting, K-fold
//! protocol, interval estimates, and the labelled-pair file formats (LFW `pairs.txt`, TSV).
//!
//! Conventions: a pair is decided "same" when its similarity ≥ threshold. Over a set of
//! genuine (same-person) and impostor (different-person) similarities:
//! FAR(t) = #impostor ≥ t / #impostor (also FMR), TAR(t) = #genuine ≥ t / #genuine,
//! FRR(t) = 1 − TAR(t) (also FNMR).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Accuracy at `threshold` in [0, 1]: the share of genuine pairs with similarity ≥ threshold plus
/// impostor pairs below it, over all pairs. `NaN` when there are no pairs.
pub fn accuracy_at(genuine: &[f32], impostor: &[f32], threshold: f32) -> f64 {
    let n = genuine.len() + impostor.len();
    if n == 0 {
        return f64::NAN;
    }
    let tp = genuine.iter().filter(|&&s| s >= threshold).count();
    let tn = impostor.iter().filter(|&&s| s < threshold).count();
    (tp + tn) as f64 / n as f64
}

/// All similarities with their label (true = genuine), sorted ascending.
fn labelled_ascending(genuine: &[f32], impostor: &[f32]) -> Vec<(f32, bool)> {
    let mut all: Vec<(f32, bool)> = genuine.iter().map(|&s| (s, true)).chain(impostor.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all
}

/// Area under the ROC curve in [0, 1]: the probability that a random genuine pair scores above a
/// random impostor pair, ties counting one half (the Mann–Whitney U statistic over n₁·n₂).
/// `NaN` when either list is empty. O((n₁ + n₂) log(n₁ + n₂)).
pub fn roc_auc(genuine: &[f32], impostor: &[f32]) -> f64 {
    if genuine.is_empty() || impostor.is_empty() {
        return f64::NAN;
    }
    // Rank all scores together (average ranks for ties); U = R_genuine − n₁(n₁+1)/2.
    let all = labelled_ascending(genuine, impostor);
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (n1, n2) = (genuine.len() as f64, impostor.len() as f64);
    (rank_sum - n1 * (n1 + 1.0) / 2.0) / (n1 * n2)
}

/// One point of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Similarity threshold (decide same when similarity ≥ threshold).
    pub threshold: f32,
    /// False accept rate in [0, 1].
    pub far: f64,
    /// True accept rate in [0, 1].
    pub tar: f64,
}

/// The ROC curve: one point per distinct similarity value (as threshold), from the highest
/// threshold (FAR = 0) down to the lowest (FAR = TAR = 1), plus a first point above every score
/// (FAR = TAR = 0). Empty when either list is empty.
pub fn roc_curve(genuine: &[f32], impostor: &[f32]) -> Vec<RocPoint> {
    if genuine.is_empty() || impostor.is_empty() {
        return Vec::new();
    }
    let mut all = labelled_ascending(genuine, impostor);
    all.reverse();
    let (ng, ni) = (genuine.len() as f64, impostor.len() as f64);
    let top = all[0].0;
    let mut pts = vec![RocPoint { threshold: next_up(top), far: 0.0, tar: 0.0 }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let t = all[i].0;
        while i < all.len() && all[i].0 == t {
            if all[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        pts.push(RocPoint { threshold: t, far: fp as f64 / ni, tar: tp as f64 / ng });
    }
    pts
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        x
    } else if x == 0.0 {
        f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() + 1)
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

/// Equal error rate: the rate where FAR = FRR, linearly interpolated between the two ROC points
/// that bracket the crossing, with the threshold interpolated the same way. `None` for an empty
/// curve.
pub fn eer(roc: &[RocPoint]) -> Option<(f64, f32)> {
    // Along the curve (decreasing threshold) FAR rises and FRR = 1 − TAR falls.
    for w in roc.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (da, db) = (a.far - (1.0 - a.tar), b.far - (1.0 - b.tar));
        if da <= 0.0 && db >= 0.0 {
            let f = if (db - da).abs() < 1e-15 { 0.0 } else { -da / (db - da) };
            let rate = a.far + f * (b.far - a.far);
            let t = a.threshold + (f as f32) * (b.threshold - a.threshold);
            return Some((rate, t));
        }
    }
    None
}

/// The operating point at a target FAR: the lowest threshold whose FAR ≤ `target`, with the TAR
/// there. `None` for an empty curve.
pub fn at_far(roc: &[RocPoint], target: f64) -> Option<RocPoint> {
    roc.iter().take_while(|p| p.far <= target).last().copied()
}

/// Fits a threshold maximising accuracy on labelled similarities: among the thresholds that
/// reach the maximum, those between the lowest (`t_lo`) and highest (`t_hi`) maximising candidate
/// similarity values, it returns the midpoint of `[t_lo⁻, t_hi]`, where `t_lo⁻` is the largest
/// similarity below `t_lo` (or `t_lo − 1e-3` if none). Candidates are the distinct similarity
/// values. Taking the middle of the maximising range instead of its first point makes the choice
/// stable across folds. Returns `(threshold, training accuracy)`; `None` without pairs.
pub fn fit_threshold(genuine: &[f32], impostor: &[f32]) -> Option<(f32, f64)> {
    let n = genuine.len() + impostor.len();
    if n == 0 {
        return None;
    }
    let all = labelled_ascending(genuine, impostor);
    // For threshold = all[k].0 (first index of a distinct value): correct = genuine at ≥ k +
    // impostor below k.
    let total_genuine = genuine.len();
    let mut impostor_below = 0usize;
    let mut genuine_below = 0usize;
    let mut best = (0usize, Vec::<usize>::new()); // (correct, candidate indices)
    let mut distinct: Vec<f32> = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let v = all[i].0;
        let correct = (total_genuine - genuine_below) + impostor_below;
        distinct.push(v);
        let idx = distinct.len() - 1;
        if correct > best.0 {
            best = (correct, vec![idx]);
        } else if correct == best.0 {
            best.1.push(idx);
        }
        while i < all.len() && all[i].0 == v {
            if all[i].1 {
                genuine_below += 1
            } else {
                impostor_below += 1
            }
            i += 1;
        }
    }
    // Threshold above every score: all decided "different".
    if impostor_below > best.0 {
        best = (impostor_below, vec![distinct.len()]);
        distinct.push(next_up(*distinct.last().expect("non-empty")));
    }
    let lo_idx = *best.1.first().expect("at least one candidate");
    let hi_idx = *best.1.last().expect("at least one candidate");
    let t_hi = distinct[hi_idx];
    let t_lo_prev = if lo_idx > 0 { distinct[lo_idx - 1] } else { distinct[lo_idx] - 1e-3 };
    Some(((t_lo_prev + t_hi) / 2.0, best.0 as f64 / n as f64))
}

/// Wilson score interval (95 %, z = 1.96) for a proportion of `k` successes in `n` trials:
/// `(low, high)` in [0, 1]. Wilson (1927); chosen over the normal approximation because it stays
/// inside [0, 1] and behaves at k = 0, which is where low FARs live. `(0, 1)` for n = 0.
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054f64;
    let (kf, nf) = (k as f64, n as f64);
    let p = kf / nf;
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z * ((p * (1.0 - p) / nf) + z * z / (4.0 * nf * nf)).sqrt() / denom;
    // Rounding leaves ~1e-17 where the bound is exactly 0 or 1.
    let clean = |x: f64| if x < 1e-12 { 0.0 } else if x > 1.0 - 1e-12 { 1.0 } else { x };
    (clean(centre - half), clean(centre + half))
}

/// A labelled pair of image files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledPair {
    /// First image.
    pub a: PathBuf,
    /// Second image.
    pub b: PathBuf,
    /// Same person?
    pub same: bool,
    /// Fold index (LFW `pairs.txt` folds), if the file defines folds.
    pub fold: Option<usize>,
}

/// Errors reading a pairs file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairsError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A line that does not follow the format.
    #[error("{path}:{line}: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

/// Reads LFW's `pairs.txt` (header `FOLDS N`, then per fold N lines `name i j` (same person) and
/// N lines `name1 i name2 j` (different), tab-separated), resolving images as
/// `root/name/name_%04d.jpg`. Folds are numbered from 0.
///
/// # Errors
/// [`PairsError`] naming the file and line.
pub fn read_lfw_pairs(pairs: &Path, root: &Path) -> Result<Vec<LabelledPair>, PairsError> {
    let text = std::fs::read_to_string(pairs).map_err(|source| PairsError::Io { path: pairs.to_path_buf(), source })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let bad = |line: usize, detail: String| PairsError::Format { path: pairs.to_path_buf(), line, detail };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
    let h: Vec<usize> = header.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if h.len() != 2 || h[0] == 0 || h[1] == 0 {
        return Err(bad(1, format!("expected a header `FOLDS PAIRS_PER_CLASS`, found {header:?}")));
    }
    let (folds, per) = (h[0], h[1]);
    let img = |name: &str, n: &str, line: usize| -> Result<PathBuf, PairsError> {
        let k: u32 = n.trim().parse().map_err(|_| bad(line, format!("{n:?} is not an image number")))?;
        Ok(root.join(name).join(format!("{name}_{k:04}.jpg")))
    };
    let mut out = Vec::with_capacity(folds * per * 2);
    for (idx, (ln, line)) in lines.enumerate() {
        let ln = ln + 1;
        let c: Vec<&str> = line.split('\t').map(str::trim).collect();
        let fold = idx / (2 * per);
        if fold >= folds {
            return Err(bad(ln, format!("more lines than {folds} folds × {} pairs", 2 * per)));
        }
        let pair = match c.len() {
            3 => LabelledPair { a: img(c[0], c[1], ln)?, b: img(c[0], c[2], ln)?, same: true, fold: Some(fold) },
            4 => LabelledPair { a: img(c[0], c[1], ln)?, b: img(c[2], c[3], ln)?, same: false, fold: Some(fold) },
            n => return Err(bad(ln, format!("expected 3 or 4 tab-separated fields, found {n}"))),
        };
        let expect_same = (idx % (2 * per)) < per;
        if pair.same != expect_same {
            return Err(bad(ln, format!("fold {fold}: expected a {} pair here", if expect_same { "same-person" } else { "different-person" })));
        }
        out.push(pair);
    }
    if out.len() != folds * per * 2 {
        return Err(bad(1, format!("{} pairs, the header promises {}", out.len(), folds * per * 2)));
    }
    Ok(out)
}

/// Reads a TSV of `image_a<TAB>image_b<TAB>same(1|0)`; lines starting with `#` and blank lines are
/// skipped; relative paths are resolved against the file's folder.
///
/// # Errors
/// [`PairsError`] naming the file and line.
pub fn read_tsv_pairs(file: &Path) -> Result<Vec<LabelledPair>, PairsError> {
    let text = std::fs::read_to_string(file).map_err(|source| PairsError::Io { path: file.to_path_buf(), source })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let base = file.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let c: Vec<&str> = line.split('\t').collect();
        let bad = |detail: String| PairsError::Format { path: file.to_path_buf(), line: i + 1, detail };
        if c.len() < 3 {
            return Err(bad(format!("expected image_a<TAB>image_b<TAB>same(1|0), found {} field(s)", c.len())));
        }
        let same = match c[2].trim() {
            "1" => true,
            "0" => false,
            other => return Err(bad(format!("label {other:?} is not 1 or 0"))),
        };
        out.push(LabelledPair { a: base.join(c[0].trim()), b: base.join(c[1].trim()), same, fold: None });
    }
    if out.is_empty() {
        return Err(PairsError::Format { path: file.to_path_buf(), line: 1, detail: "no pairs in the file".into() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_hand_computed() {
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2, 0.3]), 1.0);
        assert_eq!(roc_auc(&[0.1], &[0.9]), 0.0);
        // genuine {0.5, 0.9}, impostor {0.4, 0.6}: (0.5>0.4), (0.5<0.6), (0.9>0.4), (0.9>0.6) → 3/4.
        assert_eq!(roc_auc(&[0.5, 0.9], &[0.4, 0.6]), 0.75);
        // A tie counts one half: genuine {0.5}, impostor {0.5, 0.1} → (0.5 + 1) / 2.
        assert_eq!(roc_auc(&[0.5], &[0.5, 0.1]), 0.75);
        assert!(roc_auc(&[], &[0.1]).is_nan());
    }

    #[test]
    fn accuracy_hand_computed() {
        assert_eq!(accuracy_at(&[0.6, 0.4], &[0.3, 0.5], 0.5), 0.5);
        assert_eq!(accuracy_at(&[0.6], &[0.3], 0.5), 1.0);
    }

    #[test]
    fn roc_eer_and_tar_at_far_hand_computed() {
        // genuine 0.9 0.8 0.4, impostor 0.7 0.3 0.2 0.1.
        let g = [0.9, 0.8, 0.4];
        let i = [0.7, 0.3, 0.2, 0.1];
        let roc = roc_curve(&g, &i);
        let pts: Vec<(f32, f64, f64)> = roc.iter().map(|p| (p.threshold, p.far, p.tar)).collect();
        assert_eq!(pts[1], (0.9, 0.0, 1.0 / 3.0));
        assert_eq!(pts[2], (0.8, 0.0, 2.0 / 3.0));
        assert_eq!(pts[3], (0.7, 0.25, 2.0 / 3.0));
        assert_eq!(pts[4], (0.4, 0.25, 1.0));
        assert_eq!(pts.last().unwrap().1, 1.0);
        // FAR ≤ 0.1 → lowest such threshold is 0.8 with TAR 2/3; FAR ≤ 0.25 → 0.4, TAR 1.
        let p = at_far(&roc, 0.1).unwrap();
        assert_eq!((p.threshold, p.tar), (0.8, 2.0 / 3.0));
        assert_eq!(at_far(&roc, 0.25).unwrap().threshold, 0.4);
        // EER: between (0.8: FAR 0, FRR 1/3) and (0.7: FAR 1/4, FRR 1/3): FAR − FRR goes −1/3 → −1/12,
        // then at 0.4: 1/4 − 0 = 1/4. Crossing between 0.7 and 0.4: f = (1/12)/(1/12 + 1/4) = 1/4;
        // rate = 0.25 + 0 = 0.25 (FAR flat), threshold 0.7 − 0.075 = 0.625.
        let (rate, t) = eer(&roc).unwrap();
        assert!((rate - 0.25).abs() < 1e-9, "{rate}");
        assert!((t - 0.625).abs() < 1e-6, "{t}");
    }

    #[test]
    fn fitted_threshold_is_the_middle_of_the_best_range() {
        // genuine 0.9 0.8, impostor 0.3 0.2: any t in (0.3, 0.8] is perfect → midpoint of [0.3, 0.8].
        let (t, acc) = fit_threshold(&[0.9, 0.8], &[0.3, 0.2]).unwrap();
        assert!((t - 0.55).abs() < 1e-6 && acc == 1.0, "{t} {acc}");
        // Overlap: genuine 0.9 0.5, impostor 0.6 0.1: best 3/4, reached for t in (0.1, 0.5] and (0.6, 0.9]:
        // lowest maximising candidate 0.5 (prev 0.1), highest 0.9 → (0.1 + 0.9)/2.
        let (t, acc) = fit_threshold(&[0.9, 0.5], &[0.6, 0.1]).unwrap();
        assert!((t - 0.5).abs() < 1e-6 && acc == 0.75, "{t} {acc}");
        // Only impostors: every threshold above all scores is perfect.
        let (t, acc) = fit_threshold(&[], &[0.2, 0.4]).unwrap();
        assert!(t > 0.4 && acc == 1.0);
    }

    #[test]
    fn wilson_interval_hand_computed() {
        // k = 0, n = 100: upper bound z²/(n + z²) = 3.8415/103.8415 = 0.03699.
        let (lo, hi) = wilson_interval(0, 100);
        assert!(lo.abs() < 1e-12, "{lo}");
        assert!((hi - 0.036994).abs() < 1e-5, "{hi}");
        // k = 50, n = 100: 0.5 ± 0.0962 (Wilson): (0.4038, 0.5962).
        let (lo, hi) = wilson_interval(50, 100);
        assert!((lo - 0.40383).abs() < 1e-4 && (hi - 0.59617).abs() < 1e-4, "{lo} {hi}");
    }

    #[test]
    fn lfw_pairs_format() {
        let dir = std::env::temp_dir().join(format!("faceprint-pairs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pairs.txt");
        std::fs::write(&p, "2\t1\nAnn\t1\t2\nBob\t1\tCarl\t3\nDan\t2\t4\nEve\t1\tFay\t2\n").unwrap();
        let pairs = read_lfw_pairs(&p, Path::new("/r")).unwrap();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[0].a, Path::new("/r/Ann/Ann_0001.jpg"));
        assert!(pairs[0].same && !pairs[1].same && pairs[2].same);
        assert_eq!(pairs[1].b, Path::new("/r/Carl/Carl_0003.jpg"));
        assert_eq!(pairs.iter().map(|p| p.fold.unwrap()).collect::<Vec<_>>(), vec![0, 0, 1, 1]);
        std::fs::write(&p, "2\t1\nAnn\t1\t2\n").unwrap();
        assert!(read_lfw_pairs(&p, Path::new("/r")).is_err());
        std::fs::write(&p, "1\t1\nBob\t1\tCarl\t3\nAnn\t1\t2\n").unwrap();
        assert!(read_lfw_pairs(&p, Path::new("/r")).is_err(), "different-person pair where same expected");
        let t = dir.join("pairs.tsv");
        std::fs::write(&t, "# a\tb\tsame\nx.jpg\ty.jpg\t1\nx.jpg\tz.jpg\t0\n").unwrap();
        let pairs = read_tsv_pairs(&t).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].a, dir.join("x.jpg"));
        std::fs::write(&t, "x.jpg\ty.jpg\tmaybe\n").unwrap();
        assert!(read_tsv_pairs(&t).unwrap_err().to_string().contains(":1:"));
    }
}

// ---------------------------------------------------------------------------------------------
// Running a protocol over images with the pipeline.

/// The face of an image that a pair uses in evaluation: the one whose box centre is nearest the
/// image centre (Euclidean distance in pixels), ties going to the higher detection score. LFW
/// photos are centred on their subject, and other people can appear near the edges.
pub fn centre_face(img: &crate::pipeline::AnalyzedImage) -> Option<&crate::pipeline::Face> {
    let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
    img.faces.iter().min_by(|a, b| {
        let d = |f: &crate::pipeline::Face| {
            let bb = f.detection.bbox;
            ((bb[0] + bb[2]) / 2.0 - cx).powi(2) + ((bb[1] + bb[3]) / 2.0 - cy).powi(2)
        };
        d(a).total_cmp(&d(b)).then(b.detection.score.total_cmp(&a.detection.score))
    })
}

/// Similarity given to a pair whose image has no usable face: the lowest possible, so the pair is
/// decided "different" (an error for a same-person pair); such pairs stay in every denominator.
pub const NO_FACE_SIMILARITY: f32 = -1.0;

/// Per-image outcome of the embedding pass of an evaluation.
#[derive(Debug, Clone)]
pub struct ImageOutcome {
    /// The embedding of the chosen face, `None` when no face (or none passing the gate).
    pub embedding: Option<Vec<f32>>,
    /// Why there is no embedding: `no face`, `quality: …`, or the decoding error.
    pub failure: Option<String>,
}

/// Embeds the chosen face ([`centre_face`]) of every distinct image of `pairs`, through the
/// analyzer's cache when it has one. With `gate`, faces failing it count as no face.
/// `progress(done, total)` is called after each image.
///
/// # Errors
/// [`crate::Error::Cache`] when cache writes fail (results are still complete), as the only
/// error; per-image failures are in the outcomes.
pub fn embed_pair_images(
    analyzer: &crate::pipeline::FaceAnalyzer,
    images: &[PathBuf],
    gate: Option<&crate::quality::QualityGate>,
    mut progress: impl FnMut(usize, usize),
) -> (std::collections::HashMap<PathBuf, ImageOutcome>, Option<crate::Error>) {
    let mut out = std::collections::HashMap::with_capacity(images.len());
    let total = images.len();
    let mut done = 0;
    let res = analyzer.analyze_files(images, true, |path, r| {
        let outcome = match r {
            Ok(img) => match centre_face(&img) {
                Some(f) => match gate.map(|g| g.check(&f.quality)) {
                    Some(Err(failure)) => ImageOutcome { embedding: None, failure: Some(format!("quality: {failure}")) },
                    _ => ImageOutcome { embedding: f.embedding.as_ref().map(|e| e.vector.clone()), failure: None },
                },
                None => ImageOutcome { embedding: None, failure: Some("no face".into()) },
            },
            Err(e) => ImageOutcome { embedding: None, failure: Some(e.to_string()) },
        };
        out.insert(path.to_path_buf(), outcome);
        done += 1;
        progress(done, total);
    });
    (out, res.err())
}

/// One fold of a K-fold evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldResult {
    /// Fold index (0-based).
    pub fold: usize,
    /// Threshold fitted on the other folds ([`fit_threshold`]).
    pub threshold: f32,
    /// Accuracy on this fold at that threshold.
    pub accuracy: f64,
}

/// TAR at a target FAR.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TarAtFar {
    /// Target FAR.
    pub far: f64,
    /// Lowest threshold with FAR ≤ target.
    pub threshold: f32,
    /// TAR there.
    pub tar: f64,
    /// Whether the impostor pairs number at least 10 / target.
    pub supported: bool,
}

/// A verification evaluation report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// Number of pairs (all of them count in every rate).
    pub pairs: usize,
    /// Same-person pairs.
    pub genuine_pairs: usize,
    /// Different-person pairs.
    pub impostor_pairs: usize,
    /// Distinct images.
    pub images: usize,
    /// Images without a usable face (no face, failed the quality gate, or unreadable).
    pub no_face: usize,
    /// Of those, images that could not be read or decoded.
    pub unreadable: usize,
    /// Of those, faces refused by the quality gate.
    pub quality_rejected: usize,
    /// Pairs with at least one image without a usable face.
    pub no_face_pairs: usize,
    /// Images that could not be read or decoded, with the reason.
    #[serde(default)]
    pub unreadable_images: Vec<(PathBuf, String)>,
    /// How such pairs are counted.
    pub no_face_policy: String,
    /// Which face of an image is used.
    pub face_rule: String,
    /// Per-fold results (K-fold protocols).
    pub folds: Vec<FoldResult>,
    /// Mean fold accuracy (K-fold), else the accuracy at the given threshold.
    pub accuracy_mean: f64,
    /// Population standard deviation of the fold accuracies (0 without folds).
    pub accuracy_std: f64,
    /// The fixed threshold evaluated (without folds), with its name.
    pub threshold: Option<(f32, String)>,
    /// FAR at the fixed threshold (without folds).
    pub far: Option<f64>,
    /// FRR at the fixed threshold (without folds).
    pub frr: Option<f64>,
    /// ROC AUC over all pairs.
    pub auc: f64,
    /// Equal error rate over all pairs.
    pub eer: f64,
    /// Threshold at the EER.
    pub eer_threshold: f32,
    /// TAR at FAR 1e-2 and 1e-3 over all pairs.
    pub tar_at_far: Vec<TarAtFar>,
    /// Model id of the embeddings.
    pub model: String,
    /// Pipeline configuration ([`crate::pipeline::FaceAnalyzer::pipeline_key`]).
    pub pipeline: String,
    /// Wall time of the embedding pass, seconds.
    pub embed_seconds: f64,
    /// Per-pair similarity, in input order (for plots; not printed by default).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub similarities: Vec<f32>,
}

/// The similarity of each pair from per-image outcomes ([`NO_FACE_SIMILARITY`] when either image
/// has no embedding), and the number of such pairs.
pub fn pair_similarities(pairs: &[LabelledPair], outcomes: &std::collections::HashMap<PathBuf, ImageOutcome>) -> (Vec<f32>, usize) {
    let mut missing = 0;
    let sims = pairs
        .iter()
        .map(|p| {
            let e = |x: &PathBuf| outcomes.get(x).and_then(|o| o.embedding.as_ref());
            match (e(&p.a), e(&p.b)) {
                (Some(a), Some(b)) => crate::compare::dot(a, b).clamp(-1.0, 1.0),
                _ => {
                    missing += 1;
                    NO_FACE_SIMILARITY
                }
            }
        })
        .collect();
    (sims, missing)
}

/// Splits per-pair similarities (in the order of `pairs`) into genuine and impostor lists.
pub fn split_by_label(pairs: &[LabelledPair], sims: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (p, s) in pairs.iter().zip(sims) {
        if p.same {
            genuine.push(*s)
        } else {
            impostor.push(*s)
        }
    }
    (genuine, impostor)
}

/// Builds the report from per-pair similarities. With folds on the pairs (and `fixed` `None`),
/// runs the K-fold protocol: for each fold, [`fit_threshold`] on the other folds, accuracy on it.
/// With `fixed`, reports accuracy, FAR and FRR at that threshold.
pub fn report(pairs: &[LabelledPair], sims: &[f32], fixed: Option<(f32, String)>) -> EvalReport {
    let split = |keep: &dyn Fn(usize) -> bool| {
        let (mut g, mut i) = (Vec::new(), Vec::new());
        for (k, p) in pairs.iter().enumerate() {
            if keep(k) {
                if p.same {
                    g.push(sims[k])
                } else {
                    i.push(sims[k])
                }
            }
        }
        (g, i)
    };
    let (genuine, impostor) = split_by_label(pairs, sims);
    let nfolds = pairs.iter().filter_map(|p| p.fold).max().map_or(0, |m| m + 1);
    let mut folds = Vec::new();
    if fixed.is_none() && nfolds >= 2 {
        for f in 0..nfolds {
            let (tg, ti) = split(&|k| pairs[k].fold != Some(f));
            let (g, i) = split(&|k| pairs[k].fold == Some(f));
            let (t, _) = fit_threshold(&tg, &ti).unwrap_or((0.0, 0.0));
            folds.push(FoldResult { fold: f, threshold: t, accuracy: accuracy_at(&g, &i, t) });
        }
    }
    let (accuracy_mean, accuracy_std) = if folds.is_empty() {
        let t = fixed.as_ref().map_or_else(|| fit_threshold(&genuine, &impostor).map_or(0.0, |x| x.0), |x| x.0);
        (accuracy_at(&genuine, &impostor, t), 0.0)
    } else {
        let n = folds.len() as f64;
        let m = folds.iter().map(|f| f.accuracy).sum::<f64>() / n;
        (m, (folds.iter().map(|f| (f.accuracy - m).powi(2)).sum::<f64>() / n).sqrt())
    };
    let roc = roc_curve(&genuine, &impostor);
    let (eer_rate, eer_t) = eer(&roc).unwrap_or((f64::NAN, f32::NAN));
    let tar_at_far = [1e-2, 1e-3]
        .iter()
        .filter_map(|&far| {
            at_far(&roc, far).map(|p| TarAtFar {
                far,
                threshold: p.threshold,
                tar: p.tar,
                supported: impostor.len() as f64 >= crate::calibrate::SUPPORT_FACTOR / far,
            })
        })
        .collect();
    let (far, frr) = match &fixed {
        Some((t, _)) => {
            let fa = (!impostor.is_empty()).then(|| impostor.iter().filter(|&&s| s >= *t).count() as f64 / impostor.len() as f64);
            let fr = (!genuine.is_empty()).then(|| genuine.iter().filter(|&&s| s < *t).count() as f64 / genuine.len() as f64);
            (fa, fr)
        }
        None => (None, None),
    };
    EvalReport {
        pairs: pairs.len(),
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        images: 0,
        no_face: 0,
        unreadable: 0,
        quality_rejected: 0,
        no_face_pairs: 0,
        unreadable_images: Vec::new(),
        no_face_policy: format!(
            "a pair with an image without a usable face gets similarity {NO_FACE_SIMILARITY} and is decided 'different': an error for a same-person pair, correct for a different-person pair; it stays in every denominator"
        ),
        face_rule: "the face whose box centre is nearest the image centre; ties to the higher detection score".into(),
        folds,
        accuracy_mean,
        accuracy_std,
        threshold: fixed,
        far,
        frr,
        auc: roc_auc(&genuine, &impostor),
        eer: eer_rate,
        eer_threshold: eer_t,
        tar_at_far,
        model: String::new(),
        pipeline: String::new(),
        embed_seconds: 0.0,
        similarities: sims.to_vec(),
    }
}

/// Runs a whole evaluation: embeds every image of `pairs` (cached), computes similarities and
/// [`report`]s. `fixed` as in [`report`]; `gate` as in [`embed_pair_images`].
///
/// # Errors
/// [`crate::Error::InvalidParameter`] for an analyzer without a recogniser. Cache write failures
/// are returned alongside the report, not instead of it.
pub fn evaluate(
    analyzer: &crate::pipeline::FaceAnalyzer,
    pairs: &[LabelledPair],
    fixed: Option<(f32, String)>,
    gate: Option<&crate::quality::QualityGate>,
    progress: impl FnMut(usize, usize),
) -> crate::Result<(EvalReport, Option<crate::Error>)> {
    let model = analyzer.model_id()?.to_string();
    let mut images: Vec<PathBuf> = pairs.iter().flat_map(|p| [p.a.clone(), p.b.clone()]).collect();
    images.sort();
    images.dedup();
    let t0 = std::time::Instant::now();
    let (outcomes, cache_err) = embed_pair_images(analyzer, &images, gate, progress);
    let embed_seconds = t0.elapsed().as_secs_f64();
    let (sims, no_face_pairs) = pair_similarities(pairs, &outcomes);
    let mut r = report(pairs, &sims, fixed);
    r.images = images.len();
    r.no_face = outcomes.values().filter(|o| o.embedding.is_none()).count();
    r.quality_rejected = outcomes.values().filter(|o| o.failure.as_deref().is_some_and(|f| f.starts_with("quality:"))).count();
    let mut unreadable: Vec<(PathBuf, String)> = outcomes
        .iter()
        .filter_map(|(p, o)| o.failure.as_ref().filter(|f| *f != "no face" && !f.starts_with("quality:")).map(|f| (p.clone(), f.clone())))
        .collect();
    unreadable.sort();
    r.unreadable = unreadable.len();
    r.unreadable_images = unreadable;
    r.no_face_pairs = no_face_pairs;
    r.model = model;
    r.pipeline = analyzer.pipeline_key();
    r.embed_seconds = embed_seconds;
    Ok((r, cache_err))
}
