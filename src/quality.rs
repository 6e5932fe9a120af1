//! Face quality: measures of each detected face, and the gate that refuses faces too poor to
//! compare.
//!
//! Measures (all from what the pipeline already has: the detection and the aligned crop):
//! - `size`: the shorter side of the detection box, pixels in the oriented image;
//! - `score`: the detection score in [0, 1];
//! - `roll`, `yaw`, `pitch`: head pose in degrees, estimated from the 5 landmarks with a simple
//!   geometric model (below); good to about ±10°, enough to tell frontal from profile;
//! - `sharpness`: variance of the Laplacian (3×3 kernel `[0 1 0; 1 −4 1; 0 1 0]`) of the gray
//!   112×112 aligned crop (Pech-Pacheco et al., ICPR 2000); higher is sharper; blurred or heavily
//!   upscaled faces score low.
//!
//! Pose model. With the eyes' midpoint `E`, the mouth corners' midpoint `M`, the nose `N` and the
//! eye distance `d`, after rotating by −roll about `E`:
//! - roll = angle of the line from the left to the right eye;
//! - yaw = atan(2·(N.x − (E.x + M.x)/2) / d / 0.9): turning the head by θ moves the nose tip
//!   sideways off the eye–mouth midline by its depth × sin θ while the eye distance shrinks to
//!   d₀ × cos θ, so the ratio grows as 2·(depth/d₀)·tan θ; the nose depth is taken as 0.45 eye
//!   distances (average adult anthropometry), hence 0.9 = 2 × 0.45;
//! - pitch = asin(clamp((p − 0.495) / 0.5)) with p = (N.y − E.y)/(M.y − E.y); 0.495 is p on the
//!   ArcFace template (frontal), positive pitch = looking down.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::Detection;

/// Quality measures of one face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceQuality {
    /// Shorter side of the box, pixels.
    pub size: f32,
    /// Detection score in [0, 1].
    pub score: f32,
    /// In-plane rotation, degrees in (−180, 180]; 0 = eyes level.
    pub roll: f32,
    /// Left–right head turn, degrees in [−90, 90]; 0 = frontal.
    pub yaw: f32,
    /// Up–down head tilt, degrees in [−90, 90]; 0 = frontal.
    pub pitch: f32,
    /// Variance of the Laplacian of the gray aligned crop (≥ 0; gray levels²).
    pub sharpness: f32,
}

/// Pose in degrees (roll, yaw, pitch) from 5 landmarks (left eye, right eye, nose, left mouth,
/// right mouth). See the module docs for the model.
pub fn pose_from_landmarks(lm: &[[f32; 2]; 5]) -> (f32, f32, f32) {
    let (le, re, n, lmo, rmo) = (lm[0], lm[1], lm[2], lm[3], lm[4]);
    let roll = (re[1] - le[1]).atan2(re[0] - le[0]);
    let (c, s) = (roll.cos(), roll.sin());
    let e = [(le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0];
    // Rotate by −roll about E.
    let rot = |p: [f32; 2]| {
        let (x, y) = (p[0] - e[0], p[1] - e[1]);
        [c * x + s * y, -s * x + c * y]
    };
    let (n, m) = (rot(n), rot([(lmo[0] + rmo[0]) / 2.0, (lmo[1] + rmo[1]) / 2.0]));
    let d = ((re[0] - le[0]).powi(2) + (re[1] - le[1]).powi(2)).sqrt().max(1e-3);
    let yaw = ((2.0 * (n[0] - m[0] / 2.0) / d) / 0.9).atan();
    let p = if m[1].abs() > 1e-3 { n[1] / m[1] } else { 0.495 };
    let pitch = ((p - 0.495) / 0.5).clamp(-1.0, 1.0).asin();
    (roll.to_degrees(), yaw.to_degrees(), pitch.to_degrees())
}

/// Variance of the Laplacian of the gray (ITU-R BT.601 luma) image, over interior pixels.
pub fn laplacian_variance(img: &RgbImage) -> f32 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let gray: Vec<f32> = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let (mut sum, mut sum2, mut n) = (0f64, 0f64, 0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let l = gray[i - 1] + gray[i + 1] + gray[i - w] + gray[i + w] - 4.0 * gray[i];
            sum += l as f64;
            sum2 += (l as f64) * (l as f64);
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean).max(0.0) as f32
}

/// Quality of a detected face whose aligned crop is `aligned`.
pub fn measure(det: &Detection, aligned: &RgbImage) -> FaceQuality {
    let (roll, yaw, pitch) = pose_from_landmarks(&det.landmarks);
    FaceQuality { size: det.size(), score: det.score, roll, yaw, pitch, sharpness: laplacian_variance(aligned) }
}

/// Minimums a face must meet to be compared (1:1) or enrolled.
///
/// Defaults chosen by measurement on LFW (7,701 photos, README "Face quality"): gating there does
/// not change the accuracy on the pairs it keeps (99.62–99.68 % for every setting tried), because
/// LFW's faces are all usable; so the defaults only refuse clearly unusable faces and keep LFW's
/// rejected share small.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualityGate {
    /// Minimum face size (shorter box side), pixels. Default 24: below it, embeddings of the same
    /// face move a lot with ±1 px of landmark noise (cosine to the reference falls under 0.99 on
    /// 13–16 px faces, tests/golden.rs).
    pub min_size: f32,
    /// Minimum detection score. Default 0.5 (the detector's own default threshold: a face found
    /// with a lowered `--det-thresh` is still refused for comparison).
    pub min_score: f32,
    /// Maximum |yaw|, degrees. Default 75 (profile faces are refused).
    pub max_abs_yaw: f32,
    /// Maximum |pitch|, degrees. Default 45.
    pub max_abs_pitch: f32,
    /// Minimum sharpness (variance of the Laplacian of the aligned crop). Default 10.
    pub min_sharpness: f32,
}

