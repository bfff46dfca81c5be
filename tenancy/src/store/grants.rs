//! Table grants.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::grants::{Change, ChangeError, Grant, Grantee, Privilege, Securable};
use crate::tenant::TenantId;

/// The grants on one securable, by grantee.
pub type Assignments = BTreeMap<Grantee, BTreeSet<Privilege>>;

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The grants on the securable before.
    pub before: Assignments,
    /// And after.
    pub after: Assignments,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeGrantsError {
    /// The changes are invalid; nothing was written.
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(ChangeError),
    /// The table does not exist (any more); nothing was written.
    #[error("no such table")]
    NoTable,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Grants of privileges on a tenant, its zones and tables.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Every grant of a tenant.
    async fn list_grants(&self, tenant: &TenantId) -> Result<Vec<Grant>, StoreError>;

    /// Applies `changes` to the grants on `securable` under the tenant's lock, with
    /// [`crate::grants::apply`], writing the result, bumping the grants version and appending
    /// `audit` with `details` set to the before and after. A table securable must name an active
    /// table when the change adds anything. No-op changes still audit, but do not bump the version.
    async fn change_grants(
        &self,
        tenant: &TenantId,
        securable: &Securable,
        changes: &[Change],
        by: &str,
        audit: &AuditEvent,
    ) -> Result<Changed, ChangeGrantsError>;

    /// The grants version: it changes whenever any tenant's grants change.
    async fn grants_version(&self) -> Result<i64, StoreError>;
}
