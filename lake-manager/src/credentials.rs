//! Temporary AWS credentials for analysts: the STS client, and a cache that keeps each
//! credential for half its lifetime and shares one STS call between concurrent misses.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sts::Client;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use tenancy::credentials::{
    AssumeRoleRequest, CacheKey, CredentialScope, Requester, assume_role_request, locations, role_arn,
};
use tenancy::expiring::ExpiringMap;
use tenancy::kind::{Class, Classify, ErrorKind, TENANT_NOT_READY};
use tenancy::role::Zone;
use tenancy::store::{StoreError, TableStatus};
use tenancy::tenant::{Tenant, TenantId, TenantStatus};

use crate::identity::sdk_config;
use crate::provision::Provisioner;

/// Why credentials could not be vended.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// This installation has no AWS identity to vend (local storage, or S3 without IAM).
    #[error("temporary AWS credentials are not available: {0}")]
    NotAvailable(String),
    /// The tenant's placement is in flux (provisioning, migrating, deleting, failed).
    #[error("tenant {tenant} is {status}; credentials are vended only while it is ready")]
    NotReady {
        /// The tenant.
        tenant: String,
        /// Its status.
        status: &'static str,
    },
    /// A field of the request names something that does not fit (an unknown table).
    #[error("{field}: {message}")]
    Field {
        /// The field, e.g. `tables[1]`.
        field: String,
        /// Why.
        message: String,
    },
    /// STS refused or failed. `retryable` when it was unreachable, throttled or failing.
    #[error("AWS STS {operation} failed: {message}")]
    Sts {
        /// The STS operation.
        operation: &'static str,
        /// The SDK's error and causes.
        message: String,
        /// Whether retrying later may work.
        retryable: bool,
    },
    /// The tenant made its allowance of `AssumeRole` calls this minute: STS throttles per
    /// AWS account, so one tenant's misses must not use up everyone's.
    #[error("the tenant made {per_minute} uncached STS calls this minute, its allowance; retry later")]
    Throttled {
        /// The allowance.
        per_minute: u32,
        /// When the next minute starts.
        retry_after: Duration,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CredentialsError {
    /// When to retry, for a throttled tenant.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CredentialsError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl Classify for CredentialsError {
    fn class(&self) -> Class {
        match self {
            CredentialsError::NotAvailable(_) => ErrorKind::Invalid.coded("credentials-not-available"),
            CredentialsError::NotReady { .. } => ErrorKind::Conflict.coded(TENANT_NOT_READY),
            CredentialsError::Field { .. } => ErrorKind::Invalid.class(),
            CredentialsError::Sts { retryable: true, .. } => ErrorKind::Unavailable.coded(STS_UNAVAILABLE),
            CredentialsError::Sts { .. } => ErrorKind::Internal.class(),
            CredentialsError::Throttled { .. } => ErrorKind::Throttled.coded("sts-quota"),
            CredentialsError::Store(e) => e.class(),
        }
    }
}

/// The code of an STS that is away, throttling or failing.
pub const STS_UNAVAILABLE: &str = "sts-unavailable";

/// Credentials STS issued. `Debug` shows the access key id only: the secret key and the
/// session token must never reach a log.
#[derive(Clone)]
pub struct TemporaryCredentials {
    /// The access key id (not a secret; CloudTrail records it).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When they stop working.
    pub expiration: DateTime<Utc>,
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &"***")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The account the plane's own AWS identity belongs to: data roles live there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerAccount {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The 12-digit account id.
    pub account: String,
}

/// AWS STS, the calls the vendor needs.
#[async_trait]
pub trait SecurityTokenService: Send + Sync + 'static {
    /// The partition and account of the caller's identity (`GetCallerIdentity`).
    async fn caller_account(&self) -> Result<CallerAccount, CredentialsError>;
    /// Assumes a role exactly as asked.
    async fn assume_role(
        &self,
        request: &AssumeRoleRequest,
    ) -> Result<TemporaryCredentials, CredentialsError>;
}

/// STS over the AWS API (or moto).
#[derive(Debug, Clone)]
pub struct AwsSts {
    client: Client,
}

fn sts_error<E>(operation: &'static str, error: SdkError<E>) -> CredentialsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            service.raw().status().as_u16() >= 500
                || matches!(
                    service.err().code(),
                    Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")
                )
        }
        _ => false,
    };
    CredentialsError::Sts {
        operation,
        message: tenancy::error_chain(&error),
        retryable,
    }
}

