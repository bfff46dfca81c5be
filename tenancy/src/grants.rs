//! Table grants: who holds which privilege on the tenant, a zone or a table, and what a caller
//! may do with them. Pure: the store loads a tenant's grants, this decides.
//!
//! The rules, in Unity Catalog's terms (catalog = tenant, schema = zone):
//! - a grant flows down the tree: one on the tenant covers every zone and table, one on a zone
//!   every table in it, now and later;
//! - using a table needs `USE CATALOG` and `USE SCHEMA` besides `SELECT` or `MODIFY`, each held
//!   directly or inherited;
//! - the role is a ceiling: a grant never lifts a token above its role's zone access, and the
//!   tenant's and the platform's admins hold every privilege in their scope without grants.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::role::{Access, Role, Zone};

/// A privilege, named as Unity Catalog names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum Privilege {
    /// See the tenant (catalog) and list its zones.
    #[serde(rename = "USE CATALOG")]
    UseCatalog,
    /// See a zone (schema) and list its tables.
    #[serde(rename = "USE SCHEMA")]
    UseSchema,
    /// Read a table's data.
    #[serde(rename = "SELECT")]
    Select,
    /// Write a table's data: push, write credentials, pipeline targets, maintenance.
    #[serde(rename = "MODIFY")]
    Modify,
}

impl Privilege {
    /// Every privilege, widest securable first.
    pub const ALL: [Privilege; 4] = [
        Privilege::UseCatalog,
        Privilege::UseSchema,
        Privilege::Select,
        Privilege::Modify,
    ];

    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::UseCatalog => "USE CATALOG",
            Privilege::UseSchema => "USE SCHEMA",
            Privilege::Select => "SELECT",
            Privilege::Modify => "MODIFY",
        }
    }

    /// Parses a name; Unity Catalog clients also send the underscore form (`USE_CATALOG`).
    pub fn parse(raw: &str) -> Option<Self> {
        let spaced = raw.trim().replace('_', " ");
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(&spaced))
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a grant is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Securable {
    /// The tenant (a Unity Catalog catalog).
    Tenant,
    /// A zone (a schema).
    Zone(Zone),
    /// A table, by zone and name.
    Table(Zone, String),
}

impl Securable {
    /// The zone, for zones and tables.
    pub fn zone(&self) -> Option<Zone> {
        match self {
            Securable::Tenant => None,
            Securable::Zone(z) | Securable::Table(z, _) => Some(*z),
        }
    }

    /// Whether a grant on `self` covers `other` (itself or something below it).
    pub fn covers(&self, other: &Securable) -> bool {
        match (self, other) {
            (Securable::Tenant, _) => true,
            (Securable::Zone(a), Securable::Zone(b) | Securable::Table(b, _)) => a == b,
            (Securable::Table(za, a), Securable::Table(zb, b)) => za == zb && a == b,
            _ => false,
        }
    }

    /// Whether `privilege` can be granted on this securable: `USE CATALOG` only on the tenant,
    /// `USE SCHEMA` on the tenant or a zone, `SELECT` and `MODIFY` anywhere.
    pub fn admits(&self, privilege: Privilege) -> bool {
        match privilege {
            Privilege::UseCatalog => matches!(self, Securable::Tenant),
            Privilege::UseSchema => !matches!(self, Securable::Table(..)),
            Privilege::Select | Privilege::Modify => true,
        }
    }

    /// The path form of `/v1`: `tenant`, `zones/{zone}` or `tables/{zone}/{name}`.
    pub fn path(&self) -> String {
        match self {
            Securable::Tenant => "tenant".to_owned(),
            Securable::Zone(z) => format!("zones/{}", z.as_str()),
            Securable::Table(z, n) => format!("tables/{}/{n}", z.as_str()),
        }
    }
}

/// Who a grant is to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    /// A token's subject.
    User(String),
    /// A name in a token's `groups` claim.
    Group(String),
    /// Every token of this role in the tenant.
    Role(Role),
}

/// Longest user or group name.
pub const MAX_NAME: usize = 256;

/// Most groups one token may carry.
pub const MAX_GROUPS: usize = 64;

