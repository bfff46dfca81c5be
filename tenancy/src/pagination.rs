//! Opaque list cursors and page sizes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::validation::Violation;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 500;

/// Versioned so the format can change without old cursors being misread.
const PREFIX: &str = "v1:";

/// Encodes the sort key of the last item on a page.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{key}"))
}

/// Decodes a cursor this server issued.
pub fn decode_cursor(cursor: &str) -> Result<String, Violation> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(PREFIX).map(str::to_owned))
        .ok_or_else(|| Violation::new("cursor", "is not a cursor issued by this server"))
}

/// Decodes an optional cursor whose key is a UUID (newest-first lists keyed by UUIDv7).
pub fn decode_uuid_cursor(cursor: Option<&str>) -> Result<Option<uuid::Uuid>, Violation> {
    let Some(cursor) = cursor else { return Ok(None) };
    let raw = decode_cursor(cursor)?;
    uuid::Uuid::parse_str(&raw)
        .map(Some)
        .map_err(|_| Violation::new("cursor", "is not a cursor issued by this server"))
}

/// Validates `?limit=`, defaulting when absent.
pub fn limit(requested: Option<u32>) -> Result<u32, Violation> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Violation::new("limit", format!("must be 1 to {MAX_LIMIT}"))),
    }
}

/// Decodes a cursor over tables, keyed `{zone}/{name}`, into its zone and name.
pub fn decode_table_cursor(cursor: Option<&str>) -> Result<Option<(String, String)>, Violation> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let key = decode_cursor(cursor)?;
    let (zone, name) = key
        .split_once('/')
        .ok_or_else(|| Violation::new("cursor", "not a cursor this API issued"))?;
    Ok(Some((zone.to_owned(), name.to_owned())))
}

/// Splits a fetch of `limit + 1` rows into a page and the cursor for the next one.
pub fn page<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|last| encode_cursor(&key(last)));
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        assert_eq!(decode_cursor(&encode_cursor("acme")).expect("ok"), "acme");
        assert!(decode_cursor("acme").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("v0:acme")).is_err());
        assert_eq!(limit(None).expect("default"), 50);
        assert!(limit(Some(0)).is_err() && limit(Some(501)).is_err());
        let (items, next) = page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(
            (items, next.map(|c| decode_cursor(&c).expect("valid"))),
            (vec![1, 2], Some("2".to_owned()))
        );
        assert_eq!(page(vec![1, 2], 2, |n| n.to_string()).1, None);
    }
}
