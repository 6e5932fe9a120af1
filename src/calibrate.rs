//! Calibration: operating points of a model, each a threshold tied to the false-accept rate it
//! gave on labelled pairs, and the file that stores them.
//!
//! An operating point at a target FAR is the lowest threshold whose FAR on the calibration
//! impostor pairs is ≤ the target ([`crate::eval::at_far`]); it reports the measured FAR and FRR
//! there with 95 % Wilson intervals ([`crate::eval::wilson_interval`]). A target is *supported*
//! when the impostor pairs number at least 10 / target, so that about 10 or more false accepts
//! stand behind the estimate; otherwise the point is still computed but marked unsupported and
//! never chosen by `--far`.
//!
//! The default model's calibration, computed on LFW, is compiled in
//! (`calibration/w600k_mbf-9cc6e4a75f0e2bf0.json`); `faceprint calibrate` writes others to
//! `<data>/calibration/<model id>.json`, which take precedence.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compare::Threshold;
use crate::embed::ModelId;
use crate::eval::{self, RocPoint};

/// FAR targets computed by default.
pub const DEFAULT_FAR_TARGETS: [f64; 3] = [1e-2, 1e-3, 1e-4];

/// The FAR of the operating point that decisions use unless told otherwise.
pub const DEFAULT_FAR: f64 = 1e-3;

/// Impostor pairs needed per unit of FAR for a target to count as supported (≈ 10 expected false
/// accepts at the target).
pub const SUPPORT_FACTOR: f64 = 10.0;

/// One operating point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// The FAR asked for, in (0, 1).
    pub far_target: f64,
    /// Cosine-similarity threshold (same when similarity ≥ threshold), in [−1, 1].
    pub threshold: f32,
    /// FAR measured at the threshold on the calibration impostor pairs.
    pub far: f64,
    /// 95 % Wilson interval of the FAR.
    pub far_ci95: (f64, f64),
    /// FRR (= 1 − TAR) measured at the threshold on the calibration genuine pairs.
    pub frr: f64,
    /// 95 % Wilson interval of the FRR.
    pub frr_ci95: (f64, f64),
    /// Whether the impostor pairs support this target (≥ 10 / target pairs).
    pub supported: bool,
}

/// A model's calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The model whose embeddings these thresholds apply to.
    pub model: ModelId,
    /// Where the pairs came from (data set, protocol, pipeline settings).
    pub source: String,
    /// Number of genuine (same-person) pairs.
    pub genuine_pairs: usize,
    /// Number of impostor (different-person) pairs.
    pub impostor_pairs: usize,
    /// Operating points, by increasing FAR target.
    pub operating_points: Vec<OperatingPoint>,
    /// Threshold of best accuracy on the calibration pairs ([`eval::fit_threshold`]) and that
    /// accuracy.
    pub best_accuracy: (f32, f64),
    /// Equal error rate and its threshold.
    pub eer: (f64, f32),
    /// True when the embeddings were flip-test embeddings (the mean of the aligned crop's and
    /// its mirror's, `AnalyzerConfig::flip`): their similarities are distributed differently,
    /// so a pipeline with the flip test uses its own calibration. Absent in older files: false.
    #[serde(default)]
    pub flip: bool,
}