fn malformed(operation: &'static str, what: &str) -> CredentialsError {
    CredentialsError::Sts {
        operation,
        message: format!("the answer has no {what}"),
        retryable: false,
    }
}

impl AwsSts {
    /// Builds a client from the standard AWS configuration chain; `endpoint` overrides the
    /// region's STS endpoint (moto, a VPC endpoint).
    pub async fn connect(region: &str, endpoint: Option<&str>) -> Self {
        Self {
            client: Client::new(&sdk_config(region, endpoint).await),
        }
    }
}

#[async_trait]
impl SecurityTokenService for AwsSts {
    async fn caller_account(&self) -> Result<CallerAccount, CredentialsError> {
        const OP: &str = "GetCallerIdentity";
        let answer = self
            .client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sts_error(OP, e))?;
        let account = answer.account().ok_or_else(|| malformed(OP, "account"))?;
        let partition = answer
            .arn()
            .and_then(|arn| arn.split(':').nth(1))
            .filter(|p| !p.is_empty())
            .unwrap_or("aws");
        Ok(CallerAccount {
            partition: partition.to_owned(),
            account: account.to_owned(),
        })
    }

    async fn assume_role(
        &self,
        request: &AssumeRoleRequest,
    ) -> Result<TemporaryCredentials, CredentialsError> {
        const OP: &str = "AssumeRole";
        let duration = i32::try_from(request.duration_seconds).unwrap_or(i32::MAX);
        let mut call = self
            .client
            .assume_role()
            .role_arn(&request.role_arn)
            .role_session_name(&request.session_name)
            .source_identity(&request.source_identity)
            .policy(&request.policy)
            .duration_seconds(duration);
        for (key, value) in &request.tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| CredentialsError::Sts {
                    operation: OP,
                    message: tenancy::error_chain(&e),
                    retryable: false,
                })?;
            call = call.tags(tag);
        }
        let answer = call.send().await.map_err(|e| sts_error(OP, e))?;
        let issued = answer.credentials().ok_or_else(|| malformed(OP, "credentials"))?;
        let expires = issued.expiration();
        let expiration = DateTime::from_timestamp(expires.secs(), expires.subsec_nanos())
            .ok_or_else(|| malformed(OP, "valid expiration"))?;
        Ok(TemporaryCredentials {
            access_key_id: issued.access_key_id().to_owned(),
            secret_access_key: issued.secret_access_key().to_owned(),
            session_token: issued.session_token().to_owned(),
            expiration,
        })
    }
}

/// Credentials handed out, with what they cover.
#[derive(Debug, Clone)]
pub struct Vended {
    /// The credentials (shared with the cache).
    pub credentials: Arc<TemporaryCredentials>,
    /// The role they are a session of.
    pub role_arn: String,
    /// The `SourceIdentity` they carry.
    pub source_identity: String,
    /// The storage URIs they reach.
    pub locations: Vec<String>,
    /// Whether they came from the cache.
    pub cached: bool,
}

struct Cached {
    credentials: Arc<TemporaryCredentials>,
    fresh_until: Instant,
}

/// One cache entry. Its async lock is the single flight: the first miss holds it across the
/// STS call, and concurrent misses for the same key wait for it and then find the answer.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

struct Entries {
    slots: HashMap<CacheKey, Slot>,
    swept_at: Instant,
}

/// How often entries past their half-life are dropped even when the cache is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Credentials by cache key, each kept for half its lifetime, at most `max_entries` of them.
pub struct CredentialCache {
    entries: Mutex<Entries>,
    max_entries: usize,
    budget: StsBudget,
}

/// Uncached `AssumeRole` calls each tenant may make per minute (fixed one-minute windows).
struct StsBudget {
    per_minute: u32,
    windows: Mutex<HashMap<TenantId, (Instant, u32)>>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl StsBudget {
    fn spend(&self, tenant: &TenantId) -> Result<(), CredentialsError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 4096 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < MINUTE);
        }
        let (start, used) = windows.entry(tenant.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= MINUTE {
            *start = now;
            *used = 0;
        }
        if *used >= self.per_minute {
            return Err(CredentialsError::Throttled {
                per_minute: self.per_minute,
                retry_after: (*start + MINUTE)
                    .saturating_duration_since(now)
                    .max(Duration::from_secs(1)),
            });
        }
        *used += 1;
        Ok(())
    }
}

