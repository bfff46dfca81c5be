//! Erasing data subjects from one Delta table: counting their rows, deleting them with Delta
//! `DELETE` commits that carry the erasure's mark (an application transaction), and finding
//! those commits again after a crash, so a resumed erasure neither deletes blindly twice nor
//! loses its row counts.
//!
//! Rows deleted are counted from the table itself: for each marked delete at version `v`, the
//! matching rows at `v - 1` minus those at `v`. That holds whether the run that deleted
//! survived or not, and whether deltalake reported a count (it reports none for whole-file
//! removals).

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, StringArray};
use deltalake::datafusion::prelude::{Expr, SessionContext, col, lit};
use tenancy::erasure::Identifier;

use super::tables::{Marked, app_version, open, version_i64, version_of_mark};
use super::{DeltaError, DeltaSettings};

/// Delete rounds one table gets: rows of the subject committed by a writer racing the delete
/// are deleted by the next round; a table still gaining them after this many fails the
/// erasure with the reason rather than reporting it done.
const MAX_ROUNDS: i64 = 4;

/// What erasing one table did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    /// The last marked delete's version (`None`: nothing matched, nothing committed).
    pub delete_version: Option<i64>,
    /// Rows the marked deletes removed.
    pub rows_deleted: u64,
}

/// The application id marking an erasure's deletes in a table's log.
pub fn mark(erasure: uuid::Uuid) -> String {
    format!("lakeplane-erasure-{erasure}")
}

fn literal(identifier: &Identifier) -> Expr {
    match identifier {
        Identifier::Integer(n) => lit(*n),
        Identifier::Text(s) => lit(s.clone()),
    }
}

/// The rows of the subjects: any subject column holding one of its identifiers. `None` when
/// no identifier applies to this table.
pub fn predicate(matches: &BTreeMap<String, Vec<Identifier>>) -> Option<Expr> {
    matches
        .iter()
        .map(|(column, values)| col(column.as_str()).in_list(values.iter().map(literal).collect(), false))
        .reduce(Expr::or)
}

/// Why this table cannot be erased correctly yet, if so: deletion vectors leave the deleted
/// rows in the data files, and a change data feed keeps them in its own files.
pub fn refusal(table: &DeltaTable) -> Option<String> {
    let state = table.snapshot().ok()?;
    let configuration = state.metadata().configuration();
    let on = |key: &str| {
        configuration
            .get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    if on("delta.enableDeletionVectors") {
        Some(
            "deletion vectors are enabled (delta.enableDeletionVectors): a delete would leave \
             the rows in the data files until they are rewritten; erasure refuses such tables"
                .to_owned(),
        )
    } else if on("delta.enableChangeDataFeed") {
        Some(
            "the change data feed is enabled (delta.enableChangeDataFeed): deleted rows would \
             stay in its change files; erasure refuses such tables"
                .to_owned(),
        )
    } else {
        None
    }
}

/// Rows matching `predicate` in `table` as loaded.
async fn count_in(table: &DeltaTable, root: &str, predicate: &Expr) -> Result<u64, DeltaError> {
    let fail = |e: deltalake::DeltaTableError| DeltaError::delta("count subject rows", root, e);
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).map_err(fail)?;
    let provider = table.table_provider().await.map_err(|e| fail(e.into()))?;
    let rows = ctx
        .read_table(provider)
        .and_then(|df| df.filter(predicate.clone()))
        .map_err(|e| fail(e.into()))?
        .count()
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(rows as u64)
}

/// Rows matching `predicate` at `version` (`None`: the latest).
pub async fn count(
    settings: &DeltaSettings,
    root: &str,
    version: Option<i64>,
    predicate: &Expr,
) -> Result<u64, DeltaError> {
    let mut table = open(settings, root).await?;
    if let Some(version) = version {
        let at = u64::try_from(version).map_err(|_| DeltaError::Refused(format!("no version {version}")))?;
        table
            .load_version(at)
            .await
            .map_err(|e| DeltaError::delta("load version", root, e))?;
    }
    count_in(&table, root, predicate).await
}

