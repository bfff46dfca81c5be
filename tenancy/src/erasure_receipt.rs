//! The receipt of a completed erasure: what it proves was done, in a form the plane signs
//! (a compact JWS, EdDSA, verifiable with `/.well-known/jwks.json`). It names the subjects only
//! by their salted hashes, and carries the salt, so whoever holds a subject's identifiers can
//! check that this receipt covers them. That cuts both ways: whoever holds the receipt can test
//! a guessed identifier (an integer id by enumeration), so the receipt is itself personal data
//! of the subjects, for the tenant's records only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::erasure::{ErasureStatus, ErasureTable};
use crate::store::ErasureRecord;

/// The JWS `typ` of a receipt: an access-token verifier never accepts it (it carries none of
/// a token's required claims either).
pub const RECEIPT_TYPE: &str = "lakeplane-erasure-receipt+jwt";

/// How each subject hash was computed, stated in the receipt so it can be checked without the
/// plane's code.
pub const HASH_SCHEME: &str = "hex(sha256(salt || 0x00 || column || 0x00 || kind || value)), all as UTF-8 \
     text: salt is the lowercase hex string in `salt` (not decoded), column the subject column's \
     name, kind 'i' for an integer (value in decimal) or 's' for a string";

/// What a completed erasure's receipt states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The plane that signed it.
    pub iss: String,
    /// When it was signed (seconds since the epoch).
    pub iat: i64,
    /// The erasure.
    pub erasure_id: Uuid,
    /// The tenant whose lake it erased from.
    pub tenant: String,
    /// When it was asked for.
    pub requested_at: DateTime<Utc>,
    /// When it completed.
    pub completed_at: DateTime<Utc>,
    /// When it had to be complete.
    pub deadline: DateTime<Utc>,
    /// How `subject_hashes` were computed.
    pub hash_scheme: String,
    /// The erasure's salt, hex.
    pub salt: String,
    /// Per subject, one hash per identifier, in column order.
    pub subject_hashes: Vec<Vec<String>>,
    /// Each covered table: its delete version and rows deleted, the version vacuum ran at and
    /// the oldest log version kept.
    pub tables: Vec<ErasureTable>,
    /// Rows deleted over every table.
    pub rows_deleted: u64,
    /// Tables without subject columns (`zone/name`), which the erasure did not reach.
    pub not_covered: Vec<String>,
    /// Old locations of a placement migration that were removed because they still held the
    /// subjects' rows.
    pub old_locations_removed: Vec<String>,
}

/// The receipt of `record` signed as `issuer` at `now`; `Err` with the erasure's status when
/// it has not completed (a receipt states only what was done).
pub fn receipt(record: &ErasureRecord, issuer: &str, now: DateTime<Utc>) -> Result<Receipt, ErasureStatus> {
    let completed_at = match (record.status, record.completed_at) {
        (ErasureStatus::Completed, Some(at)) => at,
        (status, _) => return Err(status),
    };
    Ok(Receipt {
        iss: issuer.to_owned(),
        iat: now.timestamp(),
        erasure_id: record.id,
        tenant: record.tenant.to_string(),
        requested_at: record.created_at,
        completed_at,
        deadline: record.deadline,
        hash_scheme: HASH_SCHEME.to_owned(),
        salt: record.salt.clone(),
        subject_hashes: record.subject_hashes.clone(),
        tables: record.tables.clone(),
        rows_deleted: record.tables.iter().filter_map(|t| t.rows_deleted).sum(),
        not_covered: record.not_covered.clone(),
        old_locations_removed: record.old_locations.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::{Identifier, Subject, subject_hashes};
    use crate::role::Zone;
    use crate::tenant::TenantId;

    fn table(rows: Option<u64>) -> ErasureTable {
        ErasureTable {
            table_id: Uuid::now_v7(),
            zone: Zone::Silver,
            name: "users".into(),
            dead_letter: false,
            delete_version: rows.map(|_| 4),
            rows_deleted: rows,
            vacuum_version: Some(6),
            oldest_log_version: Some(6),
        }
    }

    fn record(status: ErasureStatus) -> ErasureRecord {
        let now = crate::now();
        let subject: Subject = [("email".to_owned(), Identifier::Text("ann@example.com".into()))].into();
        ErasureRecord {
            id: Uuid::now_v7(),
            tenant: TenantId::from_trusted("acme".to_owned()),
            status,
            reason: "ticket 7".into(),
            requested_by: "admin@acme".into(),
            salt: "00ff".into(),
            subject_hashes: vec![subject_hashes("00ff", &subject)],
            pending_subjects: None,
            tables: vec![table(Some(3)), table(Some(0)), table(None)],
            not_covered: vec!["gold/kpis".into()],
            old_locations: vec!["s3://old/silver/acme/".into()],
            error: None,
            deadline: now + chrono::Duration::days(30),
            created_at: now,
            updated_at: now,
            completed_at: (status == ErasureStatus::Completed).then_some(now),
        }
    }

    #[test]
    fn only_a_completed_erasure_has_a_receipt() {
        for status in ErasureStatus::ALL {
            let made = receipt(&record(status), "lakeplane", crate::now());
            assert_eq!(made.is_ok(), status == ErasureStatus::Completed, "{status:?}");
            if let Err(told) = made {
                assert_eq!(told, status);
            }
        }
    }

    #[test]
    fn a_receipt_states_counts_and_hashes_never_the_subjects() {
        let done = record(ErasureStatus::Completed);
        let made = receipt(&done, "lakeplane", crate::now()).expect("completed");
        assert_eq!(made.rows_deleted, 3);
        assert_eq!(made.tables.len(), 3);
        assert_eq!(
            made.old_locations_removed,
            vec!["s3://old/silver/acme/".to_owned()]
        );
        let text = serde_json::to_string(&made).expect("json");
        assert!(!text.contains("ann@example.com"), "{text}");
        assert!(
            !text.contains("ticket 7"),
            "the free-text reason stays out: {text}"
        );
        assert!(text.contains(&done.subject_hashes[0][0]));
    }
}
