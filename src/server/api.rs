//! The `/v1` routes for images: detection, embedding, 1:1 verification. Request bodies are
//! `multipart/form-data` (image files plus text fields) or `application/json` (images as base64
//! strings, optionally as `data:` URLs). Answers carry the fields of the CLI's `--json` output.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::compare::Threshold;
use crate::imageio::{self, DecodeOptions};
use crate::pipeline::{AnalyzedImage, Face, FaceSelection, UsedFace, Verification};
use crate::Error;

use super::error::{ApiError, ErrorBody};
use super::AppState;

// ---------------------------------------------------------------- request parsing

/// A parsed request: image bytes by field name (with a label: the uploaded file name, else the
/// field name) and the other fields as JSON values.
pub(crate) struct Input {
    pub images: HashMap<String, (String, Bytes)>,
    pub params: serde_json::Map<String, Value>,
}

impl Input {
    /// The image of `field`, or a 400 naming it.
    pub fn take_image(&mut self, field: &str) -> Result<(String, Bytes), ApiError> {
        self.images.remove(field).ok_or_else(|| ApiError::bad_request(format!("missing image field `{field}`")))
    }

    /// The other fields as `T` (unknown fields are refused).
    pub fn params<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        serde_json::from_value(Value::Object(std::mem::take(&mut self.params))).map_err(|e| ApiError::invalid_parameter(e.to_string()))
    }
}

fn body_error(status: StatusCode, text: String, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::body_too_large(limit)
    } else {
        ApiError::bad_request(text)
    }
}

/// Reads a multipart or JSON body. `image_fields` are the fields holding images; `text_fields`
/// are fields kept as strings even when they look like numbers (multipart only).
pub(crate) async fn read_input(req: Request, image_fields: &[&str], text_fields: &[&str], limit: usize) -> Result<Input, ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, limit).await?;
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let mut images = HashMap::new();
    let mut params = serde_json::Map::new();
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &()).await.map_err(|e| body_error(e.status(), e.body_text(), limit))?;
        while let Some(field) = mp.next_field().await.map_err(|e| body_error(e.status(), e.body_text(), limit))? {
            let name = field.name().unwrap_or("").to_string();
            // A field given twice would silently answer for one of them.
            if images.contains_key(&name) || params.contains_key(&name) {
                return Err(ApiError::bad_request(format!("field `{name}` is given more than once")));
            }
            let file_name = field.file_name().map(str::to_string);
            let data = field.bytes().await.map_err(|e| body_error(e.status(), e.body_text(), limit))?;
            if image_fields.contains(&name.as_str()) {
                let label = file_name.filter(|f| !f.is_empty()).unwrap_or_else(|| name.clone());
                images.insert(name, (label, data));
            } else {
                let text = String::from_utf8(data.to_vec()).map_err(|_| ApiError::bad_request(format!("field `{name}`: not UTF-8 text")))?;
                let v = if text_fields.contains(&name.as_str()) {
                    Value::String(text)
                } else {
                    serde_json::from_str::<Value>(text.trim()).ok().filter(|v| v.is_number() || v.is_boolean()).unwrap_or(Value::String(text))
                };
                params.insert(name, v);
            }
        }
    } else if ct.starts_with("application/json") {
        let Json(v): Json<Value> = Json::from_request(req, &()).await.map_err(|e| body_error(e.status(), e.body_text(), limit))?;
        let Value::Object(mut map) = v else {
            return Err(ApiError::bad_request("the JSON body must be an object"));
        };
        for f in image_fields {
            match map.remove(*f) {
                Some(Value::String(s)) => {
                    images.insert(f.to_string(), (f.to_string(), decode_base64(f, &s)?));
                }
                Some(Value::Null) | None => {}
                Some(_) => return Err(ApiError::bad_request(format!("`{f}`: expected the image as a base64 string"))),
            }
        }
        params = map;
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/form-data (image files) or application/json (base64 images)",
        ));
    }
    Ok(Input { images, params })
}