/// Vends credentials per tenant, role and scope through STS, with the cache.
pub struct CredentialVendor {
    sts: Arc<dyn SecurityTokenService>,
    provisioner: Arc<Provisioner>,
    account: tokio::sync::OnceCell<CallerAccount>,
    cache: CredentialCache,
    /// Tables recently found active, so an issuance answered from the cache reads nothing.
    active_tables: ExpiringMap<(TenantId, Zone, String), ()>,
}

/// How long a table found active is trusted by vending. A table deleted meanwhile gets at
/// most this much longer than it would otherwise; credentials vended just before its deletion
/// reach it for their whole lifetime anyway (15 minutes at least), so this adds nothing a
/// reader could not already have.
pub const ACTIVE_TABLE_TTL: Duration = Duration::from_secs(1);

/// Distinct tables remembered as active.
const ACTIVE_TABLES_CAPACITY: usize = 10_000;

impl CredentialVendor {
    /// A vendor over STS, for the provisioner's tenants; the cache holds at most `max_entries`
    /// credentials (beyond that, and until entries expire, calls go to STS uncached), and each
    /// tenant makes at most `sts_calls_per_minute` STS calls.
    pub fn new(
        sts: Arc<dyn SecurityTokenService>,
        provisioner: Arc<Provisioner>,
        max_entries: usize,
        sts_calls_per_minute: u32,
    ) -> Self {
        Self {
            sts,
            provisioner,
            account: tokio::sync::OnceCell::new(),
            cache: CredentialCache::new(max_entries, sts_calls_per_minute),
            active_tables: ExpiringMap::new(ACTIVE_TABLES_CAPACITY),
        }
    }

    /// The cache.
    pub fn cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// Credentials for `requester` on the tenant's data, narrowed to `scope`: from the cache
    /// while they have more than half their lifetime left, else from one `AssumeRole` call on
    /// the tenant's dedicated role, or on its shard's ABAC role tagged `tenant=<id>`.
    pub async fn vend(
        &self,
        tenant: &Tenant,
        requester: &Requester,
        scope: &CredentialScope,
    ) -> Result<Vended, CredentialsError> {
        if tenant.status != TenantStatus::Ready {
            return Err(CredentialsError::NotReady {
                tenant: tenant.id.to_string(),
                status: tenant.status.as_str(),
            });
        }
        for (index, table) in scope.tables.iter().enumerate() {
            if !self.table_active(&tenant.id, scope.zone, table).await? {
                return Err(CredentialsError::Field {
                    field: format!("tables[{index}]"),
                    message: format!(
                        "tenant {} has no {} table {table}",
                        tenant.id,
                        scope.zone.as_str()
                    ),
                });
            }
        }
        // Data roles live in the account of the plane's own identity; asked once per process.
        let account = self.account.get_or_try_init(|| self.sts.caller_account()).await?;
        let role_arn = role_arn(
            &account.partition,
            &account.account,
            &self.provisioner.role_of(tenant),
        );
        let bucket = self.provisioner.bucket_of(tenant);
        let request = assume_role_request(
            &role_arn,
            tenant.placement.kind,
            &bucket,
            &tenant.id,
            requester,
            scope,
        )
        .map_err(|v| CredentialsError::Field {
            field: v.field,
            message: v.message,
        })?;
        let source_identity = request.source_identity.clone();
        let key = CacheKey {
            tenant: tenant.id.clone(),
            requester: requester.clone(),
            request,
        };
        let (credentials, cached) = self.cache.get_or_assume(key, self.sts.as_ref()).await?;
        let bucket_uri = self.provisioner.storage().bucket_uri(&bucket);
        Ok(Vended {
            credentials,
            role_arn,
            source_identity,
            locations: locations(&bucket_uri, &tenant.id, scope),
            cached,
        })
    }
}

impl CredentialVendor {
    /// Whether the tenant has the table and it is active: from memory if it was within
    /// [`ACTIVE_TABLE_TTL`], else from the store. Absence is never remembered, so a table
    /// created a moment ago is found at once.
    async fn table_active(
        &self,
        tenant: &TenantId,
        zone: Zone,
        table: &str,
    ) -> Result<bool, CredentialsError> {
        let key = (tenant.clone(), zone, table.to_owned());
        let now = Instant::now();
        if self.active_tables.get(&key, now).is_some() {
            return Ok(true);
        }
        let active = self
            .provisioner
            .store()
            .get_table(tenant, zone, table)
            .await?
            .is_some_and(|t| t.status == TableStatus::Active);
        if active {
            self.active_tables.insert(key, (), now + ACTIVE_TABLE_TTL, now);
        }
        Ok(active)
    }
}

