//! Tests for `faceprint::imageio`. All test images are synthesised at test time.
//!
//! Optional real-file tests use `../shared/data` (relative to the crate root); they are skipped
//! with a message when it is absent, unless `CI=true`, in which case they fail.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::path::PathBuf;
use std::time::Instant;

mod common;
use common::synth::*;

use faceprint::imageio::{apply_orientation, decode, open, DecodeOptions, ImageError};
use image::{
    DynamicImage, ImageBuffer, ImageEncoder, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba,
    RgbaImage,
};

// ---------------------------------------------------------------------------------------------
// Allocation tracking: largest single allocation made on the current thread.

struct TrackingAlloc;

thread_local! {
    static MAX_ALLOC: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    // `try_with` so allocations during thread teardown are simply not tracked.
    let _ = MAX_ALLOC.try_with(|m| {
        if size > m.get() {
            m.set(size);
        }
    });
}

unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: TrackingAlloc = TrackingAlloc;

fn reset_max_alloc() {
    MAX_ALLOC.with(|m| m.set(0));
}
fn max_alloc() -> usize {
    MAX_ALLOC.with(|m| m.get())
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn px(img: &RgbImage, x: u32, y: u32) -> [u8; 3] {
    img.get_pixel(x, y).0
}

/// 3x2 image with 6 distinct colours, so every orientation is distinguishable.
fn asymmetric() -> RgbImage {
    let colours = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [255, 0, 255],
    ];
    RgbImage::from_fn(3, 2, |x, y| Rgb(colours[(y * 3 + x) as usize]))
}

/// Expected upright image for an EXIF orientation, written from the EXIF definitions
/// independently of the module's implementation: for each output pixel, which stored pixel.
/// Scales each pixel to an 8x8 block (one JPEG block per colour, so colours survive JPEG).
fn blocks(img: &RgbImage) -> RgbImage {
    RgbImage::from_fn(img.width() * 8, img.height() * 8, |x, y| {
        *img.get_pixel(x / 8, y / 8)
    })
}

/// Compares `got` (an 8x-block image) with the small `want` at block centres.
fn assert_blocks_close(got: &RgbImage, want: &RgbImage, tol: i32, what: &str) {
    assert_eq!(
        got.dimensions(),
        (want.width() * 8, want.height() * 8),
        "{what}: dimensions"
    );
    for (x, y, p) in want.enumerate_pixels() {
        let g = px(got, x * 8 + 4, y * 8 + 4);
        for c in 0..3 {
            assert!(
                (i32::from(g[c]) - i32::from(p.0[c])).abs() <= tol,
                "{what}: block ({x},{y}) got {g:?} want {:?}",
                p.0
            );
        }
    }
}



/// Simple deterministic xorshift64* generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn crashed(e: &ImageError) -> bool {
    matches!(e, ImageError::Corrupt { detail, .. } if detail.contains("decoder crashed"))
}

/// A colourful 16x12 RGB test image.
fn colourful(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w.max(2)) as u8,
            (y * 255 / h.max(2)) as u8,
            ((x + y) * 10) as u8,
        ])
    })
}

// ---------------------------------------------------------------------------------------------
// Colour types and formats

#[test]
fn png_rgb8_roundtrip() {
    let src = colourful(16, 12);
    let d = decode(
        &encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Png),
        &opts(),
    )
    .unwrap();
    assert_eq!(d.format, ImageFormat::Png);
    assert_eq!(d.image, src);
    assert_eq!(d.orientation, 1);
    assert_eq!(d.exif_orientation, None);
    assert_eq!(d.stored_size, (16, 12));
    assert!(d.warnings.is_empty());
}

#[test]
fn png_gray8() {
    let src = ImageBuffer::<Luma<u8>, _>::from_fn(4, 3, |x, y| Luma([(x * 60 + y) as u8]));
    let d = decode(
        &encode(&DynamicImage::ImageLuma8(src.clone()), ImageFormat::Png),
        &opts(),
    )
    .unwrap();
    for (x, y, p) in src.enumerate_pixels() {
        assert_eq!(px(&d.image, x, y), [p.0[0]; 3]);
    }
}