/// Reads a body of at most `limit` bytes. A longer one is read on and discarded up to four times
/// the limit (so that the client, still sending, receives the 413 answer instead of a broken
/// connection) and answered with `body_too_large`; a declared `Content-Length` beyond that is
/// refused at once.
pub(crate) async fn read_body(headers: &axum::http::HeaderMap, mut body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let hard = limit.saturating_mul(4);
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > hard) {
        return Err(ApiError::body_too_large(limit));
    }
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let (mut seen, mut over) = (0usize, false);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > limit {
                if !over {
                    over = true;
                    buf = Vec::new();
                }
                if seen > hard {
                    break;
                }
            } else {
                buf.extend_from_slice(&data);
            }
        }
    }
    if over {
        Err(ApiError::body_too_large(limit))
    } else {
        Ok(Bytes::from(buf))
    }
}

fn decode_base64(field: &str, s: &str) -> Result<Bytes, ApiError> {
    // Accept a data URL (`data:image/jpeg;base64,....`) as well as the bare base64 text.
    let payload = match s.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, p)| p).unwrap_or(""),
        None => s,
    };
    let clean: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean.as_bytes())
        .map(Bytes::from)
        .map_err(|e| ApiError::bad_request(format!("`{field}`: not valid base64: {e}")))
}

// ---------------------------------------------------------------- analysis

/// Decodes and analyses images under an inference slot; with batching, their faces are embedded
/// in a shared batch. Results in input order.
pub(crate) async fn analyze(st: &Arc<AppState>, images: Vec<(String, Bytes)>, embed: bool) -> Result<Vec<AnalyzedImage>, ApiError> {
    let ready = st.ready()?;
    let slot = st.admit().await?;
    let decode = DecodeOptions { max_pixels: st.cfg.max_pixels, ..ready.analyzer.config().decode.clone() };
    let shared = embed && ready.batcher.is_some();
    let analyzer = ready.analyzer.clone();
    let metrics = st.metrics.clone();
    let (slot, results) = tokio::task::spawn_blocking(move || {
        let r: Result<Vec<_>, Error> = images
            .iter()
            .map(|(label, bytes)| {
                let path = Path::new(label);
                let img = imageio::decode(bytes, &decode).map_err(|source| Error::Image { path: path.to_path_buf(), source })?;
                let p = analyzer.prepare(path, &img)?;
                if embed && !shared {
                    let mut p = p;
                    let crops = std::mem::take(&mut p.crops);
                    let refs: Vec<&image::RgbImage> = crops.iter().collect();
                    if !refs.is_empty() {
                        metrics.batch_size.observe(refs.len() as f64);
                    }
                    let e = analyzer.embed_crops(&refs)?;
                    return p.finish(Some(e)).map(|a| (a, Vec::new()));
                }
                let mut p = p;
                let crops = std::mem::take(&mut p.crops);
                p.finish(None).map(|a| (a, crops))
            })
            .collect();
        (slot, r)
    })
    .await
    .map_err(ApiError::internal)?;
    let results = results?;
    if !shared {
        drop(slot);
        return Ok(results.into_iter().map(|(a, _)| a).collect());
    }
    let counts: Vec<usize> = results.iter().map(|(_, c)| c.len()).collect();
    let (mut images, crops): (Vec<AnalyzedImage>, Vec<Vec<image::RgbImage>>) = results.into_iter().unzip();
    let all: Vec<image::RgbImage> = crops.into_iter().flatten().collect();
    let batcher = ready.batcher.as_ref().ok_or_else(|| ApiError::internal("batcher missing"))?;
    let embeddings = batcher.embed(all).await?;
    drop(slot);
    let mut it = embeddings.into_iter();
    for (img, n) in images.iter_mut().zip(counts) {
        for f in img.faces.iter_mut().take(n) {
            f.embedding = it.next();
        }
    }
    Ok(images)
}

/// The decision threshold: `threshold` if given, else the calibrated operating point at `far`
/// (default [`super::ServerConfig::default_far`]). Both at once is a 400 `invalid_parameter`,
/// as the CLI refuses `--far` with `--threshold`.
pub(crate) fn decision_threshold(st: &AppState, far: Option<f64>, threshold: Option<f32>) -> Result<Threshold, ApiError> {
    if far.is_some() && threshold.is_some() {
        return Err(ApiError::invalid_parameter("give `far` or `threshold`, not both: `threshold` would override the operating point"));
    }
    if let Some(t) = threshold {
        if !(-1.0..=1.0).contains(&t) {
            return Err(ApiError::invalid_parameter(format!("threshold {t} outside [-1, 1]")));
        }
        return Ok(Threshold::user(t));
    }
    let far = far.unwrap_or(st.cfg.default_far);
    if !(far > 0.0 && far < 1.0) {
        return Err(ApiError::invalid_parameter(format!("far {far} outside (0, 1)")));
    }
    let ready = st.ready()?;
    match &ready.calibration {
        Some(c) => c.threshold_at(far).map_err(|e| ApiError::from(Error::from(e))),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_operating_point",
            "the loaded recogniser has no calibration: pass `threshold`",
        )),
    }
}

