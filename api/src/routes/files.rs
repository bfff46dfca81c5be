//! Table files on local storage behind URLs the plane signs (`/files/{table_id}/{path}?
//! expires=..&sig=..`): HEAD with the length, GET whole or by one byte range. The signature is
//! checked first, then the path must stay inside the table, also after symlinks.

use std::collections::HashMap;
use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tenancy::policy::Denial;
use tenancy::share::{FileGrant, UrlRefusal, is_contained_path};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::ApiError;
use crate::state::AppState;

/// A single byte range resolved against the file's length: `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole file (absent, or several ranges, which may be ignored).
    Whole,
    /// One satisfiable range.
    Part(ByteRange),
    /// A range outside the file: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` (RFC 9110 §14.1.2) against `len`.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.is_empty(), last.is_empty()) {
        (true, true) => return RangeRequest::Whole,
        (true, false) => {
            let Ok(suffix) = last.parse::<u64>() else {
                return RangeRequest::Whole;
            };
            if suffix == 0 || len == 0 {
                return RangeRequest::Unsatisfiable;
            }
            ByteRange {
                start: len.saturating_sub(suffix),
                end: len - 1,
            }
        }
        (false, _) => {
            let Ok(start) = first.parse::<u64>() else {
                return RangeRequest::Whole;
            };
            let end = if last.is_empty() {
                len.saturating_sub(1)
            } else {
                match last.parse::<u64>() {
                    Ok(end) if end >= start => end.min(len.saturating_sub(1)),
                    _ => return RangeRequest::Whole,
                }
            };
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            ByteRange { start, end }
        }
    };
    RangeRequest::Part(range)
}

fn forbidden(why: &str) -> ApiError {
    ApiError::Denied(Denial::Forbidden(why.to_owned()))
}

/// Serves one signed table file: the URLs are handed out by the Delta Sharing `query` route on
/// local storage, signed for one recipient, table and path until `expires`.
#[utoipa::path(get, path = "/files/{table_id}/{path}", tag = "delta-sharing",
    params(
        ("table_id" = String, Path, description = "The table's id"),
        ("path" = String, Path, description = "The file's path inside the table; the rest of the URL, slashes included"),
        ("r" = String, Query, description = "The recipient the URL was signed for"),
        ("expires" = i64, Query, description = "Unix seconds after which the URL is refused"),
        ("sig" = String, Query, description = "The signature over recipient, table, path and expiry"),
        ("range" = Option<String>, Header, description = "One byte range, RFC 9110"),
    ),
    security(()),
    responses(
        (status = 200, description = "The whole file", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 206, description = "The requested byte range", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "A path that is not valid UTF-8", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing, bad or expired signature, or the recipient lost access", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file in the table", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the file", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn serve_file(
    State(state): State<AppState>,
    Path((table_id, path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expires = query
        .get("expires")
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or_else(|| forbidden("the URL has no valid expires parameter"))?;
    let signature = query
        .get("sig")
        .ok_or_else(|| forbidden("the URL has no signature"))?;
    let recipient = query
        .get("r")
        .ok_or_else(|| forbidden("the URL names no recipient"))?;
    let grant = FileGrant {
        recipient,
        table: &table_id,
        path: &path,
        expires,
    };
    state
        .url_signer
        .verify(&grant, signature, chrono::Utc::now().timestamp())
        .map_err(|refusal| match refusal {
            UrlRefusal::BadSignature => forbidden("the URL signature is not valid"),
            UrlRefusal::Expired => forbidden("the URL has expired"),
        })?;
    let not_found = || ApiError::NotFound("no such file".to_owned());
    // A valid signature over a path that leaves the table is still refused (defence in depth
    // against a leaked signing secret or a bug in what gets signed).
    if !is_contained_path(&path) {
        return Err(not_found());
    }
    let id = uuid::Uuid::parse_str(&table_id).map_err(|_| not_found())?;
    // The URL lives no longer than the access it was issued under: a revoked or expired
    // recipient, a deleted share or a table taken out of it ends it at once.
    let recipient = uuid::Uuid::parse_str(recipient)
        .ok()
        .map(|r| state.store.get_recipient(r));
    let recipient = match recipient {
        Some(lookup) => lookup.await?,
        None => None,
    }
    .filter(|r| r.revoked_at.is_none() && r.expires_at > chrono::Utc::now())
    .ok_or_else(|| forbidden("the recipient this URL was issued to no longer has access"))?;
    let share = state
        .store
        .get_share_by_id(recipient.share_id)
        .await?
        .filter(|s| s.tables.iter().any(|t| t.table_id == id))
        .ok_or_else(|| forbidden("the table is no longer shared with this recipient"))?;
    let table = super::sharing::active_table(&state, id)
        .await?
        .filter(|t| t.record.tenant == share.tenant)
        .ok_or_else(not_found)?;
    let root = url::Url::parse(&table.root)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
        .ok_or_else(not_found)?;
    let root = tokio::fs::canonicalize(&root).await.map_err(|_| not_found())?;
    let file = tokio::fs::canonicalize(root.join(&path))
        .await
        .map_err(|_| not_found())?;
    if !file.starts_with(&root) {
        return Err(not_found());
    }
    let mut handle = tokio::fs::File::open(&file).await.map_err(|_| not_found())?;
    let metadata = handle.metadata().await.map_err(|_| not_found())?;
    if !metadata.is_file() {
        return Err(not_found());
    }
    let len = metadata.len();
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), len);
    let (status, start, count) = match range {
        RangeRequest::Whole => (StatusCode::OK, 0, len),
        RangeRequest::Part(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end - r.start + 1),
        RangeRequest::Unsatisfiable => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    handle
        .seek(SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::Internal(format!("seek in a table file: {e}")))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(handle.take(count)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let part = |start, end| RangeRequest::Part(ByteRange { start, end });
        assert_eq!(parse_range(None, 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), part(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), part(90, 99));
        assert_eq!(parse_range(Some("bytes=90-500"), 100), part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), part(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), part(0, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-1"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 100), RangeRequest::Whole);
    }
}
