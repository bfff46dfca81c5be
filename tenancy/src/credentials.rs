//! Temporary AWS credentials for analysts, as pure functions: the exact `AssumeRole` call for a
//! tenant and scope (role, session name, source identity, session policy, session tags,
//! duration), the locations it covers, and the cache key that identifies it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::iam::session_policy;
use crate::placement::PlacementKind;
use crate::role::{Access, Zone};
use crate::tenant::TenantId;
use crate::validation::Violation;

/// Shortest lifetime STS grants, seconds.
pub const MIN_TTL_SECS: u64 = 900;
/// Longest lifetime: the data roles' default maximum session duration, seconds.
pub const MAX_TTL_SECS: u64 = 3600;
/// A tenant's own cap on the credentials vended for it, by default: the longest lifetime.
pub const TENANT_MAX_TTL_DEFAULT: u32 = 3600;

/// Checks a tenant's cap on credential lifetimes: 900 s (the shortest STS session) to 3600 s.
pub fn check_tenant_max_ttl(secs: u32) -> Result<u32, Violation> {
    if (MIN_TTL_SECS..=MAX_TTL_SECS).contains(&u64::from(secs)) {
        Ok(secs)
    } else {
        Err(Violation::new(
            "credential_max_ttl_secs",
            format!("must be {MIN_TTL_SECS} to {MAX_TTL_SECS}"),
        ))
    }
}

/// AWS's limit on the plain text of a session policy, characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;
/// The session tag that scopes a shard's ABAC role to one tenant.
pub const TENANT_TAG: &str = "tenant";
/// Longest `SourceIdentity` and `RoleSessionName` STS accepts.
pub const MAX_AWS_NAME: usize = 64;

/// What vended credentials may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialAccess {
    /// `GetObject`, and `ListBucket` under the scope's prefixes.
    Read,
    /// Read, plus `PutObject` (multipart uploads included), `DeleteObject` and
    /// `AbortMultipartUpload`.
    Write,
}

impl CredentialAccess {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialAccess::Read => "read",
            CredentialAccess::Write => "write",
        }
    }

    /// The zone access a caller needs to ask for it.
    pub fn zone_access(self) -> Access {
        match self {
            CredentialAccess::Read => Access::Read,
            CredentialAccess::Write => Access::ReadWrite,
        }
    }
}

/// A validated request for credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    /// The zone.
    pub zone: Zone,
    /// Tables of the zone, in request order, no duplicates; empty means the whole zone.
    pub tables: Vec<String>,
    /// Read or write.
    pub access: CredentialAccess,
    /// Lifetime, `MIN_TTL_SECS..=MAX_TTL_SECS`.
    pub ttl_seconds: u32,
}

/// Who asks, as the cache must tell callers apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requester {
    /// The token's issuer.
    pub issuer: String,
    /// The token's tenant (`None` for platform-admins).
    pub tenant: Option<String>,
    /// The token's subject, exactly as it is.
    pub subject: String,
    /// The token's id (`jti`), when it has one.
    pub token_id: Option<uuid::Uuid>,
}

/// One `AssumeRole` call, fully determined.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssumeRoleRequest {
    /// The role to assume.
    pub role_arn: String,
    /// `RoleSessionName`, from the tenant and the subject.
    pub session_name: String,
    /// `SourceIdentity`: the tenant, the token id and the subject, so the cloud audit trail
    /// names who asked in terms no tenant-admin can choose (see [`source_identity`]).
    pub source_identity: String,
    /// The inline session policy, compact JSON.
    pub policy: String,
    /// Session tags (`tenant` on a shard's ABAC role, none on a dedicated role).
    pub tags: Vec<(String, String)>,
    /// `DurationSeconds`.
    pub duration_seconds: u32,
}

