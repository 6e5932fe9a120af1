//! The `/v1` routes over the gallery: 1:N identification, verification against an enrolled
//! identity, and gallery CRUD (identities and their faces). Writes need the admin scope.
//!
//! An `{identity}` in a path is an identity id when it is all digits (or `id:N`), else a name.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::compare::{distance_from_similarity, Threshold};
use crate::gallery::{EnrollTarget, FaceOutcome, FacePolicy, Gallery, GalleryError, IdentifyParams, IdentityDetail, IdentityRecord, IdentityRef, Scoring};
use crate::pipeline::FaceSelection;
use crate::Error;

use super::api::{analyze, decision_threshold, read_input, ImageRecord, QualityRecord, UsedFaceRecord, VerifyResponse};
use super::error::{ApiError, ErrorBody};
use super::{AppState, Caller, Scope};

fn identity_ref(s: &str) -> IdentityRef {
    match s.parse::<i64>() {
        Ok(id) => IdentityRef::Id(id),
        Err(_) => IdentityRef::parse(s),
    }
}

fn value_ref(v: &Value) -> Result<IdentityRef, ApiError> {
    match v {
        Value::Number(n) => n.as_i64().map(IdentityRef::Id).ok_or_else(|| ApiError::invalid_parameter(format!("identity id {n} is not an integer"))),
        Value::String(s) => Ok(identity_ref(s)),
        _ => Err(ApiError::invalid_parameter("an identity is an id (integer) or a name (string)")),
    }
}

/// Runs a gallery call on a blocking thread (SQLite writes are fsynced).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

fn gallery(st: &AppState) -> Result<Arc<Gallery>, ApiError> {
    Ok(st.ready()?.gallery.clone())
}

fn round(v: f32, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v as f64 * m).round() / m
}

// ---------------------------------------------------------------- types

/// An identity.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentityRecordDto {
    /// Identity id (never reused).
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Free metadata (a JSON object).
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Creation time, UTC, RFC 3339.
    pub created: String,
    /// Number of enrolled faces.
    pub faces: usize,
}

impl From<IdentityRecord> for IdentityRecordDto {
    fn from(r: IdentityRecord) -> Self {
        IdentityRecordDto { id: r.id, name: r.name, metadata: r.metadata, created: r.created, faces: r.faces }
    }
}

/// An enrolled face (without its embedding).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GalleryFaceDto {
    /// Face id (never reused).
    pub id: i64,
    /// Identity id.
    pub identity: i64,
    /// Model of its embedding.
    pub model: String,
    /// SHA-256 of the source photo's bytes.
    pub image_sha256: String,
    /// Box `[x1, y1, x2, y2]` in the source photo, pixels.
    pub bbox: Vec<f64>,
    /// Quality at enrollment.
    pub quality: Option<QualityRecord>,
    /// When it was added, UTC, RFC 3339.
    pub added: String,
    /// Whether an aligned crop is stored.
    pub has_crop: bool,
}

/// An identity with its faces.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentityDetailDto {
    /// The identity.
    pub identity: IdentityRecordDto,
    /// Its faces, by id.
    pub face_list: Vec<GalleryFaceDto>,
}

impl From<IdentityDetail> for IdentityDetailDto {
    fn from(d: IdentityDetail) -> Self {
        IdentityDetailDto {
            identity: d.identity.into(),
            face_list: d
                .faces
                .into_iter()
                .map(|f| GalleryFaceDto {
                    id: f.id,
                    identity: f.identity,
                    model: f.model.to_string(),
                    image_sha256: f.image_sha256,
                    bbox: f.bbox.iter().map(|x| round(*x, 2)).collect(),
                    quality: f.quality.map(|q| QualityRecord {
                        size: round(q.size, 1),
                        score: round(q.score, 4),
                        roll: round(q.roll, 1),
                        yaw: round(q.yaw, 1),
                        pitch: round(q.pitch, 1),
                        sharpness: round(q.sharpness, 1),
                    }),
                    added: f.added,
                    has_crop: f.has_crop,
                })
                .collect(),
        }
    }
}

