//! Face detection with SCRFD (Guo et al., "Sample and Computation Redistribution for Efficient
//! Face Detection", 2021): boxes, 5 landmarks and a detection score per face.
//!
//! Pre- and post-processing follow insightface `python-package/insightface/model_zoo/scrfd.py`,
//! the reference implementation of the default model `scrfd_500m_bnkps.onnx`:
//! - the image is resized, keeping its aspect ratio, to fit an `input_size`×`input_size` square
//!   (bilinear, OpenCV `INTER_LINEAR` sampling), placed at the top-left and padded with black;
//!   the scale back to image pixels is `new_height / height` for both axes, as in insightface;
//! - pixels are RGB, normalized as `(x − 127.5) / 128`, NCHW;
//! - for each stride (8, 16, 32) the model gives per anchor a score, 4 distances (left, top,
//!   right, bottom, in units of the stride) and 5 landmark offsets; anchor centres are the grid
//!   points `(x·stride, y·stride)`, 2 anchors per cell for this model;
//! - candidates with score ≥ `score_threshold` (default 0.5, insightface's default) go through
//!   greedy NMS at IoU 0.4 (insightface's `nms_thresh`, areas with the `+1` pixel convention).
//!
//! Faces that fill the whole frame are larger than the biggest anchors at 640 input, so by
//! default a second pass runs at a small input size ([`DetectorParams::full_frame_input_size`]);
//! its detections are added only where they do not overlap a first-pass face.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::Array4;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::{ModelError, Role};
use crate::runtime::{RuntimeOptions, SessionPool};

/// Candidates kept before NMS, per pass, best scores first (as RetinaFace's `pre_nms_topk`,
/// 5000). At the default score threshold a photo has far fewer; the cap only bounds the work
/// when the threshold is set near 0.
pub const PRE_NMS_TOP_K: usize = 5000;

/// One detected face. All coordinates are pixels in the oriented image, x right, y down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Box `[x1, y1, x2, y2]`, pixels; may extend past the image edges for cut-off faces.
    pub bbox: [f32; 4],
    /// 5 landmarks `[x, y]`: left eye, right eye, nose tip, left mouth corner, right mouth corner
    /// ("left" = smaller x in the image, i.e. the subject's right).
    pub landmarks: [[f32; 2]; 5],
    /// Detection score in [0, 1].
    pub score: f32,
}

impl Detection {
    /// Box width, pixels.
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }
    /// Box height, pixels.
    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
    /// Face size: the shorter side of the box, pixels.
    pub fn size(&self) -> f32 {
        self.width().min(self.height())
    }
    /// Box area, square pixels.
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
}

/// Detector parameters. Defaults are insightface's for SCRFD (`det_size` 640, `det_thresh` 0.5,
/// `nms_thresh` 0.4) plus the full-frame pass.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorParams {
    /// Side of the square network input, pixels; a multiple of 32 in [32, 4096]. Default 640
    /// (insightface's `det_size`). Larger finds smaller faces in large photos, at quadratic cost.
    pub input_size: u32,
    /// The largest factor by which a photo smaller than `input_size` is enlarged: the input side
    /// is `min(input_size, longer photo side × max_upscale` rounded up to a multiple of 32`)`.
    /// Default 2.0: photos of 320 px or more are detected exactly as insightface does (filled to
    /// `input_size`); smaller ones are enlarged only 2×, so a 250×250 LFW photo is detected at
    /// 512 instead of 640, an input of 0.64× the pixels (the cold LFW eval: 3 min 10 s → 2 min 28 s). Measured on LFW (10-fold, default
    /// recogniser): 99.55 % at 2.0, as with insightface's letterbox; 99.62 % at 1.0, but at 1.0
    /// small faces in mid-size photos (35 px faces in a 480 px group photo) lose landmark precision
    /// (2 px off the reference). Against the reference on the golden photos below 320 px: worst
    /// landmark error 1.3 px, embedding cosine 0.986 (tests/golden.rs). `f32::INFINITY` reproduces
    /// insightface's letterbox exactly.
    pub max_upscale: f32,
    /// Minimum detection score in [0.05, 1]. Default 0.5.
    pub score_threshold: f32,
    /// IoU above which the lower-scoring of two boxes is suppressed, in (0, 1]. Default 0.4.
    pub nms_iou: f32,
    /// Input side of the second pass that finds faces filling the frame (a multiple of 32), or
    /// `None` to skip it. Default `Some(128)`, the small size insightface 2.1's `FaceAnalysis`
    /// pairs with 640 by default: a full-frame face becomes ~128 px, well inside the anchor range
    /// (16–512 px at strides 8–32).
    pub full_frame_input_size: Option<u32>,
    /// Keep at most this many faces, largest first; 0 = all. Default 0.
    pub max_faces: usize,
}

