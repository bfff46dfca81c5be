//! Authorization: one function decides every request, from the caller and the action.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::role::{Access, Role, Zone};
use crate::tenant::TenantId;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Who (the token's `sub`).
    pub subject: String,
    /// Their role.
    pub role: Role,
    /// Their tenant; `None` only for platform-admins.
    pub tenant: Option<TenantId>,
    /// The token's id (`jti`), when it has one.
    pub token_id: Option<Uuid>,
    /// Who issued the token.
    pub issuer: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// The token's groups (grants to `group:NAME` reach it).
    pub groups: Vec<String>,
}

impl Principal {
    /// The caller as grants see it.
    pub fn identity(&self) -> crate::grants::Identity<'_> {
        crate::grants::Identity {
            subject: &self.subject,
            role: self.role,
            groups: &self.groups,
        }
    }
}

/// What a tenant PATCH touches; tenant-admins may change only the display name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantChange {
    /// `tier` is present.
    pub tier: bool,
    /// `isolation` is present.
    pub isolation: bool,
    /// `quotas` is present.
    pub quotas: bool,
}

/// Something a caller wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Read installation details.
    ReadPlatform,
    /// Create a tenant.
    CreateTenant,
    /// List tenants (tenant callers see only their own).
    ListTenants,
    /// Read one tenant.
    ReadTenant(&'a TenantId),
    /// Change one tenant.
    UpdateTenant(&'a TenantId, TenantChange),
    /// Delete one tenant.
    DeleteTenant(&'a TenantId),
    /// List or revoke a tenant's tokens.
    ManageTokens(&'a TenantId),
    /// Issue a token of `role` for the tenant.
    IssueToken(&'a TenantId, Role),
    /// Read the audit log, of one tenant or of all.
    ReadAudit(Option<&'a TenantId>),
    /// Plan or run a placement rebalance.
    Rebalance,
    /// Read or tune a tenant's zone policies, lifecycle and usage.
    ManageStorage(&'a TenantId),
    /// Inspect or repair platform storage (buckets, provisioning retries).
    AdminStorage,
    /// Revoke any token, platform-admin tokens included.
    AdminTokens,
    /// List every worker, retry a failed one.
    AdminWorkers,
    /// Create, read or delete a tenant's shares and their recipients; each shared table's zone
    /// is checked separately with [`Action::Zone`].
    ManageShares(&'a TenantId),
    /// Read or write data in a tenant's zone.
    Zone(&'a TenantId, Zone, Access),
    /// Ask for, dry-run or read a tenant's data subject erasures.
    EraseSubjects(&'a TenantId),
    /// Read or change a tenant's table grants, for any principal.
    ManageGrants(&'a TenantId),
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// Another tenant's resource: answered as if it did not exist.
    Hidden,
    /// The caller's role may not do this.
    Forbidden(String),
}

/// The single authorization decision.
pub fn authorize(caller: &Principal, action: Action<'_>) -> Result<(), Denial> {
    let platform = caller.role == Role::PlatformAdmin;
    let forbid = |why: &str| Err(Denial::Forbidden(format!("role {} may not {why}", caller.role)));
    // Tenant isolation first, so a foreign tenant's existence never leaks through a 403.
    let target = match action {
        Action::ReadTenant(t)
        | Action::UpdateTenant(t, _)
        | Action::DeleteTenant(t)
        | Action::ManageTokens(t)
        | Action::ManageStorage(t)
        | Action::IssueToken(t, _)
        | Action::ManageShares(t)
        | Action::EraseSubjects(t)
        | Action::ManageGrants(t)
        | Action::Zone(t, _, _) => Some(t),
        Action::ReadAudit(t) => t,
        _ => None,
    };
    if let Some(target) = target
        && !platform
        && caller.tenant.as_ref() != Some(target)
    {
        return Err(Denial::Hidden);
    }
    match action {
        _ if platform => match action {
            Action::IssueToken(_, Role::PlatformAdmin) => {
                forbid("issue platform-admin tokens through the API; use `lakeplane token create`")
            }
            _ => Ok(()),
        },
        Action::ReadPlatform => forbid("read platform details"),
        Action::CreateTenant => forbid("create tenants"),
        Action::Rebalance => forbid("rebalance placement"),
        Action::AdminStorage => forbid("administer platform storage"),
        Action::AdminTokens => forbid("revoke other tenants' or platform tokens"),
        Action::AdminWorkers => forbid("inspect or retry the platform's workers"),
        Action::ListTenants
        | Action::ReadTenant(_)
        | Action::ManageTokens(_)
        | Action::ManageStorage(_)
        | Action::ReadAudit(Some(_)) => {
            if caller.role == Role::TenantAdmin {
                Ok(())
            } else {
                forbid("manage the tenant")
            }
        }
        Action::ReadAudit(None) => forbid("read every tenant's audit log"),
        // The contract's role table: only tenant-admins manage shares. A recipient token outlives
        // the token that made it (up to 30 days), so making one is a tenant-admin's decision.
        Action::ManageShares(_) => {
            if caller.role == Role::TenantAdmin {
                Ok(())
            } else {
                forbid("manage shares")
            }
        }
        // Erasure deletes in every zone, bronze included, and its requests are personal data
        // requests: the tenant's administrators decide them.
        Action::EraseSubjects(_) => {
            if caller.role == Role::TenantAdmin {
                Ok(())
            } else {
                forbid("request or read data subject erasures")
            }
        }
        // Grants decide who reads what: the tenant's administrators set them.
        Action::ManageGrants(_) => {
            if caller.role == Role::TenantAdmin {
                Ok(())
            } else {
                forbid("read or change the tenant's grants")
            }
        }
        Action::DeleteTenant(_) => forbid("delete tenants"),
        Action::UpdateTenant(_, change) => {
            if caller.role != Role::TenantAdmin {
                return forbid("manage the tenant");
            }
            for (touched, field) in [
                (change.tier, "tier"),
                (change.isolation, "isolation"),
                (change.quotas, "quotas"),
            ] {
                if touched {
                    return forbid(&format!("change {field}; only platform-admins can"));
                }
            }
            Ok(())
        }
        Action::IssueToken(_, role) => {
            if caller.role == Role::TenantAdmin && caller.role.covers(role) {
                Ok(())
            } else {
                forbid(&format!("issue {role} tokens"))
            }
        }
        Action::Zone(_, zone, wanted) => {
            if caller.role.zone_access(zone) >= wanted {
                Ok(())
            } else {
                forbid(&format!(
                    "{} the {} zone",
                    if wanted == Access::ReadWrite {
                        "write"
                    } else {
                        "read"
                    },
                    zone.as_str()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            subject: "someone".into(),
            role,
            tenant: tenant.map(|t| TenantId::parse(t).expect("valid")),
            token_id: None,
            issuer: "lakeplane".into(),
            expires_at: Utc::now(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn other_tenants_are_hidden_for_every_role_and_action() {
        let b = TenantId::parse("tenant-b").expect("valid");
        let actions = [
            Action::ReadTenant(&b),
            Action::UpdateTenant(&b, TenantChange::default()),
            Action::DeleteTenant(&b),
            Action::ManageTokens(&b),
            Action::IssueToken(&b, Role::Viewer),
            Action::ReadAudit(Some(&b)),
            Action::ManageShares(&b),
            Action::EraseSubjects(&b),
            Action::ManageGrants(&b),
            Action::Zone(&b, Zone::Gold, Access::Read),
        ];
        for role in Role::TENANT_ROLES {
            let a = caller(role, Some("tenant-a"));
            for action in actions {
                assert_eq!(authorize(&a, action), Err(Denial::Hidden), "{role} {action:?}");
            }
        }
        let admin = caller(Role::PlatformAdmin, None);
        for action in actions {
            assert_eq!(authorize(&admin, action), Ok(()), "{action:?}");
        }
    }

    #[test]
    fn roles_within_their_own_tenant() {
        let a = TenantId::parse("tenant-a").expect("valid");
        let admin = caller(Role::TenantAdmin, Some("tenant-a"));
        let viewer = caller(Role::Viewer, Some("tenant-a"));
        assert_eq!(authorize(&admin, Action::ReadTenant(&a)), Ok(()));
        assert!(matches!(
            authorize(&viewer, Action::ReadTenant(&a)),
            Err(Denial::Forbidden(_))
        ));
        assert!(matches!(
            authorize(&admin, Action::CreateTenant),
            Err(Denial::Forbidden(_))
        ));
        let tier = TenantChange {
            tier: true,
            ..Default::default()
        };
        assert!(
            matches!(authorize(&admin, Action::UpdateTenant(&a, tier)), Err(Denial::Forbidden(m)) if m.contains("tier"))
        );
        assert_eq!(authorize(&admin, Action::IssueToken(&a, Role::Engineer)), Ok(()));
        assert!(authorize(&admin, Action::IssueToken(&a, Role::PlatformAdmin)).is_err());
        let engineer = caller(Role::Engineer, Some("tenant-a"));
        assert!(
            authorize(&engineer, Action::IssueToken(&a, Role::Viewer)).is_err(),
            "engineers cannot issue"
        );
        assert_eq!(
            authorize(&viewer, Action::Zone(&a, Zone::Gold, Access::Read)),
            Ok(())
        );
        assert!(authorize(&viewer, Action::Zone(&a, Zone::Silver, Access::Read)).is_err());
        assert!(
            authorize(
                &caller(Role::Analyst, Some("tenant-a")),
                Action::Zone(&a, Zone::Gold, Access::ReadWrite)
            )
            .is_err()
        );
        for (role, allowed) in [
            (Role::TenantAdmin, true),
            (Role::Engineer, false),
            (Role::Scientist, false),
            (Role::Analyst, false),
            (Role::Viewer, false),
        ] {
            assert_eq!(
                authorize(&caller(role, Some("tenant-a")), Action::ManageShares(&a)).is_ok(),
                allowed,
                "{role}"
            );
            assert_eq!(
                authorize(&caller(role, Some("tenant-a")), Action::EraseSubjects(&a)).is_ok(),
                allowed,
                "erasures: {role}"
            );
        }
        assert!(authorize(&caller(Role::PlatformAdmin, None), Action::EraseSubjects(&a)).is_ok());
    }
}
