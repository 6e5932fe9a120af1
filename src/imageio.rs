//! Stage one of the pipeline: encoded image bytes -> upright RGB8 image.
//!
//! [`decode`] (and [`open`], which reads a file and calls it) does:
//!
//! 1. detect the format from the *content* (magic bytes), never from a file name, so a WebP
//!    file called `photo.jpg` decodes fine;
//! 2. parse only the header and reject images over [`DecodeOptions::max_pixels`] before any
//!    pixel memory is allocated; every decoder additionally runs under an [`image::Limits`]
//!    memory budget (derived from `max_pixels`, see [`DecodeOptions::max_alloc_bytes`]);
//! 3. decode and convert any colour type to RGB8 (see "Colour conversion" below);
//! 4. apply the EXIF `Orientation` tag (values 1..=8) so the result is the way a photo viewer
//!    shows it. All pixel coordinates downstream (face boxes, landmarks) refer to this image.
//!
//! Supported formats: JPEG (baseline, progressive, grayscale, CMYK/YCCK), PNG (all bit depths,
//! palette, 16-bit, alpha; first frame of APNG), WebP (lossy, lossless, alpha; first frame of
//! animations), BMP, TIFF, GIF (first frame).
//!
//! # Colour conversion
//!
//! * Gray -> R = G = B = gray.
//! * 16-bit channels -> 8-bit by rounding `v * 255 / 65535` (65535 -> 255, 32768 -> 128),
//!   never by truncation or by taking the low byte.
//! * Palette -> the palette colour.
//! * CMYK / Adobe-inverted CMYK JPEG -> RGB by the JPEG decoder (naive `(255-C)(255-K)/255`-style
//!   conversion, no ICC colour management).
//! * **Alpha is dropped**: the colour channels are kept as stored and the alpha channel is
//!   discarded (no compositing). This is what OpenCV's `cv2.imread(path)` (`IMREAD_COLOR`)
//!   does, and the reference implementations load images with it, so embeddings stay
//!   comparable. Note this is *not* "composite over black" (which would multiply by alpha):
//!   fully transparent pixels keep whatever colour the encoder stored there.
//! * No ICC profile or gamma handling: pixel values are used as stored, as OpenCV does.
//!
//! # Robustness
//!
//! No input makes this module panic or allocate without bound: the header is checked first,
//! decoders run with a memory limit, and - as a last line of defence against bugs in third-party
//! decoders - a panic while decoding is caught and reported as [`ImageError::Corrupt`]
//! (this relies on the default `panic = "unwind"`; the panic message is still printed to stderr
//! by the default panic hook).

#![warn(missing_docs)]

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use image::error::{ImageError as LibError, ImageFormatHint, UnsupportedErrorKind};
use image::{imageops, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// Formats this module decodes, for error messages.
const SUPPORTED: &str = "JPEG, PNG, WebP, BMP, TIFF, GIF";

/// Extra memory budget (bytes) on top of the decoded pixels, for decoder-internal buffers and
/// metadata (ICC profiles, EXIF, text chunks, compressed strips...).
const ALLOC_HEADROOM: u64 = 64 * 1024 * 1024;

/// Options for [`decode`] and [`open`].
///
/// Build with struct-update syntax so that any future fields keep their defaults:
/// `DecodeOptions { max_pixels: 20_000_000, ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Maximum accepted `width * height` of the stored image, in pixels. Checked from the
    /// header *before* any pixel memory is allocated; larger images fail with
    /// [`ImageError::TooLarge`].
    ///
    /// Default `64_000_000` (64 megapixels). Why: a few hundred bytes of PNG/GIF/WebP can claim
    /// billions of pixels (a "decompression bomb") and would otherwise make the decoder
    /// allocate gigabytes. 64 MP is above the largest common camera sensors (about 50-61 MP
    /// full-frame, e.g. 45-61 MP mirrorless bodies and 50 MP phone sensors), so real photos pass,
    /// while the worst case stays bounded (64 MP RGB8 = 192 MB output).
    pub max_pixels: u64,
    /// Apply the EXIF `Orientation` tag (values 1..=8) so the image is upright. Default `true`.
    ///
    /// When `false` the stored pixel layout is returned unchanged and
    /// [`DecodedImage::orientation`] is 1; the tag value found is still reported in
    /// [`DecodedImage::exif_orientation`].
    pub apply_exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: 64_000_000,
            apply_exif_orientation: true,
        }
    }
}