impl Default for DetectorParams {
    fn default() -> Self {
        DetectorParams {
            input_size: 640,
            max_upscale: 2.0,
            score_threshold: 0.5,
            nms_iou: 0.4,
            full_frame_input_size: Some(128),
            max_faces: 0,
        }
    }
}

impl DetectorParams {
    /// The first-pass input side for a `width`×`height` photo (see [`Self::max_upscale`]).
    pub fn effective_input_size(&self, width: u32, height: u32) -> u32 {
        let wanted = (width.max(height).max(1) as f64 * self.max_upscale as f64 / 32.0).ceil() * 32.0;
        if wanted >= self.input_size as f64 {
            self.input_size
        } else {
            (wanted as u32).max(32)
        }
    }

    /// Checks every field against its documented range.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let size_ok = |s: u32| (32..=4096).contains(&s) && s % 32 == 0;
        if !size_ok(self.input_size) {
            return Err(Error::InvalidParameter {
                name: "input_size",
                message: format!("{} is not a multiple of 32 in [32, 4096]", self.input_size),
            });
        }
        if let Some(s) = self.full_frame_input_size {
            if !size_ok(s) {
                return Err(Error::InvalidParameter {
                    name: "full_frame_input_size",
                    message: format!("{s} is not a multiple of 32 in [32, 4096]"),
                });
            }
        }
        if !(self.score_threshold >= 0.05 && self.score_threshold <= 1.0) {
            return Err(Error::InvalidParameter {
                name: "score_threshold",
                message: format!("{} is outside [0.05, 1] (lower values turn most anchors into faces)", self.score_threshold),
            });
        }
        if !(self.max_upscale >= 1.0) {
            return Err(Error::InvalidParameter { name: "max_upscale", message: format!("{} is below 1 (or NaN)", self.max_upscale) });
        }
        if !(self.nms_iou > 0.0 && self.nms_iou <= 1.0) {
            return Err(Error::InvalidParameter { name: "nms_iou", message: format!("{} is outside (0, 1]", self.nms_iou) });
        }
        Ok(())
    }
}

/// Which model outputs hold what, for one stride level.
#[derive(Debug, Clone)]
struct Level {
    stride: usize,
    scores: usize,
    boxes: usize,
    kps: Option<usize>,
}

/// An SCRFD-style detector: an ONNX model with, per stride level, a score, a box-distance and
/// (optionally) a landmark-offset output. Thread-safe; one inference at a time per instance.
pub struct ScrfdDetector {
    sessions: SessionPool,
    input_name: String,
    levels: Vec<Level>,
    path: PathBuf,
    sha256: String,
}

impl std::fmt::Debug for ScrfdDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrfdDetector").field("path", &self.path).field("levels", &self.levels).finish()
    }
}

fn incompatible(path: &Path, detail: String) -> Error {
    Error::Model(ModelError::Incompatible { role: Role::Detector.to_string(), path: path.to_path_buf(), detail })
}