/// Body of `POST /v1/gallery/identities`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIdentity {
    /// Unique name (1–256 characters, no control characters, not starting with `id:`).
    pub name: String,
    /// Free metadata, a JSON object [{}].
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Body of `PATCH /v1/gallery/identities/{identity}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameIdentity {
    /// The new name.
    pub name: String,
}

/// Body of `POST /v1/gallery/merge`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeIdentities {
    /// Identity (id or name) whose faces move; it is removed.
    #[schema(value_type = String)]
    pub from: Value,
    /// Identity (id or name) that receives them.
    #[schema(value_type = String)]
    pub into: Value,
}

/// Answer of `DELETE /v1/gallery/identities/{identity}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RemovedIdentity {
    /// The identity removed, as given.
    pub removed_identity: String,
    /// Ids of its faces, removed with it.
    pub removed_faces: Vec<i64>,
}

/// Answer of `DELETE /v1/gallery/faces/{face}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RemovedFace {
    /// The face id removed.
    pub removed_face: i64,
}

/// Options of enrollment (multipart text fields or JSON fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollParams {
    /// Face to enroll, 0-based, largest first. Without it (and without `largest`), a photo must
    /// show exactly one face.
    pub face: Option<usize>,
    /// Enroll the largest face of a photo with several.
    pub largest: Option<bool>,
}

/// Answer of enrollment (the fields of the CLI's `enroll --json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrolledResponse {
    /// The image label.
    pub image: String,
    /// Identity name.
    pub identity: String,
    /// Identity id.
    pub identity_id: i64,
    /// The face id: the new face (201), or the face already enrolled (200).
    pub face_id: i64,
    /// True when this face of this photo was already enrolled under the identity: nothing was
    /// added (answered 200 instead of 201).
    pub already_enrolled: bool,
    /// Index of the face used in the photo.
    pub face: usize,
    /// Faces found in the photo.
    pub faces_in_image: usize,
    /// Its box, pixels.
    pub bbox: Vec<f64>,
    /// SHA-256 of the photo's bytes.
    pub image_sha256: String,
}

/// Options of `/v1/identify`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyOptions {
    /// Identities returned per face, best first [5].
    pub top_k: Option<usize>,
    /// Open-set operating point: the threshold at which about this share of strangers is matched
    /// to someone, given the gallery's size and the calibration [0.01]. Used when neither `far`
    /// nor `threshold` is given.
    pub fpir: Option<f64>,
    /// 1:1 operating point instead: the calibrated threshold at this FAR per comparison.
    pub far: Option<f64>,
    /// Threshold on cosine similarity instead of `fpir` or `far`.
    pub threshold: Option<f32>,
    /// Ambiguity margin [0.03].
    pub ambiguity_margin: Option<f32>,
    /// `mean` (identity template, default) or `max` (best face of each identity).
    #[schema(value_type = Option<String>)]
    pub scoring: Option<Scoring>,
    /// Search every enrolled face (brute force) instead of the approximate index, which above
    /// 5,000 faces can miss a true top-k entry [false].
    pub exact: Option<bool>,
}

/// JSON body of `/v1/identify`.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct IdentifyJson {
    /// The probe image, base64.
    pub image: String,
    /// Identities returned per face [5].
    pub top_k: Option<usize>,
    /// FPIR of the open-set operating point [0.01], used when neither `far` nor `threshold` is given.
    pub fpir: Option<f64>,
    /// FAR of a 1:1 operating point instead.
    pub far: Option<f64>,
    /// Threshold instead of `far`.
    pub threshold: Option<f32>,
    /// Ambiguity margin [0.03].
    pub ambiguity_margin: Option<f32>,
    /// `max` or `mean`.
    pub scoring: Option<String>,
    /// Exact (brute-force) search instead of the approximate index [false].
    pub exact: Option<bool>,
}

/// JSON body of enrollment.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnrollJson {
    /// The photo, base64.
    pub image: String,
    /// Face to enroll, 0-based, largest first.
    pub face: Option<usize>,
    /// Enroll the largest face.
    pub largest: Option<bool>,
}

/// Multipart body of enrollment.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnrollForm {
    /// The photo file.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub image: Vec<u8>,
    /// Face to enroll, 0-based, largest first.
    pub face: Option<usize>,
    /// Enroll the largest face.
    pub largest: Option<bool>,
}

