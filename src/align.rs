//! Alignment: a similarity transform from the 5 detected landmarks onto the ArcFace template,
//! then a bilinear warp to a 112×112 crop.
//!
//! The transform is the least-squares similarity (rotation, uniform scale, translation; no
//! reflection) of Umeyama (1991), "Least-squares estimation of transformation parameters between
//! two point patterns", IEEE TPAMI 13(4). In 2-D it has the closed form used here:
//! with demeaned points `p` (source) and `q` (template), `a = Σ p·q`, `b = Σ p×q` (the 2-D cross
//! product) and `s² = Σ |p|²`, the transform is `scale·cos θ = a/s²`, `scale·sin θ = b/s²`. This
//! equals Umeyama's SVD solution (with its reflection correction) because for a 2×2 matrix
//! `σ₁ + sign(det)·σ₂ = √((A₁₁+A₂₂)² + (A₂₁−A₁₂)²)`; it is what insightface's `estimate_norm`
//! computes with scikit-image's `SimilarityTransform.estimate`.
//!
//! The warp samples like OpenCV's `warpAffine` with `INTER_LINEAR` and a constant black border:
//! output pixel `(u, v)` takes the bilinear value at `M⁻¹·(u, v)` of the input, integer pixel
//! coordinates at pixel centres.

use image::RgbImage;

/// Side of the aligned crop, pixels.
pub const ALIGNED_SIZE: u32 = 112;

/// The ArcFace 5-point template for a 112×112 crop, pixels, in the order left eye, right eye,
/// nose tip, left mouth corner, right mouth corner ("left" = smaller x in the image).
/// Source: insightface `python-package/insightface/utils/face_align.py` (`arcface_dst`);
/// ArcFace, Deng et al., CVPR 2019.
pub const ARCFACE_TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A 2×3 affine matrix `[[a, b, tx], [c, d, ty]]` mapping source pixel coordinates to destination
/// ones: `x' = a·x + b·y + tx`, `y' = c·x + d·y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [[f64; 3]; 2]);

impl Affine {
    /// Applies the transform to a point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let m = &self.0;
        [m[0][0] * p[0] + m[0][1] * p[1] + m[0][2], m[1][0] * p[0] + m[1][1] * p[1] + m[1][2]]
    }

    /// The inverse transform, or `None` when the matrix is singular (|det| < 1e-12).
    pub fn inverse(&self) -> Option<Affine> {
        let [[a, b, tx], [c, d, ty]] = self.0;
        let det = a * d - b * c;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
        Some(Affine([[ia, ib, -(ia * tx + ib * ty)], [ic, id, -(ic * tx + id * ty)]]))
    }

    /// Uniform scale of a similarity transform, `√|det|` (destination pixels per source pixel).
    pub fn scale(&self) -> f64 {
        let [[a, b, _], [c, d, _]] = self.0;
        (a * d - b * c).abs().sqrt()
    }
}

/// Least-squares similarity transform (Umeyama 1991, closed form above) mapping `src` onto `dst`.
/// Returns `None` when the source points are degenerate (all equal, or not finite).
pub fn similarity_transform(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Affine> {
    let n = src.len().min(dst.len());
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let (mut sx, mut sy, mut dx, mut dy) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        sx += src[i][0] as f64;
        sy += src[i][1] as f64;
        dx += dst[i][0] as f64;
        dy += dst[i][1] as f64;
    }
    let (sx, sy, dx, dy) = (sx / nf, sy / nf, dx / nf, dy / nf);
    let (mut a, mut b, mut s2) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (px, py) = (src[i][0] as f64 - sx, src[i][1] as f64 - sy);
        let (qx, qy) = (dst[i][0] as f64 - dx, dst[i][1] as f64 - dy);
        a += px * qx + py * qy;
        b += px * qy - py * qx;
        s2 += px * px + py * py;
    }
    if s2 < 1e-12 || !s2.is_finite() || !a.is_finite() || !b.is_finite() {
        return None;
    }
    let (c, s) = (a / s2, b / s2);
    Some(Affine([[c, -s, dx - (c * sx - s * sy)], [s, c, dy - (s * sx + c * sy)]]))
}

/// A face warped onto the ArcFace template.
#[derive(Debug, Clone)]
pub struct AlignedFace {
    /// 112×112 RGB8 crop.
    pub image: RgbImage,
    /// Transform from oriented-image pixels to crop pixels.
    pub transform: Affine,
}

