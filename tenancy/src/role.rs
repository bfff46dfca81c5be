//! Roles, zones and the default role × zone access table.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who a caller is, as far as authorization goes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the platform: every tenant.
    PlatformAdmin,
    /// Administers one tenant.
    TenantAdmin,
    /// Builds pipelines: reads and writes every zone.
    Engineer,
    /// Reads curated zones.
    Scientist,
    /// Reads curated zones.
    Analyst,
    /// Reads business-ready data only.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 6] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Engineer,
        Role::Scientist,
        Role::Analyst,
        Role::Viewer,
    ];

    /// Roles that belong to a tenant (all but platform-admin).
    pub const TENANT_ROLES: [Role; 5] = [
        Role::TenantAdmin,
        Role::Engineer,
        Role::Scientist,
        Role::Analyst,
        Role::Viewer,
    ];

    /// The kebab-case name used in tokens and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform-admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Engineer => "engineer",
            Role::Scientist => "scientist",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a role name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// Access this role has to a zone by default.
    pub fn zone_access(self, zone: Zone) -> Access {
        match (self, zone) {
            (Role::PlatformAdmin | Role::TenantAdmin | Role::Engineer, _) => Access::ReadWrite,
            (Role::Scientist | Role::Analyst, Zone::Silver | Zone::Gold) => Access::Read,
            (Role::Viewer, Zone::Gold) => Access::Read,
            _ => Access::None,
        }
    }

    /// Whether this role may hand out every access that `other` has, in every zone.
    pub fn covers(self, other: Role) -> bool {
        if other == Role::PlatformAdmin {
            return self == Role::PlatformAdmin;
        }
        Zone::ALL
            .into_iter()
            .all(|z| self.zone_access(z) >= other.zone_access(z))
            && (self.manages_tenant() || !other.manages_tenant())
    }

    /// Whether the role manages its tenant, its tokens and its shares.
    pub fn manages_tenant(self) -> bool {
        matches!(self, Role::PlatformAdmin | Role::TenantAdmin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data zone.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    /// Raw data.
    Bronze,
    /// Cleaned data.
    Silver,
    /// Business-ready data.
    Gold,
}

impl Zone {
    /// Every zone, rawest first.
    pub const ALL: [Zone; 3] = [Zone::Bronze, Zone::Silver, Zone::Gold];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Bronze => "bronze",
            Zone::Silver => "silver",
            Zone::Gold => "gold",
        }
    }

    /// Parses a lowercase zone name.
    pub fn parse(raw: &str) -> Option<Self> {
        Zone::ALL.into_iter().find(|z| z.as_str() == raw)
    }
}

/// Access to a zone, ordered from none to read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// No access.
    None,
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_from_api_md() {
        use Access::*;
        let expected = [
            (Role::PlatformAdmin, [ReadWrite, ReadWrite, ReadWrite]),
            (Role::TenantAdmin, [ReadWrite, ReadWrite, ReadWrite]),
            (Role::Engineer, [ReadWrite, ReadWrite, ReadWrite]),
            (Role::Scientist, [None, Read, Read]),
            (Role::Analyst, [None, Read, Read]),
            (Role::Viewer, [None, None, Read]),
        ];
        for (role, zones) in expected {
            for (zone, access) in Zone::ALL.into_iter().zip(zones) {
                assert_eq!(role.zone_access(zone), access, "{role} {zone:?}");
            }
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn covering() {
        assert!(Role::TenantAdmin.covers(Role::Viewer));
        assert!(Role::TenantAdmin.covers(Role::TenantAdmin));
        assert!(
            !Role::Engineer.covers(Role::TenantAdmin),
            "engineers do not manage the tenant"
        );
        assert!(!Role::Viewer.covers(Role::Analyst));
        assert!(Role::Analyst.covers(Role::Scientist));
        assert!(!Role::TenantAdmin.covers(Role::PlatformAdmin));
    }
}