impl DecodeOptions {
    /// Memory budget in bytes for any single decoder's allocations, passed to the decoders as
    /// [`image::Limits::max_alloc`]: `max_pixels * 8 + 64 MiB`, enough for a 16-bit RGBA image
    /// at the pixel limit plus decoder buffers and metadata (576 MB with the default
    /// `max_pixels`). Exceeding it gives [`ImageError::LimitExceeded`].
    pub fn max_alloc_bytes(&self) -> u64 {
        self.max_pixels
            .saturating_mul(8)
            .saturating_add(ALLOC_HEADROOM)
    }
}

/// A decoded, upright RGB8 image and facts about how it was obtained.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// RGB8 pixels with the EXIF orientation applied (when
    /// [`DecodeOptions::apply_exif_orientation`] is set). All pixel coordinates downstream
    /// are in this image. Width and height are at least 1.
    pub image: RgbImage,
    /// Format detected from the content (never from the file extension).
    pub format: ImageFormat,
    /// EXIF orientation value that was applied, 1..=8 (1 = none). For 5..=8 the width and
    /// height of [`DecodedImage::image`] are swapped relative to [`DecodedImage::stored_size`].
    pub orientation: u16,
    /// Raw value of the EXIF `Orientation` tag found in the file, whether or not it was valid
    /// or applied; `None` when the file has no EXIF data, no such tag, or unparsable EXIF.
    pub exif_orientation: Option<u16>,
    /// Stored (pre-orientation) `(width, height)` in pixels, as given by the file header.
    pub stored_size: (u32, u32),
    /// Non-fatal problems, e.g. `"invalid EXIF Orientation value 0 ignored"`, in the order they
    /// were found. The caller decides whether to print them (they do not contain the path).
    pub warnings: Vec<String>,
    /// True when the file's pixel data ends early and the decoder filled the rest in (a
    /// truncated JPEG decodes with the missing part gray); also listed in `warnings`.
    pub truncated: bool,
}

/// Why an image could not be decoded. Split by who is at fault, like `image::ImageError`:
/// [`Empty`](ImageError::Empty), [`UnsupportedFormat`](ImageError::UnsupportedFormat),
/// [`UnsupportedFeature`](ImageError::UnsupportedFeature) and [`Corrupt`](ImageError::Corrupt)
/// are about the file's content; [`TooLarge`](ImageError::TooLarge) and
/// [`LimitExceeded`](ImageError::LimitExceeded) are policy limits from [`DecodeOptions`];
/// [`Io`](ImageError::Io) is the operating system failing to read the file.
///
/// Messages never contain the file path; the caller adds it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The input has zero bytes.
    #[error("image file is empty (0 bytes)")]
    Empty,
    /// The content is not an image format this library decodes (or not an image at all).
    #[error("not a supported image format ({SUPPORTED}): {detail}")]
    UnsupportedFormat {
        /// What was found instead, e.g. the first bytes or the detected unsupported format.
        detail: String,
    },
    /// A supported format, but the file uses a feature the decoder does not implement
    /// (e.g. an exotic bit depth or compression).
    #[error("image uses an unsupported feature ({format}): {detail}")]
    UnsupportedFeature {
        /// Detected format name, e.g. `"JPEG"`.
        format: String,
        /// The decoder's description of the unsupported feature.
        detail: String,
    },
    /// The data is truncated or malformed.
    #[error("image is truncated or corrupt ({format}): {detail}")]
    Corrupt {
        /// Detected format name, e.g. `"JPEG"`.
        format: String,
        /// The decoder's description of the problem.
        detail: String,
    },
    /// The header claims more than [`DecodeOptions::max_pixels`] pixels.
    #[error(
        "image is {width}x{height} = {} pixels, over the limit of {max_pixels} (`--max-pixels`, `max_pixels`: a guard against decompression bombs)",
        u64::from(*width) * u64::from(*height)
    )]
    TooLarge {
        /// Stored width from the header, in pixels.
        width: u32,
        /// Stored height from the header, in pixels.
        height: u32,
        /// The limit that was exceeded, in pixels.
        max_pixels: u64,
    },
    /// The decoder needed more memory than the budget
    /// ([`DecodeOptions::max_alloc_bytes`]), e.g. for huge metadata chunks or a
    /// high-bit-depth image near the pixel limit.
    #[error("decoding the image ({format}) needs more memory than allowed ({max_alloc} bytes, derived from the pixel limit `--max-pixels`): {detail}")]
    LimitExceeded {
        /// Detected format name, e.g. `"TIFF"`.
        format: String,
        /// The budget in bytes.
        max_alloc: u64,
        /// The decoder's description.
        detail: String,
    },
    /// Reading the file failed (only from [`open`]).
    #[error("could not read image file: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the file at `path` and decodes it with [`decode`].
