//! Pipeline robustness on real photos turned into awkward files at test time: EXIF orientations,
//! colour types and formats, broken files, tiny and full-frame faces. Needs only the installed
//! models and the sample photos installed with them, so these run everywhere.

mod common;

use std::path::{Path, PathBuf};

use common::synth::*;
use faceprint::detect::{iou, Detection};
use faceprint::imageio::{self, DecodeOptions, ImageError};
use faceprint::pipeline::AnalyzedImage;
use faceprint::Error;
use image::{DynamicImage, ImageFormat, RgbImage};

fn decode_sample(name: &str) -> RgbImage {
    imageio::open(&common::sample(name), &DecodeOptions::default()).unwrap().image
}

fn analyze_bytes(bytes: &[u8], embed: bool) -> Result<AnalyzedImage, Error> {
    let label = Path::new("<test>");
    let img = imageio::decode(bytes, &DecodeOptions::default())
        .map_err(|source| Error::Image { path: label.to_path_buf(), source })?;
    common::analyzer().analyze(label, &img, embed)
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("faceprint-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Max landmark coordinate difference between two detections, pixels.
fn landmark_diff(a: &Detection, b: &Detection) -> f32 {
    a.landmarks.iter().zip(&b.landmarks).map(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs())).fold(0.0, f32::max)
}

/// Every detection of `want` has one in `got` with IoU ≥ `min_iou` and landmarks within `max_lm` px.
fn assert_same_faces(got: &AnalyzedImage, want: &AnalyzedImage, min_iou: f32, max_lm: f32, what: &str) {
    assert_eq!(got.faces.len(), want.faces.len(), "{what}: face count");
    for w in &want.faces {
        let best = got
            .faces
            .iter()
            .max_by(|a, b| iou(&a.detection.bbox, &w.detection.bbox).total_cmp(&iou(&b.detection.bbox, &w.detection.bbox)))
            .unwrap();
        let i = iou(&best.detection.bbox, &w.detection.bbox);
        let lm = landmark_diff(&best.detection, &w.detection);
        assert!(i >= min_iou && lm <= max_lm, "{what}: face {:?}: IoU {i}, landmarks off by {lm} px", w.detection.bbox);
    }
}

/// The stored image that a viewer shows as `shown` under EXIF orientation `o`.
fn stored_for(shown: &RgbImage, o: u16) -> RgbImage {
    let inverse = match o {
        6 => 8,
        8 => 6,
        other => other, // 1–5 and 7 are their own inverses
    };
    expected_orientation(shown, inverse)
}

#[test]
fn eight_exif_orientations_give_the_same_faces() {
    let photo = decode_sample("t1.jpg");
    let png = png_with_exif(&photo, None);
    let base = analyze_bytes(&png, false).unwrap();
    assert_eq!(base.faces.len(), 6, "t1.jpg has 6 faces");
    for o in 1..=8u16 {
        let stored = stored_for(&photo, o);
        assert_eq!(expected_orientation(&stored, o), photo, "test's own inverse for {o}");
        // Lossless PNG with an eXIf chunk: the oriented pixels are the original's exactly.
        let got = analyze_bytes(&png_with_exif(&stored, Some(exif_blob(o, o % 2 == 0))), false).unwrap();
        assert_eq!(got.orientation, o);
        assert_eq!((got.width, got.height), (photo.width(), photo.height()), "orientation {o}: oriented size");
        assert_same_faces(&got, &base, 0.9999, 1e-3, &format!("PNG orientation {o}"));
        // JPEG with an APP1 Exif segment, as cameras write it (re-encoding moves pixels a little).
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(exif_blob(o, false));
        let jpeg = jpeg_rgb(&stored, Some(app1));
        let base_jpeg = analyze_bytes(&jpeg_rgb(&photo, None), false).unwrap();
        let got = analyze_bytes(&jpeg, false).unwrap();
        assert_eq!(got.orientation, o);
        assert_same_faces(&got, &base_jpeg, 0.95, 2.0, &format!("JPEG orientation {o}"));
    }
}

#[test]
fn colour_types_and_formats_of_a_real_face() {
    let photo = decode_sample("yaoming.jpg");
    let base = analyze_bytes(&png_with_exif(&photo, None), true).unwrap();
    assert_eq!(base.faces.len(), 1);
    let base_emb = base.faces[0].embedding.clone().unwrap();
    let cos_to_base = |r: &AnalyzedImage| common::cosine(&r.faces[0].embedding.as_ref().unwrap().vector, &base_emb.vector);
    let dynimg = DynamicImage::ImageRgb8(photo.clone());

    // RGBA (opaque) and 16-bit RGB carry the same pixels: same embedding.
    let rgba = analyze_bytes(&encode(&DynamicImage::ImageRgba8(dynimg.to_rgba8()), ImageFormat::Png), true).unwrap();
    assert!(cos_to_base(&rgba) > 0.99999, "RGBA PNG");
    let rgb16 = analyze_bytes(&encode(&DynamicImage::ImageRgb16(dynimg.to_rgb16()), ImageFormat::Png), true).unwrap();
    assert!(cos_to_base(&rgb16) > 0.99999, "16-bit PNG");
    // Gray 8 and 16 bit: the face is found; its embedding stays close to the colour one.
    for (what, img) in [("gray8", DynamicImage::ImageLuma8(dynimg.to_luma8())), ("gray16", DynamicImage::ImageLuma16(dynimg.to_luma16()))] {
        let r = analyze_bytes(&encode(&img, ImageFormat::Png), true).unwrap();
        assert_eq!(r.faces.len(), 1, "{what}");
        let c = cos_to_base(&r);
        assert!(c > 0.8, "{what}: cosine to colour {c}");
    }
    // CMYK JPEG (Adobe, inverted, as Photoshop writes it).
    let cmyk: Vec<u8> = photo.pixels().flat_map(|p| rgb_to_cmyk(p.0)).collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(&cmyk, photo.width() as u16, photo.height() as u16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let r = analyze_bytes(&jpeg, true).unwrap();
    assert_eq!(r.faces.len(), 1, "CMYK JPEG");
    assert!(cos_to_base(&r) > 0.95, "CMYK JPEG cosine {}", cos_to_base(&r));
    // Lossless WebP saved under a .jpg name: format comes from the content.
    let dir = tmpdir("webp");
    let misnamed = dir.join("actually_webp.jpg");
    std::fs::write(&misnamed, encode(&dynimg, ImageFormat::WebP)).unwrap();
    let r = common::analyzer().analyze_file(&misnamed, true).unwrap();
    assert!(cos_to_base(&r) > 0.99999, "WebP named .jpg");
    // BMP, TIFF: same pixels.
    for f in [ImageFormat::Bmp, ImageFormat::Tiff] {
        let r = analyze_bytes(&encode(&dynimg, f), true).unwrap();
        assert!(cos_to_base(&r) > 0.99999, "{f:?}");
    }
}

#[test]
fn broken_files_give_clear_errors_naming_the_file() {
    let dir = tmpdir("broken");
    let a = common::analyzer();
    let check = |name: &str, bytes: &[u8], want: &dyn Fn(&ImageError) -> bool| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        match a.analyze_file(&p, true) {
            Err(e @ Error::Image { .. }) => {
                assert!(e.is_bad_input());
                let msg = e.to_string();
                assert!(msg.contains(name), "message names the file: {msg}");
                let Error::Image { source, .. } = &e else { unreachable!() };
                assert!(want(source), "{name}: unexpected error {source:?}");
            }
            other => panic!("{name}: expected an image error, got {other:?}"),
        }
    };
    check("empty.jpg", b"", &|e| matches!(e, ImageError::Empty));
    check("random.png", &[0x42u8; 300], &|e| matches!(e, ImageError::UnsupportedFormat { .. }));
    let png = encode(&DynamicImage::ImageRgb8(decode_sample("yaoming.jpg")), ImageFormat::Png);
    check("half.png", &png[..png.len() / 2], &|e| matches!(e, ImageError::Corrupt { .. }));
    check("bomb.png", &huge_png(60000, 60000), &|e| matches!(e, ImageError::TooLarge { width: 60000, height: 60000, .. }));
    let missing = dir.join("does-not-exist.jpg");
    let e = a.analyze_file(&missing, true).unwrap_err();
    assert!(e.to_string().contains("does-not-exist.jpg") && e.is_bad_input(), "{e}");
    // A JPEG cut in half still decodes (libjpeg fills the rest), with a warning, never a panic.
    let jpeg = std::fs::read(common::sample("players.jpg")).unwrap();
    let r = analyze_bytes(&jpeg[..jpeg.len() / 2], false).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("truncated")), "{:?}", r.warnings);
}