impl Default for QualityGate {
    fn default() -> Self {
        QualityGate { min_size: 24.0, min_score: 0.5, max_abs_yaw: 75.0, max_abs_pitch: 45.0, min_sharpness: 10.0 }
    }
}

/// A quality measure that failed the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityFailure {
    /// The measure: `size`, `score`, `yaw`, `pitch` or `sharpness`.
    pub measure: &'static str,
    /// Its value.
    pub value: f32,
    /// The limit it broke.
    pub limit: f32,
}

impl std::fmt::Display for QualityFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.measure {
            "yaw" | "pitch" => write!(f, "|{}| {:.1}° is above the maximum {:.1}°", self.measure, self.value.abs(), self.limit),
            m => write!(f, "{m} {:.3} is below the minimum {:.3}", self.value, self.limit),
        }
    }
}

impl QualityGate {
    /// A gate that lets every face through.
    pub fn off() -> Self {
        QualityGate { min_size: 0.0, min_score: 0.0, max_abs_yaw: 90.0, max_abs_pitch: 90.0, min_sharpness: 0.0 }
    }

    /// Checks every limit is a number in its range (sizes, score, sharpness ≥ 0; angles in
    /// [0, 90]; score ≤ 1).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] naming the limit.
    pub fn validate(&self) -> crate::Result<()> {
        let checks: [(&'static str, f32, f32, f32); 5] = [
            ("min_face_size", self.min_size, 0.0, f32::MAX),
            ("min_det_score", self.min_score, 0.0, 1.0),
            ("max_yaw", self.max_abs_yaw, 0.0, 90.0),
            ("max_pitch", self.max_abs_pitch, 0.0, 90.0),
            ("min_sharpness", self.min_sharpness, 0.0, f32::MAX),
        ];
        for (name, v, lo, hi) in checks {
            if !(v >= lo && v <= hi) {
                return Err(crate::Error::InvalidParameter { name, message: format!("{v} is outside [{lo}, {hi}]") });
            }
        }
        Ok(())
    }

    /// Checks `q`; returns the first failed measure (in the order size, score, yaw, pitch,
    /// sharpness).
    pub fn check(&self, q: &FaceQuality) -> Result<(), QualityFailure> {
        let fail = |measure, value, limit| Err(QualityFailure { measure, value, limit });
        if q.size < self.min_size {
            return fail("size", q.size, self.min_size);
        }
        if q.score < self.min_score {
            return fail("score", q.score, self.min_score);
        }
        if q.yaw.abs() > self.max_abs_yaw {
            return fail("yaw", q.yaw, self.max_abs_yaw);
        }
        if q.pitch.abs() > self.max_abs_pitch {
            return fail("pitch", q.pitch, self.max_abs_pitch);
        }
        if q.sharpness < self.min_sharpness {
            return fail("sharpness", q.sharpness, self.min_sharpness);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::ARCFACE_TEMPLATE;

    #[test]
    fn template_is_frontal() {
        let (roll, yaw, pitch) = pose_from_landmarks(&ARCFACE_TEMPLATE);
        assert!(roll.abs() < 0.5 && yaw.abs() < 2.0 && pitch.abs() < 1.0, "{roll} {yaw} {pitch}");
    }

    #[test]
    fn roll_and_yaw_signs() {
        // Rotating the template by 30° gives roll 30° and the same yaw/pitch.
        let t = 30f32.to_radians();
        let rotated: Vec<[f32; 2]> = ARCFACE_TEMPLATE.iter().map(|p| [t.cos() * p[0] - t.sin() * p[1], t.sin() * p[0] + t.cos() * p[1]]).collect();
        let r: [[f32; 2]; 5] = rotated.try_into().unwrap();
        let (roll, yaw, pitch) = pose_from_landmarks(&r);
        assert!((roll - 30.0).abs() < 0.5 && yaw.abs() < 2.0 && pitch.abs() < 1.0);
        // Nose moved towards the right eye by a third of the eye distance: positive yaw,
        // atan(2·(1/3)/0.9) = 36.5°; far off: approaches 90°.
        let mut lm = ARCFACE_TEMPLATE;
        lm[2][0] = 56.0252 + (73.5318 - 38.2946) / 3.0;
        let yaw = pose_from_landmarks(&lm).1;
        assert!((yaw - 36.5).abs() < 1.5, "{yaw}");
        lm[2][0] += 1000.0;
        assert!(pose_from_landmarks(&lm).1 > 85.0);
    }

    #[test]
    fn sharpness_of_flat_and_checkered_images() {
        assert_eq!(laplacian_variance(&RgbImage::from_pixel(10, 10, image::Rgb([80, 80, 80]))), 0.0);
        let checker = RgbImage::from_fn(10, 10, |x, y| if (x + y) % 2 == 0 { image::Rgb([0, 0, 0]) } else { image::Rgb([255, 255, 255]) });
        // Interior Laplacian is ±4·255: variance (4·255)².
        assert!((laplacian_variance(&checker) - (4.0f32 * 255.0).powi(2)).abs() < 1.0);
    }

    #[test]
    fn gate_names_the_failed_measure() {
        let q = FaceQuality { size: 20.0, score: 0.9, roll: 0.0, yaw: 0.0, pitch: 0.0, sharpness: 100.0 };
        let f = QualityGate::default().check(&q).unwrap_err();
        assert_eq!(f.measure, "size");
        assert!(f.to_string().contains("below the minimum 24"));
        let q = FaceQuality { size: 100.0, yaw: -80.0, ..q };
        assert_eq!(QualityGate::default().check(&q).unwrap_err().measure, "yaw");
        assert!(QualityGate::off().check(&q).is_ok());
    }
}