///
/// # Errors
/// [`ImageError::Io`] if the file cannot be read; otherwise as [`decode`].
pub fn open(path: &Path, opts: &DecodeOptions) -> Result<DecodedImage, ImageError> {
    let bytes = std::fs::read(path)?;
    decode(&bytes, opts)
}

/// Decodes an encoded image (JPEG, PNG, WebP, BMP, TIFF, GIF; detected from content) into an
/// upright RGB8 image. See the module docs for colour conversion and orientation rules.
///
/// Never panics. Problems that do not prevent decoding (bad EXIF) are returned in
/// [`DecodedImage::warnings`].
///
/// # Errors
/// * [`ImageError::Empty`] - `bytes` is empty.
/// * [`ImageError::UnsupportedFormat`] - not a supported image format.
/// * [`ImageError::UnsupportedFeature`] - supported format, unsupported variant.
/// * [`ImageError::TooLarge`] - header claims more than `opts.max_pixels` pixels.
/// * [`ImageError::LimitExceeded`] - a decoder needed more than the memory budget.
/// * [`ImageError::Corrupt`] - truncated or malformed data, zero width/height, or a decoder bug.
pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    // Last line of defence: third-party decoders are not supposed to panic, but if one does on
    // hostile input, report it as a corrupt file instead of taking down the caller.
    match catch_unwind(AssertUnwindSafe(|| decode_inner(bytes, opts))) {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            let format = image::guess_format(bytes)
                .ok()
                .map(format_name)
                .unwrap_or("unknown format");
            Err(ImageError::Corrupt {
                format: format.to_owned(),
                detail: format!("the decoder crashed on this data ({msg})"),
            })
        }
    }
}

fn decode_inner(bytes: &[u8], opts: &DecodeOptions) -> Result<DecodedImage, ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let Some(format) = reader.format() else {
        return Err(ImageError::UnsupportedFormat {
            detail: describe_unknown(bytes),
        });
    };
    let fname = format_name(format);
    let max_alloc = opts.max_alloc_bytes();
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);

    // Constructing the decoder parses only the header (and, for some formats, metadata).
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_lib_error(e, fname, max_alloc))?;

    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            format: fname.to_owned(),
            detail: format!("header gives an empty image size {width}x{height}"),
        });
    }
    if u64::from(width) * u64::from(height) > opts.max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            max_pixels: opts.max_pixels,
        });
    }
    let total = decoder.total_bytes();
    if total > max_alloc {
        return Err(ImageError::LimitExceeded {
            format: fname.to_owned(),
            max_alloc,
            detail: format!(
                "{width}x{height} {:?} pixels need {total} bytes",
                decoder.color_type()
            ),
        });
    }

    let mut warnings = Vec::new();
    let exif_orientation = read_orientation(&mut decoder, format, bytes, &mut warnings);

    // JPEG: libjpeg-turbo first (bit-identical to OpenCV/Pillow); the `image` crate for what it
    // does not convert to RGB (CMYK, YCCK) or cannot read.
    let libjpeg = if format == ImageFormat::Jpeg { decode_jpeg_libjpeg(bytes, &mut warnings) } else { None };
    let rgb = match libjpeg {
        Some(rgb) => rgb,
        None => to_rgb8(DynamicImage::from_decoder(decoder).map_err(|e| map_lib_error(e, fname, max_alloc))?),
    };
    if rgb.dimensions() != (width, height) {
        // Should not happen; guard so downstream code can trust stored_size.
        return Err(ImageError::Corrupt {
            format: fname.to_owned(),
            detail: format!(
                "decoded size {:?} differs from header size {width}x{height}",
                rgb.dimensions()
            ),
        });
    }

    let orientation = match exif_orientation {
        Some(v @ 1..=8) if opts.apply_exif_orientation => v,
        _ => 1,
    };
    let image = apply_orientation(rgb, orientation);

    Ok(DecodedImage {
        image,
        format,
        orientation,
        exif_orientation,
        stored_size: (width, height),
        truncated: warnings.iter().any(|w| w == JPEG_TRUNCATED),
        warnings,
    })
}