/// Multipart body of `/v1/identify`.
#[allow(dead_code)] // documents a request body in the OpenAPI document; handlers parse bodies with `read_input`
#[derive(Debug, Deserialize, ToSchema)]
pub struct IdentifyForm {
    /// The probe photo file.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub image: Vec<u8>,
    /// Identities returned per face [5].
    pub top_k: Option<usize>,
    /// FPIR of the open-set operating point [0.01], used when neither `far` nor `threshold` is given.
    pub fpir: Option<f64>,
    /// FAR of a 1:1 operating point instead.
    pub far: Option<f64>,
    /// Threshold instead of `far`.
    pub threshold: Option<f32>,
    /// Ambiguity margin [0.03].
    pub ambiguity_margin: Option<f32>,
    /// `max` or `mean`.
    pub scoring: Option<String>,
    /// Exact (brute-force) search instead of the approximate index [false].
    pub exact: Option<bool>,
}

/// A candidate identity.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MatchRecord {
    /// Identity name.
    pub identity: String,
    /// Identity id.
    pub identity_id: i64,
    /// Score: cosine similarity in [−1, 1].
    pub similarity: f64,
    /// Enrolled face that scored best (null under `mean` scoring).
    pub face_id: Option<i64>,
}

/// Identification of one face of the probe (the record of the CLI's `identify --json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentifiedFace {
    /// The image label.
    pub image: String,
    /// Face index, largest first.
    pub face: usize,
    /// Box, pixels.
    pub bbox: Vec<f64>,
    /// Detection score.
    pub score: f64,
    /// Why the face was not searched (quality gate), when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// `match`, `unknown` or `ambiguous`, when searched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Best identities, best first, when searched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<MatchRecord>>,
}

/// Answer of `/v1/identify`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentifyResponse {
    /// The probe image.
    pub image: ImageRecord,
    /// Threshold on similarity.
    pub threshold: f64,
    /// Operating point: `FAR=1e-3` etc., or `user`.
    pub operating_point: String,
    /// FAR measured at the threshold on the calibration pairs (null for a user threshold).
    pub far: Option<f64>,
    /// FRR measured at the threshold on the calibration pairs (null for a user threshold).
    pub frr: Option<f64>,
    /// Model of the probe embeddings.
    pub model: String,
    /// Every face of the probe, largest first.
    pub faces: Vec<IdentifiedFace>,
}

// ---------------------------------------------------------------- identification

/// 1:N identification of every face of a photo against the gallery (open set: match, unknown or
/// ambiguous), at a calibrated operating point or a given threshold.
#[utoipa::path(
    post,
    path = "/v1/identify",
    tag = "identification",
    request_body(content((IdentifyForm = "multipart/form-data"), (IdentifyJson = "application/json"))),
    responses(
        (status = 200, description = "Each face's decision and best identities", body = IdentifyResponse),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 413, description = "Body or image over the limits", body = ErrorBody),
        (status = 422, description = "Not a decodable image", body = ErrorBody),
        (status = 503, description = "Overloaded, timed out or not ready (Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn identify(State(st): State<Arc<AppState>>, req: Request) -> Result<Json<IdentifyResponse>, ApiError> {
    let mut input = read_input(req, &["image"], &["scoring"], st.cfg.max_body_bytes).await?;
    let image = input.take_image("image")?;
    let o: IdentifyOptions = input.params()?;
    let scoring = o.scoring.unwrap_or_default();
    let threshold = if o.far.is_some() || o.threshold.is_some() {
        decision_threshold(&st, o.far, o.threshold)?
    } else {
        let fpir = o.fpir.unwrap_or(crate::gallery::DEFAULT_FPIR);
        if !(fpir > 0.0 && fpir < 1.0) {
            return Err(ApiError::invalid_parameter(format!("fpir {fpir} outside (0, 1)")));
        }
        let ready = st.ready()?;
        let calibration = ready.calibration.as_ref().ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "no_operating_point", "the loaded recogniser has no calibration: pass `threshold`")
        })?;
        ready.gallery.threshold_for_fpir(calibration, fpir, scoring).map_err(ApiError::from)?
    };
    let mut params = IdentifyParams::new(threshold.clone());
    params.scoring = scoring;
    if let Some(k) = o.top_k {
        params.top_k = k;
    }
    if let Some(m) = o.ambiguity_margin {
        params.ambiguity_margin = m;
    }
    if let Some(s) = o.scoring {
        params.scoring = s;
    }
    if o.exact == Some(true) {
        params.search = crate::index::SearchMode::Exact;
    }
    let mut out = analyze(&st, vec![image], true).await?;
    let img = out.pop().ok_or_else(|| ApiError::internal("no analysis result"))?;
    let ready = st.ready()?;
    let model = ready.analyzer.model_id().map(|m| m.to_string()).map_err(ApiError::internal)?;
    let (analyzer, gal) = (ready.analyzer.clone(), ready.gallery.clone());
    let (img, res) = blocking(move || {
        let r = gal.identify_analysed(&analyzer, &img, &params);
        Ok((img, r))
    })
    .await?;
    let res = res?;
    let label = img.path.display().to_string();
    let faces = res
        .faces
        .iter()
        .map(|f| IdentifiedFace {
            image: label.clone(),
            face: f.face,
            bbox: f.bbox.iter().map(|x| round(*x, 2)).collect(),
            score: round(f.score, 4),
            refused: f.refused.clone(),
            decision: f.identification.as_ref().map(|i| i.decision.to_string()),
            matches: f.identification.as_ref().map(|i| {
                i.matches
                    .iter()
                    .map(|m| MatchRecord { identity: m.name.clone(), identity_id: m.identity_id, similarity: round(m.similarity, 6), face_id: m.face })
                    .collect()
            }),
        })
        .collect();
    Ok(Json(IdentifyResponse {
        image: ImageRecord::of(&img),
        threshold: round(threshold.similarity, 6),
        operating_point: threshold.name.clone(),
        far: threshold.far,
        frr: threshold.frr,
        model,
        faces,
    }))
}