/// Errors of calibration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    /// Too few pairs to calibrate.
    #[error("cannot calibrate from {genuine} genuine and {impostor} impostor pairs: need at least 1 of each")]
    TooFewPairs {
        /// Genuine pairs given.
        genuine: usize,
        /// Impostor pairs given.
        impostor: usize,
    },
    /// No calibration is known for the model.
    #[error("no calibration for model {model}; run `faceprint calibrate` on labelled pairs, or pass --threshold")]
    Missing {
        /// The model.
        model: ModelId,
    },
    /// The requested FAR has no supported operating point.
    #[error("model {model} has no supported operating point at FAR {far:e} (supported: {available}); pass --threshold or calibrate on more impostor pairs")]
    NoOperatingPoint {
        /// The model.
        model: ModelId,
        /// The FAR asked for.
        far: f64,
        /// The FARs available.
        available: String,
    },
    /// A false-accept or false-positive identification rate outside (0, 1): a rate is a
    /// probability, not a count or a percentage.
    #[error("{what} {value} is not a rate: it must be in (0, 1), e.g. 1e-3; operating points calibrated for model {model}: FAR {available}")]
    InvalidRate {
        /// `FAR` or `FPIR`.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The model.
        model: ModelId,
        /// The supported FAR targets of the calibration.
        available: String,
    },
    /// A calibration file that cannot be read or written.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl Calibration {
    /// Computes a calibration from genuine and impostor similarities at `far_targets`.
    ///
    /// # Errors
    /// [`CalibrationError::TooFewPairs`] without at least one pair of each kind.
    pub fn compute(model: ModelId, source: String, genuine: &[f32], impostor: &[f32], far_targets: &[f64]) -> Result<Self, CalibrationError> {
        if genuine.is_empty() || impostor.is_empty() {
            return Err(CalibrationError::TooFewPairs { genuine: genuine.len(), impostor: impostor.len() });
        }
        let roc = eval::roc_curve(genuine, impostor);
        let mut targets = far_targets.to_vec();
        targets.sort_by(|a, b| a.total_cmp(b));
        let operating_points = targets
            .iter()
            .filter_map(|&target| eval::at_far(&roc, target).map(|p| point(&p, target, genuine.len(), impostor.len())))
            .collect();
        let best_accuracy = eval::fit_threshold(genuine, impostor).expect("pairs present");
        let eer = eval::eer(&roc).unwrap_or((f64::NAN, f32::NAN));
        Ok(Calibration {
            model,
            source,
            genuine_pairs: genuine.len(),
            impostor_pairs: impostor.len(),
            operating_points,
            best_accuracy,
            eer,
            flip: false,
        })
    }

    /// The FAR targets of the supported operating points, as text (`1e-2, 1e-3, …`).
    fn check_rate(&self, what: &'static str, value: f64) -> Result<(), CalibrationError> {
        if value > 0.0 && value < 1.0 {
            Ok(())
        } else {
            Err(CalibrationError::InvalidRate { what, value, model: self.model.clone(), available: self.supported_far_targets() })
        }
    }

    fn supported_far_targets(&self) -> String {
        self.operating_points.iter().filter(|p| p.supported).map(|p| format!("{:e}", p.far_target)).collect::<Vec<_>>().join(", ")
    }

    /// The supported operating point at `far` (matched within 1 %), as a decision threshold.
    ///
    /// # Errors
    /// [`CalibrationError::InvalidRate`] when `far` is not in (0, 1);
    /// [`CalibrationError::NoOperatingPoint`] when there is no point at it.
    pub fn threshold_at(&self, far: f64) -> Result<Threshold, CalibrationError> {
        self.check_rate("FAR", far)?;
        let p = self
            .operating_points
            .iter()
            .find(|p| p.supported && (p.far_target - far).abs() <= far * 0.01)
            .ok_or_else(|| CalibrationError::NoOperatingPoint {
                model: self.model.clone(),
                far,
                available: self.supported_far_targets(),
            })?;
        Ok(Threshold {
            similarity: p.threshold,
            name: format!("FAR={:e}", p.far_target),
            note: format!(
                "calibrated on {}: FAR {:.2e} (95% CI {:.1e}–{:.1e}) over {} impostor pairs, FRR {:.2}% (95% CI {:.2}–{:.2}%) over {} genuine pairs",
                self.source.split(';').next().unwrap_or(&self.source),
                p.far,
                p.far_ci95.0,
                p.far_ci95.1,
                self.impostor_pairs,
                p.frr * 100.0,
                p.frr_ci95.0 * 100.0,
                p.frr_ci95.1 * 100.0,
                self.genuine_pairs
            ),
            far: Some(p.far),
            frr: Some(p.frr),
        })
    }

    /// The decision threshold for open-set identification (1:N) against `comparisons` enrolled
    /// templates (identities under mean-template scoring, faces under max scoring) so that a
    /// stranger is matched to someone with probability at most about `fpir` (false-positive
    /// identification rate, in (0, 1)).
    ///
    /// A stranger is compared with every template, so FPIR ≈ 1 − (1 − FAR)^N for the 1:1 FAR of
    /// the threshold (independent comparisons; ISO/IEC 19795-1 and NIST FRVT 1:N use the same
    /// relation as a first-order model). The per-comparison FAR needed is
    /// 1 − (1 − fpir)^(1/N); this picks the supported operating point with the largest FAR target
    /// at or below it, so the expected FPIR is at or under `fpir` (conservative). The threshold's
    /// `far` is the point's measured 1:1 FAR; its name says the FPIR target and N.
    ///
    /// # Errors
    /// [`CalibrationError::InvalidRate`] when `fpir` is not in (0, 1);
    /// [`CalibrationError::NoOperatingPoint`] when no supported point is strict enough (the
    /// gallery is too large for the number of impostor pairs the calibration was made from).
    pub fn threshold_for_identification(&self, fpir: f64, comparisons: usize) -> Result<Threshold, CalibrationError> {
        self.check_rate("FPIR", fpir)?;
        let n = comparisons.max(1) as f64;
        let fpir = fpir.clamp(f64::MIN_POSITIVE, 1.0 - 1e-12);
        // 1 − (1 − fpir)^(1/n), computed without cancellation.
        let far_needed = -(f64::ln_1p(-fpir) / n).exp_m1();
        let p = self
            .operating_points
            .iter()
            .filter(|p| p.supported && p.far_target <= far_needed * 1.0001)
            .max_by(|a, b| a.far_target.total_cmp(&b.far_target))
            .ok_or_else(|| CalibrationError::NoOperatingPoint {
                model: self.model.clone(),
                far: far_needed,
                available: self.supported_far_targets(),
            })?;
        let mut t = self.threshold_at(p.far_target)?;
        let expected = -(n * f64::ln_1p(-p.far)).exp_m1();
        t.name = format!("FPIR≤{fpir:e} at N={comparisons} (FAR={:e})", p.far_target);
        t.note = format!("expected FPIR {:.2}% against {comparisons} templates; 1:1 operating point {}", expected * 100.0, t.note);
        Ok(t)
    }

    /// Writes the calibration as pretty JSON (atomically: temp file, then rename).
    ///
    /// # Errors
    /// [`CalibrationError::File`].
    pub fn save(&self, path: &Path) -> Result<(), CalibrationError> {
        let err = |detail: String| CalibrationError::File { path: path.to_path_buf(), detail };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let json = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, json + "\n").map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Reads a calibration file.
    ///
    /// # Errors
    /// [`CalibrationError::File`].
    pub fn load(path: &Path) -> Result<Self, CalibrationError> {
        let err = |detail: String| CalibrationError::File { path: path.to_path_buf(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Where `faceprint calibrate` stores the calibration of `model` under the data directory:
    /// `<data>/calibration/<model>.json`, or `<model>+flip.json` for flip-test embeddings.
    pub fn user_path(data: &Path, model: &ModelId, flip: bool) -> PathBuf {
        data.join("calibration").join(format!("{model}{}.json", if flip { "+flip" } else { "" }))
    }

    /// The calibration for embeddings of `model` made without the flip test:
    /// [`Self::for_embeddings`]`(data, model, false)`.
    ///
    /// # Errors
    /// As [`Self::for_embeddings`].
    pub fn for_model(data: &Path, model: &ModelId) -> Result<Self, CalibrationError> {
        Self::for_embeddings(data, model, false)
    }

    /// The calibration for embeddings of `model`, made with the flip test when `flip`: the
    /// user's file under `data` if present ([`Self::user_path`]), else the compiled-in one of
    /// the default model (one for each `flip`, both from all pairs of LFW's 7,701 photos).
    ///
    /// # Errors
    /// [`CalibrationError::Missing`] when neither exists; [`CalibrationError::File`] for an
    /// unreadable user file, or one whose `flip` differs from its name's.
    pub fn for_embeddings(data: &Path, model: &ModelId, flip: bool) -> Result<Self, CalibrationError> {
        let user = Self::user_path(data, model, flip);
        if user.is_file() {
            let c = Self::load(&user)?;
            if c.flip != flip {
                return Err(CalibrationError::File {
                    path: user,
                    detail: format!("holds a calibration for embeddings {} the flip test, but its name says {}", with(c.flip), with(flip)),
                });
            }
            return Ok(c);
        }
        let (text, name) = if flip { (BUILTIN_W600K_MBF_FLIP, "w600k_mbf-9cc6e4a75f0e2bf0+flip.json") } else { (BUILTIN_W600K_MBF, "w600k_mbf-9cc6e4a75f0e2bf0.json") };
        let builtin: Calibration = serde_json::from_str(text)
            .map_err(|e| CalibrationError::File { path: PathBuf::from(format!("calibration/{name} (compiled in)")), detail: e.to_string() })?;
        if &builtin.model == model && builtin.flip == flip {
            Ok(builtin)
        } else {
            Err(CalibrationError::Missing { model: model.clone() })
        }
    }
}

fn with(flip: bool) -> &'static str {
    if flip {
        "with"
    } else {
        "without"
    }
}

/// The default recogniser's calibration on LFW, compiled in.
const BUILTIN_W600K_MBF: &str = include_str!("../calibration/w600k_mbf-9cc6e4a75f0e2bf0.json");

/// The same with the flip test (`faceprint calibrate --flip`, same pairs).
const BUILTIN_W600K_MBF_FLIP: &str = include_str!("../calibration/w600k_mbf-9cc6e4a75f0e2bf0+flip.json");

fn point(p: &RocPoint, target: f64, n_genuine: usize, n_impostor: usize) -> OperatingPoint {
    let fa = (p.far * n_impostor as f64).round() as usize;
    let fr = ((1.0 - p.tar) * n_genuine as f64).round() as usize;
    OperatingPoint {
        far_target: target,
        threshold: p.threshold,
        far: p.far,
        far_ci95: eval::wilson_interval(fa, n_impostor),
        frr: 1.0 - p.tar,
        frr_ci95: eval::wilson_interval(fr, n_genuine),
        supported: n_impostor as f64 >= SUPPORT_FACTOR / target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operating_points_and_support() {
        // 1,000 impostors spread over [−0.5, 0.5), 100 genuine over [0.3025, 0.8025).
        let impostor: Vec<f32> = (0..1000).map(|i| -0.5 + i as f32 / 1000.0).collect();
        let genuine: Vec<f32> = (0..100).map(|i| 0.3025 + i as f32 / 200.0).collect();
        let c = Calibration::compute(ModelId("m".into()), "synthetic".into(), &genuine, &impostor, &[1e-2, 1e-3, 1e-4]).unwrap();
        let p2 = &c.operating_points[2];
        assert_eq!(p2.far_target, 1e-2);
        // FAR ≤ 1 %: at most 10 impostors ≥ t → lowest such t is the 10th highest impostor, 0.49.
        assert!((p2.threshold - 0.49).abs() < 1e-5, "{}", p2.threshold);
        assert!((p2.far - 0.01).abs() < 1e-12);
        // Genuine below 0.49: 0.3025 + i/200 < 0.49 → i ≤ 37 → FRR 0.38.
        assert!((p2.frr - 0.38).abs() < 1e-9, "{}", p2.frr);
        assert!(p2.supported, "1,000 ≥ 10 / 1e-2");
        assert!(!c.operating_points[1].supported && !c.operating_points[0].supported);
        let t = c.threshold_at(1e-2).unwrap();
        assert_eq!(t.similarity, p2.threshold);
        assert!(t.note.contains("FAR"));
        assert!(matches!(c.threshold_at(1e-3), Err(CalibrationError::NoOperatingPoint { .. })));
    }

    #[test]
    fn identification_threshold_from_fpir() {
        // 100,000 impostors evenly over [−0.5, 0.5): points at 1e-2, 1e-3, 1e-4 all supported.
        let impostor: Vec<f32> = (0..100_000).map(|i| -0.5 + i as f32 / 100_000.0).collect();
        let genuine: Vec<f32> = (0..100).map(|i| 0.3 + i as f32 / 200.0).collect();
        let c = Calibration::compute(ModelId("m".into()), "synthetic".into(), &genuine, &impostor, &[1e-2, 1e-3, 1e-4]).unwrap();
        // One template: the needed FAR is the FPIR itself.
        let t = c.threshold_for_identification(1e-2, 1).unwrap();
        assert_eq!(t.similarity, c.threshold_at(1e-2).unwrap().similarity);
        // 10 templates, FPIR 1 %: 1 − 0.99^(1/10) = 1.005e-3 → the 1e-3 point.
        let t = c.threshold_for_identification(1e-2, 10).unwrap();
        assert_eq!(t.similarity, c.threshold_at(1e-3).unwrap().similarity);
        assert!(t.name.contains("N=10"), "{}", t.name);
        // 11 templates need 9.1e-4: conservative, the 1e-4 point.
        let t = c.threshold_for_identification(1e-2, 11).unwrap();
        assert_eq!(t.similarity, c.threshold_at(1e-4).unwrap().similarity);
        // 1,000 templates need 1.0e-5: nothing supported is that strict.
        assert!(matches!(c.threshold_for_identification(1e-2, 1000), Err(CalibrationError::NoOperatingPoint { .. })));
    }

    #[test]
    fn all_pairs_split_by_identity() {
        let items = vec![
            ("a".to_string(), vec![1.0, 0.0]),
            ("a".to_string(), vec![0.0, 1.0]),
            ("b".to_string(), vec![1.0, 0.0]),
        ];
        let (g, i) = all_pairs_similarities(&items);
        assert_eq!(g, vec![0.0]);
        assert_eq!(i, vec![1.0, 0.0]);
    }

    #[test]
    fn builtin_calibration_parses_and_has_the_default_point() {
        let c: Calibration = serde_json::from_str(BUILTIN_W600K_MBF).unwrap();
        assert_eq!(c.model.0, "w600k_mbf-9cc6e4a75f0e2bf0");
        assert!(c.threshold_at(DEFAULT_FAR).is_ok());
    }

    #[test]
    fn flip_test_embeddings_have_their_own_calibration() {
        let data = std::env::temp_dir().join(format!("faceprint-cal-{}", std::process::id()));
        let model = ModelId("w600k_mbf-9cc6e4a75f0e2bf0".into());
        let plain = Calibration::for_embeddings(&data, &model, false).unwrap();
        let flip = Calibration::for_embeddings(&data, &model, true).unwrap();
        assert!(!plain.flip && flip.flip);
        assert!(flip.source.contains("flip=true") && plain.source.contains("flip=false"), "{}", flip.source);
        assert_eq!(plain.operating_points.len(), flip.operating_points.len());
        let (a, b) = (plain.threshold_at(1e-3).unwrap().similarity, flip.threshold_at(1e-3).unwrap().similarity);
        assert!(a != b && (a - b).abs() < 0.02, "{a} vs {b}");
        // A user file wins, and one whose content contradicts its name is refused.
        let path = Calibration::user_path(&data, &model, true);
        assert!(path.ends_with("w600k_mbf-9cc6e4a75f0e2bf0+flip.json"));
        plain.save(&path).unwrap();
        assert!(matches!(Calibration::for_embeddings(&data, &model, true), Err(CalibrationError::File { .. })));
        let mut mine = plain.clone();
        mine.flip = true;
        mine.source = "mine".into();
        mine.save(&path).unwrap();
        assert_eq!(Calibration::for_embeddings(&data, &model, true).unwrap().source, "mine");
        assert!(Calibration::for_embeddings(&data, &ModelId("other".into()), true).is_err());
        let _ = std::fs::remove_dir_all(&data);
    }
}

/// Similarities of all pairs of a labelled set of embeddings: genuine = every pair within an
/// identity, impostor = every pair across identities. `items` are (identity, unit vector).
/// O(n²·D) dot products: 7,701 LFW images give 29.6 M pairs in a few seconds.
pub fn all_pairs_similarities(items: &[(String, Vec<f32>)]) -> (Vec<f32>, Vec<f32>) {
    let (mut genuine, mut impostor) = (Vec::new(), Vec::with_capacity(items.len() * items.len().saturating_sub(1) / 2));
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            let s = crate::compare::dot(&items[i].1, &items[j].1).clamp(-1.0, 1.0);
            if items[i].0 == items[j].0 {
                genuine.push(s)
            } else {
                impostor.push(s)
            }
        }
    }
    (genuine, impostor)
}