/// The warning of a JPEG whose data ends early ([`DecodedImage::truncated`]).
const JPEG_TRUNCATED: &str = "JPEG data ends early (no end-of-image marker): the file is probably truncated; the missing part is filled in";

/// Decodes a YCbCr, RGB or grayscale JPEG with libjpeg-turbo's decoder (islow IDCT, fancy
/// upsampling: its defaults, as in OpenCV's `imread` and Pillow). Returns `None` for colour
/// spaces it does not convert to RGB (CMYK, YCCK) and for data it rejects, so that the caller
/// falls back to the `image` crate, which then reports the error.
fn decode_jpeg_libjpeg(bytes: &[u8], warnings: &mut Vec<String>) -> Option<RgbImage> {
    use mozjpeg::ColorSpace;
    // libjpeg reports fatal errors by unwinding (mozjpeg's error manager); catch them here.
    let result = catch_unwind(AssertUnwindSafe(|| -> Option<RgbImage> {
        let d = mozjpeg::Decompress::new_mem(bytes).ok()?;
        if !matches!(d.color_space(), ColorSpace::JCS_YCbCr | ColorSpace::JCS_GRAYSCALE | ColorSpace::JCS_RGB) {
            return None;
        }
        let mut started = d.rgb().ok()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let px = started.read_scanlines::<u8>().ok()?;
        // A truncated file is not an error for libjpeg (it fills the rest); see below.
        let _ = started.finish();
        RgbImage::from_raw(w, h, px)
    }));
    let img = result.ok().flatten()?;
    // libjpeg fills missing data with gray silently; tell the user when the end-of-image marker
    // (FF D9) is absent from the file's tail.
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        warnings.push(JPEG_TRUNCATED.into());
    }
    Some(img)
}

/// Drops alpha, replicates gray, and scales 16-bit/float channels to 8 bits (rounding).
fn to_rgb8(img: DynamicImage) -> RgbImage {
    match img {
        // No copy for the common case.
        DynamicImage::ImageRgb8(rgb) => rgb,
        // `image`'s conversions: alpha channel is discarded (not composited), u16 -> u8 is
        // round(v * 255 / 65535), f32 is clamped to [0, 1] and scaled.
        other => other.into_rgb8(),
    }
}

/// Returns `image` transformed according to an EXIF `Orientation` value, so a viewer-upright
/// image results:
///
/// | value | stored image was ...  | transform applied          |
/// |-------|-----------------------|----------------------------|
/// | 1     | upright               | none                       |
/// | 2     | mirrored              | mirror horizontally        |
/// | 3     | upside down           | rotate 180°                |
/// | 4     | mirrored upside down  | mirror vertically          |
/// | 5     | transposed            | transpose (swap x and y)   |
/// | 6     | rotated 90° CCW       | rotate 90° clockwise       |
/// | 7     | transversed           | transverse (anti-diagonal) |
/// | 8     | rotated 90° CW        | rotate 270° clockwise (90° CCW) |
///
/// For 5..=8 width and height swap. Any other value returns `image` unchanged.
pub fn apply_orientation(mut image: RgbImage, orientation: u16) -> RgbImage {
    match orientation {
        2 => {
            imageops::flip_horizontal_in_place(&mut image);
            image
        }
        3 => {
            imageops::rotate180_in_place(&mut image);
            image
        }
        4 => {
            imageops::flip_vertical_in_place(&mut image);
            image
        }
        5 => {
            // out(x, y) = in(y, x)
            let mut r = imageops::rotate90(&image);
            imageops::flip_horizontal_in_place(&mut r);
            r
        }
        6 => imageops::rotate90(&image),
        7 => {
            // out(x, y) = in(W-1-y, H-1-x)
            let mut r = imageops::rotate270(&image);
            imageops::flip_horizontal_in_place(&mut r);
            r
        }
        8 => imageops::rotate270(&image),
        _ => image,
    }
}

