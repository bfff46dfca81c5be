//! Table grants applied to a request: one place turns a grants decision into the answer the
//! API gives, so every route answers a missing grant the same way.
//!
//! - A table the caller may neither read nor write is hidden: 404, as if it did not exist.
//! - A table it sees but may not use as asked, or a zone it may not use: 403, naming the
//!   privilege that is not granted.

use std::sync::{Arc, LazyLock};

use tenancy::credentials::{CredentialAccess, CredentialScope};
use tenancy::grants::{Identity, Privilege, Scope, TenantGrants};
use tenancy::policy::Denial;
use tenancy::role::Zone;
use tenancy::tenant::TenantId;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// What an admin's checks read: admins hold every privilege without grants.
static NONE: LazyLock<Arc<TenantGrants>> = LazyLock::new(|| Arc::new(TenantGrants::default()));

impl Caller {
    /// The caller as grants see it.
    pub fn identity(&self) -> Identity<'_> {
        self.principal.identity()
    }

    /// The tenant's grants, from the cache; admins skip the lookup.
    pub async fn grants(&self, state: &AppState, tenant: &TenantId) -> Result<Arc<TenantGrants>, ApiError> {
        if self.principal.role.manages_tenant() {
            return Ok(NONE.clone());
        }
        Ok(state.grants.of(tenant).await?)
    }

    /// Whether a table shows to the caller in lists and gets.
    pub fn sees_table(&self, grants: &TenantGrants, zone: Zone, name: &str) -> bool {
        grants.sees_table(&self.identity(), zone, name)
    }

    /// Checks `privilege` on a table: 404 when the table is hidden from the caller, 403 when it
    /// shows but the privilege is not granted.
    pub fn use_table(
        &self,
        grants: &TenantGrants,
        zone: Zone,
        name: &str,
        privilege: Privilege,
    ) -> Result<(), ApiError> {
        if !self.sees_table(grants, zone, name) {
            return Err(ApiError::NotFound(format!("no table {}/{name}", zone.as_str())));
        }
        grants
            .check_table(&self.identity(), zone, name, privilege)
            .map_err(forbidden)
    }

    /// Checks `privilege` on a table the caller reaches through something it already sees (a
    /// stream, a pipeline): 403 when not granted.
    pub fn require_table(
        &self,
        grants: &TenantGrants,
        zone: Zone,
        name: &str,
        privilege: Privilege,
    ) -> Result<(), ApiError> {
        grants
            .check_table(&self.identity(), zone, name, privilege)
            .map_err(forbidden)
    }

    /// Checks `privilege` on a zone as a whole (held there or on the tenant): 403 when not
    /// granted.
    pub fn use_zone(&self, grants: &TenantGrants, zone: Zone, privilege: Privilege) -> Result<(), ApiError> {
        grants
            .check_zone(&self.identity(), zone, privilege)
            .map_err(forbidden)
    }

    /// Narrows a credential request to what the caller's grants allow. Named tables must each
    /// be usable (404 when hidden, 403 when read-only and writing). A zone-wide request stays
    /// zone-wide only when the zone's privilege is held as a whole; otherwise it becomes a
    /// request for exactly the tables granted one by one, so the session policy lists only
    /// their prefixes (403 when there are none).
    pub fn scope_credentials(
        &self,
        grants: &TenantGrants,
        scope: &mut CredentialScope,
    ) -> Result<(), ApiError> {
        let needed = credential_privileges(scope.access);
        if !scope.tables.is_empty() {
            for name in &scope.tables {
                for p in needed {
                    self.use_table(grants, scope.zone, name, *p)?;
                }
            }
            return Ok(());
        }
        match grants.scope(&self.identity(), scope.zone, needed) {
            Scope::Whole => Ok(()),
            Scope::Tables(names) if names.is_empty() => Err(ApiError::Denied(Denial::Forbidden(format!(
                "no table of zone {} is granted for {}",
                scope.zone.as_str(),
                scope.access.as_str()
            )))),
            Scope::Tables(names) => {
                scope.tables = names.into_iter().collect();
                Ok(())
            }
        }
    }
}

/// A privilege not granted: 403 naming it.
fn forbidden(missing: tenancy::grants::Missing) -> ApiError {
    ApiError::Denied(Denial::Forbidden(missing.to_string()))
}

/// The privileges a credential needs on each table it covers: `SELECT` to read; `SELECT` and
/// `MODIFY` to write, because write credentials read too.
pub fn credential_privileges(access: CredentialAccess) -> &'static [Privilege] {
    match access {
        CredentialAccess::Read => &[Privilege::Select],
        CredentialAccess::Write => &[Privilege::Select, Privilege::Modify],
    }
}
