//! Data subject erasure across a tenant's lake: which tables it reaches, the dry run, the
//! request, and moving each erasure through its stages (see `tenancy::erasure`).
//!
//! Progress is written to the store after each table, and each table's delete is found again
//! in its own log by the erasure's mark, so a crash at any point resumes without deleting
//! blindly twice and without a report ahead of what happened.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tenancy::audit::AuditEvent;
use tenancy::erasure::{ErasureStatus, ErasureTable, Identifier, Subject, SubjectColumn, ValidErasure};
use tenancy::store::{ErasureRecord, TableRecord};
use tenancy::stream::{DLQ_PAYLOAD, DLQ_SUFFIX};
use tenancy::tenant::{Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use crate::catalog::{Catalog, CatalogError};
use crate::delta::DeltaError;
use crate::delta::erase;
use crate::provision::{ProvisionError, Provisioner};
use crate::storage::StorageError;

/// A provisioning failure as the catalog's, for the erasure's one error type.
fn provision(e: ProvisionError) -> CatalogError {
    match e {
        ProvisionError::Store(e) => e.into(),
        ProvisionError::Storage(e) => e.into(),
        other => CatalogError::Storage(StorageError::Io {
            operation: "remove a migration's old location",
            target: other.to_string(),
            source: std::io::Error::other("refused"),
        }),
    }
}

/// The subject columns (with their types) an erasure matches `table` by: its own, or, for a
/// dead-letter table, those of its `source` table. Empty: erasures do not reach it. The one
/// coverage rule, for the erasures and for `?covered=` in table lists.
pub fn covered_columns(
    table: &TableRecord,
    source: Option<&TableRecord>,
) -> Vec<(String, tenancy::table::ColumnType)> {
    let declaring = match source {
        Some(source)
            if table.spec.name.as_str().strip_suffix(DLQ_SUFFIX) == Some(source.spec.name.as_str()) =>
        {
            source
        }
        _ => table,
    };
    declaring
        .spec
        .subject_columns
        .iter()
        .filter_map(|name| {
            let column = declaring.spec.columns.iter().find(|c| &c.name == name)?;
            Some((name.clone(), column.column_type))
        })
        .collect()
}

/// A covered table: one with subject columns, or the dead-letter table of one.
#[derive(Debug, Clone)]
pub struct Covered {
    /// The table.
    pub record: TableRecord,
    /// Its subject columns with their types (for a dead-letter table: its source table's).
    pub columns: Vec<(String, tenancy::table::ColumnType)>,
    /// Whether it is a dead-letter table, matched by payload.
    pub dead_letter: bool,
}

/// What an erasure of this tenant reaches now.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// Covered tables, by zone then name.
    pub covered: Vec<Covered>,
    /// Tables without subject columns (`zone/name`).
    pub not_covered: Vec<String>,
}

impl Reach {
    /// Every subject column of the covered tables, for validating a request.
    pub fn subject_columns(&self) -> Vec<SubjectColumn> {
        self.covered
            .iter()
            .filter(|c| !c.dead_letter)
            .flat_map(|c| {
                c.columns.iter().map(|(column, column_type)| SubjectColumn {
                    table: format!("{}/{}", c.record.spec.zone.as_str(), c.record.spec.name),
                    column: column.clone(),
                    column_type: *column_type,
                })
            })
            .collect()
    }
}

/// One table's matching rows in a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    /// The table.
    pub table: ErasureTable,
    /// Rows of the subjects in its latest version.
    pub rows: u64,
}

/// How erasures wait.
#[derive(Debug, Clone, Copy)]
pub struct ErasureSettings {
    /// How long after the deletes the vacuum waits, so readers in flight finish.
    pub window: chrono::Duration,
    /// How long after the request the deletes wait, so that every ingest buffer (of any
    /// replica or worker) holding events accepted before the request has committed them, or
    /// refused them, first: no row of a subject is committed after the erasure's delete.
    pub drain: chrono::Duration,
}