#[test]
fn png_gray16_scaled_not_truncated() {
    let vals = [65535u16, 32768, 0, 1000, 257 * 77, 255];
    let want = [255u8, 128, 0, 4, 77, 1];
    let src = ImageBuffer::<Luma<u16>, _>::from_fn(6, 1, |x, _| Luma([vals[x as usize]]));
    let bytes = encode(&DynamicImage::ImageLuma16(src), ImageFormat::Png);
    let d = decode(&bytes, &opts()).unwrap();
    for (x, w) in want.iter().enumerate() {
        assert_eq!(px(&d.image, x as u32, 0), [*w; 3], "value {}", vals[x]);
    }
}

#[test]
fn png_rgb16_scaled_not_truncated() {
    let src = ImageBuffer::<Rgb<u16>, _>::from_fn(2, 2, |x, y| match (x, y) {
        (0, 0) => Rgb([65535, 32768, 0]),
        (1, 0) => Rgb([257 * 200, 257 * 10, 65535]),
        (0, 1) => Rgb([0x00FF, 0xFF00, 0x8080]), // low byte / high byte confusion detector
        _ => Rgb([1, 2, 3]),
    });
    let bytes = encode(&DynamicImage::ImageRgb16(src), ImageFormat::Png);
    let d = decode(&bytes, &opts()).unwrap();
    assert_eq!(px(&d.image, 0, 0), [255, 128, 0]);
    assert_eq!(px(&d.image, 1, 0), [200, 10, 255]);
    assert_eq!(px(&d.image, 0, 1), [1, 254, 128]);
    assert_eq!(px(&d.image, 1, 1), [0, 0, 0]);
}

#[test]
fn png_rgba8_alpha_dropped_like_opencv() {
    let src = RgbaImage::from_fn(2, 2, |x, y| match (x, y) {
        (0, 0) => Rgba([10, 20, 30, 0]), // fully transparent: colour kept as stored
        (1, 0) => Rgba([200, 100, 50, 128]),
        (0, 1) => Rgba([1, 2, 3, 255]),
        _ => Rgba([255, 255, 255, 7]),
    });
    let d = decode(
        &encode(&DynamicImage::ImageRgba8(src), ImageFormat::Png),
        &opts(),
    )
    .unwrap();
    assert_eq!(px(&d.image, 0, 0), [10, 20, 30]);
    assert_eq!(px(&d.image, 1, 0), [200, 100, 50]);
    assert_eq!(px(&d.image, 0, 1), [1, 2, 3]);
    assert_eq!(px(&d.image, 1, 1), [255, 255, 255]);
}

#[test]
fn png_gray_alpha_and_rgba16() {
    let la = ImageBuffer::<LumaA<u8>, _>::from_fn(2, 1, |x, _| LumaA([x as u8 * 100 + 5, 0]));
    let d = decode(
        &encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png),
        &opts(),
    )
    .unwrap();
    assert_eq!(px(&d.image, 0, 0), [5; 3]);
    assert_eq!(px(&d.image, 1, 0), [105; 3]);

    let rgba16 = ImageBuffer::<Rgba<u16>, _>::from_fn(1, 1, |_, _| Rgba([65535, 32768, 0, 100]));
    let d = decode(
        &encode(&DynamicImage::ImageRgba16(rgba16), ImageFormat::Png),
        &opts(),
    )
    .unwrap();
    assert_eq!(px(&d.image, 0, 0), [255, 128, 0]);
}

