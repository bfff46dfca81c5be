//! IAM policy documents, as pure functions: a dedicated tenant's role, a shared shard's ABAC
//! role, trust policies and session policies that narrow vended credentials.

use serde_json::{Value, json};

use crate::role::Zone;
use crate::tenant::TenantId;

/// Escapes `*`, `?` and `$` so a name is matched literally inside a policy, using IAM's
/// `${*}`, `${?}` and `${$}` policy variables.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '*' => out.push_str("${*}"),
            '?' => out.push_str("${?}"),
            '$' => out.push_str("${$}"),
            c => out.push(c),
        }
    }
    out
}

/// Object-level actions a tenant's data role needs.
const OBJECT_ACTIONS: [&str; 4] = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
];

/// The inline policy of a dedicated tenant's role: its own bucket only.
pub fn dedicated_role_policy(bucket: &str) -> Value {
    let bucket = escape(bucket);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListOwnBucket", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": [format!("arn:aws:s3:::{bucket}")]},
            {"Sid": "ObjectsInOwnBucket", "Effect": "Allow", "Action": OBJECT_ACTIONS,
             "Resource": [format!("arn:aws:s3:::{bucket}/*")]}
        ]
    })
}

/// The inline policy of a shared shard's ABAC role: each session reaches only the zone
/// prefixes of the tenant named by its `tenant` session tag.
pub fn shard_role_policy(bucket: &str) -> Value {
    let bucket = escape(bucket);
    let prefixes: Vec<String> = Zone::ALL
        .iter()
        .map(|z| format!("{}/${{aws:PrincipalTag/tenant}}/*", z.as_str()))
        .collect();
    let objects: Vec<String> = Zone::ALL
        .iter()
        .map(|z| {
            format!(
                "arn:aws:s3:::{bucket}/{}/${{aws:PrincipalTag/tenant}}/*",
                z.as_str()
            )
        })
        .collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListOwnPrefixes", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [format!("arn:aws:s3:::{bucket}")],
             "Condition": {"StringLike": {"s3:prefix": prefixes}}},
            {"Sid": "ObjectsUnderOwnPrefixes", "Effect": "Allow", "Action": OBJECT_ACTIONS, "Resource": objects}
        ]
    })
}

/// Who may assume a data role: the configured broker, which may set the session's source
/// identity (the analyst vended credentials are for) and tag it with the `tenant` key and no
/// other.
pub fn trust_policy(broker_principal: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "BrokerAssumes", "Effect": "Allow", "Principal": {"AWS": broker_principal},
             "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"]},
            {"Sid": "BrokerTagsTenantOnly", "Effect": "Allow", "Principal": {"AWS": broker_principal},
             "Action": "sts:TagSession",
             "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["tenant"]}, "StringLike": {"aws:RequestTag/tenant": "?*"}}}
        ]
    })
}

/// A session policy narrowing vended credentials to one zone (and optionally some tables),
/// read-only or read-write. Effective permissions are the intersection with the role's.
pub fn session_policy(bucket: &str, zone: Zone, tenant: &TenantId, tables: &[String], write: bool) -> Value {
    let bucket = escape(bucket);
    let base = format!("{}/{}", zone.as_str(), escape(tenant.as_str()));
    let (objects, prefixes): (Vec<String>, Vec<String>) = if tables.is_empty() {
        (
            vec![format!("arn:aws:s3:::{bucket}/{base}/*")],
            vec![format!("{base}/*")],
        )
    } else {
        tables
            .iter()
            .map(|t| {
                (
                    format!("arn:aws:s3:::{bucket}/{base}/{}/*", escape(t)),
                    format!("{base}/{}/*", escape(t)),
                )
            })
            .unzip()
    };
    let actions: Vec<&str> = if write {
        OBJECT_ACTIONS.to_vec()
    } else {
        vec!["s3:GetObject"]
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [format!("arn:aws:s3:::{bucket}")],
             "Condition": {"StringLike": {"s3:prefix": prefixes}}},
            {"Effect": "Allow", "Action": actions, "Resource": objects}
        ]
    })
}