impl ScrfdDetector {
    /// Loads an SCRFD-style detector. The file is verified first ([`crate::models::verify_file`]:
    /// the default pack's file must match its pinned SHA-256). ONNX Runtime must have been
    /// initialised with [`crate::runtime::init`].
    ///
    /// # Errors
    /// [`Error::Model`]: missing or altered file, ONNX Runtime failure, or outputs that are not
    /// SCRFD's (6 or 9 outputs of shape `[K, 1|4|10]` or `[1, K, 1|4|10]`).
    pub fn load(path: &Path, opts: &RuntimeOptions) -> Result<Self> {
        let sha256 = crate::models::verify_file(path, Role::Detector)?;
        let sessions = SessionPool::new(path, opts)?;
        let session = sessions.acquire();
        if session.inputs().len() != 1 {
            return Err(incompatible(path, format!("expected 1 input, found {}", session.inputs().len())));
        }
        let input_name = session.inputs()[0].name().to_string();
        // Group outputs by their last dimension: 1 = scores, 4 = box distances, 10 = landmarks.
        let mut groups: [Vec<(usize, i64)>; 3] = Default::default();
        for (i, o) in session.outputs().iter().enumerate() {
            let shape = o
                .dtype()
                .tensor_shape()
                .ok_or_else(|| incompatible(path, format!("output {} is not a tensor", o.name())))?;
            let dims: Vec<i64> = shape.iter().copied().collect();
            let last = *dims.last().unwrap_or(&0);
            let k = if dims.len() >= 2 { dims[dims.len() - 2] } else { -1 };
            match last {
                1 => groups[0].push((i, k)),
                4 => groups[1].push((i, k)),
                10 => groups[2].push((i, k)),
                _ => return Err(incompatible(path, format!("output {} has shape {dims:?}; expected last dim 1, 4 or 10", o.name()))),
            }
        }
        let n = groups[0].len();
        if n == 0 || groups[1].len() != n || !(groups[2].is_empty() || groups[2].len() == n) {
            return Err(incompatible(
                path,
                format!("expected equal numbers of score/box/landmark outputs, found {}/{}/{}", n, groups[1].len(), groups[2].len()),
            ));
        }
        // Within a group, outputs come in stride order (insightface relies on the same order).
        let levels = (0..n)
            .map(|l| Level {
                stride: 8 << l,
                scores: groups[0][l].0,
                boxes: groups[1][l].0,
                kps: groups[2].get(l).map(|g| g.0),
            })
            .collect();
        drop(session);
        Ok(ScrfdDetector { sessions, input_name, levels, path: path.to_path_buf(), sha256 })
    }

    /// SHA-256 of the model file, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the model predicts landmarks (required for alignment).
    pub fn has_landmarks(&self) -> bool {
        self.levels.iter().all(|l| l.kps.is_some())
    }

    /// Detects faces in `img`, sorted by score, highest first.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for parameters outside their ranges, [`Error::Inference`] when
    /// ONNX Runtime fails.
    pub fn detect(&self, img: &RgbImage, params: &DetectorParams) -> Result<Vec<Detection>> {
        params.validate()?;
        if img.width() == 0 || img.height() == 0 {
            return Ok(Vec::new());
        }
        let size = params.effective_input_size(img.width(), img.height());
        let mut dets = self.detect_at(img, size, params)?;
        // A face filling the frame cannot coexist with a first-pass face of a third of the frame
        // or more (it would have to contain it): the second pass is skipped then.
        let short_side = img.width().min(img.height()) as f32;
        let big_face_found = dets.iter().any(|d| d.size() >= short_side / 3.0);
        if let Some(small) = params.full_frame_input_size.filter(|&s| s < size && !big_face_found) {
            let extra = self.detect_at(img, small, params)?;
            for e in extra {
                if dets.iter().all(|d| iou(&d.bbox, &e.bbox) < params.nms_iou) {
                    dets.push(e);
                }
            }
            dets.sort_by(|a, b| b.score.total_cmp(&a.score));
        }
        if params.max_faces > 0 && dets.len() > params.max_faces {
            dets.sort_by(|a, b| b.area().total_cmp(&a.area()));
            dets.truncate(params.max_faces);
            dets.sort_by(|a, b| b.score.total_cmp(&a.score));
        }
        Ok(dets)
    }