impl CredentialCache {
    /// An empty cache of at most `max_entries` (at least 1), whose misses cost each tenant one
    /// of its `sts_calls_per_minute`.
    pub fn new(max_entries: usize, sts_calls_per_minute: u32) -> Self {
        Self {
            entries: Mutex::new(Entries {
                slots: HashMap::new(),
                swept_at: Instant::now(),
            }),
            max_entries: max_entries.max(1),
            budget: StsBudget {
                per_minute: sts_calls_per_minute.max(1),
                windows: Mutex::new(HashMap::new()),
            },
        }
    }

    /// The key's credentials and whether they came from the cache: cached ones while more
    /// than half their lifetime is left, else one `AssumeRole` call shared by every
    /// concurrent caller of the key.
    pub async fn get_or_assume(
        &self,
        key: CacheKey,
        sts: &dyn SecurityTokenService,
    ) -> Result<(Arc<TemporaryCredentials>, bool), CredentialsError> {
        let Some(slot) = self.slot(&key) else {
            self.budget.spend(&key.tenant)?;
            let fresh = sts.assume_role(&key.request).await?;
            return Ok((Arc::new(fresh), false));
        };
        let mut entry = slot.lock().await;
        if let Some(cached) = entry.as_ref()
            && cached.fresh_until > Instant::now()
        {
            return Ok((cached.credentials.clone(), true));
        }
        // An error returns here with the entry left empty: errors are never cached, and the
        // next caller (a waiter of this flight included) asks STS again.
        self.budget.spend(&key.tenant)?;
        let fresh = Arc::new(sts.assume_role(&key.request).await?);
        let lifetime = (fresh.expiration - Utc::now()).to_std().unwrap_or_default();
        *entry = Some(Cached {
            credentials: fresh.clone(),
            fresh_until: Instant::now() + lifetime / 2,
        });
        Ok((fresh, false))
    }