/// Reads the EXIF Orientation tag value. Never fails: problems become warnings.
fn read_orientation(
    decoder: &mut impl ImageDecoder,
    format: ImageFormat,
    bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Option<u16> {
    let raw: Vec<u8> = if format == ImageFormat::Tiff {
        // A TIFF file is itself the EXIF (TIFF) structure; the image crate does not expose it
        // as `exif_metadata`, so parse IFD0 of the file directly.
        match parse_orientation(bytes.to_vec()) {
            Ok(v) => return check_orientation(v, warnings),
            Err(_) => {
                // e.g. BigTIFF, which kamadak-exif does not parse; fall back to the TIFF
                // decoder's own reading (valid values only), silently.
                return match decoder.orientation() {
                    Ok(o) => match o.to_exif() {
                        1 => None,
                        v => Some(u16::from(v)),
                    },
                    Err(_) => None,
                };
            }
        }
    } else {
        match decoder.exif_metadata() {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(e) => {
                warnings.push(format!(
                    "could not read EXIF metadata ({}); orientation not applied",
                    lib_error_detail(&e)
                ));
                return None;
            }
        }
    };
    // Some writers (notably for WebP) keep the JPEG "Exif\0\0" prefix.
    let raw = match raw.strip_prefix(b"Exif\0\0") {
        Some(rest) => rest.to_vec(),
        None => raw,
    };
    match parse_orientation(raw) {
        Ok(v) => check_orientation(v, warnings),
        Err(e) => {
            warnings.push(format!(
                "could not parse EXIF metadata ({e}); orientation not applied"
            ));
            None
        }
    }
}

fn check_orientation(v: Option<u16>, warnings: &mut Vec<String>) -> Option<u16> {
    if let Some(v) = v {
        if !(1..=8).contains(&v) {
            warnings.push(format!(
                "invalid EXIF Orientation value {v} ignored (valid: 1..=8); image used as stored"
            ));
        }
    }
    v
}

/// Parses raw EXIF (a TIFF structure) and returns the Orientation tag of the primary image.
/// `Ok(None)`: parsed, no such tag.
/// Damage elsewhere in the EXIF data is tolerated when the tag can still be read; if it cannot,
/// the damage is reported as an error.
fn parse_orientation(raw: Vec<u8>) -> Result<Option<u16>, exif::Error> {
    let mut damage = None;
    let exif = exif::Reader::new()
        .continue_on_error(true)
        .read_raw(raw)
        .or_else(|e| e.distill_partial_result(|errs| damage = errs.into_iter().next()))?;
    let value = exif
        .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .map(|v| u16::try_from(v).unwrap_or(u16::MAX));
    match (value, damage) {
        (None, Some(e)) => Err(e),
        (v, _) => Ok(v),
    }
}

/// Human name of a format for messages.
pub fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Gif => "GIF",
        ImageFormat::Avif => "AVIF",
        ImageFormat::Ico => "ICO",
        ImageFormat::Pnm => "PNM",
        ImageFormat::Tga => "TGA",
        ImageFormat::Dds => "DDS",
        ImageFormat::Hdr => "Radiance HDR",
        ImageFormat::OpenExr => "OpenEXR",
        ImageFormat::Farbfeld => "farbfeld",
        ImageFormat::Qoi => "QOI",
        _ => "other",
    }
}

