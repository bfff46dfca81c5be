//! `lakeplane token create`: bootstrap tokens signed with the server's own key.

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::role::Role;
use tenancy::store::{StoreError, TokenRecord};
use tenancy::tenant::TenantId;
use tenancy::token::{Claims, KeyError, MIN_TTL_SECS};
use uuid::Uuid;

use crate::cli::TokenArgs;
use crate::config::Config;

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenCliError {
    /// A bad argument; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The metadata store failed.
    #[error("database.url: {0}")]
    Store(#[from] StoreError),
    /// The signing key could not be loaded.
    #[error("auth.signing_key: {0}")]
    Key(#[from] KeyError),
}

/// Validates the arguments, records the token (so it can be listed and revoked) with an
/// audit event, and returns the signed JWT.
pub async fn create(config: &Config, args: &TokenArgs) -> Result<String, TokenCliError> {
    let invalid = |m: String| TokenCliError::Invalid(m);
    let role = Role::parse(&args.role).ok_or_else(|| {
        let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        invalid(format!("--role: must be one of {}", names.join(", ")))
    })?;
    let tenant = match (role, &args.tenant) {
        (Role::PlatformAdmin, None) => None,
        (Role::PlatformAdmin, Some(_)) => {
            return Err(invalid("--tenant: platform-admin tokens have no tenant".into()));
        }
        (_, None) => return Err(invalid(format!("--tenant: required for role {role}"))),
        (_, Some(raw)) => {
            Some(TenantId::parse(raw).map_err(|v| invalid(format!("--tenant: {}", v.message)))?)
        }
    };
    if args.subject.trim().is_empty() || args.subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("--subject: must be non-empty, without whitespace".into()));
    }
    if let Err((index, message)) = tenancy::grants::check_groups(&args.groups) {
        let which = index.map_or_else(String::new, |i| format!(" ({})", args.groups[i]));
        return Err(invalid(format!("--groups{which}: {message}")));
    }
    let max = config.auth.max_token_ttl_secs;
    if !(MIN_TTL_SECS..=max).contains(&args.ttl) {
        return Err(invalid(format!("--ttl: must be {MIN_TTL_SECS} to {max} seconds")));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        invalid(format!(
            "data_dir: cannot create {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let key = crate::state::load_signing_key(config)?;
    let store = tenancy::store::connect(&config.database_url(), &config.pool_settings()).await?;
    let result = async {
        store.migrate().await?;
        if let Some(tenant) = &tenant
            && store.get_tenant(tenant).await?.is_none()
        {
            return Err(invalid(format!("--tenant: no tenant {tenant}")));
        }
        let issued_at = tenancy::now();
        let record = TokenRecord {
            id: Uuid::now_v7(),
            tenant: tenant.clone(),
            subject: args.subject.clone(),
            role,
            issued_by: "lakeplane-cli".to_owned(),
            issued_at,
            expires_at: issued_at + chrono::Duration::seconds(i64::try_from(args.ttl).unwrap_or(i64::MAX)),
            revoked_at: None,
            groups: args.groups.clone(),
        };
        let mut claims = Claims::new(
            &record.subject,
            role,
            tenant.as_ref(),
            record.id,
            issued_at,
            record.expires_at,
            &config.auth.token_settings(),
        );
        claims.groups.clone_from(&record.groups);
        let token = key.sign(&claims)?;
        let audit = AuditEvent {
            id: Uuid::now_v7(),
            at: issued_at,
            actor: "lakeplane-cli".to_owned(),
            role: None,
            tenant: tenant.as_ref().map(|t| t.to_string()),
            action: "token.create".to_owned(),
            target: format!("token {} for {} ({role})", record.id, record.subject),
            outcome: Outcome::Success,
            request_id: None,
            source: Some("local".to_owned()),
            // An operator on the host, not a token.
            token_id: None,
            issuer: None,
            occurrences: 1,
            details: None,
        };
        store.insert_token(&record, None, &audit).await?;
        Ok(token)
    }
    .await;
    store.close().await;
    result
}
