//! JSON errors of the service: a stable machine-readable `code` and a message for people. Internal
//! failures are logged in full and answered with `internal` and no details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::gallery::GalleryError;
use crate::imageio::ImageError;
use crate::Error;

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error: stable code and human-readable message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code a client can branch on: `bad_request`, `invalid_parameter`, `invalid_image`,
    /// `image_too_large`, `body_too_large`, `unsupported_media_type`, `no_face`, `face_index`,
    /// `quality_rejected`, `several_faces`, `identity_empty`, `no_operating_point`, `unauthorized`, `invalid_api_key`, `forbidden`,
    /// `not_found`, `conflict`, `overloaded`, `timeout`, `not_ready`, `internal`.
    pub code: String,
    /// What went wrong, for people. Never contains server paths or internal details.
    pub message: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code ([`ErrorDetail::code`]).
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Seconds for a Retry-After header (503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }
    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 400 `invalid_parameter`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 500 `internal`: the details go to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has the details")
    }
    /// 503 with Retry-After.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code, message: message.into(), retry_after: Some(retry_after) }
    }
    /// 413 `body_too_large`.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("request body over the limit of {limit} bytes"))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let e = match e {
            Error::Gallery(g) => return ApiError::from(g),
            other => other,
        };
        match &e {
            Error::Image { path, source } => match source {
                ImageError::TooLarge { .. } | ImageError::LimitExceeded { .. } => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large", format!("{}: {source}", path.display()))
                }
                ImageError::Io(_) => ApiError::internal(&e),
                _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image", e.to_string()),
            },
            Error::NoFace { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_face", e.to_string()),
            Error::FaceIndex { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "face_index", e.to_string()),
            Error::Quality { path, face, failure } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "quality_rejected",
                format!("{}: face {face} fails the quality gate: {failure}", path.display()),
            ),
            Error::Calibration(crate::calibrate::CalibrationError::NoOperatingPoint { far, available, .. }) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "no_operating_point",
                format!("no supported operating point at FAR {far:e} (supported: {available}); pass `threshold` instead"),
            ),
            Error::Calibration(crate::calibrate::CalibrationError::InvalidRate { .. }) => ApiError::invalid_parameter(e.to_string()),
            Error::InvalidParameter { name, message } => ApiError::invalid_parameter(format!("{name}: {message}")),
            _ => ApiError::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message } };
        let mut r = (self.status, Json(body)).into_response();
        r.extensions_mut().insert(super::ErrorCode(self.code));
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

impl From<GalleryError> for ApiError {
    fn from(e: GalleryError) -> Self {
        match &e {
            GalleryError::UnknownIdentity { .. } | GalleryError::UnknownFace { .. } => ApiError::not_found(e.to_string()),
            GalleryError::DuplicateName { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            GalleryError::DuplicateFace { .. } => ApiError::new(StatusCode::CONFLICT, "duplicate_face", e.to_string()),
            GalleryError::InvalidName { .. } | GalleryError::BadEmbedding { .. } | GalleryError::InvalidParameter { .. } => {
                ApiError::invalid_parameter(e.to_string())
            }
            GalleryError::IncompleteImage { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "incomplete_image", e.to_string()),
            GalleryError::SeveralFaces { path, count } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "several_faces",
                format!("{}: {count} faces found; enrollment takes one face per photo: pass `face` (0 = largest) or `largest`", path.display()),
            ),
            _ => ApiError::internal(&e),
        }
    }
}