/// 1:1 verification of a face of image `a` against an enrolled identity: its score is the best
/// similarity over the identity's faces (the gallery's `max` scoring).
pub(crate) async fn verify_identity(
    st: &Arc<AppState>,
    a: (String, axum::body::Bytes),
    identity: &str,
    sel_a: FaceSelection,
    threshold: &Threshold,
) -> Result<VerifyResponse, ApiError> {
    let gal = gallery(st)?;
    let r = identity_ref(identity);
    let g2 = gal.clone();
    let missing = GalleryError::UnknownIdentity { identity: r.to_string() };
    let rec = blocking(move || g2.find_identity(&r).map_err(ApiError::from)).await?.ok_or_else(|| ApiError::not_found(missing.to_string()))?;
    if rec.faces == 0 {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "identity_empty", format!("identity {:?} has no enrolled faces", rec.name)));
    }
    let mut out = analyze(st, vec![a], true).await?;
    let img = out.pop().ok_or_else(|| ApiError::internal("no analysis result"))?;
    let ready = st.ready()?;
    let analyzer = &ready.analyzer;
    if img.faces.is_empty() {
        return Err(Error::NoFace { path: img.path.clone(), score_threshold: analyzer.config().detector_params.score_threshold }.into());
    }
    let index = match sel_a {
        FaceSelection::Largest => 0,
        FaceSelection::Index(i) => i,
    };
    let face = img.faces.get(index).ok_or(Error::FaceIndex { path: img.path.clone(), index, count: img.faces.len() })?;
    analyzer.config().quality_gate.check(&face.quality).map_err(|failure| Error::Quality { path: img.path.clone(), face: index, failure })?;
    let emb = face.embedding.clone().ok_or_else(|| ApiError::internal("face without embedding"))?;
    // Every identity is ranked, so the one asked for is among the matches.
    let mut params = IdentifyParams::new(threshold.clone());
    let (g3, rid) = (gal.clone(), rec.id);
    let m = blocking(move || {
        params.top_k = g3.identities().map_err(ApiError::from)?.len().max(1);
        let ident = g3.identify(&emb, &params).map_err(ApiError::from)?;
        Ok(ident.matches.into_iter().find(|m| m.identity_id == rid))
    })
    .await?
    .ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "identity_empty", format!("identity {:?} has no searchable faces", rec.name)))?;
    let model = analyzer.model_id().map(|m| m.to_string()).map_err(ApiError::internal)?;
    let sim = m.similarity;
    Ok(VerifyResponse {
        similarity: round(sim, 6),
        distance: round(distance_from_similarity(sim), 6),
        threshold: round(threshold.similarity, 6),
        operating_point: threshold.name.clone(),
        far: threshold.far,
        frr: threshold.frr,
        threshold_note: threshold.note.clone(),
        same: sim >= threshold.similarity,
        model,
        a: UsedFaceRecord {
            path: img.path.display().to_string(),
            face: index,
            faces_in_image: img.faces.len(),
            bbox: face.detection.bbox.iter().map(|x| *x as f64).collect(),
            score: face.detection.score as f64,
        },
        b: UsedFaceRecord {
            path: format!("gallery:{}", rec.id),
            face: m.face.map_or(0, |f| f.max(0) as usize),
            faces_in_image: rec.faces,
            bbox: Vec::new(),
            score: 0.0,
        },
    })
}