// ---------------------------------------------------------------- response types

fn round(v: f32, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v as f64 * m).round() / m
}

/// Quality measures of a face (as in the CLI's `--json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QualityRecord {
    /// Shorter side of the box, pixels.
    pub size: f64,
    /// Detection score in [0, 1].
    pub score: f64,
    /// In-plane rotation, degrees.
    pub roll: f64,
    /// Left–right head turn, degrees.
    pub yaw: f64,
    /// Up–down head tilt, degrees.
    pub pitch: f64,
    /// Variance of the Laplacian of the aligned crop.
    pub sharpness: f64,
}

/// One face: the record the CLI's `detect --json` / `embed --json` prints per face.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FaceRecord {
    /// The image label (uploaded file name, else the field name).
    pub image: String,
    /// 0-based index, largest box first.
    pub face: usize,
    /// Box `[x1, y1, x2, y2]`, pixels in the upright image.
    pub bbox: Vec<f64>,
    /// Five landmarks `[x, y]`: left eye, right eye, nose, left and right mouth corner.
    pub landmarks: Vec<Vec<f64>>,
    /// Detection score in [0, 1].
    pub score: f64,
    /// Shorter side of the box, pixels.
    pub size: f64,
    /// Quality measures.
    pub quality: QualityRecord,
    /// Upright image width, pixels.
    pub image_width: u32,
    /// Upright image height, pixels.
    pub image_height: u32,
    /// Model of the embedding (embed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// L2-normalized embedding, `[D]` (embed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

impl FaceRecord {
    pub(crate) fn of(img: &AnalyzedImage, f: &Face) -> Self {
        let d = &f.detection;
        let q = &f.quality;
        FaceRecord {
            image: img.path.display().to_string(),
            face: f.index,
            bbox: d.bbox.iter().map(|x| round(*x, 2)).collect(),
            landmarks: d.landmarks.iter().map(|p| vec![round(p[0], 2), round(p[1], 2)]).collect(),
            score: round(d.score, 4),
            size: round(f.size, 1),
            quality: QualityRecord {
                size: round(q.size, 1),
                score: round(q.score, 4),
                roll: round(q.roll, 1),
                yaw: round(q.yaw, 1),
                pitch: round(q.pitch, 1),
                sharpness: round(q.sharpness, 1),
            },
            image_width: img.width,
            image_height: img.height,
            model: f.embedding.as_ref().map(|e| e.model.to_string()),
            embedding: f.embedding.as_ref().map(|e| e.vector.clone()),
        }
    }
}

/// Facts about an analysed image.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageRecord {
    /// The image label (uploaded file name, else the field name).
    pub image: String,
    /// Upright width, pixels.
    pub width: u32,
    /// Upright height, pixels.
    pub height: u32,
    /// EXIF orientation applied (1 = none).
    pub orientation: u16,
    /// Number of faces found.
    pub faces: usize,
    /// Non-fatal problems (e.g. an invalid EXIF orientation ignored).
    pub warnings: Vec<String>,
}

impl ImageRecord {
    pub(crate) fn of(img: &AnalyzedImage) -> Self {
        ImageRecord {
            image: img.path.display().to_string(),
            width: img.width,
            height: img.height,
            orientation: img.orientation,
            faces: img.faces.len(),
            warnings: img.warnings.clone(),
        }
    }
}

/// Answer of `/v1/detect` and `/v1/embed`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FacesResponse {
    /// The image.
    pub image: ImageRecord,
    /// Its faces, largest first.
    pub faces: Vec<FaceRecord>,
}

/// Which face of an image (or which gallery identity) a comparison used.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsedFaceRecord {
    /// The image label, or `gallery:<identity id>` for an enrolled identity.
    pub path: String,
    /// Index of the face used (largest first); for an identity, the id of its best-matching enrolled face.
    pub face: usize,
    /// Faces in the image (or enrolled for the identity).
    pub faces_in_image: usize,
    /// Box `[x1, y1, x2, y2]`, pixels (empty for an identity).
    pub bbox: Vec<f64>,
    /// Detection score in [0, 1] (0 for an identity).
    pub score: f64,
}