/// Erasures of every tenant.
pub struct Erasures {
    catalog: Arc<Catalog>,
    /// Removes the old locations of migrations in their grace period.
    provisioner: Arc<Provisioner>,
    /// Erasures this process is moving now: one task each.
    running: Mutex<HashSet<Uuid>>,
    settings: ErasureSettings,
}

const PAGE: u32 = 500;

impl Erasures {
    /// Erasures over the catalog's store and tables.
    pub fn new(catalog: Arc<Catalog>, provisioner: Arc<Provisioner>, settings: ErasureSettings) -> Arc<Self> {
        Arc::new(Self {
            catalog,
            provisioner,
            running: Mutex::new(HashSet::new()),
            settings,
        })
    }

    /// When an erasure asked for at `requested` starts deleting.
    pub fn deletes_after(&self, requested: DateTime<Utc>) -> DateTime<Utc> {
        requested + self.settings.drain
    }

    /// The tables an erasure of `tenant` reaches, and those it does not.
    pub async fn reach(&self, tenant: &TenantId) -> Result<Reach, CatalogError> {
        let store = self.catalog.store();
        let mut all = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store
                .list_tables(
                    tenant,
                    None,
                    after.as_ref().map(|(z, n)| (z.as_str(), n.as_str())),
                    PAGE,
                )
                .await?;
            let done = page.len() < PAGE as usize;
            after = page
                .last()
                .map(|t| (t.spec.zone.as_str().to_owned(), t.spec.name.to_string()));
            all.extend(
                page.into_iter()
                    .filter(|t| t.status == tenancy::store::TableStatus::Active),
            );
            if done {
                break;
            }
        }
        let mut reach = Reach::default();
        for t in &all {
            let name = t.spec.name.as_str();
            let source = name.strip_suffix(DLQ_SUFFIX).and_then(|base| {
                all.iter()
                    .find(|s| s.spec.zone == t.spec.zone && s.spec.name.as_str() == base)
            });
            let columns = covered_columns(t, source);
            let dead_letter = source.is_some();
            if columns.is_empty() {
                reach
                    .not_covered
                    .push(format!("{}/{}", t.spec.zone.as_str(), name));
            } else {
                reach.covered.push(Covered {
                    record: t.clone(),
                    columns,
                    dead_letter,
                });
            }
        }
        Ok(reach)
    }

    fn entry(c: &Covered) -> ErasureTable {
        ErasureTable {
            table_id: c.record.id,
            zone: c.record.spec.zone,
            name: c.record.spec.name.to_string(),
            dead_letter: c.dead_letter,
            delete_version: None,
            rows_deleted: None,
            vacuum_version: None,
            oldest_log_version: None,
        }
    }

    /// The predicate erasing the subjects from one covered table at `root`, if any row can
    /// match.
    async fn predicate(
        &self,
        root: &str,
        covered_columns: &[(String, tenancy::table::ColumnType)],
        dead_letter: bool,
        subjects: &[Subject],
    ) -> Result<Option<deltalake::datafusion::prelude::Expr>, CatalogError> {
        let matches: BTreeMap<String, Vec<Identifier>> =
            tenancy::erasure::table_matches(covered_columns, subjects);
        if matches.is_empty() {
            return Ok(None);
        }
        if dead_letter {
            Ok(erase::dead_letter_predicate(self.catalog.delta(), root, DLQ_PAYLOAD, &matches).await?)
        } else {
            Ok(erase::predicate(&matches))
        }
    }

    /// The covered tables an erasure cannot erase correctly now, each as `zone/name: why`
    /// (deletion vectors or a change data feed keep deleted rows in their files).
    pub async fn refusals(&self, tenant: &Tenant, reach: &Reach) -> Result<Vec<String>, CatalogError> {
        let mut refused = Vec::new();
        for c in &reach.covered {
            let root = self
                .catalog
                .table_root(tenant, c.record.spec.zone, c.record.spec.name.as_str());
            let table = crate::delta::tables::open(self.catalog.delta(), &root).await?;
            if let Some(why) = erase::refusal(&table) {
                refused.push(format!(
                    "{}/{}: {why}",
                    c.record.spec.zone.as_str(),
                    c.record.spec.name
                ));
            }
        }
        Ok(refused)
    }

    /// Counts the subjects' rows in every covered table; changes nothing.
    pub async fn dry_run(
        &self,
        tenant: &Tenant,
        reach: &Reach,
        subjects: &[Subject],
    ) -> Result<Vec<Matching>, CatalogError> {
        let mut counted = Vec::with_capacity(reach.covered.len());
        for c in &reach.covered {
            let root = self
                .catalog
                .table_root(tenant, c.record.spec.zone, c.record.spec.name.as_str());
            let rows = match self.predicate(&root, &c.columns, c.dead_letter, subjects).await? {
                Some(predicate) => erase::count(self.catalog.delta(), &root, None, &predicate).await?,
                None => 0,
            };
            counted.push(Matching {
                table: Self::entry(c),
                rows,
            });
        }
        Ok(counted)
    }

    /// Records an accepted erasure (status `planned`) with its audit event. The raw subjects
    /// are kept only until the deletes are done.
    pub async fn request(
        &self,
        tenant: &Tenant,
        reach: &Reach,
        valid: ValidErasure,
        requested_by: &str,
        deadline: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<ErasureRecord, CatalogError> {
        let now = tenancy::now();
        let salt = tenancy::erasure::new_salt();
        let record = ErasureRecord {
            id: Uuid::now_v7(),
            tenant: tenant.id.clone(),
            status: ErasureStatus::Planned,
            reason: valid.reason,
            requested_by: requested_by.to_owned(),
            subject_hashes: valid
                .subjects
                .iter()
                .map(|s| tenancy::erasure::subject_hashes(&salt, s))
                .collect(),
            salt,
            pending_subjects: Some(valid.subjects),
            tables: reach.covered.iter().map(Self::entry).collect(),
            not_covered: reach.not_covered.clone(),
            old_locations: Vec::new(),
            error: None,
            deadline,
            created_at: now,
            updated_at: now,
            completed_at: None,
        };
        self.catalog.store().insert_erasure(&record, audit).await?;
        Ok(record)
    }

    /// Moves the erasure on in the background once its ingest buffers have drained, unless
    /// this process is already moving it.
    pub fn spawn_advance(self: &Arc<Self>, tenant: TenantId, id: Uuid) {
        let this = self.clone();
        let wait = self.settings.drain.to_std().unwrap_or_default();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Err(e) = this.advance(&tenant, id).await {
                tracing::warn!(erasure = %id, error = %tenancy::error_chain(&e), "erasure stopped; the next pass resumes it");
            }
        });
    }

    /// Moves every unfinished erasure on (the leader's scheduled pass); returns how many moved.
    pub async fn advance_all(&self) -> Result<usize, CatalogError> {
        let mut moved = 0;
        for e in self.catalog.store().unfinished_erasures().await? {
            match self.advance(&e.tenant, e.id).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(erasure = %e.id, error = %tenancy::error_chain(&err), "erasure stopped; the next pass resumes it");
                }
            }
        }
        Ok(moved)
    }

    /// Moves one erasure as far as it can go now; true when its state changed.
    pub async fn advance(&self, tenant: &TenantId, id: Uuid) -> Result<bool, CatalogError> {
        if !self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
            return Ok(false);
        }
        let result = self.advance_held(tenant, id).await;
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        result
    }

    async fn advance_held(&self, tenant_id: &TenantId, id: Uuid) -> Result<bool, CatalogError> {
        let store = self.catalog.store();
        let Some(mut seen) = store.get_erasure(tenant_id, id).await? else {
            return Ok(false);
        };
        let Some(tenant) = store.get_tenant(tenant_id).await? else {
            return Ok(false);
        };
        // While the tenant moves, its tables' roots do too: wait for it to be ready.
        if tenant.status != TenantStatus::Ready {
            return Ok(false);
        }
        let mut moved = false;
        // Events accepted before the request may still sit in a buffer: delete after them.
        if seen.status == ErasureStatus::Planned && tenancy::now() < self.deletes_after(seen.created_at) {
            return Ok(false);
        }
        if seen.status == ErasureStatus::Planned {
            let subjects = seen.pending_subjects.clone().unwrap_or_default();
            let reach = self.reach(tenant_id).await?;
            for i in 0..seen.tables.len() {
                if seen.tables[i].rows_deleted.is_some() {
                    continue;
                }
                let entry = seen.tables[i].clone();
                let mut next = seen.clone();
                // A table dropped since the request has no rows left to erase.
                let outcome = match reach.covered.iter().find(|c| c.record.id == entry.table_id) {
                    None => Ok(erase::Erased {
                        delete_version: None,
                        rows_deleted: 0,
                    }),
                    Some(c) => {
                        let root =
                            self.catalog
                                .table_root(&tenant, c.record.spec.zone, c.record.spec.name.as_str());
                        // With nothing to match (a dead-letter table whose matching payloads a
                        // crashed run already deleted) the marks of earlier rounds are still
                        // looked for, so the floor and the delete version are not lost.
                        match self.predicate(&root, &c.columns, c.dead_letter, &subjects).await {
                            Ok(predicate) => {
                                let predicate =
                                    predicate.unwrap_or_else(|| deltalake::datafusion::prelude::lit(false));
                                erase::erase(self.catalog.delta(), &root, id, &predicate)
                                    .await
                                    .map_err(CatalogError::from)
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                crate::faults::point("erasure.delete");
                match outcome {
                    Ok(done) => {
                        // Readers are refused the versions before the delete before the delete
                        // is reported done.
                        if let Some(version) = done.delete_version {
                            store
                                .raise_erasure_floor(tenant_id, entry.table_id, version, id)
                                .await?;
                        }
                        next.tables[i].delete_version = done.delete_version;
                        next.tables[i].rows_deleted = Some(done.rows_deleted);
                    }
                    Err(CatalogError::Delta(DeltaError::Refused(why))) => {
                        // A failed erasure keeps nothing of the subjects but their hashes.
                        next.status = ErasureStatus::Failed;
                        next.pending_subjects = None;
                        next.error = Some(format!("{}/{}: {why}", entry.zone.as_str(), entry.name));
                    }
                    Err(e) => return Err(e),
                }
                next.updated_at = tenancy::now();
                if !store.update_erasure(&next, &seen).await? {
                    return Ok(moved);
                }
                moved = true;
                seen = next;
                if seen.status == ErasureStatus::Failed {
                    return Ok(true);
                }
            }
            // Every table's delete is done: the raw subjects are no longer needed.
            let mut next = seen.clone();
            next.status = ErasureStatus::Deleted;
            next.pending_subjects = None;
            next.updated_at = tenancy::now();
            if !store.update_erasure(&next, &seen).await? {
                return Ok(moved);
            }
            moved = true;
            seen = next;
        }
        if seen.status == ErasureStatus::Deleted {
            let mut next = seen.clone();
            next.status = ErasureStatus::AwaitingVacuum;
            next.updated_at = tenancy::now();
            if !store.update_erasure(&next, &seen).await? {
                return Ok(moved);
            }
            moved = true;
            seen = next;
        }
        // Readers that started before the deletes get the window to finish.
        // Progress writes move `updated_at`: once a table is vacuumed the window has passed.
        let window_passed = tenancy::now() >= seen.updated_at + self.settings.window
            || seen.tables.iter().any(|t| t.vacuum_version.is_some());
        if seen.status == ErasureStatus::AwaitingVacuum && window_passed {
            let window = self.settings.window;
            let vacuumed = self
                .each_table(
                    &tenant,
                    seen.clone(),
                    ErasureStatus::Vacuumed,
                    |t| t.vacuum_version.is_some(),
                    |t, v| t.vacuum_version = Some(v),
                    |_, root| async move {
                        let version = erase::vacuum(self.catalog.delta(), &root, window).await?;
                        crate::faults::point("erasure.vacuum");
                        Ok(version)
                    },
                )
                .await?;
            let Some(next) = vacuumed else {
                return Ok(moved);
            };
            moved = true;
            seen = next;
        }
        if seen.status == ErasureStatus::Vacuumed {
            let cleaned = self
                .each_table(
                    &tenant,
                    seen.clone(),
                    ErasureStatus::LogCleaned,
                    |t| t.oldest_log_version.is_some(),
                    |t, v| t.oldest_log_version = Some(v),
                    |entry, root| async move {
                        let oldest = erase::clean_log(self.catalog.delta(), &root).await?;
                        crate::faults::point("erasure.log");
                        // Recorded only once no commit up to the delete is left in the log.
                        match entry.delete_version {
                            Some(deleted) if oldest <= deleted => Err(DeltaError::Conflict(format!(
                                "the log still holds version {oldest}, at or before the erasure's delete {deleted}; retried"
                            ))),
                            _ => Ok(oldest),
                        }
                    },
                )
                .await?;
            let Some(next) = cleaned else {
                return Ok(moved);
            };
            moved = true;
            seen = next;
        }
        if seen.status == ErasureStatus::LogCleaned {
            // A migration in its grace period keeps a copy of every table from before the
            // deletes at the old location: it goes rather than waiting for the grace period to
            // end, once readers of the old location have had the erasure's window since the
            // switch (as readers of old versions had it since the deletes). The locations are
            // recorded first, so a crash after the removal still reports it.
            if let Some((migration, locations)) =
                self.provisioner.in_grace(tenant_id).await.map_err(provision)?
            {
                let switched = self.provisioner.switched_at(&migration);
                if switched.is_some_and(|at| tenancy::now() < at + self.settings.window) {
                    return Ok(moved);
                }
                if !locations.iter().all(|l| seen.old_locations.contains(l)) {
                    let mut next = seen.clone();
                    next.old_locations
                        .extend(locations.into_iter().filter(|l| !seen.old_locations.contains(l)));
                    next.updated_at = tenancy::now();
                    if !store.update_erasure(&next, &seen).await? {
                        return Ok(moved);
                    }
                    moved = true;
                    seen = next;
                }
                self.provisioner.clean_up(&migration).await.map_err(provision)?;
                crate::faults::point("erasure.old_keys");
                tracing::info!(erasure = %id, tenant = %tenant_id, "removed the old location of a migration in its grace period");
            }
            let mut next = seen.clone();
            next.status = ErasureStatus::Completed;
            next.updated_at = tenancy::now();
            next.completed_at = Some(next.updated_at);
            if store.update_erasure(&next, &seen).await? {
                moved = true;
            }
        }
        Ok(moved)
    }

    /// Runs `step` on the root of each table of the erasure not `done` yet and records its
    /// answer with `record`, writing progress after each table, then moves the erasure to
    /// `status`. Tables dropped since are passed over: their purge erases them whole. `None`
    /// when another process moved the erasure meanwhile.
    async fn each_table<F, Fut>(
        &self,
        tenant: &Tenant,
        mut seen: ErasureRecord,
        status: ErasureStatus,
        done: impl Fn(&ErasureTable) -> bool,
        record: impl Fn(&mut ErasureTable, i64),
        step: F,
    ) -> Result<Option<ErasureRecord>, CatalogError>
    where
        F: Fn(ErasureTable, String) -> Fut,
        Fut: std::future::Future<Output = Result<i64, DeltaError>>,
    {
        let store = self.catalog.store();
        for i in 0..seen.tables.len() {
            let entry = seen.tables[i].clone();
            if done(&entry) {
                continue;
            }
            let live = store
                .get_table(&tenant.id, entry.zone, &entry.name)
                .await?
                .is_some_and(|t| t.id == entry.table_id && t.status == tenancy::store::TableStatus::Active);
            if !live {
                continue;
            }
            let root = self.catalog.table_root(tenant, entry.zone, &entry.name);
            let answer = step(entry.clone(), root).await?;
            let mut next = seen.clone();
            record(&mut next.tables[i], answer);
            next.updated_at = tenancy::now();
            if !store.update_erasure(&next, &seen).await? {
                return Ok(None);
            }
            seen = next;
        }
        let mut next = seen.clone();
        next.status = status;
        next.updated_at = tenancy::now();
        if !store.update_erasure(&next, &seen).await? {
            return Ok(None);
        }
        Ok(Some(next))
    }
}