/// Why a principal string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GranteeError {
    /// Not `user:`, `group:` or `role:`.
    #[error("must be user:NAME, group:NAME or role:NAME")]
    Kind,
    /// The name is empty, too long, padded, or holds a control character.
    #[error("the name must be 1 to 256 characters, without leading or trailing spaces or control characters")]
    Name,
    /// Not a tenant role.
    #[error("role must be one of tenant-admin, engineer, scientist, analyst, viewer")]
    Role,
}

/// Checks a user or group name as tokens carry it.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name.trim() == name
        && !name.chars().any(char::is_control)
}

/// Checks the groups a token is to carry: at most [`MAX_GROUPS`], each a valid name, none
/// twice. Returns the first problem as (index or `None` for the list, message).
pub fn check_groups(groups: &[String]) -> Result<(), (Option<usize>, String)> {
    if groups.len() > MAX_GROUPS {
        return Err((None, format!("at most {MAX_GROUPS} groups")));
    }
    let mut seen = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        if !valid_name(g) {
            return Err((
                Some(i),
                "must be 1 to 256 characters, without leading or trailing spaces or control characters"
                    .to_owned(),
            ));
        }
        if !seen.insert(g) {
            return Err((Some(i), format!("{g} is listed twice")));
        }
    }
    Ok(())
}

impl Grantee {
    /// Parses `user:NAME`, `group:NAME` or `role:NAME`.
    pub fn parse(raw: &str) -> Result<Self, GranteeError> {
        let (kind, name) = raw.split_once(':').ok_or(GranteeError::Kind)?;
        match kind {
            "user" | "group" if !valid_name(name) => Err(GranteeError::Name),
            "user" => Ok(Grantee::User(name.to_owned())),
            "group" => Ok(Grantee::Group(name.to_owned())),
            "role" => Role::parse(name)
                .filter(|r| *r != Role::PlatformAdmin)
                .map(Grantee::Role)
                .ok_or(GranteeError::Role),
            _ => Err(GranteeError::Kind),
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::User(n) => write!(f, "user:{n}"),
            Grantee::Group(n) => write!(f, "group:{n}"),
            Grantee::Role(r) => write!(f, "role:{r}"),
        }
    }
}

/// One privilege on one securable, held by one grantee.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// What on.
    pub securable: Securable,
    /// Who holds it.
    pub grantee: Grantee,
    /// What it allows.
    pub privilege: Privilege,
}

/// The role's ceiling: whether any grant can give `role` `privilege` on something in `zone`
/// (`None`: the tenant itself).
pub fn within_role(role: Role, zone: Option<Zone>, privilege: Privilege) -> bool {
    match (privilege, zone) {
        (Privilege::UseCatalog, _) | (_, None) => true,
        (Privilege::UseSchema | Privilege::Select, Some(z)) => role.zone_access(z) >= Access::Read,
        (Privilege::Modify, Some(z)) => role.zone_access(z) >= Access::ReadWrite,
    }
}

/// Whether a grant of `privilege` on `securable` to `grantee` can ever take effect: for a role,
/// the ceiling must allow it in at least one zone under the securable.
pub fn can_take_effect(grantee: &Grantee, securable: &Securable, privilege: Privilege) -> bool {
    match grantee {
        Grantee::Role(role) => match securable.zone() {
            Some(z) => within_role(*role, Some(z), privilege),
            None => {
                privilege == Privilege::UseCatalog
                    || Zone::ALL
                        .into_iter()
                        .any(|z| within_role(*role, Some(z), privilege))
            }
        },
        Grantee::User(_) | Grantee::Group(_) => true,
    }
}

