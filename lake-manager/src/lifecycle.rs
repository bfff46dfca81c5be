//! Bucket lifecycle documents, computed by pure functions.
//!
//! Rules apply to zone prefixes (`bronze/`, or `bronze/<tenant>/` for a tenant's own rule),
//! transition only objects larger than [`MIN_TIERED_OBJECT_BYTES`], and never expire current
//! objects: the type has no Expiration action, because expiring files the Delta log still
//! references corrupts tables. Retention is the retention worker's job (Delta DELETE + VACUUM).

use serde::Serialize;
use tenancy::role::Zone;
use tenancy::tenant::TenantId;
use tenancy::validation::Violation;
use tenancy::zone::{MIN_TIERED_OBJECT_BYTES, StorageClass, Transition, ZonePolicy, ZonesConfig};

/// S3's limit on rules per bucket.
pub const MAX_RULES_PER_BUCKET: usize = 1000;

/// Days after which incomplete multipart uploads are aborted.
pub const ABORT_INCOMPLETE_MULTIPART_DAYS: u32 = 7;

/// An S3 lifecycle configuration, serialized with S3's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleDocument {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// One lifecycle rule. There is deliberately no `Expiration` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    /// Stable rule id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Always `Enabled`.
    pub status: &'static str,
    /// Which objects.
    pub filter: Filter,
    /// Tiering steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<RuleTransition>,
    /// Abort incomplete multipart uploads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_multipart_upload: Option<AbortIncomplete>,
    /// Expire noncurrent versions (versioned buckets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noncurrent_version_expiration: Option<NoncurrentExpiration>,
}

/// A rule's object filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    /// Key prefix.
    pub prefix: String,
    /// Only objects larger than this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_size_greater_than: Option<u64>,
}

/// A transition step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RuleTransition {
    /// Days after creation.
    pub days: u32,
    /// Target class.
    pub storage_class: StorageClass,
}

/// Abort incomplete multipart uploads after some days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AbortIncomplete {
    /// Days after initiation.
    pub days_after_initiation: u32,
}

/// Expire noncurrent versions after some days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NoncurrentExpiration {
    /// Days after becoming noncurrent.
    pub noncurrent_days: u32,
}

fn transition_rule(id: String, prefix: String, transitions: &[Transition]) -> Option<Rule> {
    // A rule without an action is invalid in S3; a zone that never tiers needs none.
    (!transitions.is_empty()).then(|| Rule {
        id,
        status: "Enabled",
        filter: Filter {
            prefix,
            object_size_greater_than: Some(MIN_TIERED_OBJECT_BYTES),
        },
        transitions: transitions
            .iter()
            .map(|t| RuleTransition {
                days: t.after_days,
                storage_class: t.storage_class,
            })
            .collect(),
        abort_incomplete_multipart_upload: None,
        noncurrent_version_expiration: None,
    })
}

fn housekeeping(noncurrent_days: Option<u32>) -> Vec<Rule> {
    let mut rules = vec![Rule {
        id: "abort-incomplete-multipart".to_owned(),
        status: "Enabled",
        filter: Filter {
            prefix: String::new(),
            object_size_greater_than: None,
        },
        transitions: Vec::new(),
        abort_incomplete_multipart_upload: Some(AbortIncomplete {
            days_after_initiation: ABORT_INCOMPLETE_MULTIPART_DAYS,
        }),
        noncurrent_version_expiration: None,
    }];
    if let Some(days) = noncurrent_days {
        rules.push(Rule {
            id: "expire-noncurrent-versions".to_owned(),
            status: "Enabled",
            filter: Filter {
                prefix: String::new(),
                object_size_greater_than: None,
            },
            transitions: Vec::new(),
            abort_incomplete_multipart_upload: None,
            noncurrent_version_expiration: Some(NoncurrentExpiration {
                noncurrent_days: days,
            }),
        });
    }
    rules
}

/// A dedicated bucket: one rule per tiering zone, from the tenant's own policies.
/// `noncurrent_days` is set when the bucket is versioned.
pub fn dedicated_document(
    tenant: &TenantId,
    policies: &[(Zone, ZonePolicy)],
    noncurrent_days: Option<u32>,
) -> LifecycleDocument {
    let mut rules: Vec<Rule> = policies
        .iter()
        .filter_map(|(zone, p)| {
            transition_rule(
                format!("zone-{}", zone.as_str()),
                format!("{}/{tenant}/", zone.as_str()),
                &p.transitions,
            )
        })
        .collect();
    rules.extend(housekeeping(noncurrent_days));
    LifecycleDocument { rules }
}

