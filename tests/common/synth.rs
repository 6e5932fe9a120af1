//! Synthetic image builders shared by the tests: EXIF blobs, PNG/JPEG encoders with metadata,
//! hand-made PNG chunks (for headers that lie), and the EXIF orientation definitions.
#![allow(dead_code)]

use image::{ImageEncoder, RgbImage};

/// The oriented image a viewer shows for `src` stored with EXIF Orientation `o` (1..=8), written
/// from the EXIF definitions directly.
pub fn expected_orientation(src: &RgbImage, o: u16) -> RgbImage {
    let (w, h) = src.dimensions();
    let (ow, oh) = if o >= 5 { (h, w) } else { (w, h) };
    RgbImage::from_fn(ow, oh, |x, y| {
        let (sx, sy) = match o {
            1 => (x, y),
            2 => (w - 1 - x, y),         // mirror horizontal
            3 => (w - 1 - x, h - 1 - y), // rotate 180
            4 => (x, h - 1 - y),         // mirror vertical
            5 => (y, x),                 // transpose
            6 => (y, h - 1 - x),         // rotate 90 CW
            7 => (w - 1 - y, h - 1 - x), // transverse
            8 => (w - 1 - y, x),         // rotate 270 CW
            _ => unreachable!(),
        };
        *src.get_pixel(sx, sy)
    })
}

/// A minimal EXIF blob (TIFF header + IFD0 with one Orientation SHORT entry).
pub fn exif_blob(orientation: u16, big_endian: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut b = Vec::new();
    b.extend_from_slice(if big_endian { b"MM" } else { b"II" });
    b.extend_from_slice(&u16b(42));
    b.extend_from_slice(&u32b(8)); // IFD0 offset
    b.extend_from_slice(&u16b(1)); // entry count
    b.extend_from_slice(&u16b(0x0112)); // Orientation
    b.extend_from_slice(&u16b(3)); // SHORT
    b.extend_from_slice(&u32b(1)); // count
    b.extend_from_slice(&u16b(orientation));
    b.extend_from_slice(&[0, 0]); // value padding to 4 bytes
    b.extend_from_slice(&u32b(0)); // no next IFD
    b
}

pub fn png_with_exif(img: &RgbImage, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    if let Some(e) = exif {
        enc.set_exif_metadata(e).expect("png exif");
    }
    enc.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .expect("png encode");
    out
}

pub fn jpeg_rgb(img: &RgbImage, app1: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 100);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
    if let Some(data) = app1 {
        enc.add_app_segment(1, data).expect("app1");
    }
    enc.encode(
        img.as_raw(),
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .expect("jpeg encode");
    out
}


// Hand-made PNG pieces (CRC32 + stored-deflate zlib), no extra crates.

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

pub fn ihdr(w: u32, h: u32, depth: u8, colour: u8) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&w.to_be_bytes());
    d.extend_from_slice(&h.to_be_bytes());
    d.extend_from_slice(&[depth, colour, 0, 0, 0]);
    d
}


pub const PNG_SIG: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Naive RGB -> CMYK (0 = no ink), the inverse of the usual decoder conversion.
pub fn rgb_to_cmyk(p: [u8; 3]) -> [u8; 4] {
    let max = *p.iter().max().unwrap();
    let k = 255 - max;
    if max == 0 {
        return [0, 0, 0, 255];
    }
    let f = |c: u8| ((u32::from(max - c) * 255 + u32::from(max) / 2) / u32::from(max)) as u8;
    [f(p[0]), f(p[1]), f(p[2]), k]
}


pub fn huge_png(w: u32, h: u32) -> Vec<u8> {
    let mut png = PNG_SIG.to_vec();
    png_chunk(&mut png, b"IHDR", &ihdr(w, h, 8, 2));
    png_chunk(&mut png, b"IDAT", &zlib_stored(&[0, 1, 2, 3]));
    png_chunk(&mut png, b"IEND", &[]);
    png
}