/// What the tenant's roles held before grants existed, as grants: `USE CATALOG` on the tenant
/// for every role below tenant-admin, and per zone `USE SCHEMA` plus `SELECT` where the role
/// reads and `MODIFY` where it writes. A new tenant starts with these; the upgrade wrote them.
pub fn role_defaults() -> Vec<Grant> {
    let mut grants = Vec::new();
    for role in Role::TENANT_ROLES {
        if role.manages_tenant() {
            continue;
        }
        grants.push(Grant {
            securable: Securable::Tenant,
            grantee: Grantee::Role(role),
            privilege: Privilege::UseCatalog,
        });
        for zone in Zone::ALL {
            let access = role.zone_access(zone);
            let mut held = Vec::new();
            if access >= Access::Read {
                held.extend([Privilege::UseSchema, Privilege::Select]);
            }
            if access >= Access::ReadWrite {
                held.push(Privilege::Modify);
            }
            grants.extend(held.into_iter().map(|privilege| Grant {
                securable: Securable::Zone(zone),
                grantee: Grantee::Role(role),
                privilege,
            }));
        }
    }
    grants
}

/// A caller, as grants see it.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The token's subject.
    pub subject: &'a str,
    /// The token's role.
    pub role: Role,
    /// The token's groups.
    pub groups: &'a [String],
}

impl Identity<'_> {
    /// Whether the role holds everything in its scope.
    fn admin(&self) -> bool {
        self.role.manages_tenant()
    }

    fn is(&self, grantee: &Grantee) -> bool {
        match grantee {
            Grantee::User(n) => n == self.subject,
            Grantee::Group(g) => self.groups.iter().any(|mine| mine == g),
            Grantee::Role(r) => *r == self.role,
        }
    }
}

/// How a privilege is held.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// The role holds everything (tenant-admin, platform-admin).
    Admin,
    /// Through this grant.
    Grant(Grant),
}

/// What a use of a table lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The first privilege not held.
    pub privilege: Privilege,
    /// On what.
    pub securable: Securable,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = match &self.securable {
            Securable::Tenant => "the tenant".to_owned(),
            Securable::Zone(z) => format!("zone {}", z.as_str()),
            Securable::Table(z, n) => format!("table {}.{n}", z.as_str()),
        };
        write!(f, "{} on {on} is not granted", self.privilege)
    }
}

/// One tenant's grants, indexed for the checks every request makes.
#[derive(Debug, Clone, Default)]
pub struct TenantGrants {
    /// Grants by grantee, so a check looks only at the caller's user, role and groups.
    by_grantee: HashMap<Grantee, Vec<(Securable, Privilege)>>,
}

impl TenantGrants {
    /// Indexes a tenant's grants.
    pub fn new(grants: impl IntoIterator<Item = Grant>) -> Self {
        let mut by_grantee: HashMap<Grantee, Vec<(Securable, Privilege)>> = HashMap::new();
        for g in grants {
            by_grantee
                .entry(g.grantee)
                .or_default()
                .push((g.securable, g.privilege));
        }
        Self { by_grantee }
    }