#[test]
fn png_palette_2bit_with_trns() {
    // 5x2 image, 2 bits per index, palette of 3 colours, index 2 partly transparent.
    let palette = [[255u8, 0, 0], [0, 128, 255], [9, 8, 7]];
    let idx = [[0u8, 1, 2, 1, 0], [2, 2, 0, 1, 1]];
    let mut raw = Vec::new();
    for row in idx {
        raw.push(0); // filter: none
        let mut bytes = [0u8; 2];
        for (i, v) in row.iter().enumerate() {
            bytes[i / 4] |= v << (6 - 2 * (i % 4));
        }
        raw.extend_from_slice(&bytes);
    }
    let mut png = PNG_SIG.to_vec();
    png_chunk(&mut png, b"IHDR", &ihdr(5, 2, 2, 3));
    png_chunk(&mut png, b"PLTE", &palette.concat());
    png_chunk(&mut png, b"tRNS", &[255, 255, 40]);
    png_chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    png_chunk(&mut png, b"IEND", &[]);
    let d = decode(&png, &opts()).unwrap();
    assert_eq!(d.image.dimensions(), (5, 2));
    for (y, row) in idx.iter().enumerate() {
        for (x, &i) in row.iter().enumerate() {
            assert_eq!(
                px(&d.image, x as u32, y as u32),
                palette[i as usize],
                "({x},{y})"
            );
        }
    }
}

#[test]
fn cmyk_jpeg_colours_match_rgb_source() {
    let colours: [[u8; 3]; 8] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
        [128, 128, 128],
        [255, 140, 0],
        [220, 170, 140],
    ];
    let small = RgbImage::from_fn(4, 2, |x, y| Rgb(colours[(y * 4 + x) as usize]));
    let big = blocks(&small);
    let cmyk: Vec<u8> = big.pixels().flat_map(|p| rgb_to_cmyk(p.0)).collect();
    for (ct, name) in [
        (jpeg_encoder::ColorType::Cmyk, "CMYK (Adobe, inverted)"),
        (jpeg_encoder::ColorType::CmykAsYcck, "YCCK"),
    ] {
        let mut out = Vec::new();
        let enc = jpeg_encoder::Encoder::new(&mut out, 100);
        enc.encode(&cmyk, big.width() as u16, big.height() as u16, ct)
            .unwrap();
        let d = decode(&out, &opts()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.format, ImageFormat::Jpeg);
        assert_blocks_close(&d.image, &small, 12, name);
    }
}

#[test]
fn jpeg_gray_and_rgb() {
    let small = RgbImage::from_fn(3, 2, |x, y| Rgb([(x * 100) as u8, (y * 200) as u8, 77]));
    let d = decode(&jpeg_rgb(&blocks(&small), None), &opts()).unwrap();
    assert_eq!(d.format, ImageFormat::Jpeg);
    assert_blocks_close(&d.image, &small, 6, "rgb jpeg");

    let gray: Vec<u8> = (0..16 * 8)
        .map(|i| if i % 16 < 8 { 30 } else { 220 })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 100)
        .encode(&gray, 16, 8, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let d = decode(&out, &opts()).unwrap();
    assert_blocks_close(
        &d.image,
        &RgbImage::from_fn(2, 1, |x, _| Rgb([if x == 0 { 30 } else { 220 }; 3])),
        3,
        "gray jpeg",
    );
}

