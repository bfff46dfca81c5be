//! Where a tenant's data lives: bucket names and key prefixes, as pure functions.
//!
//! Key layout in every bucket, dedicated or shared: `{bucket}/{zone}/{tenant}/{table}/...`.

use tenancy::placement::{Placement, PlacementKind};
use tenancy::role::Zone;
use tenancy::tenant::TenantId;

/// Longest bucket prefix: with `-t-` and a 40-character tenant id, names stay within S3's 63.
pub const MAX_BUCKET_PREFIX: usize = 20;

/// Checks a bucket prefix: 1 to 20 of `[a-z0-9-]`, starting with a letter or digit.
pub fn validate_bucket_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > MAX_BUCKET_PREFIX {
        return Err("must be 1 to 20 characters");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only lowercase letters, digits and hyphens");
    }
    if prefix.starts_with('-') || prefix.ends_with('-') || prefix.contains("--") {
        return Err("must not start or end with a hyphen or contain a double hyphen");
    }
    Ok(())
}

/// The bucket a placement puts a tenant in. Dedicated names carry `-t-` and shard names
/// `-shared-`, so no tenant id can produce a shard's name.
pub fn bucket_name(prefix: &str, tenant: &TenantId, placement: &Placement) -> String {
    match (placement.kind, placement.shard) {
        (PlacementKind::Dedicated, _) | (PlacementKind::Shared, None) => format!("{prefix}-t-{tenant}"),
        (PlacementKind::Shared, Some(shard)) => format!("{prefix}-shared-{shard:04}"),
    }
}

/// The tenant's key prefix within one zone: `{zone}/{tenant}/`.
pub fn zone_prefix(zone: Zone, tenant: &TenantId) -> String {
    format!("{}/{tenant}/", zone.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_s3_bucket_names_and_distinct() {
        let longest = TenantId::parse(&"a".repeat(40)).expect("valid");
        let dedicated = Placement {
            kind: PlacementKind::Dedicated,
            shard: None,
            reason: String::new(),
        };
        let name = bucket_name(&"p".repeat(20), &longest, &dedicated);
        assert!(name.len() <= 63, "{name}");
        let tricky = TenantId::parse("shared-0001").expect("valid");
        let shard = Placement {
            kind: PlacementKind::Shared,
            shard: Some(1),
            reason: String::new(),
        };
        assert_ne!(
            bucket_name("lakeplane", &tricky, &dedicated),
            bucket_name("lakeplane", &tricky, &shard)
        );
        assert_eq!(bucket_name("lakeplane", &tricky, &shard), "lakeplane-shared-0001");
        assert_eq!(zone_prefix(Zone::Silver, &tricky), "silver/shared-0001/");
        assert!(validate_bucket_prefix("lakeplane").is_ok());
        for bad in ["", "Lake", "-x", "a--b", &"x".repeat(21)] {
            assert!(validate_bucket_prefix(bad).is_err(), "{bad}");
        }
    }
}
