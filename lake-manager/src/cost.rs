//! Monthly storage cost estimates from usage and a price table.

use serde::{Deserialize, Serialize};
use tenancy::zone::{MIN_TIERED_OBJECT_BYTES, StorageClass, ZonePolicy};

use crate::storage::ClassUsage;

const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Prices in USD; the defaults are AWS us-east-1 list prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Prices {
    /// STANDARD, per GB-month.
    pub standard_gb_month: f64,
    /// INTELLIGENT_TIERING (frequent tier), per GB-month.
    pub intelligent_tiering_gb_month: f64,
    /// STANDARD_IA, per GB-month.
    pub standard_ia_gb_month: f64,
    /// GLACIER_IR, per GB-month.
    pub glacier_ir_gb_month: f64,
    /// PUT, COPY, POST, LIST requests, per 1,000.
    pub put_per_1000: f64,
    /// GET and other reads, per 1,000.
    pub get_per_1000: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            standard_gb_month: 0.023,
            intelligent_tiering_gb_month: 0.023,
            standard_ia_gb_month: 0.0125,
            glacier_ir_gb_month: 0.004,
            put_per_1000: 0.005,
            get_per_1000: 0.0004,
        }
    }
}

impl Prices {
    /// Price per GB-month of a class (archive classes are never used for Delta data).
    pub fn gb_month(&self, class: StorageClass) -> f64 {
        match class {
            StorageClass::Standard => self.standard_gb_month,
            StorageClass::IntelligentTiering => self.intelligent_tiering_gb_month,
            StorageClass::StandardIa => self.standard_ia_gb_month,
            StorageClass::GlacierIr | StorageClass::Glacier | StorageClass::DeepArchive => {
                self.glacier_ir_gb_month
            }
        }
    }
}

/// How long an object stays in `class` under the policy before moving on or being deleted.
fn days_in_class(policy: &ZonePolicy, class: StorageClass) -> Option<u32> {
    let steps = &policy.transitions;
    let index = steps.iter().position(|t| t.storage_class == class)?;
    let end = steps
        .get(index + 1)
        .map_or(policy.retention_days, |next| next.after_days);
    Some(end.saturating_sub(steps[index].after_days))
}

/// The estimated monthly cost of one class's usage in a zone: bytes at the class price, with
/// objects under 128 KB billed as 128 KB in IA and Glacier IR, and a minimum-duration
/// surcharge when the policy moves or deletes objects before the class's minimum days.
pub fn monthly_cost(usage: &ClassUsage, policy: &ZonePolicy, prices: &Prices) -> f64 {
    let billed_bytes = match usage.storage_class {
        StorageClass::StandardIa | StorageClass::GlacierIr => {
            usage.bytes.saturating_sub(usage.small_bytes) + usage.small_objects * MIN_TIERED_OBJECT_BYTES
        }
        _ => usage.bytes,
    };
    let mut cost = billed_bytes as f64 / GB * prices.gb_month(usage.storage_class);
    let minimum = usage.storage_class.minimum_days();
    if let Some(stay) = days_in_class(policy, usage.storage_class).filter(|d| *d > 0 && *d < minimum) {
        cost *= f64::from(minimum) / f64::from(stay);
    }
    cost
}

#[cfg(test)]
mod tests {
    use tenancy::zone::Transition;

    use super::*;

    fn usage(class: StorageClass, bytes: u64, small_objects: u64, small_bytes: u64) -> ClassUsage {
        ClassUsage {
            storage_class: class,
            bytes,
            objects: small_objects + 1,
            small_objects,
            small_bytes,
        }
    }

    #[test]
    fn standard_is_bytes_times_price() {
        let policy = ZonePolicy {
            retention_days: 730,
            transitions: vec![],
        };
        let cost = monthly_cost(
            &usage(StorageClass::Standard, 100 * GB as u64, 0, 0),
            &policy,
            &Prices::default(),
        );
        assert!((cost - 2.3).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn small_objects_bill_as_128_kb_in_ia() {
        let policy = ZonePolicy {
            retention_days: 1095,
            transitions: vec![Transition {
                after_days: 30,
                storage_class: StorageClass::StandardIa,
            }],
        };
        // One million 1 KB objects: billed as 128 KB each.
        let small = usage(
            StorageClass::StandardIa,
            1_000_000 * 1024,
            1_000_000,
            1_000_000 * 1024,
        );
        let cost = monthly_cost(&small, &policy, &Prices::default());
        let expected = 1_000_000.0 * 131_072.0 / GB * 0.0125;
        assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    }

    #[test]
    fn leaving_a_class_early_pays_the_minimum_duration() {
        let policy = ZonePolicy {
            retention_days: 60,
            transitions: vec![Transition {
                after_days: 45,
                storage_class: StorageClass::GlacierIr,
            }],
        };
        let u = usage(StorageClass::GlacierIr, GB as u64, 0, 0);
        let cost = monthly_cost(&u, &policy, &Prices::default());
        assert!((cost - 0.004 * 90.0 / 15.0).abs() < 1e-9, "{cost}");
    }
}