    /// One pass at a square input of side `size`.
    fn detect_at(&self, img: &RgbImage, size: u32, params: &DetectorParams) -> Result<Vec<Detection>> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let side = size as usize;
        // Letterbox as insightface: fit the longer side, truncate the other, scale = new_h / h.
        let (new_w, new_h) = if h as f64 / w as f64 > 1.0 {
            let nh = side;
            (((nh as f64) / (h as f64 / w as f64)) as usize, nh)
        } else {
            let nw = side;
            (nw, ((nw as f64) * (h as f64 / w as f64)) as usize)
        };
        let (new_w, new_h) = (new_w.max(1), new_h.max(1));
        let det_scale = new_h as f32 / h as f32;
        let resized = resize_bilinear(img, new_w as u32, new_h as u32);
        // Black padding, normalized; written only where the image does not cover the input.
        const PAD: f32 = (0.0 - 127.5) / 128.0;
        let mut input = Array4::<f32>::zeros((1, 3, side, side));
        {
            let raw = resized.as_raw();
            let plane = side * side;
            let buf = input.as_slice_mut().expect("standard layout");
            for c in 0..3 {
                let dst = &mut buf[c * plane..(c + 1) * plane];
                for y in 0..side {
                    let row = &mut dst[y * side..(y + 1) * side];
                    if y < new_h {
                        let src = &raw[y * new_w * 3..(y + 1) * new_w * 3];
                        for (o, px) in row[..new_w].iter_mut().zip(src.chunks_exact(3)) {
                            *o = (px[c] as f32 - 127.5) / 128.0;
                        }
                        row[new_w..].fill(PAD);
                    } else {
                        row.fill(PAD);
                    }
                }
            }
        }
        let infer_err = |e: ort::Error| Error::Inference { model: self.path.display().to_string(), message: e.to_string() };
        let tensor = TensorRef::from_array_view(&input).map_err(infer_err)?;
        let mut session = self.sessions.acquire();
        let outputs = session.run(ort::inputs![self.input_name.as_str() => tensor]).map_err(infer_err)?;

        let mut cands: Vec<Detection> = Vec::new();
        for level in &self.levels {
            let stride = level.stride;
            let (gh, gw) = (side / stride, side / stride);
            let cells = gh * gw;
            let (_, scores) = outputs[level.scores].try_extract_tensor::<f32>().map_err(infer_err)?;
            let (_, boxes) = outputs[level.boxes].try_extract_tensor::<f32>().map_err(infer_err)?;
            let kps = match level.kps {
                Some(k) => Some(outputs[k].try_extract_tensor::<f32>().map_err(infer_err)?.1),
                None => None,
            };
            if cells == 0 || scores.len() % cells != 0 || boxes.len() != scores.len() * 4 {
                return Err(Error::Inference {
                    model: self.path.display().to_string(),
                    message: format!("stride {stride}: {} scores and {} box values for a {gw}×{gh} grid", scores.len(), boxes.len()),
                });
            }
            let anchors = scores.len() / cells;
            let s = stride as f32;
            for (i, &score) in scores.iter().enumerate() {
                if score < params.score_threshold || !score.is_finite() {
                    continue;
                }
                let cell = i / anchors;
                let (cx, cy) = ((cell % gw) as f32 * s, (cell / gw) as f32 * s);
                let b = &boxes[i * 4..i * 4 + 4];
                let bbox = [
                    (cx - b[0] * s) / det_scale,
                    (cy - b[1] * s) / det_scale,
                    (cx + b[2] * s) / det_scale,
                    (cy + b[3] * s) / det_scale,
                ];
                let mut landmarks = [[0f32; 2]; 5];
                match kps {
                    Some(k) if k.len() >= (i + 1) * 10 => {
                        for (j, lm) in landmarks.iter_mut().enumerate() {
                            lm[0] = (cx + k[i * 10 + 2 * j] * s) / det_scale;
                            lm[1] = (cy + k[i * 10 + 2 * j + 1] * s) / det_scale;
                        }
                    }
                    _ => {}
                }
                let sane = bbox[2] - bbox[0] >= 1.0 && bbox[3] - bbox[1] >= 1.0;
                if sane && bbox.iter().chain(landmarks.iter().flatten()).all(|v| v.is_finite()) {
                    cands.push(Detection { bbox, landmarks, score });
                }
            }
        }
        drop(outputs);
        drop(session);
        // Bound the work of NMS (quadratic) when a very low score threshold lets most anchors
        // through: keep the best PRE_NMS_TOP_K candidates.
        if cands.len() > PRE_NMS_TOP_K {
            cands.select_nth_unstable_by(PRE_NMS_TOP_K, |a, b| b.score.total_cmp(&a.score));
            cands.truncate(PRE_NMS_TOP_K);
        }
        Ok(nms(cands, params.nms_iou))
    }
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes in continuous pixel coordinates (no
/// `+1`), in [0, 1]: 0 when the union is empty, except 1 for two identical empty boxes. Used to
/// match the same face across runs and enrollments (gallery duplicates, clustering labels across
/// re-detection); [`iou`] is the detector's own NMS measure.
pub fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else if a == b {
        1.0
    } else {
        0.0
    }
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes with insightface's `+1` pixel
/// convention (a box from x1 to x2 covers `x2 − x1 + 1` pixels). In [0, 1].
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0] + 1.0).max(0.0) * (r[3] - r[1] + 1.0).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Greedy non-maximum suppression: highest score first, dropping boxes whose [`iou`] with a kept
/// one is above `threshold`. Output is sorted by score, highest first.
pub fn nms(mut dets: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len().min(64));
    for d in dets {
        if keep.iter().all(|k| iou(&k.bbox, &d.bbox) <= threshold) {
            keep.push(d);
        }
    }
    keep
}

