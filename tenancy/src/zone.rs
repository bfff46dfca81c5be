//! Zone policies: retention and tiering per zone, with platform defaults and bounds.
//!
//! Only classes Delta can read without a restore are allowed: STANDARD_IA, GLACIER_IR and
//! INTELLIGENT_TIERING (in its default, instant-access tiers). GLACIER and DEEP_ARCHIVE
//! would leave files the Delta log references unreadable.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::role::Zone;
use crate::validation::Violation;

/// Objects at or below this size stay in STANDARD: Delta logs and checkpoints are small,
/// and IA and Glacier IR bill at least 128 KB per object anyway.
pub const MIN_TIERED_OBJECT_BYTES: u64 = 131_072;

/// An S3 storage class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    /// Frequent access; where every object starts.
    Standard,
    /// Automatic tiering between instant-access tiers.
    IntelligentTiering,
    /// Infrequent access, 30-day minimum.
    StandardIa,
    /// Archive with millisecond access, 90-day minimum.
    GlacierIr,
    /// Archive needing a restore: refused for Delta data.
    Glacier,
    /// Archive needing a restore: refused for Delta data.
    DeepArchive,
}

impl StorageClass {
    /// The S3 name.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::GlacierIr => "GLACIER_IR",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
        }
    }

    /// Days an object is billed for at least, once it is in this class.
    pub fn minimum_days(self) -> u32 {
        match self {
            StorageClass::Standard | StorageClass::IntelligentTiering => 0,
            StorageClass::StandardIa => 30,
            StorageClass::GlacierIr => 90,
            StorageClass::Glacier => 90,
            StorageClass::DeepArchive => 180,
        }
    }
}

/// Move objects to a colder class some days after creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Days after the object was written.
    pub after_days: u32,
    /// The class to move to.
    pub storage_class: StorageClass,
}

/// A zone's retention and tiering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonePolicy {
    /// Rows older than this (by the table's event time) are deleted by the retention worker.
    pub retention_days: u32,
    /// Tiering steps, in order.
    pub transitions: Vec<Transition>,
}

/// The platform's default policy for a zone and the bounds tenants may tune within.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneDefaults {
    /// The default policy.
    #[serde(flatten)]
    pub policy: ZonePolicy,
    /// Shortest retention a tenant may set.
    pub min_retention_days: u32,
    /// Longest retention a tenant may set.
    pub max_retention_days: u32,
}

/// Defaults and bounds for the three zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonesConfig {
    /// Raw data.
    pub bronze: ZoneDefaults,
    /// Cleaned data.
    pub silver: ZoneDefaults,
    /// Business-ready data.
    pub gold: ZoneDefaults,
}

impl Default for ZonesConfig {
    fn default() -> Self {
        let ia = |days| Transition {
            after_days: days,
            storage_class: StorageClass::StandardIa,
        };
        let glacier_ir = |days| Transition {
            after_days: days,
            storage_class: StorageClass::GlacierIr,
        };
        Self {
            bronze: ZoneDefaults {
                policy: ZonePolicy {
                    retention_days: 7 * 365,
                    transitions: vec![ia(30), glacier_ir(180)],
                },
                min_retention_days: 30,
                max_retention_days: 10 * 365,
            },
            silver: ZoneDefaults {
                policy: ZonePolicy {
                    retention_days: 3 * 365,
                    transitions: vec![ia(30)],
                },
                min_retention_days: 30,
                max_retention_days: 10 * 365,
            },
            gold: ZoneDefaults {
                policy: ZonePolicy {
                    retention_days: 2 * 365,
                    transitions: vec![],
                },
                min_retention_days: 30,
                max_retention_days: 10 * 365,
            },
        }
    }
}

impl ZonesConfig {
    /// The defaults of one zone.
    pub fn get(&self, zone: Zone) -> &ZoneDefaults {
        match zone {
            Zone::Bronze => &self.bronze,
            Zone::Silver => &self.silver,
            Zone::Gold => &self.gold,
        }
    }