/// Role names: `<prefix>-t-<tenant>` for dedicated tenants, `<prefix>-shard-<NNNN>` for shards.
/// IAM allows 64 characters; tenant ids (40) and prefixes (20) keep within it.
pub fn role_name(prefix: &str, tenant: Option<&TenantId>, shard: Option<u32>) -> String {
    match (tenant, shard) {
        (Some(t), _) => format!("{prefix}-t-{t}"),
        (None, Some(s)) => format!("{prefix}-shard-{s:04}"),
        (None, None) => format!("{prefix}-unplaced"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_the_three_wildcards() {
        assert_eq!(escape("a*b?c$d"), "a${*}b${?}c${$}d");
        assert_eq!(escape("plain-name"), "plain-name");
    }

    #[test]
    fn dedicated_policy_names_only_its_bucket() {
        let doc = dedicated_role_policy("lakeplane-t-acme");
        assert_eq!(
            doc["Statement"][0]["Resource"],
            json!(["arn:aws:s3:::lakeplane-t-acme"])
        );
        assert_eq!(
            doc["Statement"][1]["Resource"],
            json!(["arn:aws:s3:::lakeplane-t-acme/*"])
        );
        assert!(!doc.to_string().contains("\"*\""), "no wildcard resource");
    }

    #[test]
    fn shard_policy_is_abac_on_every_zone_prefix() {
        let doc = shard_role_policy("lakeplane-shared-0003");
        assert_eq!(
            doc["Statement"][1]["Resource"],
            json!([
                "arn:aws:s3:::lakeplane-shared-0003/bronze/${aws:PrincipalTag/tenant}/*",
                "arn:aws:s3:::lakeplane-shared-0003/silver/${aws:PrincipalTag/tenant}/*",
                "arn:aws:s3:::lakeplane-shared-0003/gold/${aws:PrincipalTag/tenant}/*"
            ])
        );
        assert_eq!(
            doc["Statement"][0]["Condition"]["StringLike"]["s3:prefix"][0],
            "bronze/${aws:PrincipalTag/tenant}/*"
        );
    }

    #[test]
    fn trust_allows_only_the_tenant_tag() {
        let doc = trust_policy("arn:aws:iam::123456789012:role/lakeplane-broker");
        assert_eq!(
            doc["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::123456789012:role/lakeplane-broker"
        );
        assert_eq!(
            doc["Statement"][0]["Action"],
            json!(["sts:AssumeRole", "sts:SetSourceIdentity"]),
            "vended credentials name the analyst as their source identity"
        );
        assert_eq!(doc["Statement"][1]["Action"], "sts:TagSession");
        assert_eq!(
            doc["Statement"][1]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
            json!(["tenant"])
        );
    }

    #[test]
    fn session_policies_narrow_to_zone_tables_and_access() {
        let acme = TenantId::parse("acme").expect("id");
        let read = session_policy(
            "b",
            Zone::Gold,
            &acme,
            &["orders".into(), "odd*name".into()],
            false,
        );
        assert_eq!(read["Statement"][1]["Action"], json!(["s3:GetObject"]));
        assert_eq!(
            read["Statement"][1]["Resource"],
            json!([
                "arn:aws:s3:::b/gold/acme/orders/*",
                "arn:aws:s3:::b/gold/acme/odd${*}name/*"
            ])
        );
        let write = session_policy("b", Zone::Bronze, &acme, &[], true);
        assert_eq!(
            write["Statement"][1]["Resource"],
            json!(["arn:aws:s3:::b/bronze/acme/*"])
        );
        assert!(
            write["Statement"][1]["Action"]
                .as_array()
                .is_some_and(|a| a.len() == 4)
        );
    }

    #[test]
    fn role_names_fit_iam() {
        let long = TenantId::parse(&"a".repeat(40)).expect("id");
        assert!(role_name(&"p".repeat(20), Some(&long), None).len() <= 64);
        assert_eq!(role_name("lakeplane", None, Some(7)), "lakeplane-shard-0007");
    }
}