/// Resizes to `new_w`×`new_h` exactly as OpenCV's `resize` with `INTER_LINEAR` does on 8-bit
/// images (the fixed-point path of OpenCV 4/5 on x86-64, the one insightface's `cv2.resize` runs),
/// so detections match the reference bit for bit on the same pixels:
/// - per axis, the source coordinate is `f = f32((d + 0.5)·scale − 0.5)`, `s = ⌊f⌋`, weights
///   `round((1 − t)·2048)` and `round(t·2048)` with `t = f − s` (round half to even);
/// - on the x axis an index outside the image is clamped and its fraction set to 0; on the y axis
///   only the row index is clamped;
/// - rows are blended as `S = p₀·a₀ + p₁·a₁`, then columns as
///   `((b₀·(S₀>>4))>>16) + ((b₁·(S₁>>4))>>16) + 2) >> 2`.
///
/// OpenCV switches to `INTER_AREA` for an exact 2× reduction; that gives the same bytes as this
/// formula. Verified against `cv2.resize` on the golden photos by `tools/reference/spec_check.py`
/// (0 differing pixels).
pub fn resize_bilinear(img: &RgbImage, new_w: u32, new_h: u32) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (nw, nh) = (new_w as usize, new_h as usize);
    if nw == w && nh == h {
        return img.clone();
    }
    let src = img.as_raw();
    // (s0, s1, a0, a1) per output index, as OpenCV computes them.
    let coefs = |dn: usize, sn: usize, clamp_fraction: bool| -> Vec<(usize, usize, i32, i32)> {
        let scale = 1.0 / (dn as f64 / sn as f64);
        (0..dn)
            .map(|d| {
                let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let mut s = f.floor() as i64;
                let mut t = f - s as f32;
                if clamp_fraction {
                    if s < 0 {
                        t = 0.0;
                        s = 0;
                    }
                    if s >= sn as i64 - 1 {
                        t = 0.0;
                        s = sn as i64 - 1;
                    }
                }
                let a1 = (t * 2048.0).round_ties_even() as i32;
                let a0 = ((1.0 - t) * 2048.0).round_ties_even() as i32;
                let last = sn as i64 - 1;
                ((s.clamp(0, last)) as usize, ((s + 1).clamp(0, last)) as usize, a0, a1)
            })
            .collect()
    };
    let xs = coefs(nw, w, true);
    let ys = coefs(nh, h, false);
    let mut out = vec![0u8; nw * nh * 3];
    let mut row0 = vec![0i32; nw * 3];
    let mut row1 = vec![0i32; nw * 3];
    let hpass = |y: usize, row: &mut [i32]| {
        let base = y * w * 3;
        for (x, &(x0, x1, a0, a1)) in xs.iter().enumerate() {
            for c in 0..3 {
                row[x * 3 + c] = src[base + x0 * 3 + c] as i32 * a0 + src[base + x1 * 3 + c] as i32 * a1;
            }
        }
    };
    let mut cached: (usize, usize) = (usize::MAX, usize::MAX);
    for (y, &(y0, y1, b0, b1)) in ys.iter().enumerate() {
        if cached != (y0, y1) {
            if cached.1 == y0 {
                std::mem::swap(&mut row0, &mut row1);
                hpass(y1, &mut row1);
            } else {
                hpass(y0, &mut row0);
                hpass(y1, &mut row1);
            }
            cached = (y0, y1);
        }
        let o = &mut out[y * nw * 3..(y + 1) * nw * 3];
        // i32 is exact here: b ≤ 2048 and S >> 4 ≤ 255·2048/16, so each product is < 2^27.
        for ((o, &r0), &r1) in o.iter_mut().zip(&row0).zip(&row1) {
            let v = (((b0 * (r0 >> 4)) >> 16) + ((b1 * (r1 >> 4)) >> 16) + 2) >> 2;
            *o = v.clamp(0, 255) as u8;
        }
    }
    RgbImage::from_raw(new_w, new_h, out).expect("sized above")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(b: [f32; 4], score: f32) -> Detection {
        Detection { bbox: b, landmarks: [[0.0; 2]; 5], score }
    }

    #[test]
    fn iou_hand_computed() {
        // 10×10 px boxes (+1 convention: x 0..9) overlapping by 5 columns: 50 / (100+100-50).
        let a = [0.0, 0.0, 9.0, 9.0];
        let b = [5.0, 0.0, 14.0, 9.0];
        assert!((iou(&a, &b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou(&a, &[20.0, 20.0, 29.0, 29.0]), 0.0);
        assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_best_of_overlapping_and_separate_boxes() {
        let dets = vec![
            det([0.0, 0.0, 9.0, 9.0], 0.8),
            det([1.0, 0.0, 10.0, 9.0], 0.9),
            det([50.0, 50.0, 59.0, 59.0], 0.6),
        ];
        let kept = nms(dets, 0.4);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].score, 0.6);
    }

    #[test]
    fn resize_matches_opencv_bytes() {
        // Expected bytes from cv2.resize (opencv-python-headless 5.0.0.93, INTER_LINEAR) on the
        // same inputs; see tools/reference/.
        let ramp = RgbImage::from_fn(4, 1, |x, _| {
            let v = [0u8, 100, 200, 250][x as usize];
            image::Rgb([v, v, v])
        });
        let row = |img: &RgbImage| img.pixels().map(|p| p.0[0]).collect::<Vec<u8>>();
        assert_eq!(row(&resize_bilinear(&ramp, 3, 1)), vec![17, 150, 242]);
        assert_eq!(row(&resize_bilinear(&ramp, 8, 1)), vec![0, 25, 75, 125, 175, 213, 238, 250]);
        let ramp2 = RgbImage::from_fn(4, 2, |x, _| *ramp.get_pixel(x, 0));
        assert_eq!(row(&resize_bilinear(&ramp2, 2, 1)), vec![50, 225]);
        // A 7×5 pattern (value (i·37) mod 256 over the flattened HWC array) to 4×3 and 11×9.
        let pat = RgbImage::from_raw(7, 5, (0..7 * 5 * 3).map(|i| ((i * 37) % 256) as u8).collect()).unwrap();
        assert_eq!(
            resize_bilinear(&pat, 4, 3).into_raw(),
            vec![
                44, 81, 119, 207, 20, 57, 177, 214, 27, 115, 152, 189, 60, 97, 134, 222, 35, 72, 192, 229, 42, 130, 167, 204, 74,
                111, 149, 87, 50, 87, 207, 95, 57, 145, 182, 113
            ]
        );
        assert_eq!(
            resize_bilinear(&pat, 11, 9).into_raw()[..60].to_vec(),
            vec![
                0, 37, 74, 50, 87, 124, 121, 135, 172, 192, 42, 79, 169, 43, 80, 77, 114, 151, 148, 185, 59, 148, 185, 36, 56, 93,
                107, 104, 140, 177, 154, 191, 228, 3, 40, 77, 53, 90, 127, 124, 138, 175, 195, 45, 83, 172, 46, 83, 80, 117, 154,
                150, 188, 62, 151, 188, 39, 59, 96, 110
            ]
        );
    }

    #[test]
    fn params_are_validated() {
        assert!(DetectorParams::default().validate().is_ok());
        assert!(DetectorParams { input_size: 630, ..Default::default() }.validate().is_err());
        assert!(DetectorParams { score_threshold: 1.5, ..Default::default() }.validate().is_err());
        assert!(DetectorParams { nms_iou: 0.0, ..Default::default() }.validate().is_err());
    }
}