    /// The key's entry, created if absent; `None` when the cache is full of live entries.
    fn slot(&self, key: &CacheKey) -> Option<Slot> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = entries.slots.get(key) {
            return Some(slot.clone());
        }
        if entries.slots.len() >= self.max_entries || entries.swept_at.elapsed() >= SWEEP_EVERY {
            sweep(&mut entries);
        }
        if entries.slots.len() >= self.max_entries {
            return None;
        }
        let slot = Slot::default();
        entries.slots.insert(key.clone(), slot.clone());
        Some(slot)
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).slots.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops entries past their half-life and empty ones (an STS error left them so), unless a
/// request is using them: a slot only the map holds, and whose lock is free, is idle.
fn sweep(entries: &mut Entries) {
    let now = Instant::now();
    entries.slots.retain(|_, slot| {
        if Arc::strong_count(slot) > 1 {
            return true;
        }
        match slot.try_lock() {
            Ok(entry) => entry.as_ref().is_some_and(|c| c.fresh_until > now),
            Err(_) => true,
        }
    });
    entries.swept_at = now;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tenancy::tenant::TenantId;

    use super::*;

    /// A test helper standing in for STS: counts calls, fails while told to, and answers
    /// slowly enough that concurrent callers overlap.
    #[derive(Default)]
    struct CountingSts {
        calls: AtomicUsize,
        failing: AtomicBool,
    }

    #[async_trait]
    impl SecurityTokenService for CountingSts {
        async fn caller_account(&self) -> Result<CallerAccount, CredentialsError> {
            Ok(CallerAccount {
                partition: "aws".into(),
                account: "123456789012".into(),
            })
        }

        async fn assume_role(&self, _: &AssumeRoleRequest) -> Result<TemporaryCredentials, CredentialsError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(CredentialsError::Sts {
                    operation: "AssumeRole",
                    message: "down".into(),
                    retryable: true,
                });
            }
            Ok(TemporaryCredentials {
                access_key_id: format!("ASIA{n}"),
                secret_access_key: "secret".into(),
                session_token: "token".into(),
                expiration: Utc::now() + chrono::Duration::seconds(900),
            })
        }
    }

    fn key(subject: &str, policy: &str) -> CacheKey {
        CacheKey {
            tenant: TenantId::parse("acme").expect("id"),
            requester: Requester {
                issuer: "lakeplane".into(),
                tenant: Some("acme".into()),
                subject: subject.into(),
                token_id: None,
            },
            request: AssumeRoleRequest {
                role_arn: "arn:aws:iam::123456789012:role/lp-t-acme".into(),
                session_name: format!("acme.{subject}"),
                source_identity: subject.into(),
                policy: policy.into(),
                tags: Vec::new(),
                duration_seconds: 900,
            },
        }
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_call_and_hits_make_none() {
        let sts = Arc::new(CountingSts::default());
        let cache = Arc::new(CredentialCache::new(100, 1000));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (sts, cache) = (sts.clone(), cache.clone());
            tasks.push(tokio::spawn(async move {
                cache.get_or_assume(key("ann", "p"), sts.as_ref()).await
            }));
        }
        let mut keys = Vec::new();
        for task in tasks {
            let (credentials, _) = task.await.expect("task").expect("vended");
            keys.push(credentials.access_key_id.clone());
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1, "one STS call for 20 misses");
        assert!(keys.iter().all(|k| k == "ASIA0"));
        let (again, cached) = cache
            .get_or_assume(key("ann", "p"), sts.as_ref())
            .await
            .expect("hit");
        assert!(cached);
        assert_eq!(again.access_key_id, "ASIA0");
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // Another subject or scope is another call.
        let (bob, cached) = cache
            .get_or_assume(key("bob", "p"), sts.as_ref())
            .await
            .expect("bob");
        assert!(!cached);
        assert_ne!(bob.access_key_id, "ASIA0");
        cache
            .get_or_assume(key("ann", "q"), sts.as_ref())
            .await
            .expect("other scope");
        assert_eq!(sts.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let sts = CountingSts::default();
        let cache = CredentialCache::new(100, 1000);
        sts.failing.store(true, Ordering::SeqCst);
        assert!(cache.get_or_assume(key("ann", "p"), &sts).await.is_err());
        sts.failing.store(false, Ordering::SeqCst);
        let (credentials, cached) = cache
            .get_or_assume(key("ann", "p"), &sts)
            .await
            .expect("works again");
        assert!(!cached);
        assert_eq!(credentials.access_key_id, "ASIA1");
    }

    #[tokio::test]
    async fn the_cache_stays_bounded_and_drops_stale_entries() {
        let sts = CountingSts::default();
        let cache = CredentialCache::new(2, 1000);
        for subject in ["a", "b", "c"] {
            cache
                .get_or_assume(key(subject, "p"), &sts)
                .await
                .expect("vended");
        }
        assert_eq!(cache.len(), 2, "the third went uncached");
        // Past their half-life, entries make room for new ones.
        for slot in cache.entries.lock().expect("lock").slots.values() {
            if let Some(c) = slot.try_lock().expect("idle").as_mut() {
                c.fresh_until = Instant::now();
            }
        }
        let (_, cached) = cache.get_or_assume(key("d", "p"), &sts).await.expect("vended");
        assert!(!cached);
        assert_eq!(cache.len(), 1, "stale entries were swept");
    }

    /// STS throttles per AWS account: each tenant's uncached calls are capped per minute, so
    /// one tenant asking for ever new scopes cannot use up everyone's STS rate. Hits cost
    /// nothing, and another tenant keeps its allowance.
    #[tokio::test]
    async fn each_tenants_sts_calls_are_capped_per_minute() {
        let sts = CountingSts::default();
        let cache = CredentialCache::new(100, 3);
        for subject in ["a", "b", "c"] {
            cache
                .get_or_assume(key(subject, "p"), &sts)
                .await
                .expect("vended");
        }
        let refused = cache
            .get_or_assume(key("d", "p"), &sts)
            .await
            .expect_err("a fourth call this minute");
        assert!(
            matches!(refused, CredentialsError::Throttled { per_minute: 3, retry_after } if retry_after <= MINUTE),
            "{refused:?}"
        );
        assert_eq!(refused.class().code, "sts-quota");
        assert_eq!(sts.calls.load(Ordering::SeqCst), 3, "the refusal made no call");
        let (_, cached) = cache.get_or_assume(key("a", "p"), &sts).await.expect("a hit");
        assert!(cached, "cached credentials are still handed out");
        let mut other = key("a", "p");
        other.tenant = TenantId::parse("globex").expect("id");
        cache
            .get_or_assume(other, &sts)
            .await
            .expect("globex's own allowance");
        assert_eq!(sts.calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn debug_never_shows_the_secrets() {
        let credentials = TemporaryCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: "token-value".into(),
            expiration: Utc::now(),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("ASIAEXAMPLE"));
        assert!(
            !shown.contains("very-secret") && !shown.contains("token-value"),
            "{shown}"
        );
    }
}
