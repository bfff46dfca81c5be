//! Request extractors whose rejections are problems naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::problem::FieldError;

/// A JSON body: 415 for another media type, 413 over the limit, 400 for broken JSON and
/// 422 naming the field for a wrong shape or value.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(usize::MAX);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest(format!("could not read the request body: {rejection}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The configured body limit, placed in request extensions so rejections can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn is_json(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON, telling syntax errors (400) from shape and value errors (422 with a path).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::Validation(vec![FieldError {
                line: None,
                field,
                message: strip_position(&inner),
            }])
        } else {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path already locates a data error.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        quotas: Quotas,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Quotas {
        max_tables: u32,
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422_with_path() {
        assert!(matches!(
            parse_json::<Body>(b"{\"name\": "),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"name":"a","quotas":{"max_tables":1}} x"#),
            Err(ApiError::BadRequest(_))
        ));
        match parse_json::<Body>(br#"{"name":"a","quotas":{"max_tables":-1}}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "quotas.max_tables"),
            other => panic!("expected 422, got {other:?}"),
        }
        match parse_json::<Body>(br#"{"name":"a","quotas":{"max_tables":1},"extra":1}"#) {
            Err(ApiError::Validation(errors)) => assert!(errors[0].message.contains("extra"), "{errors:?}"),
            other => panic!("expected 422, got {other:?}"),
        }
        match parse_json::<Body>(b"[]") {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "body"),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn media_types() {
        use axum::http::HeaderValue;
        assert!(is_json(Some(&HeaderValue::from_static(
            "application/json; charset=utf-8"
        ))));
        assert!(is_json(Some(&HeaderValue::from_static(
            "application/merge-patch+json"
        ))));
        assert!(!is_json(Some(&HeaderValue::from_static("text/plain"))));
        assert!(!is_json(None));
    }
}

/// Query parameters: 422 naming the parameter for a bad value, and for unknown parameters
/// when the target type denies them.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        // Empty text values (`?cursor=`) are normalised by the handlers; empty booleans and
        // numbers stay errors, so `?dry_run=` never means "do it".
        let deserializer = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "query".to_owned() } else { path };
                ApiError::Validation(vec![FieldError {
                    line: None,
                    field,
                    message: e.into_inner().to_string(),
                }])
            })
    }
}

/// Serde helpers for JSON integers. JSON Schema counts `5.0` as an integer, so clients (and
/// generators) may send one; accept integral floats and reject fractional ones.
pub mod integral {
    use serde::{Deserialize, Deserializer, de::Error};

    fn to_u64(value: serde_json::Number) -> Option<u64> {
        value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        })
    }

    /// A `u64` given as an integer or an integral float.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let number = serde_json::Number::deserialize(d)?;
        to_u64(number.clone())
            .ok_or_else(|| D::Error::custom(format!("expected a non-negative integer, got {number}")))
    }

    /// An optional `u64` given as an integer or an integral float.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            None => Ok(None),
            Some(number) => to_u64(number.clone())
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected a non-negative integer, got {number}"))),
        }
    }

    /// An optional `u32` given as an integer or an integral float.
    pub fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            None => Ok(None),
            Some(number) => to_u64(number.clone())
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| {
                    D::Error::custom(format!(
                        "expected an integer from 0 to {}, got {number}",
                        u32::MAX
                    ))
                }),
        }
    }
}

/// Implements `Deserialize` for a type whose derived impl is `#[serde(remote = "Self")]`,
/// accepting only JSON objects: serde's derive would also take a positional array, so
/// `{"quotas": [1, 2]}` would silently fill fields by position.
#[macro_export]
macro_rules! objects_only {
    ($($ty:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<$ty, A::Error> {
                        <$ty>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    )+};
}