/// Pastes `face` (resized to `side`×`side`) on a gray `w`×`h` canvas at (x, y).
fn paste(face: &RgbImage, side: u32, w: u32, h: u32, x: u32, y: u32) -> RgbImage {
    let small = image::imageops::resize(face, side, side, image::imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut canvas, &small, x as i64, y as i64);
    canvas
}

fn face_crop(photo: &RgbImage, d: &Detection, margin: f32) -> RgbImage {
    let (cx, cy) = ((d.bbox[0] + d.bbox[2]) / 2.0, (d.bbox[1] + d.bbox[3]) / 2.0);
    let half = d.width().max(d.height()) / 2.0 * margin;
    let x0 = (cx - half).max(0.0) as u32;
    let y0 = (cy - half).max(0.0) as u32;
    let side = ((2.0 * half) as u32).min(photo.width() - x0).min(photo.height() - y0);
    image::imageops::crop_imm(photo, x0, y0, side, side).to_image()
}

#[test]
fn tiny_face_of_24_px_is_found() {
    let photo = decode_sample("yaoming.jpg");
    let base = analyze_bytes(&png_with_exif(&photo, None), false).unwrap();
    // Crop with a margin of 2× the box, so the face box is ~half the crop: a 48 px crop ≈ 24 px face.
    let crop = face_crop(&photo, &base.faces[0].detection, 2.0);
    let canvas = paste(&crop, 48, 640, 480, 300, 200);
    let r = analyze_bytes(&png_with_exif(&canvas, None), false).unwrap();
    assert!(!r.faces.is_empty(), "no face found at ~24 px");
    let f = &r.faces[0].detection;
    assert!((300.0..348.0).contains(&((f.bbox[0] + f.bbox[2]) / 2.0)), "face box {:?} not where it was pasted", f.bbox);
    assert!(f.height() < 36.0 && f.height() > 16.0, "face box height {} px", f.height());
    println!("tiny face: box {:.1}×{:.1} px, score {:.3}", f.width(), f.height(), f.score);
}

#[test]
fn face_filling_the_frame_is_found() {
    let photo = decode_sample("yaoming.jpg");
    let base = analyze_bytes(&png_with_exif(&photo, None), true).unwrap();
    // The inner 90 % of the face box, enlarged to 400×400: forehead and chin are cut off.
    let crop = face_crop(&photo, &base.faces[0].detection, 0.9);
    let close = image::imageops::resize(&crop, 400, 400, image::imageops::FilterType::CatmullRom);
    let r = analyze_bytes(&png_with_exif(&close, None), true).unwrap();
    assert_eq!(r.faces.len(), 1, "full-frame face");
    let c = common::cosine(&r.faces[0].embedding.as_ref().unwrap().vector, &base.faces[0].embedding.as_ref().unwrap().vector);
    assert!(c > 0.5, "same person as the original photo: cosine {c}");
    let single_pass = faceprint::detect::DetectorParams { full_frame_input_size: None, ..Default::default() };
    let without = common::analyzer().detector().detect(&close, &single_pass).unwrap().len();
    println!(
        "full-frame face: box {:?}, score {:.3}, cosine to original {c:.3}; the 640 pass alone finds {without} face(s)",
        r.faces[0].detection.bbox, r.faces[0].detection.score
    );
}