/// Describes content that matched no known signature.
fn describe_unknown(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(12)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let hint = if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = String::from_utf8_lossy(&bytes[8..12]).into_owned();
        match brand.as_str() {
            "heic" | "heix" | "hevc" | "heim" | "heis" | "mif1" | "msf1" => {
                format!(" (looks like HEIC/HEIF, brand '{brand}', which is not supported; convert it to JPEG)")
            }
            _ => format!(" (an ISO media file, brand '{brand}')"),
        }
    } else if let Some(name) = damaged_signature(bytes) {
        format!(" (starts like {name}, but the file signature is damaged)")
    } else if trim_ascii_start(bytes).first() == Some(&b'<') {
        " (looks like HTML/XML text, not an image)".to_owned()
    } else {
        String::new()
    };
    format!(
        "unrecognised content of {} bytes starting with {}{hint}",
        bytes.len(),
        hex.join(" ")
    )
}

/// Recognises the start of a supported format whose full magic number did not match.
fn damaged_signature(b: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| b.len() >= p.len() && &b[..p.len()] == p;
    if starts(b"\x89PNG") || starts(b"PNG\r\n") {
        Some("PNG")
    } else if starts(&[0xFF, 0xD8]) {
        Some("JPEG")
    } else if starts(b"RIFF") {
        Some("a RIFF file such as WebP")
    } else if starts(b"GIF") {
        Some("GIF")
    } else {
        None
    }
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// The useful part of an `image` error's message (without its "Format error decoding X:"
/// prefix, which our own message replaces).
fn lib_error_detail(e: &LibError) -> String {
    let s = match e {
        LibError::Decoding(d) => match std::error::Error::source(d) {
            Some(src) => src.to_string(),
            None => "malformed data".to_owned(),
        },
        LibError::Unsupported(u) => match u.kind() {
            UnsupportedErrorKind::Color(c) => format!("colour type {c:?}"),
            UnsupportedErrorKind::GenericFeature(f) => f,
            _ => u.to_string(),
        },
        other => other.to_string(),
    };
    let s = tidy_detail(&s);
    if s.is_empty() {
        "malformed data".to_owned()
    } else {
        s
    }
}

/// Makes decoder messages shorter: strips the quotes zune-jpeg puts around its messages and
/// replaces the png crate's `ChunkType { type: IHDR, critical: .. }` by `IHDR`.
fn tidy_detail(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s);
    const CHUNK: &str = "ChunkType { type: ";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(CHUNK) {
        out.push_str(&rest[..i]);
        let after = &rest[i + CHUNK.len()..];
        let comma = after.find(", critical:");
        let close = comma.and_then(|c| after[c..].find('}').map(|e| c + e));
        match (comma, close) {
            (Some(comma), Some(close)) => {
                out.push_str("chunk ");
                out.push_str(&after[..comma]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(CHUNK);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("chunk chunk", "chunk")
        .replace(" chunk appeared", " appeared")
        .replace(" chunk.", ".")
        .replace("I/O errors Not enough bytes", "not enough bytes")
}

fn map_lib_error(e: LibError, fname: &str, max_alloc: u64) -> ImageError {
    let detail = lib_error_detail(&e);
    match e {
        LibError::Unsupported(u) => match u.kind() {
            UnsupportedErrorKind::Format(hint) => ImageError::UnsupportedFormat {
                detail: match hint {
                    ImageFormatHint::Exact(f) => format!(
                        "content is {} which this library does not decode",
                        format_name(f)
                    ),
                    _ => detail,
                },
            },
            _ => ImageError::UnsupportedFeature {
                format: fname.to_owned(),
                detail,
            },
        },
        LibError::Limits(_) => ImageError::LimitExceeded {
            format: fname.to_owned(),
            max_alloc,
            detail,
        },
        // Reading from memory cannot fail for OS reasons: an I/O error here means the decoder
        // ran out of data (truncation) or rejected it.
        LibError::IoError(io) => ImageError::Corrupt {
            format: fname.to_owned(),
            detail: if io.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("data ends unexpectedly ({io})")
            } else {
                io.to_string()
            },
        },
        // Decoding, Parameter (inconsistent header values), Encoding (unreachable).
        _ => ImageError::Corrupt {
            format: fname.to_owned(),
            detail,
        },
    }
}