/// The versions of this erasure's deletes already in the table, oldest first.
async fn marked_versions(settings: &DeltaSettings, root: &str, app_id: &str) -> Result<Vec<i64>, DeltaError> {
    let (_, landed) = app_version(settings, root, app_id).await?;
    let mut versions = Vec::new();
    for seq in 1..=landed.unwrap_or(0) {
        if let Marked::At(version) = version_of_mark(settings, root, app_id, seq, None).await? {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// Deletes the subjects' rows from the table at `root`, resuming the erasure's earlier rounds
/// if a run before this one committed some, until none match at the latest version.
pub async fn erase(
    settings: &DeltaSettings,
    root: &str,
    erasure: uuid::Uuid,
    predicate: &Expr,
) -> Result<Erased, DeltaError> {
    let app_id = mark(erasure);
    let mut versions = marked_versions(settings, root, &app_id).await?;
    let mut seq = i64::try_from(versions.len()).unwrap_or(i64::MAX);
    loop {
        let table = open(settings, root).await?;
        if let Some(why) = refusal(&table) {
            return Err(DeltaError::Refused(why));
        }
        if count_in(&table, root, predicate).await? == 0 {
            break;
        }
        if seq >= MAX_ROUNDS {
            return Err(DeltaError::Refused(format!(
                "rows of the subjects were committed again during each of {MAX_ROUNDS} deletes"
            )));
        }
        seq += 1;
        let properties = super::tables::erasure_commit_properties(&app_id, seq, erasure);
        let (table, _) = table
            .delete()
            .with_predicate(predicate.clone())
            .with_commit_properties(properties)
            .await
            .map_err(|e| DeltaError::delta("erasure delete", root, e))?;
        versions.push(table.version().map_or(0, version_i64));
    }
    let mut rows_deleted = 0;
    for version in &versions {
        let before = count(settings, root, Some(version - 1), predicate).await?;
        let after = count(settings, root, Some(*version), predicate).await?;
        rows_deleted += before.saturating_sub(after);
    }
    Ok(Erased {
        delete_version: versions.last().copied(),
        rows_deleted,
    })
}

/// Removes the data files the erasure's deletes left behind (and, with a window of 7 days or
/// more, any file no version references: leftovers of failed writers), keeping `window` of
/// history as maintenance's vacuum does; returns the table's version afterwards. Below 7 days
/// only what the log removed goes, so files of writers still committing survive.
pub async fn vacuum(
    settings: &DeltaSettings,
    root: &str,
    window: chrono::Duration,
) -> Result<i64, DeltaError> {
    let table = open(settings, root).await?;
    let mode = if window < super::maintain::MIN_VACUUM_RETENTION {
        deltalake::operations::vacuum::VacuumMode::Lite
    } else {
        deltalake::operations::vacuum::VacuumMode::Full
    };
    let (table, _) = table
        .vacuum()
        .with_retention_period(window)
        .with_enforce_retention_duration(false)
        .with_mode(mode)
        .with_commit_properties(super::tables::maintenance_commit_properties())
        .await
        .map_err(|e| DeltaError::delta("erasure vacuum", root, e))?;
    Ok(table.version().map_or(0, version_i64))
}

/// Writes a checkpoint at the latest version and removes every log file before it, so no
/// commit's file statistics (minimum and maximum values) of erased rows remain; returns the
/// oldest version whose commit is still in the log.
pub async fn clean_log(settings: &DeltaSettings, root: &str) -> Result<i64, DeltaError> {
    let table = open(settings, root).await?;
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .map_err(|e| DeltaError::delta("erasure checkpoint", root, e))?;
    let latest = table.version().unwrap_or(0);
    // Every file before the checkpoint just written goes, whatever its time: a storage clock
    // ahead of this one must not keep any.
    deltalake::checkpoints::cleanup_expired_logs_for(latest, table.log_store().as_ref(), i64::MAX, None)
        .await
        .map_err(|e| DeltaError::delta("erasure log cleanup", root, e))?;
    let mut oldest = version_i64(latest);
    for version in (0..latest).rev() {
        let present = table
            .log_store()
            .read_commit_entry(version)
            .await
            .map_err(|e| DeltaError::delta("read a commit", root, e))?
            .is_some();
        if !present {
            break;
        }
        oldest = version_i64(version);
    }
    Ok(oldest)
}

/// The payloads of a dead-letter table that hold one of the identifiers: a JSON object
/// payload holds it when the identifier's column is one of its keys with that value (integers
/// also as their decimal text); a payload that is not a JSON object (refused because it did
/// not parse) holds it when the identifier's text appears anywhere in it, erring toward
/// erasing.
pub fn payload_holds(payload: &str, matches: &BTreeMap<String, Vec<Identifier>>) -> bool {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(object)) => matches.iter().any(|(column, values)| {
            object.get(column).is_some_and(|value| {
                values.iter().any(|id| match (id, value) {
                    (Identifier::Integer(n), serde_json::Value::Number(v)) => v.as_i64() == Some(*n),
                    (Identifier::Integer(n), serde_json::Value::String(v)) => v == &n.to_string(),
                    (Identifier::Text(s), serde_json::Value::String(v)) => v == s,
                    (Identifier::Text(s), serde_json::Value::Number(v)) => &v.to_string() == s,
                    _ => false,
                })
            })
        }),
        // Integers are not looked for in free text: a digit string is part of too much else.
        _ => matches.values().flatten().any(|id| match id {
            Identifier::Text(text) => payload.contains(text.as_str()),
            Identifier::Integer(_) => false,
        }),
    }
}

/// The predicate erasing a dead-letter table's rows whose payload holds an identifier: the
/// matching payloads are found by reading the column (dead-letter tables are small by nature)
/// and deleted by exact text. `None` when no payload holds one.
pub async fn dead_letter_predicate(
    settings: &DeltaSettings,
    root: &str,
    payload_column: &str,
    matches: &BTreeMap<String, Vec<Identifier>>,
) -> Result<Option<Expr>, DeltaError> {
    let table = open(settings, root).await?;
    let fail = |e: deltalake::DeltaTableError| DeltaError::delta("read dead letters", root, e);
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).map_err(fail)?;
    let provider: Arc<dyn deltalake::datafusion::catalog::TableProvider> =
        table.table_provider().await.map_err(|e| fail(e.into()))?;
    let batches = ctx
        .read_table(provider)
        .and_then(|df| df.select_columns(&[payload_column]))
        .map_err(|e| fail(e.into()))?
        .collect()
        .await
        .map_err(|e| fail(e.into()))?;
    let mut held: Vec<String> = Vec::new();
    for batch in &batches {
        // deltalake's scan reads strings as views; one cast reads either form.
        let text =
            deltalake::arrow::compute::cast(batch.column(0), &deltalake::arrow::datatypes::DataType::Utf8)
                .map_err(|e| fail(deltalake::DeltaTableError::from(e)))?;
        let Some(payloads) = text.as_any().downcast_ref::<StringArray>() else {
            return Err(DeltaError::Refused(format!(
                "the dead-letter column {payload_column} is not text"
            )));
        };
        for i in 0..payloads.len() {
            if payloads.is_valid(i) && payload_holds(payloads.value(i), matches) {
                held.push(payloads.value(i).to_owned());
            }
        }
    }
    held.sort();
    held.dedup();
    Ok((!held.is_empty()).then(|| col(payload_column).in_list(held.into_iter().map(lit).collect(), false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches() -> BTreeMap<String, Vec<Identifier>> {
        BTreeMap::from([
            ("user_id".to_owned(), vec![Identifier::Integer(42)]),
            (
                "email".to_owned(),
                vec![Identifier::Text("ann@example.com".into())],
            ),
        ])
    }

    #[test]
    fn payloads_match_by_key_and_value_not_by_substring() {
        for (payload, held) in [
            (r#"{"user_id": 42, "x": 1}"#, true),
            (r#"{"user_id":"42"}"#, true),
            (r#"{"email":"ann@example.com","user_id":7}"#, true),
            (r#"{"user_id": 420}"#, false),
            (r#"{"other": 42}"#, false),
            (r#"{"email":"joann@example.com"}"#, false),
            // Not a JSON object: text identifiers are matched as text, erring toward erasing;
            // integers are not (a digit string is part of too much else).
            (r#"{"email": "ann@example.com","#, true),
            ("ann@example.com;broken", true),
            (r#"{"user_id": 42,"#, false),
            ("nothing here", false),
        ] {
            assert_eq!(payload_holds(payload, &matches()), held, "{payload}");
        }
    }

    #[test]
    fn the_predicate_ors_one_in_list_per_column() {
        let expr = predicate(&matches()).expect("predicate");
        let text = expr.to_string();
        assert!(text.contains("email IN ([Utf8(\"ann@example.com\")])"), "{text}");
        assert!(text.contains("user_id IN ([Int64(42)])"), "{text}");
        assert!(text.contains(" OR "), "{text}");
        assert!(predicate(&BTreeMap::new()).is_none());
    }
}