    /// Checks the platform's own defaults against the same rules tenants follow.
    pub fn validate(&self) -> Result<(), Violation> {
        for zone in Zone::ALL {
            let d = self.get(zone);
            let key = format!("zones.{}", zone.as_str());
            if d.min_retention_days > d.max_retention_days {
                return Err(Violation::new(
                    format!("{key}.min_retention_days"),
                    "must not exceed max_retention_days",
                ));
            }
            if let Err(v) = validate_policy(&d.policy, d) {
                return Err(Violation::new(
                    format!("{key}.{}", v[0].field),
                    v[0].message.clone(),
                ));
            }
        }
        Ok(())
    }
}

/// Validates a tenant's policy for a zone against the platform bounds; every problem names its
/// field (`retention_days`, `transitions[1].storage_class`, ...).
pub fn validate_policy(policy: &ZonePolicy, bounds: &ZoneDefaults) -> Result<(), Vec<Violation>> {
    let mut errors = Vec::new();
    if !(bounds.min_retention_days..=bounds.max_retention_days).contains(&policy.retention_days) {
        errors.push(Violation::new(
            "retention_days",
            format!(
                "must be between {} and {} (platform bounds)",
                bounds.min_retention_days, bounds.max_retention_days
            ),
        ));
    }
    if policy.transitions.len() > 3 {
        errors.push(Violation::new("transitions", "at most 3 transitions"));
    }
    let mut previous: Option<Transition> = None;
    for (i, t) in policy.transitions.iter().enumerate() {
        let field = |f: &str| format!("transitions[{i}].{f}");
        match t.storage_class {
            StorageClass::Glacier | StorageClass::DeepArchive => errors.push(Violation::new(
                field("storage_class"),
                format!(
                    "{} needs a restore before reading, so Delta tables would fail on those files; \
                     use GLACIER_IR, STANDARD_IA or INTELLIGENT_TIERING",
                    t.storage_class.as_str()
                ),
            )),
            StorageClass::Standard => errors.push(Violation::new(
                field("storage_class"),
                "objects start in STANDARD; transition to a colder class",
            )),
            StorageClass::StandardIa if t.after_days < 30 => errors.push(Violation::new(
                field("after_days"),
                "STANDARD_IA needs at least 30 days (an S3 rule)",
            )),
            _ => {}
        }
        if t.after_days >= policy.retention_days {
            errors.push(Violation::new(
                field("after_days"),
                "must be less than retention_days",
            ));
        }
        if let Some(p) = previous {
            if t.after_days <= p.after_days {
                errors.push(Violation::new(
                    field("after_days"),
                    "must be later than the previous transition",
                ));
            }
            if t.storage_class <= p.storage_class {
                errors.push(Violation::new(
                    field("storage_class"),
                    "must be colder than the previous transition",
                ));
            }
        }
        previous = Some(*t);
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_workshop_table_and_valid() {
        let zones = ZonesConfig::default();
        assert_eq!(zones.bronze.policy.retention_days, 2555);
        assert_eq!(
            zones.silver.policy.transitions,
            vec![Transition {
                after_days: 30,
                storage_class: StorageClass::StandardIa
            }]
        );
        assert!(zones.gold.policy.transitions.is_empty());
        zones.validate().expect("valid");
    }

    #[test]
    fn violations_name_the_field_and_the_bound() {
        let bounds = ZonesConfig::default().bronze;
        let bad = ZonePolicy {
            retention_days: 20_000,
            transitions: vec![
                Transition {
                    after_days: 10,
                    storage_class: StorageClass::StandardIa,
                },
                Transition {
                    after_days: 5,
                    storage_class: StorageClass::DeepArchive,
                },
            ],
        };
        let errors = validate_policy(&bad, &bounds).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"retention_days"));
        assert!(fields.contains(&"transitions[0].after_days"));
        assert!(fields.contains(&"transitions[1].storage_class"));
        assert!(errors.iter().any(|e| e.message.contains("restore")));
        assert!(errors[0].message.contains("3650"), "{}", errors[0].message);
    }
}