impl UsedFaceRecord {
    pub(crate) fn of(u: &UsedFace) -> Self {
        UsedFaceRecord {
            path: u.path.display().to_string(),
            face: u.face,
            faces_in_image: u.faces_in_image,
            bbox: u.bbox.iter().map(|x| *x as f64).collect(),
            score: u.score as f64,
        }
    }
}

/// Answer of `/v1/verify`: the fields of the CLI's `compare --json`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// Cosine similarity in [−1, 1].
    pub similarity: f64,
    /// Euclidean distance between the unit embeddings in [0, 2].
    pub distance: f64,
    /// Decision threshold on similarity.
    pub threshold: f64,
    /// Operating point: `FAR=1e-3` etc., or `user` for a given threshold.
    pub operating_point: String,
    /// FAR measured at the threshold on the calibration pairs (null for a user threshold).
    pub far: Option<f64>,
    /// FRR measured at the threshold on the calibration pairs (null for a user threshold).
    pub frr: Option<f64>,
    /// Where the threshold comes from.
    pub threshold_note: String,
    /// The decision: same person (similarity ≥ threshold).
    pub same: bool,
    /// Model of both embeddings.
    pub model: String,
    /// Face used from the first image.
    pub a: UsedFaceRecord,
    /// Face used from the second image (or the identity).
    pub b: UsedFaceRecord,
}

impl VerifyResponse {
    pub(crate) fn of(v: &Verification) -> Self {
        let c = &v.comparison;
        VerifyResponse {
            similarity: round(c.similarity, 6),
            distance: round(c.distance, 6),
            threshold: round(c.threshold.similarity, 6),
            operating_point: c.threshold.name.clone(),
            far: c.threshold.far,
            frr: c.threshold.frr,
            threshold_note: c.threshold.note.clone(),
            same: c.same,
            model: v.model.to_string(),
            a: UsedFaceRecord::of(&v.a),
            b: UsedFaceRecord::of(&v.b),
        }
    }
}

// ---------------------------------------------------------------- request types (documentation)

/// JSON body of `/v1/detect` and `/v1/embed`.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct ImageJson {
    /// The image (JPEG, PNG, WebP, BMP, TIFF or GIF), base64, or a `data:` URL.
    pub image: String,
}

/// Multipart body of `/v1/detect` and `/v1/embed`.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct ImageForm {
    /// The image file.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub image: Vec<u8>,
}

/// Options of `/v1/verify` (JSON fields or multipart text fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// Face of A, 0-based, largest first [largest].
    pub face_a: Option<usize>,
    /// Face of B, 0-based, largest first [largest].
    pub face_b: Option<usize>,
    /// Operating point: the calibrated threshold at this FAR [server default, 1e-3].
    pub far: Option<f64>,
    /// Decision threshold on cosine similarity in [−1, 1], instead of an operating point.
    pub threshold: Option<f32>,
    /// Compare A with this enrolled identity instead of image B.
    pub identity: Option<String>,
}

/// JSON body of `/v1/verify`: image `a` and either image `b` or an enrolled `identity`.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyJson {
    /// First image, base64.
    pub a: String,
    /// Second image, base64 (or give `identity`).
    pub b: Option<String>,
    /// Enrolled identity id to verify A against (instead of `b`).
    pub identity: Option<String>,
    /// Face of A, 0-based [largest].
    pub face_a: Option<usize>,
    /// Face of B, 0-based [largest].
    pub face_b: Option<usize>,
    /// FAR of the operating point [1e-3].
    pub far: Option<f64>,
    /// Threshold on cosine similarity, instead of `far`.
    pub threshold: Option<f32>,
}

/// Multipart body of `/v1/verify`.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyForm {
    /// First image file.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub a: Vec<u8>,
    /// Second image file (or give `identity`).
    #[schema(value_type = Option<String>, format = Binary, content_media_type = "application/octet-stream")]
    pub b: Option<Vec<u8>>,
    /// Enrolled identity id (instead of `b`).
    pub identity: Option<String>,
    /// Face of A [largest].
    pub face_a: Option<usize>,
    /// Face of B [largest].
    pub face_b: Option<usize>,
    /// FAR of the operating point [1e-3].
    pub far: Option<f64>,
    /// Threshold on cosine similarity.
    pub threshold: Option<f32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