#[test]
fn webp_lossless_and_misnamed_file() {
    let src = colourful(9, 7);
    let rgba = DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(src.clone()).to_rgba8());
    let bytes = encode(&rgba, ImageFormat::WebP);
    let d = decode(&bytes, &opts()).unwrap();
    assert_eq!(d.format, ImageFormat::WebP);
    assert_eq!(d.image, src);

    // Content decides, not the extension.
    let path =
        std::env::temp_dir().join(format!("faceprint-imageio-{}-webp.jpg", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let d2 = open(&path, &opts());
    let _ = std::fs::remove_file(&path);
    let d2 = d2.unwrap();
    assert_eq!(d2.format, ImageFormat::WebP);
    assert_eq!(d2.image, src);
}

#[test]
fn bmp_tiff_rgb_roundtrip() {
    let src = colourful(10, 6);
    for f in [ImageFormat::Bmp, ImageFormat::Tiff] {
        let d = decode(&encode(&DynamicImage::ImageRgb8(src.clone()), f), &opts()).unwrap();
        assert_eq!(d.format, f);
        assert_eq!(d.image, src, "{f:?}");
    }
    // RGBA BMP and 16-bit TIFF.
    let rgba = DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(src.clone()).to_rgba8());
    let d = decode(&encode(&rgba, ImageFormat::Bmp), &opts()).unwrap();
    assert_eq!(d.image, src);
    let t16 = DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(src.clone()).to_rgb16());
    let d = decode(&encode(&t16, ImageFormat::Tiff), &opts()).unwrap();
    assert_eq!(d.image, src);
}

#[test]
fn gif_first_frame() {
    let f1 = RgbaImage::from_fn(4, 3, |x, _| {
        if x < 2 {
            Rgba([255, 0, 0, 255])
        } else {
            Rgba([0, 0, 255, 255])
        }
    });
    let f2 = RgbaImage::from_pixel(4, 3, Rgba([0, 255, 0, 255]));
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.encode_frames(vec![image::Frame::new(f1), image::Frame::new(f2)])
            .unwrap();
    }
    let d = decode(&out, &opts()).unwrap();
    assert_eq!(d.format, ImageFormat::Gif);
    assert_eq!(d.image.dimensions(), (4, 3));
    assert_eq!(px(&d.image, 0, 0), [255, 0, 0]);
    assert_eq!(px(&d.image, 3, 2), [0, 0, 255]);
}

// ---------------------------------------------------------------------------------------------
// EXIF orientation

#[test]
fn apply_orientation_matches_exif_definitions() {
    let src = asymmetric();
    for o in 1..=8 {
        assert_eq!(
            apply_orientation(src.clone(), o),
            expected_orientation(&src, o),
            "orientation {o}"
        );
    }
    assert_eq!(apply_orientation(src.clone(), 0), src);
    assert_eq!(apply_orientation(src.clone(), 9), src);
}

#[test]
fn exif_orientation_all_8_png() {
    let src = asymmetric();
    for o in 1..=8u16 {
        for be in [false, true] {
            let d = decode(&png_with_exif(&src, Some(exif_blob(o, be))), &opts()).unwrap();
            assert_eq!(d.orientation, o);
            assert_eq!(d.exif_orientation, Some(o));
            assert_eq!(d.stored_size, (3, 2));
            assert_eq!(
                d.image,
                expected_orientation(&src, o),
                "orientation {o} be={be}"
            );
            if o >= 5 {
                assert_eq!(d.image.dimensions(), (2, 3));
            }
            assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        }
    }
}

#[test]
fn exif_orientation_all_8_jpeg_app1() {
    let src = asymmetric();
    for o in 1..=8u16 {
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&exif_blob(o, o % 2 == 0));
        let d = decode(&jpeg_rgb(&blocks(&src), Some(app1)), &opts()).unwrap();
        assert_eq!(d.orientation, o);
        assert_eq!(d.stored_size, (24, 16));
        assert_blocks_close(
            &d.image,
            &expected_orientation(&src, o),
            8,
            &format!("jpeg orientation {o}"),
        );
    }
}

#[test]
fn exif_orientation_webp() {
    let src = asymmetric();
    for o in [3u16, 6, 8] {
        let mut out = Vec::new();
        let mut enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
        enc.set_exif_metadata(exif_blob(o, false)).unwrap();
        enc.write_image(src.as_raw(), 3, 2, image::ExtendedColorType::Rgb8)
            .unwrap();
        let d = decode(&out, &opts()).unwrap();
        assert_eq!(d.format, ImageFormat::WebP);
        assert_eq!(d.orientation, o, "webp orientation {o}");
        assert_eq!(d.image, expected_orientation(&src, o));
    }
}