// ---------------------------------------------------------------- CRUD

/// All identities, by name, with their face counts.
#[utoipa::path(
    get,
    path = "/v1/gallery/identities",
    tag = "gallery",
    responses((status = 200, body = Vec<IdentityRecordDto>), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_identities(State(st): State<Arc<AppState>>) -> Result<Json<Vec<IdentityRecordDto>>, ApiError> {
    let gal = gallery(&st)?;
    let list = blocking(move || gal.identities().map_err(ApiError::from)).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Adds an identity (admin).
#[utoipa::path(
    post,
    path = "/v1/gallery/identities",
    tag = "gallery",
    request_body = CreateIdentity,
    responses(
        (status = 201, body = IdentityRecordDto),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Read-only key", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn create_identity(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<(StatusCode, Json<IdentityRecordDto>), ApiError> {
    let mut input = read_input(req, &[], &["name"], st.cfg.max_body_bytes).await?;
    caller.require(Scope::Admin)?; // after reading the body, so that the client receives the 403
    let body: CreateIdentity = input.params()?;
    let gal = gallery(&st)?;
    let rec = blocking(move || gal.add_identity(&body.name, body.metadata.unwrap_or(Value::Null)).map_err(ApiError::from)).await?;
    Ok((StatusCode::CREATED, Json(rec.into())))
}

/// An identity with its faces.
#[utoipa::path(
    get,
    path = "/v1/gallery/identities/{identity}",
    tag = "gallery",
    params(("identity" = String, Path, description = "Identity id (digits) or name")),
    responses((status = 200, body = IdentityDetailDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_identity(State(st): State<Arc<AppState>>, Path(identity): Path<String>) -> Result<Json<IdentityDetailDto>, ApiError> {
    let gal = gallery(&st)?;
    let d = blocking(move || gal.identity(&identity_ref(&identity)).map_err(ApiError::from)).await?;
    Ok(Json(d.into()))
}

/// Renames an identity (admin).
#[utoipa::path(
    patch,
    path = "/v1/gallery/identities/{identity}",
    tag = "gallery",
    params(("identity" = String, Path, description = "Identity id (digits) or name")),
    request_body = RenameIdentity,
    responses(
        (status = 200, body = IdentityRecordDto),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn rename_identity(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(identity): Path<String>,
    req: Request,
) -> Result<Json<IdentityRecordDto>, ApiError> {
    let mut input = read_input(req, &[], &["name"], st.cfg.max_body_bytes).await?;
    caller.require(Scope::Admin)?; // after reading the body, so that the client receives the 403
    let body: RenameIdentity = input.params()?;
    let gal = gallery(&st)?;
    let rec = blocking(move || gal.rename(&identity_ref(&identity), &body.name).map_err(ApiError::from)).await?;
    Ok(Json(rec.into()))
}

/// Removes an identity and its faces (admin).
#[utoipa::path(
    delete,
    path = "/v1/gallery/identities/{identity}",
    tag = "gallery",
    params(("identity" = String, Path, description = "Identity id (digits) or name")),
    responses((status = 200, body = RemovedIdentity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn delete_identity(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(identity): Path<String>,
) -> Result<Json<RemovedIdentity>, ApiError> {
    caller.require(Scope::Admin)?;
    let gal = gallery(&st)?;
    let id2 = identity.clone();
    let faces = blocking(move || gal.remove_identity(&identity_ref(&id2)).map_err(ApiError::from)).await?;
    Ok(Json(RemovedIdentity { removed_identity: identity, removed_faces: faces }))
}

/// Enrolls a face from a photo under an identity (admin). The face passes the quality gate;
/// a photo with several faces needs `face` or `largest`.
#[utoipa::path(
    post,
    path = "/v1/gallery/identities/{identity}/faces",
    tag = "gallery",
    params(("identity" = String, Path, description = "Identity id (digits) or name")),
    request_body(content((EnrollForm = "multipart/form-data"), (EnrollJson = "application/json"))),
    responses(
        (status = 201, description = "Enrolled", body = EnrolledResponse),
        (status = 200, description = "Already enrolled under this identity: nothing added", body = EnrolledResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "This face of this photo is enrolled under another identity (`duplicate_face`)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Bad image, no face, several faces or quality gate", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn enroll_face(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(identity): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<EnrolledResponse>), ApiError> {
    let mut input = read_input(req, &["image"], &[], st.cfg.max_body_bytes).await?;
    caller.require(Scope::Admin)?; // after reading the body, so that the client receives the 403
    let image = input.take_image("image")?;
    let p: EnrollParams = input.params()?;
    let policy = match (p.face, p.largest.unwrap_or(false)) {
        (Some(i), _) => FacePolicy::Index(i),
        (None, true) => FacePolicy::Largest,
        (None, false) => FacePolicy::Only,
    };
    let gal = gallery(&st)?;
    let r = identity_ref(&identity);
    let g2 = gal.clone();
    let missing = GalleryError::UnknownIdentity { identity: r.to_string() };
    let rec = blocking(move || g2.find_identity(&r).map_err(ApiError::from)).await?.ok_or_else(|| ApiError::not_found(missing.to_string()))?;
    let sha = hex::encode(Sha256::digest(&image.1));
    let mut out = analyze(&st, vec![image], true).await?;
    let img = out.pop().ok_or_else(|| ApiError::internal("no analysis result"))?;
    let analyzer = st.ready()?.analyzer.clone();
    let (face, index) = Gallery::face_to_enroll(&analyzer, &img, &sha, policy, None)?;
    let bbox = face.bbox;
    let rid = rec.id;
    // The CLI's enrollment rules: a face already enrolled (same photo content, overlapping box)
    // is not added twice, and one that belongs to another identity is refused.
    let path = img.path.clone();
    let commit = blocking(move || gal.enroll_faces(&EnrollTarget::Existing(IdentityRef::Id(rid)), vec![face]).map_err(ApiError::from)).await?;
    let (status, face_id, already_enrolled) = match commit.outcomes.into_iter().next() {
        Some(FaceOutcome::Added { face_id }) => (StatusCode::CREATED, face_id, false),
        Some(FaceOutcome::AlreadyEnrolled { face_id }) => (StatusCode::OK, face_id, true),
        Some(FaceOutcome::EnrolledElsewhere { face_id, identity_id, identity }) => {
            return Err(GalleryError::DuplicateFace { path, face: face_id, identity_id, identity }.into());
        }
        None => return Err(ApiError::internal("no enrollment outcome")),
    };
    Ok((
        status,
        Json(EnrolledResponse {
            image: img.path.display().to_string(),
            identity: rec.name,
            identity_id: rec.id,
            face_id,
            already_enrolled,
            face: index,
            faces_in_image: img.faces.len(),
            bbox: bbox.iter().map(|x| round(*x, 2)).collect(),
            image_sha256: sha,
        }),
    ))
}

/// Removes one enrolled face (admin).
#[utoipa::path(
    delete,
    path = "/v1/gallery/faces/{face}",
    tag = "gallery",
    params(("face" = i64, Path, description = "Face id")),
    responses((status = 200, body = RemovedFace), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn delete_face(State(st): State<Arc<AppState>>, Extension(caller): Extension<Caller>, Path(face): Path<String>) -> Result<Json<RemovedFace>, ApiError> {
    caller.require(Scope::Admin)?;
    let face: i64 = face.parse().map_err(|_| ApiError::invalid_parameter(format!("face id {face:?} is not an integer")))?;
    let gal = gallery(&st)?;
    blocking(move || gal.remove_face(face).map_err(ApiError::from)).await?;
    Ok(Json(RemovedFace { removed_face: face }))
}

/// Merges identity `from` into `into`: its faces move, it is removed (admin).
#[utoipa::path(
    post,
    path = "/v1/gallery/merge",
    tag = "gallery",
    request_body = MergeIdentities,
    responses(
        (status = 200, body = IdentityRecordDto),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn merge_identities(State(st): State<Arc<AppState>>, Extension(caller): Extension<Caller>, req: Request) -> Result<Json<IdentityRecordDto>, ApiError> {
    let mut input = read_input(req, &[], &["from", "into"], st.cfg.max_body_bytes).await?;
    caller.require(Scope::Admin)?; // after reading the body, so that the client receives the 403
    let body: MergeIdentities = input.params()?;
    let (from, into) = (value_ref(&body.from)?, value_ref(&body.into)?);
    let gal = gallery(&st)?;
    let rec = blocking(move || gal.merge(&from, &into).map_err(ApiError::from)).await?;
    Ok(Json(rec.into()))
}