/// A shared shard: one rule per zone prefix from the platform defaults, plus a rule for each
/// tenant whose tiering differs. Those overrides may only tier earlier or colder (see
/// [`validate_shared_override`]), because S3 applies the coldest matching transition.
pub fn shard_document(
    defaults: &ZonesConfig,
    overrides: &[(TenantId, Zone, ZonePolicy)],
    noncurrent_days: Option<u32>,
) -> LifecycleDocument {
    let mut rules: Vec<Rule> = Zone::ALL
        .into_iter()
        .filter_map(|zone| {
            transition_rule(
                format!("zone-{}", zone.as_str()),
                format!("{}/", zone.as_str()),
                &defaults.get(zone).policy.transitions,
            )
        })
        .collect();
    for (tenant, zone, policy) in overrides {
        if policy.transitions != defaults.get(*zone).policy.transitions {
            rules.extend(transition_rule(
                format!("tenant-{tenant}-{}", zone.as_str()),
                format!("{}/{tenant}/", zone.as_str()),
                &policy.transitions,
            ));
        }
    }
    rules.extend(housekeeping(noncurrent_days));
    LifecycleDocument { rules }
}

/// How many tenant rules a shard's document holds: one per tenant and zone whose tiering
/// differs from the platform default.
pub fn tenant_rules(defaults: &ZonesConfig, overrides: &[(TenantId, Zone, ZonePolicy)]) -> usize {
    overrides
        .iter()
        .filter(|(_, zone, policy)| policy.transitions != defaults.get(*zone).policy.transitions)
        .count()
}

/// Whether `tenant`'s new `policy` for `zone` fits the shard's rule budget: S3 refuses a
/// lifecycle document of more than 1,000 rules, and then every lifecycle write to the shard
/// fails, other tenants' included. Replacing the tenant's own rule for the zone, or going back
/// to the default, always fits. Returns the reason when it does not.
pub fn check_rule_budget(
    defaults: &ZonesConfig,
    overrides: &[(TenantId, Zone, ZonePolicy)],
    tenant: &TenantId,
    zone: Zone,
    policy: &ZonePolicy,
    budget: usize,
) -> Result<(), String> {
    if policy.transitions == defaults.get(zone).policy.transitions {
        return Ok(());
    }
    let others: Vec<_> = overrides
        .iter()
        .filter(|(t, z, _)| !(t == tenant && *z == zone))
        .cloned()
        .collect();
    let used = tenant_rules(defaults, &others);
    if used < budget {
        Ok(())
    } else {
        Err(format!(
            "this tenant's shared bucket already holds {used} tenant lifecycle rules, its budget of {budget} \
             (S3 allows {MAX_RULES_PER_BUCKET} rules per bucket); keep the platform default tiering for {}, \
             or ask for dedicated placement",
            zone.as_str()
        ))
    }
}

/// The class an object written `day` days ago is in under a list of transitions.
fn class_on(transitions: &[Transition], day: u32) -> StorageClass {
    transitions
        .iter()
        .filter(|t| t.after_days <= day)
        .map(|t| t.storage_class)
        .max()
        .unwrap_or(StorageClass::Standard)
}