// ---------------------------------------------------------------- handlers

async fn faces(st: Arc<AppState>, req: Request, embed: bool) -> Result<Json<FacesResponse>, ApiError> {
    let mut input = read_input(req, &["image"], &[], st.cfg.max_body_bytes).await?;
    let image = input.take_image("image")?;
    let _: NoParams = input.params()?;
    let mut out = analyze(&st, vec![image], embed).await?;
    let img = out.pop().ok_or_else(|| ApiError::internal("no analysis result"))?;
    Ok(Json(FacesResponse { image: ImageRecord::of(&img), faces: img.faces.iter().map(|f| FaceRecord::of(&img, f)).collect() }))
}

/// Detect faces: box, 5 landmarks, score, size and quality per face.
#[utoipa::path(
    post,
    path = "/v1/detect",
    tag = "faces",
    request_body(content((ImageForm = "multipart/form-data"), (ImageJson = "application/json"))),
    responses(
        (status = 200, description = "Faces, largest first", body = FacesResponse),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 413, description = "Body or image over the limits", body = ErrorBody),
        (status = 415, description = "Not multipart or JSON", body = ErrorBody),
        (status = 422, description = "Not a decodable image", body = ErrorBody),
        (status = 503, description = "Overloaded, timed out or not ready (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn detect(State(st): State<Arc<AppState>>, req: Request) -> Result<Json<FacesResponse>, ApiError> {
    faces(st, req, false).await
}

/// Embed every face: the detection record plus the model and the L2-normalized embedding.
#[utoipa::path(
    post,
    path = "/v1/embed",
    tag = "faces",
    request_body(content((ImageForm = "multipart/form-data"), (ImageJson = "application/json"))),
    responses(
        (status = 200, description = "Faces with embeddings, largest first", body = FacesResponse),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 413, description = "Body or image over the limits", body = ErrorBody),
        (status = 415, description = "Not multipart or JSON", body = ErrorBody),
        (status = 422, description = "Not a decodable image", body = ErrorBody),
        (status = 503, description = "Overloaded, timed out or not ready (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn embed(State(st): State<Arc<AppState>>, req: Request) -> Result<Json<FacesResponse>, ApiError> {
    faces(st, req, true).await
}

/// 1:1 verification: is the face in `a` the same person as the face in `b` (or as the enrolled
/// `identity`)? Decided at a calibrated operating point (FAR) or a given threshold.
#[utoipa::path(
    post,
    path = "/v1/verify",
    tag = "verification",
    request_body(content((VerifyForm = "multipart/form-data"), (VerifyJson = "application/json"))),
    responses(
        (status = 200, description = "The comparison and its decision", body = VerifyResponse),
        (status = 400, description = "Malformed request or unsupported operating point", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "Unknown identity", body = ErrorBody),
        (status = 413, description = "Body or image over the limits", body = ErrorBody),
        (status = 415, description = "Not multipart or JSON", body = ErrorBody),
        (status = 422, description = "Bad image, no face, wrong face index or quality gate", body = ErrorBody),
        (status = 503, description = "Overloaded, timed out or not ready (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn verify(State(st): State<Arc<AppState>>, req: Request) -> Result<Json<VerifyResponse>, ApiError> {
    let mut input = read_input(req, &["a", "b"], &["identity"], st.cfg.max_body_bytes).await?;
    let a = input.take_image("a")?;
    let b = input.images.remove("b");
    let p: VerifyParams = input.params()?;
    let threshold = decision_threshold(&st, p.far, p.threshold)?;
    let sel = |i: Option<usize>| i.map_or(FaceSelection::Largest, FaceSelection::Index);
    match (b, &p.identity) {
        (Some(b), None) => {
            let out = analyze(&st, vec![a, b], true).await?;
            let ready = st.ready()?;
            let v = ready.analyzer.verify(&out[0], &out[1], sel(p.face_a), sel(p.face_b), &threshold)?;
            Ok(Json(VerifyResponse::of(&v)))
        }
        (None, Some(id)) => super::gallery_api::verify_identity(&st, a, id, sel(p.face_a), &threshold).await.map(Json),
        (Some(_), Some(_)) => Err(ApiError::bad_request("give image `b` or `identity`, not both")),
        (None, None) => Err(ApiError::bad_request("missing image field `b` (or an `identity` to verify against)")),
    }
}