/// Hand-made uncompressed little-endian RGB TIFF with an Orientation tag.
fn tiff_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let pixels = img.as_raw();
    let entries: Vec<(u16, u16, u32, u32)> = vec![
        (256, 4, 1, w),                      // ImageWidth LONG
        (257, 4, 1, h),                      // ImageLength
        (258, 3, 3, 0),                      // BitsPerSample SHORT[3] -> offset patched below
        (259, 3, 1, 1),                      // Compression none
        (262, 3, 1, 2),                      // Photometric RGB
        (273, 4, 1, 0),                      // StripOffsets -> patched
        (274, 3, 1, u32::from(orientation)), // Orientation
        (277, 3, 1, 3),                      // SamplesPerPixel
        (278, 4, 1, h),                      // RowsPerStrip
        (279, 4, 1, pixels.len() as u32),    // StripByteCounts
    ];
    let ifd_len = 2 + entries.len() * 12 + 4;
    let bps_off = 8 + ifd_len as u32;
    let strip_off = bps_off + 6;
    let mut b = b"II".to_vec();
    b.extend_from_slice(&42u16.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, typ, count, mut val) in entries {
        if tag == 258 {
            val = bps_off;
        }
        if tag == 273 {
            val = strip_off;
        }
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&typ.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        if typ == 3 && count == 1 {
            b.extend_from_slice(&(val as u16).to_le_bytes());
            b.extend_from_slice(&[0, 0]);
        } else {
            b.extend_from_slice(&val.to_le_bytes());
        }
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    for _ in 0..3 {
        b.extend_from_slice(&8u16.to_le_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

#[test]
fn exif_orientation_tiff() {
    let src = asymmetric();
    for o in 1..=8u16 {
        let d = decode(&tiff_with_orientation(&src, o), &opts()).unwrap();
        assert_eq!(d.format, ImageFormat::Tiff);
        assert_eq!(d.orientation, o);
        assert_eq!(
            d.image,
            expected_orientation(&src, o),
            "tiff orientation {o}"
        );
    }
    let d = decode(&tiff_with_orientation(&src, 0), &opts()).unwrap();
    assert_eq!(d.orientation, 1);
    assert_eq!(d.image, src);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
}

#[test]
fn exif_orientation_invalid_values_warn() {
    let src = asymmetric();
    for o in [0u16, 9, 65535] {
        let d = decode(&png_with_exif(&src, Some(exif_blob(o, false))), &opts()).unwrap();
        assert_eq!(d.orientation, 1);
        assert_eq!(d.exif_orientation, Some(o));
        assert_eq!(d.image, src);
        assert_eq!(d.warnings.len(), 1);
        assert!(
            d.warnings[0].contains(&format!("invalid EXIF Orientation value {o} ignored")),
            "{:?}",
            d.warnings
        );
    }
}

#[test]
fn exif_garbage_warns_not_fails() {
    let src = asymmetric();
    let d = decode(
        &png_with_exif(&src, Some(b"this is not a TIFF structure".to_vec())),
        &opts(),
    )
    .unwrap();
    assert_eq!(d.orientation, 1);
    assert_eq!(d.image, src);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].contains("EXIF"), "{:?}", d.warnings);

    // Truncated EXIF inside a JPEG: also just a warning.
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&exif_blob(6, false)[..12]);
    let d = decode(&jpeg_rgb(&blocks(&src), Some(app1)), &opts()).unwrap();
    assert_eq!(d.orientation, 1);
    assert_eq!(d.image.dimensions(), (24, 16));
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
}

#[test]
fn exif_orientation_can_be_disabled() {
    let src = asymmetric();
    let o = DecodeOptions {
        apply_exif_orientation: false,
        ..Default::default()
    };
    let d = decode(&png_with_exif(&src, Some(exif_blob(6, false))), &o).unwrap();
    assert_eq!(d.orientation, 1);
    assert_eq!(d.exif_orientation, Some(6));
    assert_eq!(d.image, src);
}