/// In a shared bucket the zone's default rule also matches the tenant's keys and S3 applies
/// the colder of two matching transitions, so a tenant can only tier earlier or colder there.
pub fn validate_shared_override(policy: &ZonePolicy, default: &ZonePolicy) -> Result<(), Violation> {
    let days = policy
        .transitions
        .iter()
        .chain(&default.transitions)
        .map(|t| t.after_days);
    for day in days {
        if class_on(&policy.transitions, day) < class_on(&default.transitions, day) {
            return Err(Violation::new(
                "transitions",
                format!(
                    "in a shared bucket the platform default moves data to {} at day {day}; a tenant there can \
                     only tier earlier or colder (ask for dedicated placement to keep data warmer)",
                    class_on(&default.transitions, day).as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// The rules of a lifecycle document (as JSON, desired or read back from the bucket) that act
/// on `tenant`'s keys: whole-bucket and whole-zone rules, and its own. In a shared shard the
/// other rules are other tenants' overrides, which name them and their tiering, so a tenant
/// is shown only these. A rule without a prefix acts on everything and is kept.
pub fn rules_acting_on(document: &serde_json::Value, tenant: &TenantId) -> serde_json::Value {
    let own: Vec<String> = Zone::ALL
        .into_iter()
        .map(|zone| format!("{}/{tenant}/", zone.as_str()))
        .collect();
    let mut shown = document.clone();
    if let Some(rules) = shown.get_mut("Rules").and_then(serde_json::Value::as_array_mut) {
        rules.retain(|rule| {
            let prefix = rule["Filter"]["Prefix"].as_str().unwrap_or("");
            own.iter().any(|keys| keys.starts_with(prefix))
        });
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> TenantId {
        TenantId::parse(raw).expect("valid")
    }

    #[test]
    fn shard_document_is_three_zone_rules_at_most_plus_housekeeping() {
        let defaults = ZonesConfig::default();
        let doc = shard_document(&defaults, &[], None);
        let ids: Vec<&str> = doc.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["zone-bronze", "zone-silver", "abort-incomplete-multipart"],
            "gold never tiers by default"
        );
        let json = serde_json::to_value(&doc).expect("json");
        assert_eq!(
            json["Rules"][0],
            serde_json::json!({
                "ID": "zone-bronze", "Status": "Enabled",
                "Filter": {"Prefix": "bronze/", "ObjectSizeGreaterThan": 131072},
                "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}, {"Days": 180, "StorageClass": "GLACIER_IR"}]
            })
        );
        assert_eq!(
            json["Rules"][2]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
            7
        );
    }

    #[test]
    fn only_differing_tenants_add_rules() {
        let defaults = ZonesConfig::default();
        let same = defaults.silver.policy.clone();
        let colder = ZonePolicy {
            retention_days: 365,
            transitions: vec![Transition {
                after_days: 30,
                storage_class: StorageClass::GlacierIr,
            }],
        };
        let overrides = vec![
            (id("same-co"), Zone::Silver, same),
            (id("cold-co"), Zone::Silver, colder),
        ];
        let doc = shard_document(&defaults, &overrides, Some(30));
        let ids: Vec<&str> = doc.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "zone-bronze",
                "zone-silver",
                "tenant-cold-co-silver",
                "abort-incomplete-multipart",
                "expire-noncurrent-versions"
            ]
        );
        assert_eq!(doc.rules[2].filter.prefix, "silver/cold-co/");
    }

    #[test]
    fn a_tenant_sees_the_shard_rules_that_act_on_its_keys_and_not_its_neighbours() {
        let defaults = ZonesConfig::default();
        let colder = ZonePolicy {
            retention_days: 365,
            transitions: vec![Transition {
                after_days: 30,
                storage_class: StorageClass::Glacier,
            }],
        };
        let overrides = vec![
            (id("acme"), Zone::Silver, colder.clone()),
            (id("acme-b"), Zone::Silver, colder.clone()),
            (id("bravo"), Zone::Gold, colder),
        ];
        let doc = serde_json::to_value(shard_document(&defaults, &overrides, Some(30))).expect("json");
        let ids = |doc: &serde_json::Value| -> Vec<String> {
            doc["Rules"]
                .as_array()
                .expect("rules")
                .iter()
                .map(|r| r["ID"].as_str().expect("id").to_owned())
                .collect()
        };
        let everything = ids(&doc);
        assert!(everything.contains(&"tenant-bravo-gold".to_owned()));
        let acme = ids(&rules_acting_on(&doc, &id("acme")));
        assert_eq!(
            acme,
            [
                "zone-bronze",
                "zone-silver",
                "tenant-acme-silver",
                "abort-incomplete-multipart",
                "expire-noncurrent-versions"
            ],
            "not acme-b's rule, though its id starts like acme's"
        );
        let bravo = ids(&rules_acting_on(&doc, &id("bravo")));
        assert!(bravo.contains(&"tenant-bravo-gold".to_owned()));
        assert!(!bravo.iter().any(|r| r.contains("acme")), "{bravo:?}");
    }

    #[test]
    fn a_shards_rule_budget_counts_only_other_rules_that_differ() {
        let defaults = ZonesConfig::default();
        let colder = |zone: Zone| {
            let mut p = defaults.get(zone).policy.clone();
            p.transitions = vec![Transition {
                after_days: 1,
                storage_class: StorageClass::GlacierIr,
            }];
            p
        };
        let existing = vec![
            (id("acme"), Zone::Bronze, colder(Zone::Bronze)),
            (id("bravo"), Zone::Silver, colder(Zone::Silver)),
            (id("delta"), Zone::Gold, defaults.get(Zone::Gold).policy.clone()),
        ];
        assert_eq!(
            tenant_rules(&defaults, &existing),
            2,
            "a default policy adds no rule"
        );
        let refused = check_rule_budget(
            &defaults,
            &existing,
            &id("cobalt"),
            Zone::Gold,
            &colder(Zone::Gold),
            2,
        )
        .expect_err("a third rule");
        assert!(refused.contains("budget of 2"), "{refused}");
        check_rule_budget(
            &defaults,
            &existing,
            &id("acme"),
            Zone::Bronze,
            &colder(Zone::Bronze),
            2,
        )
        .expect("replacing its own rule");
        check_rule_budget(
            &defaults,
            &existing,
            &id("cobalt"),
            Zone::Gold,
            &defaults.get(Zone::Gold).policy,
            2,
        )
        .expect("the default adds no rule");
        check_rule_budget(
            &defaults,
            &existing,
            &id("cobalt"),
            Zone::Gold,
            &colder(Zone::Gold),
            3,
        )
        .expect("room left");
    }

    #[test]
    fn warmer_overrides_in_shared_buckets_are_refused() {
        let default = ZonesConfig::default().bronze.policy;
        let warmer = ZonePolicy {
            retention_days: 2555,
            transitions: vec![Transition {
                after_days: 60,
                storage_class: StorageClass::StandardIa,
            }],
        };
        let err = validate_shared_override(&warmer, &default).expect_err("warmer");
        assert!(err.message.contains("day 30"), "{}", err.message);
        let colder = ZonePolicy {
            retention_days: 2555,
            transitions: vec![
                Transition {
                    after_days: 30,
                    storage_class: StorageClass::StandardIa,
                },
                Transition {
                    after_days: 90,
                    storage_class: StorageClass::GlacierIr,
                },
            ],
        };
        assert!(validate_shared_override(&colder, &default).is_ok());
    }

    #[test]
    fn no_generated_document_ever_expires_current_objects() {
        use proptest::prelude::*;
        let classes = [
            StorageClass::IntelligentTiering,
            StorageClass::StandardIa,
            StorageClass::GlacierIr,
        ];
        let transitions = prop::collection::vec((1u32..3000, 0usize..3), 0..3).prop_map(move |steps| {
            steps
                .into_iter()
                .map(|(d, c)| Transition {
                    after_days: d,
                    storage_class: classes[c],
                })
                .collect::<Vec<_>>()
        });
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(
                &(transitions.clone(), transitions, prop::option::of(1u32..400)),
                |(a, b, noncurrent)| {
                    let policies = vec![
                        (
                            Zone::Bronze,
                            ZonePolicy {
                                retention_days: 4000,
                                transitions: a.clone(),
                            },
                        ),
                        (
                            Zone::Gold,
                            ZonePolicy {
                                retention_days: 4000,
                                transitions: b.clone(),
                            },
                        ),
                    ];
                    let tenant = id("acme");
                    let docs = [
                        dedicated_document(&tenant, &policies, noncurrent),
                        shard_document(
                            &ZonesConfig::default(),
                            &[(tenant.clone(), Zone::Gold, policies[1].1.clone())],
                            noncurrent,
                        ),
                    ];
                    for doc in docs {
                        let text = serde_json::to_string(&doc).expect("json");
                        prop_assert!(
                            !text
                                .replace("NoncurrentVersionExpiration", "")
                                .contains("Expiration"),
                            "{}",
                            text
                        );
                        for rule in &doc.rules {
                            if !rule.transitions.is_empty() {
                                prop_assert_eq!(
                                    rule.filter.object_size_greater_than,
                                    Some(MIN_TIERED_OBJECT_BYTES)
                                );
                                prop_assert!(rule.filter.prefix.ends_with('/'));
                            } else {
                                prop_assert!(rule.filter.prefix.is_empty(), "housekeeping rules only");
                            }
                        }
                        prop_assert!(doc.rules.len() <= MAX_RULES_PER_BUCKET);
                    }
                    Ok(())
                },
            )
            .expect("property holds");
    }
}