    /// The grantees that are the identity, with their grants.
    fn mine<'s>(
        &'s self,
        who: &'s Identity<'_>,
    ) -> impl Iterator<Item = (&'s Grantee, &'s Vec<(Securable, Privilege)>)> {
        self.by_grantee.iter().filter(move |(g, _)| who.is(g))
    }

    /// Every way `who` holds `privilege` on `on`, directly or inherited, within its role.
    pub fn ways(&self, who: &Identity<'_>, on: &Securable, privilege: Privilege) -> Vec<Via> {
        if who.admin() {
            return vec![Via::Admin];
        }
        if !within_role(who.role, on.zone(), privilege) {
            return Vec::new();
        }
        let mut ways: Vec<Via> = self
            .mine(who)
            .flat_map(|(grantee, held)| {
                held.iter()
                    .filter(move |(s, p)| *p == privilege && s.covers(on))
                    .map(move |(s, p)| {
                        Via::Grant(Grant {
                            securable: s.clone(),
                            grantee: grantee.clone(),
                            privilege: *p,
                        })
                    })
            })
            .collect();
        ways.sort();
        ways
    }

    /// Whether `who` holds `privilege` on `on`, directly or inherited, within its role.
    pub fn holds(&self, who: &Identity<'_>, on: &Securable, privilege: Privilege) -> bool {
        if who.admin() {
            return true;
        }
        within_role(who.role, on.zone(), privilege)
            && self
                .mine(who)
                .any(|(_, held)| held.iter().any(|(s, p)| *p == privilege && s.covers(on)))
    }

    /// Checks `privilege` on a table together with the `USE CATALOG` and `USE SCHEMA` above it.
    pub fn check_table(
        &self,
        who: &Identity<'_>,
        zone: Zone,
        name: &str,
        privilege: Privilege,
    ) -> Result<(), Missing> {
        self.check_zone(who, zone, Privilege::UseSchema)?;
        let table = Securable::Table(zone, name.to_owned());
        if self.holds(who, &table, privilege) {
            Ok(())
        } else {
            Err(Missing {
                privilege,
                securable: table,
            })
        }
    }

    /// Checks `privilege` on a zone (held there or on the tenant), with `USE CATALOG` and, for
    /// data privileges, `USE SCHEMA`.
    pub fn check_zone(&self, who: &Identity<'_>, zone: Zone, privilege: Privilege) -> Result<(), Missing> {
        let needed: &[Privilege] = match privilege {
            Privilege::UseCatalog => &[Privilege::UseCatalog],
            Privilege::UseSchema => &[Privilege::UseCatalog, Privilege::UseSchema],
            Privilege::Select | Privilege::Modify => {
                &[Privilege::UseCatalog, Privilege::UseSchema, privilege]
            }
        };
        for p in needed {
            let on = if *p == Privilege::UseCatalog {
                Securable::Tenant
            } else {
                Securable::Zone(zone)
            };
            if !self.holds(who, &on, *p) {
                return Err(Missing {
                    privilege: *p,
                    securable: on,
                });
            }
        }
        Ok(())
    }

    /// Whether the tenant shows to `who` at all (`USE CATALOG`).
    pub fn sees_tenant(&self, who: &Identity<'_>) -> bool {
        self.holds(who, &Securable::Tenant, Privilege::UseCatalog)
    }

    /// Whether a table shows in lists and gets: `USE CATALOG`, `USE SCHEMA`, and `SELECT` or
    /// `MODIFY`.
    pub fn sees_table(&self, who: &Identity<'_>, zone: Zone, name: &str) -> bool {
        self.check_table(who, zone, name, Privilege::Select).is_ok()
            || self.check_table(who, zone, name, Privilege::Modify).is_ok()
    }

    /// The tables of `zone` on which `who` holds `privilege` through table grants only, when
    /// the zone as a whole is not held: what a zone-wide credential may cover. `Whole` when
    /// the zone-level privilege is held (the credential covers tables made later, as the grant
    /// does).
    pub fn scope(&self, who: &Identity<'_>, zone: Zone, privileges: &[Privilege]) -> Scope {
        if self.check_zone(who, zone, Privilege::UseSchema).is_err() {
            return Scope::Tables(BTreeSet::new());
        }
        if privileges.iter().all(|p| self.check_zone(who, zone, *p).is_ok()) {
            return Scope::Whole;
        }
        let named: BTreeSet<&str> = self
            .mine(who)
            .flat_map(|(_, held)| held.iter())
            .filter_map(|(s, _)| match s {
                Securable::Table(z, n) if *z == zone => Some(n.as_str()),
                _ => None,
            })
            .collect();
        Scope::Tables(
            named
                .into_iter()
                .filter(|n| {
                    privileges
                        .iter()
                        .all(|p| self.check_table(who, zone, n, *p).is_ok())
                })
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Every grant, sorted by securable, grantee, privilege.
    pub fn all(&self) -> Vec<Grant> {
        let mut out: Vec<Grant> = self
            .by_grantee
            .iter()
            .flat_map(|(g, held)| {
                held.iter().map(move |(s, p)| Grant {
                    securable: s.clone(),
                    grantee: g.clone(),
                    privilege: *p,
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The grants on exactly `on`, as `{grantee: [privileges]}`.
    pub fn on(&self, on: &Securable) -> BTreeMap<Grantee, BTreeSet<Privilege>> {
        let mut out: BTreeMap<Grantee, BTreeSet<Privilege>> = BTreeMap::new();
        for (g, held) in &self.by_grantee {
            for (s, p) in held {
                if s == on {
                    out.entry(g.clone()).or_default().insert(*p);
                }
            }
        }
        out
    }
}

/// What a zone-wide credential may cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole zone.
    Whole,
    /// Only these tables (possibly none).
    Tables(BTreeSet<String>),
}

/// One grantee's changes on one securable, as Unity Catalog's `PermissionsChange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who.
    pub grantee: Grantee,
    /// Privileges to add.
    pub add: BTreeSet<Privilege>,
    /// Privileges to remove.
    pub remove: BTreeSet<Privilege>,
}

/// Why a change is refused; `field` is the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeError {
    /// Where, e.g. `changes[0].add[1]`.
    pub field: String,
    /// Why.
    pub message: String,
}

/// Checks a batch of changes on `securable` and applies it to `before` (the grants on that
/// securable), returning the grants on it after. Pure: the store writes the result. Adding
/// what is held and removing what is not are no-ops, so a repeated request changes nothing.
pub fn apply(
    securable: &Securable,
    before: &BTreeMap<Grantee, BTreeSet<Privilege>>,
    changes: &[Change],
) -> Result<BTreeMap<Grantee, BTreeSet<Privilege>>, ChangeError> {
    let mut after = before.clone();
    for (i, change) in changes.iter().enumerate() {
        if let Grantee::Role(role) = &change.grantee
            && role.manages_tenant()
        {
            return Err(ChangeError {
                field: format!("changes[{i}].principal"),
                message: format!("role:{role} holds every privilege in its tenant; it takes no grants"),
            });
        }
        if let Some(p) = change.add.intersection(&change.remove).next() {
            return Err(ChangeError {
                field: format!("changes[{i}].remove"),
                message: format!("{p} is both added and removed"),
            });
        }
        for (list, field) in [(&change.add, "add"), (&change.remove, "remove")] {
            for (j, p) in list.iter().enumerate() {
                if !securable.admits(*p) {
                    return Err(ChangeError {
                        field: format!("changes[{i}].{field}[{j}]"),
                        message: format!("{p} cannot be granted on {}", kind_name(securable)),
                    });
                }
            }
        }
        for (j, p) in change.add.iter().enumerate() {
            if !can_take_effect(&change.grantee, securable, *p) {
                return Err(ChangeError {
                    field: format!("changes[{i}].add[{j}]"),
                    message: format!(
                        "{} can never hold {p} here: its role's zone access is the ceiling",
                        change.grantee
                    ),
                });
            }
        }
        let held = after.entry(change.grantee.clone()).or_default();
        held.extend(change.add.iter().copied());
        held.retain(|p| !change.remove.contains(p));
    }
    after.retain(|_, held| !held.is_empty());
    Ok(after)
}

fn kind_name(s: &Securable) -> &'static str {
    match s {
        Securable::Tenant => "a tenant (catalog)",
        Securable::Zone(_) => "a zone (schema)",
        Securable::Table(..) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn who<'a>(subject: &'a str, role: Role, groups: &'a [String]) -> Identity<'a> {
        Identity {
            subject,
            role,
            groups,
        }
    }

    fn grant(securable: Securable, grantee: &str, privilege: Privilege) -> Grant {
        Grant {
            securable,
            grantee: Grantee::parse(grantee).expect("grantee"),
            privilege,
        }
    }

    fn table(zone: Zone, name: &str) -> Securable {
        Securable::Table(zone, name.to_owned())
    }

    /// Bob's grants: the tenant and gold usable, SELECT on gold.orders only.
    fn bob_only_orders() -> TenantGrants {
        TenantGrants::new([
            grant(Securable::Tenant, "user:bob", Privilege::UseCatalog),
            grant(Securable::Zone(Zone::Gold), "user:bob", Privilege::UseSchema),
            grant(table(Zone::Gold, "orders"), "user:bob", Privilege::Select),
        ])
    }

    #[test]
    fn privilege_names_are_unity_catalogs() {
        assert_eq!(
            serde_json::to_string(&Privilege::UseCatalog).expect("ok"),
            "\"USE CATALOG\""
        );
        assert_eq!(Privilege::parse("USE_SCHEMA"), Some(Privilege::UseSchema));
        assert_eq!(Privilege::parse("select"), Some(Privilege::Select));
        assert_eq!(Privilege::parse("ALL PRIVILEGES"), None);
    }

    #[test]
    fn principals_parse_and_print_back() {
        for raw in ["user:bob@example.com", "group:finance team", "role:analyst"] {
            assert_eq!(Grantee::parse(raw).expect("ok").to_string(), raw);
        }
        assert_eq!(Grantee::parse("bob"), Err(GranteeError::Kind));
        assert_eq!(Grantee::parse("team:x"), Err(GranteeError::Kind));
        assert_eq!(Grantee::parse("user:"), Err(GranteeError::Name));
        assert_eq!(Grantee::parse("user: bob"), Err(GranteeError::Name));
        assert_eq!(Grantee::parse("group:a\nb"), Err(GranteeError::Name));
        assert_eq!(Grantee::parse("role:platform-admin"), Err(GranteeError::Role));
        assert_eq!(Grantee::parse("role:king"), Err(GranteeError::Role));
    }

    #[test]
    fn a_read_needs_all_three_privileges() {
        let groups = [];
        let bob = who("bob", Role::Analyst, &groups);
        let full = bob_only_orders();
        assert!(
            full.check_table(&bob, Zone::Gold, "orders", Privilege::Select)
                .is_ok()
        );
        // Drop each of the three in turn: the read is refused, naming what is missing.
        for (dropped, missing) in [
            (0, Privilege::UseCatalog),
            (1, Privilege::UseSchema),
            (2, Privilege::Select),
        ] {
            let mut grants = full.all();
            grants.sort_by_key(|g| g.privilege);
            grants.remove(dropped);
            let err = TenantGrants::new(grants)
                .check_table(&bob, Zone::Gold, "orders", Privilege::Select)
                .expect_err("refused");
            assert_eq!(err.privilege, missing);
        }
    }

    #[test]
    fn a_table_grant_covers_only_that_table() {
        let groups = [];
        let bob = who("bob", Role::Analyst, &groups);
        let g = bob_only_orders();
        assert!(g.sees_table(&bob, Zone::Gold, "orders"));
        assert!(!g.sees_table(&bob, Zone::Gold, "customers"));
        assert!(!g.sees_table(&bob, Zone::Silver, "orders"));
        assert_eq!(
            g.scope(&bob, Zone::Gold, &[Privilege::Select]),
            Scope::Tables(["orders".to_owned()].into())
        );
        assert_eq!(
            g.scope(&bob, Zone::Silver, &[Privilege::Select]),
            Scope::Tables(BTreeSet::new())
        );
    }

    #[test]
    fn zone_and_tenant_grants_flow_down_to_tables_made_later() {
        let groups = [];
        let ann = who("ann", Role::Analyst, &groups);
        let g = TenantGrants::new([
            grant(Securable::Tenant, "user:ann", Privilege::UseCatalog),
            grant(Securable::Tenant, "user:ann", Privilege::UseSchema),
            grant(Securable::Zone(Zone::Silver), "user:ann", Privilege::Select),
        ]);
        assert!(g.sees_table(&ann, Zone::Silver, "any_table_at_all"));
        assert!(!g.sees_table(&ann, Zone::Gold, "x"));
        assert_eq!(g.scope(&ann, Zone::Silver, &[Privilege::Select]), Scope::Whole);
        // USE SCHEMA alone shows the zone, not its tables.
        assert!(g.check_zone(&ann, Zone::Gold, Privilege::UseSchema).is_ok());
        assert!(!g.sees_table(&ann, Zone::Gold, "x"));
    }

    #[test]
    fn the_role_is_a_ceiling() {
        let groups = [];
        let g = TenantGrants::new([
            grant(Securable::Tenant, "user:v", Privilege::UseCatalog),
            grant(Securable::Tenant, "user:v", Privilege::UseSchema),
            grant(Securable::Tenant, "user:v", Privilege::Select),
            grant(Securable::Tenant, "user:v", Privilege::Modify),
        ]);
        let viewer = who("v", Role::Viewer, &groups);
        assert!(g.sees_table(&viewer, Zone::Gold, "t"));
        assert!(
            !g.sees_table(&viewer, Zone::Bronze, "t"),
            "a viewer never reads bronze"
        );
        assert!(!g.sees_table(&viewer, Zone::Silver, "t"));
        assert!(
            g.check_table(&viewer, Zone::Gold, "t", Privilege::Modify)
                .is_err(),
            "a viewer never writes"
        );
        let analyst = who("v", Role::Analyst, &groups);
        assert!(
            g.check_table(&analyst, Zone::Silver, "t", Privilege::Modify)
                .is_err()
        );
        let engineer = who("v", Role::Engineer, &groups);
        assert!(
            g.check_table(&engineer, Zone::Bronze, "t", Privilege::Modify)
                .is_ok()
        );
    }

    #[test]
    fn admins_need_no_grants() {
        let empty = TenantGrants::default();
        for role in [Role::TenantAdmin, Role::PlatformAdmin] {
            let admin = who("root", role, &[]);
            assert!(
                empty
                    .check_table(&admin, Zone::Bronze, "t", Privilege::Modify)
                    .is_ok()
            );
            assert_eq!(
                empty.ways(&admin, &Securable::Tenant, Privilege::UseCatalog),
                vec![Via::Admin]
            );
        }
        let engineer = who("e", Role::Engineer, &[]);
        assert!(
            empty
                .check_table(&engineer, Zone::Bronze, "t", Privilege::Select)
                .is_err()
        );
    }

    #[test]
    fn a_group_grant_reaches_only_tokens_that_carry_the_group() {
        let g = TenantGrants::new([
            grant(Securable::Tenant, "role:analyst", Privilege::UseCatalog),
            grant(Securable::Zone(Zone::Gold), "role:analyst", Privilege::UseSchema),
            grant(table(Zone::Gold, "revenue"), "group:finance", Privilege::Select),
        ]);
        let finance = ["finance".to_owned()];
        let support = ["support".to_owned()];
        assert!(g.sees_table(&who("f", Role::Analyst, &finance), Zone::Gold, "revenue"));
        assert!(!g.sees_table(&who("s", Role::Analyst, &support), Zone::Gold, "revenue"));
        assert!(
            !g.sees_table(&who("finance", Role::Analyst, &[]), Zone::Gold, "revenue"),
            "a user is not a group"
        );
        let ways = g.ways(
            &who("f", Role::Analyst, &finance),
            &table(Zone::Gold, "revenue"),
            Privilege::Select,
        );
        assert_eq!(ways.len(), 1);
    }

    #[test]
    fn the_defaults_reproduce_the_role_table() {
        let g = TenantGrants::new(role_defaults());
        for role in Role::TENANT_ROLES {
            let me = who("someone", role, &[]);
            for zone in Zone::ALL {
                let access = role.zone_access(zone);
                assert_eq!(
                    g.sees_table(&me, zone, "t"),
                    access >= Access::Read,
                    "{role} {zone:?}"
                );
                assert_eq!(
                    g.check_table(&me, zone, "t", Privilege::Modify).is_ok(),
                    access == Access::ReadWrite,
                    "{role} {zone:?}"
                );
            }
        }
    }

    #[test]
    fn changes_are_validated_and_idempotent() {
        let on = table(Zone::Gold, "orders");
        let add = |grantee: &str, p: Privilege| Change {
            grantee: Grantee::parse(grantee).expect("ok"),
            add: [p].into(),
            remove: BTreeSet::new(),
        };
        let once = apply(&on, &BTreeMap::new(), &[add("user:bob", Privilege::Select)]).expect("ok");
        let twice = apply(&on, &once, &[add("user:bob", Privilege::Select)]).expect("ok");
        assert_eq!(once, twice);
        let err = apply(&on, &once, &[add("user:bob", Privilege::UseCatalog)]).expect_err("refused");
        assert_eq!(err.field, "changes[0].add[0]");
        let err = apply(&on, &once, &[add("role:analyst", Privilege::Modify)]).expect_err("refused");
        assert!(err.message.contains("ceiling"), "{}", err.message);
        let err = apply(&on, &once, &[add("role:tenant-admin", Privilege::Select)]).expect_err("refused");
        assert_eq!(err.field, "changes[0].principal");
        let removed = apply(
            &on,
            &once,
            &[Change {
                grantee: Grantee::parse("user:bob").expect("ok"),
                add: BTreeSet::new(),
                remove: [Privilege::Select].into(),
            }],
        )
        .expect("ok");
        assert!(removed.is_empty());
    }

    fn any_securable() -> impl Strategy<Value = Securable> {
        let zone = prop_oneof![Just(Zone::Bronze), Just(Zone::Silver), Just(Zone::Gold)];
        prop_oneof![
            Just(Securable::Tenant),
            zone.clone().prop_map(Securable::Zone),
            (zone, prop_oneof![Just("a"), Just("b")]).prop_map(|(z, n)| Securable::Table(z, n.to_owned())),
        ]
    }

    fn any_grant() -> impl Strategy<Value = Grant> {
        let grantee = prop_oneof![
            Just("user:u"),
            Just("user:other"),
            Just("group:g"),
            Just("group:h"),
            Just("role:analyst"),
            Just("role:engineer"),
            Just("role:viewer"),
        ];
        (
            any_securable(),
            grantee,
            proptest::sample::select(Privilege::ALL.to_vec()),
        )
            .prop_filter("admissible", |(s, _, p)| s.admits(*p))
            .prop_map(|(securable, g, privilege)| Grant {
                securable,
                grantee: Grantee::parse(g).expect("ok"),
                privilege,
            })
    }

    fn any_role() -> impl Strategy<Value = Role> {
        proptest::sample::select(vec![Role::Engineer, Role::Scientist, Role::Analyst, Role::Viewer])
    }

    proptest! {
        /// More grants never take access away, and the role's ceiling always holds.
        #[test]
        fn grants_only_add_within_the_ceiling(
            grants in proptest::collection::vec(any_grant(), 0..24),
            extra in any_grant(),
            role in any_role(),
            in_g in any::<bool>(),
            on in any_securable(),
            privilege in proptest::sample::select(Privilege::ALL.to_vec()),
        ) {
            let groups = if in_g { vec!["g".to_owned()] } else { Vec::new() };
            let me = who("u", role, &groups);
            let fewer = TenantGrants::new(grants.clone());
            let mut more = grants.clone();
            more.push(extra);
            let more = TenantGrants::new(more);
            if fewer.holds(&me, &on, privilege) {
                prop_assert!(more.holds(&me, &on, privilege));
            }
            if more.holds(&me, &on, privilege) {
                prop_assert!(within_role(role, on.zone(), privilege));
            }
            // A table's privilege is held exactly when some grant of mine on it or above it holds it.
            let expected = within_role(role, on.zone(), privilege)
                && grants.iter().any(|g| g.privilege == privilege && g.securable.covers(&on) && me.is(&g.grantee));
            prop_assert_eq!(fewer.holds(&me, &on, privilege), expected);
            prop_assert_eq!(fewer.ways(&me, &on, privilege).is_empty(), !expected);
        }

        /// A zone-wide scope never names a table the caller could not use on its own.
        #[test]
        fn a_scope_names_only_usable_tables(
            grants in proptest::collection::vec(any_grant(), 0..24),
            role in any_role(),
            zone in prop_oneof![Just(Zone::Bronze), Just(Zone::Silver), Just(Zone::Gold)],
        ) {
            let me = who("u", role, &[]);
            let g = TenantGrants::new(grants);
            match g.scope(&me, zone, &[Privilege::Select]) {
                Scope::Whole => prop_assert!(g.check_table(&me, zone, "never-named", Privilege::Select).is_ok()),
                Scope::Tables(names) => {
                    for n in names {
                        prop_assert!(g.check_table(&me, zone, &n, Privilege::Select).is_ok());
                    }
                    prop_assert!(g.check_table(&me, zone, "never-named", Privilege::Select).is_err());
                }
            }
        }
    }
}