// ---------------------------------------------------------------------------------------------
// Errors and robustness

#[test]
fn empty_input() {
    let e = decode(&[], &opts()).unwrap_err();
    assert!(matches!(e, ImageError::Empty), "{e:?}");
    assert_eq!(e.to_string(), "image file is empty (0 bytes)");
}

#[test]
fn random_bytes_unsupported() {
    let mut rng = Rng(0x1234_5678_9abc_def0);
    let bytes: Vec<u8> = (0..1000).map(|_| rng.next() as u8).collect();
    let e = decode(&bytes, &opts()).unwrap_err();
    assert!(matches!(e, ImageError::UnsupportedFormat { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("not a supported image format (JPEG, PNG, WebP, BMP, TIFF, GIF)"),
        "{msg}"
    );

    let e = decode(b"<!DOCTYPE html><html>404</html>", &opts()).unwrap_err();
    assert!(e.to_string().contains("HTML"), "{e}");
    let e = decode(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", &opts()).unwrap_err();
    assert!(e.to_string().contains("HEIC"), "{e}");
    // A format the `image` crate recognises but this build does not decode (ICO magic).
    let e = decode(b"\0\0\x01\0\x01\0\x10\x10\0\0\x01\0\x20\0\0\0\0\0", &opts()).unwrap_err();
    assert!(matches!(e, ImageError::UnsupportedFormat { .. }), "{e:?}");
}

#[test]
fn missing_file_is_io_error() {
    let e = open(
        std::path::Path::new("/nonexistent/faceprint/x.jpg"),
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, ImageError::Io(_)), "{e:?}");
    assert!(
        e.to_string().starts_with("could not read image file"),
        "{e}"
    );
}

#[test]
fn truncated_files_never_panic() {
    let src = colourful(32, 24);
    let cases = [
        ("JPEG", jpeg_rgb(&src, None)),
        (
            "PNG",
            encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Png),
        ),
        (
            "WebP",
            encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::WebP),
        ),
        (
            "GIF",
            encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Gif),
        ),
        (
            "BMP",
            encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Bmp),
        ),
        (
            "TIFF",
            encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Tiff),
        ),
    ];
    for (name, bytes) in cases {
        for cut in [bytes.len() / 2, bytes.len() - 1, 20, 8, 3] {
            match decode(&bytes[..cut], &opts()) {
                Ok(d) => assert_eq!(d.image.dimensions(), (32, 24), "{name} cut at {cut}"),
                Err(e) => assert!(!crashed(&e), "{name} cut at {cut}: decoder panicked: {e}"),
            }
        }
    }
    // PNG cut in half must be an error, with the documented message shape.
    let png = encode(&DynamicImage::ImageRgb8(src), ImageFormat::Png);
    let e = decode(&png[..png.len() / 2], &opts()).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("image is truncated or corrupt (PNG): "),
        "{e}"
    );

    // Damaged IHDR CRC: readable message (no `ChunkType { .. }` debug dump).
    let mut bad = png.clone();
    bad[29] ^= 0xff;
    let e = decode(&bad, &opts()).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e:?}");
    assert!(
        e.to_string().contains("CRC error") && !e.to_string().contains("ChunkType"),
        "{e}"
    );
    // Damaged signature gets a hint.
    let mut bad = png;
    bad[6] = 0;
    let e = decode(&bad, &opts()).unwrap_err();
    assert!(e.to_string().contains("starts like PNG"), "{e}");
}