/// What identifies cached credentials: the whole call, and the exact requester.
///
/// The requester is part of the key because the credentials carry `SourceIdentity` = the
/// subject: a cached credential must never be handed to, and so name, another analyst. The
/// raw subject, issuer and token tenant are used (not the mapped `SourceIdentity`), since the
/// mapping can send two subjects to one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The tenant whose data the credentials reach.
    pub tenant: TenantId,
    /// Who asked.
    pub requester: Requester,
    /// The call.
    pub request: AssumeRoleRequest,
}

/// Maps text to what STS accepts in `SourceIdentity` and `RoleSessionName`: 2 to 64 of
/// `[A-Za-z0-9_+=,.@-]`. Every other character becomes `-`; a result shorter than 2 is padded
/// with `-`; one longer than 64 keeps its first 55 characters, then `-` and 8 hex digits of
/// the SHA-256 of the original text, so long names stay distinct.
pub fn aws_name(raw: &str) -> String {
    let mut mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if mapped.len() > MAX_AWS_NAME {
        let digest = Sha256::digest(raw.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        mapped.truncate(MAX_AWS_NAME - 9);
        mapped.push('-');
        mapped.push_str(&hex);
    }
    while mapped.len() < 2 {
        mapped.push('-');
    }
    mapped
}

/// A role's ARN in an account and partition (`aws`, `aws-cn`, `aws-us-gov`).
pub fn role_arn(partition: &str, account: &str, role_name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{role_name}")
}

/// Session tags: a shard's ABAC role reaches only the prefixes of the tenant its session is
/// tagged with; a dedicated tenant's role needs none.
pub fn session_tags(kind: PlacementKind, tenant: &TenantId) -> Vec<(String, String)> {
    match kind {
        PlacementKind::Shared => vec![(TENANT_TAG.to_owned(), tenant.to_string())],
        PlacementKind::Dedicated => Vec::new(),
    }
}

fn sorted_tables(scope: &CredentialScope) -> Vec<String> {
    let mut tables = scope.tables.clone();
    tables.sort();
    tables
}

/// What a session's `SourceIdentity` says: `<tenant>.<token id>.<subject>` (or
/// `<tenant>.<subject>` for a token without an id), mapped by [`aws_name`]. The subject alone
/// is a name the tenant-admin chose when minting the token, so it could impersonate anyone in
/// CloudTrail; the tenant and the token id cannot be chosen. Past 64 characters the name keeps
/// its first 55 (the tenant, then as much of the token id as fits) and a hash of the whole.
pub fn source_identity(tenant: &TenantId, requester: &Requester) -> String {
    match requester.token_id {
        Some(id) => aws_name(&format!("{tenant}.{id}.{}", requester.subject)),
        None => aws_name(&format!("{tenant}.{}", requester.subject)),
    }
}

/// The session lifetime asked of STS for a requested one: rounded down to a multiple of 900 s
/// (so 900, 1800, 2700 or 3600), never longer than asked. Few lifetimes mean few cache keys:
/// varying `ttl_seconds` cannot make every request a cache miss and an STS call.
pub fn ttl_bucket(requested: u32) -> u32 {
    let min = MIN_TTL_SECS as u32;
    (requested / min).max(1) * min
}

/// The `AssumeRole` call for a tenant placed `kind` in `bucket`, whose data role is
/// `role_arn`. Tables are sorted, so the same scope asked in another order is the same call.
/// A session policy over AWS's 2,048-character limit is refused, naming `tables`.
pub fn assume_role_request(
    role_arn: &str,
    kind: PlacementKind,
    bucket: &str,
    tenant: &TenantId,
    requester: &Requester,
    scope: &CredentialScope,
) -> Result<AssumeRoleRequest, Violation> {
    let tables = sorted_tables(scope);
    let policy = session_policy(
        bucket,
        scope.zone,
        tenant,
        &tables,
        scope.access == CredentialAccess::Write,
    )
    .to_string();
    if policy.len() > MAX_SESSION_POLICY_CHARS {
        return Err(Violation::new(
            "tables",
            format!(
                "{} tables need a session policy of {} characters and AWS allows {MAX_SESSION_POLICY_CHARS}; \
                 ask for fewer tables, or omit tables for the whole zone",
                tables.len(),
                policy.len()
            ),
        ));
    }
    Ok(AssumeRoleRequest {
        role_arn: role_arn.to_owned(),
        session_name: aws_name(&format!("{tenant}.{}", requester.subject)),
        source_identity: source_identity(tenant, requester),
        policy,
        tags: session_tags(kind, tenant),
        duration_seconds: ttl_bucket(scope.ttl_seconds),
    })
}

/// The storage URIs the credentials cover: each table's root, or the tenant's zone prefix.
pub fn locations(bucket_uri: &str, tenant: &TenantId, scope: &CredentialScope) -> Vec<String> {
    let base = format!(
        "{}/{}/{tenant}/",
        bucket_uri.trim_end_matches('/'),
        scope.zone.as_str()
    );
    let tables = sorted_tables(scope);
    if tables.is_empty() {
        vec![base]
    } else {
        tables.iter().map(|t| format!("{base}{t}/")).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn scope(tables: &[&str], access: CredentialAccess) -> CredentialScope {
        CredentialScope {
            zone: Zone::Gold,
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            access,
            ttl_seconds: 900,
        }
    }

    fn who(subject: &str, token: Option<&str>) -> Requester {
        Requester {
            issuer: "https://lakeplane".into(),
            tenant: Some("acme".into()),
            subject: subject.into(),
            token_id: token.map(|t| t.parse().expect("uuid")),
        }
    }

    fn valid(name: &str) -> bool {
        (2..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    }

    #[test]
    fn aws_names_keep_allowed_characters_and_map_the_rest_to_hyphens() {
        assert_eq!(aws_name("alice@example.com"), "alice@example.com");
        assert_eq!(aws_name("a+b=c,d_e-f"), "a+b=c,d_e-f");
        assert_eq!(aws_name("svc:etl/job#1"), "svc-etl-job-1");
        assert_eq!(aws_name("José Ñ"), "Jos---");
        assert_eq!(aws_name("x"), "x-");
        assert_eq!(aws_name(""), "--");
        for raw in ["x", "", "ünïcödé", "a b\tc", &"y".repeat(200)] {
            assert!(valid(&aws_name(raw)), "{raw:?} -> {}", aws_name(raw));
        }
    }

    #[test]
    fn long_names_are_truncated_with_a_digest_so_they_stay_distinct() {
        let a = format!("{}a", "u".repeat(70));
        let b = format!("{}b", "u".repeat(70));
        assert_eq!(aws_name(&a).len(), 64);
        assert_ne!(aws_name(&a), aws_name(&b));
        assert!(aws_name(&a).starts_with(&"u".repeat(55)));
        assert_eq!(aws_name(&a), aws_name(&a), "deterministic");
        assert_eq!(aws_name(&"v".repeat(64)), "v".repeat(64), "64 fits as it is");
    }

    #[test]
    fn a_shared_tenant_assumes_its_shard_role_tagged_with_its_id() {
        let acme = TenantId::parse("acme").expect("id");
        let arn = role_arn("aws", "123456789012", "lakeplane-shard-0003");
        assert_eq!(arn, "arn:aws:iam::123456789012:role/lakeplane-shard-0003");
        let request = assume_role_request(
            &arn,
            PlacementKind::Shared,
            "lakeplane-shared-0003",
            &acme,
            &who("ann@acme.io", Some("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")),
            &scope(&["orders", "customers"], CredentialAccess::Read),
        )
        .expect("request");
        assert_eq!(request.tags, vec![("tenant".to_owned(), "acme".to_owned())]);
        // The tenant and the token lead: a tenant-admin chooses the subject, not those.
        assert_eq!(
            request.source_identity,
            "acme.0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b.ann@acme.io"
        );
        assert_eq!(request.session_name, "acme.ann@acme.io");
        assert_eq!(request.duration_seconds, 900);
        let policy: Value = serde_json::from_str(&request.policy).expect("json");
        assert_eq!(
            policy,
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:ListBucket"],
                     "Resource": ["arn:aws:s3:::lakeplane-shared-0003"],
                     "Condition": {"StringLike": {"s3:prefix": ["gold/acme/customers/*", "gold/acme/orders/*"]}}},
                    {"Effect": "Allow", "Action": ["s3:GetObject"],
                     "Resource": ["arn:aws:s3:::lakeplane-shared-0003/gold/acme/customers/*",
                                  "arn:aws:s3:::lakeplane-shared-0003/gold/acme/orders/*"]}
                ]
            })
        );
    }

    #[test]
    fn a_dedicated_tenant_has_no_tags_and_write_adds_put_delete_and_multipart() {
        let acme = TenantId::parse("acme").expect("id");
        let request = assume_role_request(
            "arn:aws:iam::1:role/lp-t-acme",
            PlacementKind::Dedicated,
            "lp-t-acme",
            &acme,
            &who("etl", None),
            &scope(&[], CredentialAccess::Write),
        )
        .expect("request");
        assert!(request.tags.is_empty());
        assert_eq!(request.source_identity, "acme.etl", "a token without an id");
        let policy: Value = serde_json::from_str(&request.policy).expect("json");
        assert_eq!(
            policy["Statement"][1]["Action"],
            json!([
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload"
            ])
        );
        assert_eq!(
            policy["Statement"][1]["Resource"],
            json!(["arn:aws:s3:::lp-t-acme/gold/acme/*"])
        );
        assert_eq!(
            policy["Statement"][0]["Condition"]["StringLike"]["s3:prefix"],
            json!(["gold/acme/*"])
        );
    }

    #[test]
    fn the_same_scope_in_another_order_is_the_same_call() {
        let acme = TenantId::parse("acme").expect("id");
        let call = |tables: &[&str]| {
            assume_role_request(
                "arn",
                PlacementKind::Shared,
                "b",
                &acme,
                &who("s", None),
                &scope(tables, CredentialAccess::Read),
            )
            .expect("request")
        };
        assert_eq!(call(&["b", "a"]), call(&["a", "b"]));
        assert_ne!(call(&["a"]), call(&["a", "b"]));
        assert_eq!(
            locations("s3://b", &acme, &scope(&["b", "a"], CredentialAccess::Read)),
            ["s3://b/gold/acme/a/", "s3://b/gold/acme/b/"]
        );
        assert_eq!(
            locations("s3://b/", &acme, &scope(&[], CredentialAccess::Read)),
            ["s3://b/gold/acme/"]
        );
    }

    #[test]
    fn lifetimes_round_down_to_a_few_buckets() {
        assert_eq!(
            [900, 901, 1799, 1800, 2699, 2700, 3599, 3600].map(ttl_bucket),
            [900, 900, 900, 1800, 1800, 2700, 2700, 3600]
        );
    }

    #[test]
    fn a_long_identity_keeps_the_tenant_first_and_stays_distinct() {
        let tenant = TenantId::parse(&"t".repeat(40)).expect("id");
        let token = Some("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b");
        let a = source_identity(&tenant, &who("ann", token));
        let b = source_identity(&tenant, &who("bob", token));
        assert!(valid(&a) && a.starts_with(&format!("{tenant}.0190a1b2")), "{a}");
        assert_ne!(a, b, "the hash covers the subject cut off");
    }

    #[test]
    fn a_policy_over_the_aws_limit_is_refused_naming_tables() {
        let acme = TenantId::parse("acme").expect("id");
        let names: Vec<String> = (0..40).map(|i| format!("table_number_{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let refused = assume_role_request(
            "arn",
            PlacementKind::Shared,
            "lakeplane-shared-0000",
            &acme,
            &who("s", None),
            &scope(&refs, CredentialAccess::Read),
        )
        .expect_err("too long");
        assert_eq!(refused.field, "tables");
        assert!(refused.message.contains("2048"), "{}", refused.message);
    }
}