/// Warps `img` by `m` (source → destination) into a `width`×`height` RGB8 image with bilinear
/// sampling and a black border (OpenCV `warpAffine`, `INTER_LINEAR`, `BORDER_CONSTANT` 0).
/// Returns `None` when `m` is singular.
pub fn warp_affine(img: &RgbImage, m: &Affine, width: u32, height: u32) -> Option<RgbImage> {
    let inv = m.inverse()?;
    let (w, h) = (img.width() as i64, img.height() as i64);
    let src = img.as_raw();
    let mut out = RgbImage::new(width, height);
    let px = |x: i64, y: i64| -> [f64; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            [0.0; 3]
        } else {
            let i = ((y * w + x) * 3) as usize;
            [src[i] as f64, src[i + 1] as f64, src[i + 2] as f64]
        }
    };
    let [[ia, ib, itx], [ic, id, ity]] = inv.0;
    for v in 0..height {
        for u in 0..width {
            let (uf, vf) = (u as f64, v as f64);
            let x = ia * uf + ib * vf + itx;
            let y = ic * uf + id * vf + ity;
            if !x.is_finite() || !y.is_finite() || x < -1.0 || y < -1.0 || x > w as f64 || y > h as f64 {
                continue; // fully outside: stays black
            }
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let p00 = px(x0, y0);
            let p10 = px(x0 + 1, y0);
            let p01 = px(x0, y0 + 1);
            let p11 = px(x0 + 1, y0 + 1);
            let o = out.get_pixel_mut(u, v);
            for c in 0..3 {
                let top = p00[c] + (p10[c] - p00[c]) * fx;
                let bot = p01[c] + (p11[c] - p01[c]) * fx;
                o.0[c] = (top + (bot - top) * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Some(out)
}

/// Aligns the face with `landmarks` (5 points, pixels in `img`, template order) to the 112×112
/// ArcFace template. Returns `None` when the landmarks are degenerate (coincident or not finite).
pub fn align_face(img: &RgbImage, landmarks: &[[f32; 2]; 5]) -> Option<AlignedFace> {
    let m = similarity_transform(landmarks, &ARCFACE_TEMPLATE)?;
    let image = warp_affine(img, &m, ALIGNED_SIZE, ALIGNED_SIZE)?;
    Some(AlignedFace { image, transform: m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        // Template rotated by 30°, scaled by 2.5 and shifted: the fit must invert it exactly.
        let (th, sc, tx, ty) = (30f64.to_radians(), 2.5, 100.0, -40.0);
        let src: Vec<[f32; 2]> = ARCFACE_TEMPLATE
            .iter()
            .map(|p| {
                let (x, y) = (p[0] as f64, p[1] as f64);
                [(sc * (th.cos() * x - th.sin() * y) + tx) as f32, (sc * (th.sin() * x + th.cos() * y) + ty) as f32]
            })
            .collect();
        let m = similarity_transform(&src, &ARCFACE_TEMPLATE).unwrap();
        for (s, d) in src.iter().zip(ARCFACE_TEMPLATE.iter()) {
            let q = m.apply([s[0] as f64, s[1] as f64]);
            assert!((q[0] - d[0] as f64).abs() < 1e-3 && (q[1] - d[1] as f64).abs() < 1e-3, "{q:?} vs {d:?}");
        }
        assert!((m.scale() - 1.0 / sc).abs() < 1e-6);
    }

    #[test]
    fn fit_is_least_squares_optimal() {
        // Any small change of rotation/scale or translation must not lower the squared residual.
        let src = [[97.0, 120.0], [152.0, 118.0], [125.0, 150.0], [103.0, 178.0], [147.0, 176.0]];
        let m = similarity_transform(&src, &ARCFACE_TEMPLATE).unwrap();
        let cost = |m: &Affine| -> f64 {
            src.iter()
                .zip(ARCFACE_TEMPLATE.iter())
                .map(|(s, d)| {
                    let q = m.apply([s[0] as f64, s[1] as f64]);
                    (q[0] - d[0] as f64).powi(2) + (q[1] - d[1] as f64).powi(2)
                })
                .sum()
        };
        let base = cost(&m);
        let [[a, b, tx], [_, _, ty]] = m.0;
        for (da, db) in [(1e-4, 0.0), (-1e-4, 0.0), (0.0, 1e-4), (0.0, -1e-4)] {
            let (a2, b2) = (a + da, b - db);
            let p = Affine([[a2, b2, tx], [-b2, a2, ty]]);
            assert!(cost(&p) >= base - 1e-9);
        }
        for (dtx, dty) in [(0.01, 0.0), (0.0, 0.01), (-0.01, 0.0), (0.0, -0.01)] {
            let p = Affine([[a, b, tx + dtx], [-b, a, ty + dty]]);
            assert!(cost(&p) >= base - 1e-9);
        }
    }

    #[test]
    fn degenerate_landmarks_are_refused() {
        assert!(similarity_transform(&[[5.0, 5.0]; 5], &ARCFACE_TEMPLATE).is_none());
        assert!(similarity_transform(&[[f32::NAN, 5.0]; 5], &ARCFACE_TEMPLATE).is_none());
    }

    #[test]
    fn identity_warp_copies_pixels_and_border_is_black() {
        let mut img = RgbImage::new(4, 3);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 40) as u8, (y * 50) as u8, 7]);
        }
        let id = Affine([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        let out = warp_affine(&img, &id, 4, 3).unwrap();
        assert_eq!(out, img);
        let shifted = Affine([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]);
        let out = warp_affine(&img, &shifted, 4, 3).unwrap();
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(2, 1).0, img.get_pixel(0, 1).0);
        // Half-pixel shift interpolates.
        let half = Affine([[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]]);
        let out = warp_affine(&img, &half, 4, 3).unwrap();
        assert_eq!(out.get_pixel(0, 0).0[0], 20);
    }
}