#[test]
fn too_large_rejected_from_header_without_allocating() {
    let png = huge_png(60000, 60000);
    reset_max_alloc();
    let t = Instant::now();
    let e = decode(&png, &opts()).unwrap_err();
    let elapsed = t.elapsed();
    let peak = max_alloc();
    assert!(
        matches!(
            e,
            ImageError::TooLarge {
                width: 60000,
                height: 60000,
                max_pixels: 64_000_000
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "image is 60000x60000 = 3600000000 pixels, over the limit of 64000000 (`--max-pixels`, `max_pixels`: a guard against decompression bombs)"
    );
    assert!(elapsed.as_millis() < 2000, "took {elapsed:?}");
    assert!(peak < 1 << 20, "largest allocation {peak} bytes");

    // Just over a custom limit; and just at the limit is fine to *pass* the check.
    let small = DecodeOptions {
        max_pixels: 99,
        ..Default::default()
    };
    let e = decode(&huge_png(10, 10), &small).unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e:?}");
    let ok = DecodeOptions {
        max_pixels: 100,
        ..Default::default()
    };
    let e = decode(&huge_png(10, 10), &ok).unwrap_err(); // passes the check, then data is short
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e:?}");

    // Other formats: a JPEG/GIF/BMP header claiming a huge size.
    let src = colourful(8, 8);
    let mut gif = encode(&DynamicImage::ImageRgb8(src.clone()), ImageFormat::Gif);
    gif[6..10].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]); // logical screen 65535x65535
    reset_max_alloc();
    let r = decode(&gif, &opts());
    assert!(
        max_alloc() < 16 << 20,
        "gif largest allocation {}",
        max_alloc()
    );
    if let Err(e) = &r {
        assert!(!crashed(e), "{e}");
    }
    let mut bmp = encode(&DynamicImage::ImageRgb8(src), ImageFormat::Bmp);
    bmp[18..22].copy_from_slice(&30000i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&30000i32.to_le_bytes());
    reset_max_alloc();
    let e = decode(&bmp, &opts()).unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::TooLarge {
                width: 30000,
                height: 30000,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        max_alloc() < 16 << 20,
        "bmp largest allocation {}",
        max_alloc()
    );
}

#[test]
fn zero_size_header_is_corrupt() {
    let e = decode(&huge_png(0, 10), &opts()).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e:?}");
}

#[test]
fn fuzzed_mutations_never_panic() {
    let src = colourful(16, 12);
    let dynimg = DynamicImage::ImageRgb8(src.clone());
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("PNG", png_with_exif(&src, Some(exif_blob(6, false)))),
        ("JPEG", {
            let mut app1 = b"Exif\0\0".to_vec();
            app1.extend_from_slice(&exif_blob(3, true));
            jpeg_rgb(&src, Some(app1))
        }),
        ("GIF", encode(&dynimg, ImageFormat::Gif)),
        ("WebP", encode(&dynimg, ImageFormat::WebP)),
        ("BMP", encode(&dynimg, ImageFormat::Bmp)),
        ("TIFF", tiff_with_orientation(&src, 5)),
        ("TIFF-lib", encode(&dynimg, ImageFormat::Tiff)),
    ];
    // A progressive-ish/CMYK JPEG too.
    let cmyk: Vec<u8> = src.pixels().flat_map(|p| rgb_to_cmyk(p.0)).collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&cmyk, 16, 12, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    seeds.push(("CMYK JPEG", out));
    let mut prog = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut prog, 80);
    enc.set_progressive(true);
    enc.encode(src.as_raw(), 16, 12, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    seeds.push(("progressive JPEG", prog));

    // Keep the pixel limit small so mutated headers can't make each iteration slow.
    let fuzz_opts = DecodeOptions {
        max_pixels: 1 << 20,
        ..Default::default()
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    let iterations_per_seed = 600;
    for (name, seed) in &seeds {
        assert!(decode(seed, &opts()).is_ok(), "{name} seed must decode");
        for i in 0..iterations_per_seed {
            let mut b = seed.clone();
            let n_mut = 1 + rng.below(4);
            for _ in 0..n_mut {
                match rng.below(6) {
                    0 => {
                        let p = rng.below(b.len());
                        b[p] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let p = rng.below(b.len());
                        b[p] = rng.next() as u8;
                    }
                    2 => {
                        // Mostly hit headers: first 64 bytes.
                        let p = rng.below(b.len().min(64));
                        b[p] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
                    }
                    3 => {
                        let cut = 1 + rng.below(b.len());
                        b.truncate(cut);
                    }
                    4 => {
                        let p = rng.below(b.len());
                        let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                        b.splice(p..p, junk);
                    }
                    _ => {
                        // Overwrite 4 bytes with a large big/little-endian number.
                        if b.len() > 4 {
                            let p = rng.below(b.len() - 4);
                            let v = (rng.next() as u32) | 0x0100_0000;
                            b[p..p + 4].copy_from_slice(&v.to_be_bytes());
                        }
                    }
                }
                if b.is_empty() {
                    b.push(0);
                }
            }
            match decode(&b, &fuzz_opts) {
                Ok(d) => {
                    let (w, h) = d.image.dimensions();
                    assert!(w > 0 && h > 0);
                    assert!(u64::from(d.stored_size.0) * u64::from(d.stored_size.1) <= 1 << 20);
                    ok += 1;
                }
                Err(e) => {
                    assert!(!crashed(&e), "{name} mutation #{i}: decoder panicked: {e}");
                    assert!(!e.to_string().is_empty());
                    err += 1;
                }
            }
        }
    }
    println!("fuzz: {} inputs, {ok} decoded, {err} errors", ok + err);
}

// ---------------------------------------------------------------------------------------------
// Real files from ../shared/data (optional)

fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} is missing and CI=true", dir.display());
    }
    println!("skipping: {} not found", dir.display());
    None
}

#[test]
fn real_webp_named_jpg() {
    let Some(dir) = shared_data() else { return };
    let d = open(&dir.join("deepface/tests/unit/dataset/img47.jpg"), &opts()).unwrap();
    assert_eq!(d.format, ImageFormat::WebP);
    assert!(d.image.width() > 10 && d.image.height() > 10);
}

#[test]
fn real_rgba_png() {
    let Some(dir) = shared_data() else { return };
    let path = dir.join("face_recognition/examples/alex-lacamoire.png");
    let stored = image::ImageReader::open(&path)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .decode()
        .unwrap();
    assert!(
        stored.color().has_alpha(),
        "expected an RGBA source, got {:?}",
        stored.color()
    );
    let d = open(&path, &opts()).unwrap();
    assert_eq!(d.format, ImageFormat::Png);
    assert_eq!(d.image.dimensions(), (stored.width(), stored.height()));
    // Alpha dropped: colour channels unchanged.
    let rgba = stored.to_rgba8();
    for (x, y, p) in d.image.enumerate_pixels().step_by(997) {
        let q = rgba.get_pixel(x, y).0;
        assert_eq!(p.0, [q[0], q[1], q[2]]);
    }
}

#[test]
fn real_orientation_zero_warns() {
    let Some(dir) = shared_data() else { return };
    let d = open(
        &dir.join("insightface_pypi/insightface/data/images/mask_white.jpg"),
        &opts(),
    )
    .unwrap();
    assert_eq!(d.format, ImageFormat::Jpeg);
    assert_eq!(d.orientation, 1);
    assert_eq!(d.exif_orientation, Some(0));
    assert_eq!(d.image.dimensions(), d.stored_size);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("invalid EXIF Orientation value 0 ignored")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn real_portrait_6_is_taller_than_wide() {
    let Some(dir) = shared_data() else { return };
    let d = open(
        &dir.join("exif_orientation_examples/Portrait_6.jpg"),
        &opts(),
    )
    .unwrap();
    assert_eq!(d.orientation, 6);
    assert!(
        d.image.height() > d.image.width(),
        "{:?}",
        d.image.dimensions()
    );
    assert_eq!(d.image.dimensions(), (d.stored_size.1, d.stored_size.0));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}
