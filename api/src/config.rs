//! Layered configuration: defaults, then a TOML file, then `LAKEPLANE__SECTION__KEY`
//! environment variables, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use lake_manager::cost::Prices;
use lake_manager::storage::StorageKind;
use serde::{Deserialize, Serialize};
use tenancy::placement::PlacementConfig;
use tenancy::store::{DatabaseUrl, PoolSettings};
use tenancy::tenant::Quotas;
use tenancy::token::{MIN_TTL_SECS, OidcIssuer, TokenSettings};
use tenancy::zone::ZonesConfig;

/// Everything the binary can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root for the embedded database, the local lake and generated keys.
    pub data_dir: PathBuf,
    /// Logging.
    pub log: LogConfig,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The metadata database.
    pub database: DatabaseConfig,
    /// Object storage for the lake.
    pub storage: StorageConfig,
    /// Background workers.
    pub workers: WorkersConfig,
    /// Tokens and identity providers.
    pub auth: AuthConfig,
    /// Hybrid placement policy.
    pub placement: PlacementConfig,
    /// Tenant defaults.
    pub tenants: TenantsConfig,
    /// Per-principal request rate limits.
    pub rate_limit: RateLimitConfig,
    /// The audit log's roll-up of requests no one answers for.
    pub audit: AuditConfig,
    /// Zone policy defaults and bounds.
    pub zones: ZonesConfig,
    /// Storage prices for cost estimates.
    pub pricing: Prices,
    /// Delta tables and their maintenance.
    pub tables: TablesConfig,
    /// Streaming ingestion.
    pub ingest: IngestConfig,
    /// Delta Sharing: recipients' profiles and the file URLs the plane signs.
    pub sharing: SharingConfig,
    /// The web console at `/console`.
    pub console: ConsoleConfig,
}

/// The web console.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/console`.
    pub enabled: bool,
    /// Key that seals console session cookies, at least 32 bytes; without it one is generated
    /// into `data_dir` (set the same one on every replica behind one address).
    pub session_secret: Option<Secret>,
    /// Mark the session cookie `Secure`. Unset: when the request came over TLS as the proxy in
    /// front says (`X-Forwarded-Proto: https`) or `sharing.public_url` is https.
    pub secure_cookie: Option<bool>,
}

/// File name of the generated console session secret inside the data directory.
pub const GENERATED_CONSOLE_SECRET_FILE: &str = "console-session-secret";

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_secret: None,
            secure_cookie: None,
        }
    }
}

impl ConsoleConfig {
    fn problem(&self) -> Option<(&'static str, String)> {
        match &self.session_secret {
            Some(secret) if secret.expose().trim().len() < 32 => {
                Some(("session_secret", "must be at least 32 bytes".into()))
            }
            _ => None,
        }
    }
}

/// Delta Sharing settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharingConfig {
    /// The base URL recipients reach this server at (profiles' `endpoint` and file URLs);
    /// without it, the `Host` of the request that creates the recipient or the query.
    pub public_url: Option<url::Url>,
    /// HMAC-SHA256 key for file URLs on local storage, at least 32 bytes; without it one is
    /// generated into `data_dir` (set it when several replicas serve files).
    pub url_signing_secret: Option<Secret>,
    /// Longest recipient lifetime a request may ask for.
    pub max_recipient_ttl_secs: u64,
}

/// File name of the generated URL-signing secret inside the data directory.
pub const GENERATED_URL_SECRET_FILE: &str = "url-signing-secret";

impl Default for SharingConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            url_signing_secret: None,
            max_recipient_ttl_secs: 30 * 24 * 3600,
        }
    }
}

impl SharingConfig {
    fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Some(("public_url", "must be an http or https URL".into()));
        }
        if let Some(secret) = &self.url_signing_secret
            && secret.expose().len() < tenancy::share::MIN_SECRET_BYTES
        {
            return Some((
                "url_signing_secret",
                format!("must be at least {} bytes", tenancy::share::MIN_SECRET_BYTES),
            ));
        }
        if !(60..=365 * 24 * 3600).contains(&self.max_recipient_ttl_secs) {
            return Some(("max_recipient_ttl_secs", "must be between 60 and 31536000".into()));
        }
        None
    }
}

/// Streaming ingestion settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest push body, bytes, after gzip decompression.
    pub max_body_bytes: usize,
    /// A table's buffer is committed once it holds this many bytes.
    pub flush_bytes: usize,
    /// ...or once it holds this many and the table's previous commit has ended.
    pub min_flush_bytes: usize,
    /// ...or this long after its first request, milliseconds.
    pub linger_ms: u64,
    /// Most bytes buffered per table; beyond it pushes get 429.
    pub table_buffer_bytes: usize,
    /// Most bytes buffered over all tables; beyond it pushes get 429.
    pub total_buffer_bytes: usize,
    /// Most bytes of `total_buffer_bytes` one tenant's push bodies may hold at once (being
    /// read, inflated or buffered); beyond it that tenant's pushes get 429.
    pub tenant_buffer_bytes: usize,
    /// A push body that sends nothing for this long is answered 408, milliseconds.
    pub body_stall_ms: u64,
    /// Most pushes inflated or validated at once (blocking threads).
    pub decode_threads: usize,
    /// How long a push waits for its tenant's migration to end before it answers 503,
    /// milliseconds; 0 answers at once.
    pub fence_wait_ms: u64,
    /// Flush each push's commit to disk (fsync) before acknowledging it, on local storage.
    pub fsync: bool,
    /// How long a push waits for its commit before it answers without it, milliseconds: a
    /// push still queued is withdrawn (503 `commit-failed`, never committed), one already in
    /// a commit answers 503 `commit-outcome-unknown`. Below `server.request_timeout_secs`;
    /// unset, five sixths of it (25 s of the default 30 s).
    pub ack_timeout_ms: Option<u64>,
    /// How long a push's `Idempotency-Key` is remembered, seconds.
    pub idempotency_window_secs: u64,
    /// How long an attempt that may still commit (one of another replica, or one whose commit
    /// failed with an unknown outcome) keeps its key before a retry takes it over, seconds.
    /// Above `server.request_timeout_secs`; longer than the storage client's retries (3
    /// minutes by default on S3) is safest.
    pub idempotency_takeover_secs: u64,
    /// Kafka workers flush after this many records.
    pub kafka_flush_records: usize,
    /// ...or this long after the first buffered record, milliseconds.
    pub kafka_linger_ms: u64,
    /// Broker metadata and watermark requests time out after this, milliseconds (an
    /// unreachable broker fails the worker after it).
    pub kafka_request_timeout_ms: u64,
    /// 32 random bytes, base64: seals Kafka passwords at rest. Without it, streams with
    /// secret properties are refused.
    pub secret_key: Option<Secret>,
}

impl IngestConfig {
    /// How long a push waits for its commit: as configured, or five sixths of the request
    /// timeout, so the push answers before the timeout cuts it off.
    pub fn ack_timeout(&self, server: &ServerConfig) -> std::time::Duration {
        match self.ack_timeout_ms {
            Some(ms) => std::time::Duration::from_millis(ms),
            None => std::time::Duration::from_secs(server.request_timeout_secs) * 5 / 6,
        }
    }

    fn problem(&self) -> Option<(&'static str, String)> {
        let limit = |v: usize| (1024..=(1usize << 32)).contains(&v);
        if !limit(self.max_body_bytes) {
            return Some(("max_body_bytes", "must be 1 KiB to 4 GiB".into()));
        }
        if !limit(self.table_buffer_bytes) || self.table_buffer_bytes < self.max_body_bytes {
            return Some((
                "table_buffer_bytes",
                "must be 1 KiB to 4 GiB and at least max_body_bytes".into(),
            ));
        }
        if !limit(self.total_buffer_bytes) || self.total_buffer_bytes < self.table_buffer_bytes {
            return Some((
                "total_buffer_bytes",
                "must be 1 KiB to 4 GiB and at least table_buffer_bytes".into(),
            ));
        }
        // A gzip body holds its compressed and its inflated bytes while it is read.
        if self.tenant_buffer_bytes < 2 * self.max_body_bytes
            || self.tenant_buffer_bytes > self.total_buffer_bytes
        {
            return Some((
                "tenant_buffer_bytes",
                "must be at least twice max_body_bytes and at most total_buffer_bytes".into(),
            ));
        }
        if !(100..=600_000).contains(&self.body_stall_ms) {
            return Some(("body_stall_ms", "must be 100 to 600000".into()));
        }
        if self.fence_wait_ms > 60_000 {
            return Some(("fence_wait_ms", "must be 0 to 60000".into()));
        }
        if !(1..=256).contains(&self.decode_threads) {
            return Some(("decode_threads", "must be 1 to 256".into()));
        }
        if self.flush_bytes == 0 {
            return Some(("flush_bytes", "must be at least 1".into()));
        }
        if self.min_flush_bytes > self.flush_bytes {
            return Some(("min_flush_bytes", "must be at most flush_bytes".into()));
        }
        if !(1..=60_000).contains(&self.linger_ms) || !(1..=60_000).contains(&self.kafka_linger_ms) {
            return Some(("linger_ms", "lingers must be 1 to 60000 ms".into()));
        }
        if !(100..=300_000).contains(&self.kafka_request_timeout_ms) {
            return Some(("kafka_request_timeout_ms", "must be 100 to 300000".into()));
        }
        if self
            .ack_timeout_ms
            .is_some_and(|ms| !(100..=3_600_000).contains(&ms))
        {
            return Some(("ack_timeout_ms", "must be 100 to 3600000".into()));
        }
        if !(60..=7 * 86_400).contains(&self.idempotency_window_secs) {
            return Some(("idempotency_window_secs", "must be 60 to 604800 (7 days)".into()));
        }
        if !(1..=86_400).contains(&self.idempotency_takeover_secs)
            || self.idempotency_takeover_secs >= self.idempotency_window_secs
        {
            return Some((
                "idempotency_takeover_secs",
                "must be 1 to 86400 and below idempotency_window_secs".into(),
            ));
        }
        if self.kafka_flush_records == 0 {
            return Some(("kafka_flush_records", "must be at least 1".into()));
        }
        if let Some(key) = &self.secret_key
            && lake_manager::ingest::secrets::Sealer::from_base64(key.expose()).is_err()
        {
            return Some(("secret_key", "must be 32 bytes, base64-encoded".into()));
        }
        None
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        let defaults = lake_manager::ingest::group_commit::GroupCommitSettings::default();
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            flush_bytes: defaults.flush_bytes,
            min_flush_bytes: defaults.min_flush_bytes,
            linger_ms: defaults.linger.as_millis() as u64,
            table_buffer_bytes: defaults.table_buffer_bytes,
            total_buffer_bytes: defaults.total_buffer_bytes,
            tenant_buffer_bytes: defaults.total_buffer_bytes / 4,
            body_stall_ms: 10_000,
            decode_threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            fence_wait_ms: 5_000,
            fsync: defaults.fsync,
            ack_timeout_ms: None,
            idempotency_window_secs: 86_400,
            idempotency_takeover_secs: 300,
            kafka_flush_records: lake_manager::ingest::kafka::KafkaSettings::default().flush_records,
            kafka_linger_ms: lake_manager::ingest::kafka::KafkaSettings::default()
                .linger
                .as_millis() as u64,
            kafka_request_timeout_ms: lake_manager::ingest::kafka::KafkaSettings::default()
                .request_timeout
                .as_millis() as u64,
            secret_key: None,
        }
    }
}

/// Table settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TablesConfig {
    /// Files below this size count as small (describe, and when compaction is due).
    pub small_file_bytes: u64,
    /// How long a maintenance run holds its table's lease between renewals.
    pub maintenance_lease_secs: u64,
    /// Most maintenance runs one process executes at once.
    pub maintenance_concurrency: usize,
    /// Most of them for one tenant; also the most maintenance workers of one tenant the
    /// reconciler keeps running at once in the whole installation (pods, with Kubernetes).
    pub maintenance_concurrency_per_tenant: usize,
    /// How long the Unity Catalog API serves a table's cached schema before checking its log
    /// for newer commits, milliseconds: how far behind an outside writer's change it can be.
    pub metadata_staleness_ms: u64,
    /// How long an erasure waits after its deletes before vacuuming the erased files, seconds,
    /// so readers that started before the delete finish; shorter than the erasure deadline.
    pub erasure_window_secs: u64,
    /// How long after its request an erasure starts deleting, seconds, so every ingest buffer
    /// (of any replica or Kafka worker) has committed or refused the events it accepted
    /// before the request. Unset: `ingest.idempotency_takeover_secs` plus the Kafka linger,
    /// which also outlasts a commit already under way on slow storage. At least
    /// `ingest.ack_timeout_ms` plus `ingest.kafka_linger_ms`.
    pub erasure_drain_secs: Option<u64>,
}

impl Default for TablesConfig {
    fn default() -> Self {
        Self {
            small_file_bytes: lake_manager::delta::DEFAULT_SMALL_FILE_BYTES,
            maintenance_lease_secs: 60,
            maintenance_concurrency: 2,
            maintenance_concurrency_per_tenant: 1,
            metadata_staleness_ms: 2_000,
            erasure_window_secs: 7 * 24 * 3600,
            erasure_drain_secs: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            workers: WorkersConfig::default(),
            auth: AuthConfig::default(),
            placement: PlacementConfig::default(),
            tenants: TenantsConfig::default(),
            rate_limit: RateLimitConfig::default(),
            audit: AuditConfig::default(),
            zones: ZonesConfig::default(),
            pricing: Prices::default(),
            tables: TablesConfig::default(),
            ingest: IngestConfig::default(),
            sharing: SharingConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `api=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Longest a request may take before it is answered 503.
    pub request_timeout_secs: u64,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// After SIGTERM, how long in-flight requests may run before the process gives up on them.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            body_limit_bytes: 10 * 1024 * 1024,
            shutdown_grace_secs: 30,
        }
    }
}

/// Metadata database settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; defaults to `sqlite://<data_dir>/lakeplane.db`.
    pub url: Option<DatabaseUrl>,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection before answering 503.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

/// Object storage settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `local` or `s3`.
    pub kind: StorageKind,
    /// Root directory for `local`; defaults to `<data_dir>/lake`.
    pub root: Option<PathBuf>,
    /// Settings for `s3`.
    pub s3: S3Config,
    /// How long a migrated tenant's old keys are kept before they are deleted.
    pub migration_grace_secs: u64,
    /// How long a migration whose storage keeps being unavailable is retried before it is
    /// rolled back (one the destination refuses outright is rolled back at once).
    pub migration_give_up_secs: u64,
    /// How often enforcing buckets are checked for lifecycle drift and repaired; 0 turns it off.
    pub drift_check_secs: u64,
    /// Most tenant lifecycle rules (zone overrides) one shared shard may hold; S3 allows
    /// 1,000 rules per bucket, and the platform's own take a few.
    pub lifecycle_rules_per_shard: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Local,
            root: None,
            s3: S3Config::default(),
            migration_grace_secs: 86_400,
            migration_give_up_secs: 3_600,
            drift_check_secs: 3_600,
            lifecycle_rules_per_shard: 900,
        }
    }
}

/// S3 settings; credentials come from the standard AWS chain, never from here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Custom endpoint such as a MinIO or moto URL.
    pub endpoint: Option<url::Url>,
    /// Region.
    pub region: Option<String>,
    /// Path-style addressing, needed by most non-AWS servers.
    pub path_style: bool,
    /// Prefix for bucket names.
    pub bucket_prefix: String,
    /// A KMS key id or ARN for default bucket encryption; SSE-S3 (AES256) when unset.
    pub kms_key_id: Option<String>,
    /// IAM and STS.
    pub iam: IamConfig,
    /// Server-side copies (migrations): when to switch to multipart, and the part size.
    pub copy: lake_manager::storage::CopySettings,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            path_style: false,
            bucket_prefix: "lakeplane".to_owned(),
            kms_key_id: None,
            iam: IamConfig::default(),
            copy: lake_manager::storage::CopySettings::default(),
        }
    }
}

/// IAM settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IamConfig {
    /// Whether roles are created and STS credentials vended.
    pub enabled: bool,
    /// The principal (ARN) allowed to assume data roles and tag sessions (the plane's own).
    pub broker_principal: Option<String>,
    /// A permissions boundary (ARN) set on every role the plane creates.
    pub permissions_boundary: Option<String>,
    /// STS endpoint for vending credentials; defaults to `storage.s3.endpoint` when that is
    /// set, else the region's STS endpoint.
    pub sts_endpoint: Option<url::Url>,
    /// Most vended credentials kept in the cache (per process).
    pub credentials_cache_entries: usize,
    /// Most uncached STS `AssumeRole` calls one tenant's requests make per minute (per
    /// process); beyond it vending answers 429 `sts-quota`.
    pub sts_calls_per_minute_per_tenant: u32,
}

impl Default for IamConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            broker_principal: None,
            permissions_boundary: None,
            sts_endpoint: None,
            credentials_cache_entries: 10_000,
            sts_calls_per_minute_per_tenant: 60,
        }
    }
}

/// Worker settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Where workers run.
    pub launcher: Launcher,
    /// The leader reconciles at least this often, and the other replicas try to take over the
    /// leadership this often, seconds.
    pub reconcile_secs: u64,
    /// A running worker heartbeats this often, seconds.
    pub heartbeat_secs: u64,
    /// A running worker whose last heartbeat is older than this is dead and is started
    /// again, seconds.
    pub heartbeat_timeout_secs: u64,
    /// A worker that has not started this long after launch is launched again, seconds.
    pub start_timeout_secs: u64,
    /// First restart delay after a failure, milliseconds; it doubles with each failure.
    pub backoff_base_ms: u64,
    /// Longest restart delay, seconds.
    pub backoff_cap_secs: u64,
    /// After this many consecutive failures a worker stays `failed` until its spec changes
    /// or an admin retries it.
    pub max_failures: u32,
    /// How often the leader checks every table for maintenance that is due, seconds; 0 turns
    /// the scheduler off.
    pub schedule_secs: u64,
    /// How often the leader queues the pipeline runs that triggers make due, seconds; 0 turns
    /// triggers off (requested runs still start at once, as workers).
    pub pipeline_poll_secs: u64,
    /// Longest a pipeline run may compute, seconds; past it the run fails, and so does its
    /// pipeline (a run over the same data would take as long again).
    pub pipeline_run_timeout_secs: u64,
    /// Finished workers no longer needed stay listed this long, seconds.
    pub keep_finished_secs: u64,
    /// The Kubernetes launcher's settings.
    pub kubernetes: KubernetesConfig,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        let settings = lake_manager::workers::WorkerSettings::default();
        Self {
            launcher: Launcher::default(),
            reconcile_secs: settings.reconcile_every.as_secs(),
            heartbeat_secs: settings.heartbeat_every.as_secs(),
            heartbeat_timeout_secs: settings.policy.heartbeat_timeout.as_secs(),
            start_timeout_secs: settings.policy.start_timeout.as_secs(),
            backoff_base_ms: settings.policy.base.as_millis() as u64,
            backoff_cap_secs: settings.policy.cap.as_secs(),
            max_failures: settings.policy.max_failures,
            schedule_secs: settings.schedule_every.as_secs(),
            pipeline_poll_secs: settings.pipeline_every.as_secs(),
            pipeline_run_timeout_secs: settings.pipeline_run_limit.as_secs(),
            keep_finished_secs: settings.keep_finished.as_secs(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

impl WorkersConfig {
    fn problem(&self) -> Option<(&'static str, String)> {
        let within = |v: u64, lo: u64, hi: u64| (lo..=hi).contains(&v);
        if !within(self.reconcile_secs, 1, 3600) {
            return Some(("reconcile_secs", "must be 1 to 3600".into()));
        }
        if !within(self.heartbeat_secs, 1, 600) {
            return Some(("heartbeat_secs", "must be 1 to 600".into()));
        }
        // Two missed heartbeats must not yet count as death (one can be late under load).
        if self.heartbeat_timeout_secs < 2 * self.heartbeat_secs || self.heartbeat_timeout_secs > 3600 {
            return Some((
                "heartbeat_timeout_secs",
                "must be at least twice heartbeat_secs and at most 3600".into(),
            ));
        }
        if !within(self.start_timeout_secs, 1, 86_400) {
            return Some(("start_timeout_secs", "must be 1 to 86400".into()));
        }
        if !within(self.backoff_base_ms, 1, 3_600_000) {
            return Some(("backoff_base_ms", "must be 1 to 3600000".into()));
        }
        if !within(self.backoff_cap_secs, 1, 86_400) || self.backoff_cap_secs * 1000 < self.backoff_base_ms {
            return Some((
                "backoff_cap_secs",
                "must be 1 to 86400 and at least backoff_base_ms".into(),
            ));
        }
        if !(1..=1000).contains(&self.max_failures) {
            return Some(("max_failures", "must be 1 to 1000".into()));
        }
        if self.schedule_secs > 30 * 86_400 {
            return Some(("schedule_secs", "must be at most 30 days (0 turns it off)".into()));
        }
        if self.pipeline_poll_secs > 3600 {
            return Some((
                "pipeline_poll_secs",
                "must be at most 3600 (0 turns triggers off)".into(),
            ));
        }
        if !(1..=86_400).contains(&self.pipeline_run_timeout_secs) {
            return Some(("pipeline_run_timeout_secs", "must be 1 to 86400".into()));
        }
        if let Some((field, problem)) = self.kubernetes.problem() {
            return Some((field, problem));
        }
        None
    }

    /// The lake-manager settings these values make.
    pub fn settings(&self) -> lake_manager::workers::WorkerSettings {
        use std::time::Duration;
        lake_manager::workers::WorkerSettings {
            policy: tenancy::worker::RestartPolicy {
                base: Duration::from_millis(self.backoff_base_ms),
                cap: Duration::from_secs(self.backoff_cap_secs),
                max_failures: self.max_failures,
                heartbeat_timeout: Duration::from_secs(self.heartbeat_timeout_secs),
                start_timeout: Duration::from_secs(self.start_timeout_secs),
            },
            heartbeat_every: Duration::from_secs(self.heartbeat_secs),
            reconcile_every: Duration::from_secs(self.reconcile_secs),
            schedule_every: Duration::from_secs(self.schedule_secs),
            pipeline_every: Duration::from_secs(self.pipeline_poll_secs),
            pipeline_run_limit: Duration::from_secs(self.pipeline_run_timeout_secs),
            keep_finished: Duration::from_secs(self.keep_finished_secs),
            // Set from `tables.maintenance_concurrency_per_tenant` where the app is assembled.
            maintenance_per_tenant: lake_manager::workers::WorkerSettings::default().maintenance_per_tenant,
        }
    }
}

/// Resources of one kind of worker pod (Kubernetes quantities).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodResources {
    /// CPU request, e.g. `250m`.
    pub cpu_request: String,
    /// Memory request, e.g. `256Mi`.
    pub memory_request: String,
    /// CPU limit.
    pub cpu_limit: String,
    /// Memory limit.
    pub memory_limit: String,
}

/// Where and how the Kubernetes launcher runs workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Namespace of the worker objects.
    pub namespace: String,
    /// The server's own image; workers run `lakeplane worker run --id ID` in it.
    pub image: String,
    /// Image pull policy (`Always`, `IfNotPresent`, `Never`); unset leaves the cluster default.
    pub image_pull_policy: Option<String>,
    /// Service account of worker pods.
    pub service_account: String,
    /// ConfigMap holding `lakeplane.toml`, mounted read-only into worker pods.
    pub config_map: String,
    /// Secret whose keys become worker pods' environment (`LAKEPLANE__...`), by reference.
    pub secret: Option<String>,
    /// Finished Jobs are removed by Kubernetes this long after they end, seconds.
    pub job_ttl_secs: i32,
    /// Resources by worker kind (`ingest`, `compact`, `retention`, `migrate`, `purge`);
    /// kinds left out keep their defaults.
    pub resources: std::collections::BTreeMap<String, PodResources>,
    /// The installation's name, labelled `app.kubernetes.io/instance` on worker objects and
    /// pods; the launcher then removes orphans of this installation only. The chart sets its
    /// release name.
    pub instance: Option<String>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        let defaults = lake_manager::workers::kube::KubeSettings::default();
        Self {
            namespace: defaults.namespace,
            image: defaults.image,
            image_pull_policy: defaults.image_pull_policy,
            service_account: defaults.service_account,
            config_map: defaults.config_map,
            secret: defaults.secret,
            job_ttl_secs: defaults.job_ttl_secs,
            resources: std::collections::BTreeMap::new(),
            instance: defaults.instance,
        }
    }
}

impl KubernetesConfig {
    /// The launcher settings these values make.
    pub fn settings(&self) -> lake_manager::workers::kube::KubeSettings {
        use lake_manager::workers::kube::{KubeSettings, Resources};
        let mut settings = KubeSettings {
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            service_account: self.service_account.clone(),
            config_map: self.config_map.clone(),
            secret: self.secret.clone(),
            job_ttl_secs: self.job_ttl_secs,
            instance: self.instance.clone(),
            ..KubeSettings::default()
        };
        for (kind, r) in &self.resources {
            let slot = match kind.as_str() {
                "ingest" => &mut settings.resources.ingest,
                "compact" => &mut settings.resources.compact,
                "retention" => &mut settings.resources.retention,
                "migrate" => &mut settings.resources.migrate,
                "purge" => &mut settings.resources.purge,
                "pipeline" => &mut settings.resources.pipeline,
                _ => continue, // refused by validation
            };
            *slot = Resources::new(&r.cpu_request, &r.memory_request, &r.cpu_limit, &r.memory_limit);
        }
        settings
    }

    fn problem(&self) -> Option<(&'static str, String)> {
        let dns_label = |v: &str| {
            !v.is_empty()
                && v.len() <= 63
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !v.starts_with('-')
                && !v.ends_with('-')
        };
        if !dns_label(&self.namespace) {
            return Some(("kubernetes.namespace", "must be a DNS label".into()));
        }
        if self.image.trim().is_empty() {
            return Some(("kubernetes.image", "must name an image".into()));
        }
        if !dns_label(&self.service_account) && !self.service_account.contains('.') {
            return Some(("kubernetes.service_account", "must be a Kubernetes name".into()));
        }
        if self.config_map.is_empty() {
            return Some(("kubernetes.config_map", "must name a ConfigMap".into()));
        }
        if !(0..=7 * 86_400).contains(&self.job_ttl_secs) {
            return Some(("kubernetes.job_ttl_secs", "must be 0 to 604800".into()));
        }
        if let Some(policy) = &self.image_pull_policy
            && !["Always", "IfNotPresent", "Never"].contains(&policy.as_str())
        {
            return Some((
                "kubernetes.image_pull_policy",
                "must be Always, IfNotPresent or Never".into(),
            ));
        }
        if let Some(instance) = &self.instance {
            let bytes = instance.as_bytes();
            let label_value = !bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
            if !label_value {
                return Some((
                    "kubernetes.instance",
                    "must be a Kubernetes label value: 1 to 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends".into(),
                ));
            }
        }
        for kind in self.resources.keys() {
            if tenancy::worker::WorkerKind::parse(kind).is_none() {
                return Some((
                    "kubernetes.resources",
                    format!(
                        "{kind:?} is not a worker kind (ingest, compact, retention, migrate, purge, pipeline)"
                    ),
                ));
            }
        }
        None
    }
}

/// Where background workers run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Launcher {
    /// Supervised tokio tasks inside the server.
    #[default]
    InProcess,
    /// Kubernetes Deployments and Jobs.
    Kubernetes,
    /// Nothing is launched: the reconciler records pending workers and an outside
    /// supervisor runs each with `lakeplane worker run --id ID`.
    External,
}

/// A secret value: shown as `***` in `Debug`, logs and serialized config.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, only for the code that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Token signing and verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The Ed25519 signing key as PKCS#8 PEM. Wins over `signing_key_file`.
    pub signing_key: Option<Secret>,
    /// A file holding the signing key; without either, one is generated in `data_dir`.
    pub signing_key_file: Option<PathBuf>,
    /// `iss` of Lakeplane's tokens.
    pub issuer: String,
    /// `aud` every accepted token must carry.
    pub audience: String,
    /// Longest lifetime of an issued token.
    pub max_token_ttl_secs: u64,
    /// Most unrevoked, unexpired tokens a tenant may hold (minting more answers 409).
    pub max_live_tokens_per_tenant: u32,
    /// Clock skew tolerated on token times.
    pub leeway_secs: u64,
    /// How stale the revocation list may be on a replica that did not revoke.
    pub revocation_cache_ttl_ms: u64,
    /// Trusted external OIDC issuers.
    pub oidc: Vec<OidcIssuer>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let tokens = TokenSettings::default();
        Self {
            signing_key: None,
            signing_key_file: None,
            issuer: tokens.issuer,
            audience: tokens.audience,
            max_token_ttl_secs: tokens.max_ttl_secs,
            max_live_tokens_per_tenant: 1000,
            leeway_secs: tokens.leeway_secs,
            revocation_cache_ttl_ms: 1000,
            oidc: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// The token settings shared by signer and verifier.
    pub fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            max_ttl_secs: self.max_token_ttl_secs,
            leeway_secs: self.leeway_secs,
        }
    }
}

/// Tenant defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsConfig {
    /// Quotas of tenants created without explicit ones.
    pub default_quotas: Quotas,
    /// How long a deleted tenant's id stays reserved: at least the longest token lifetime, so
    /// nothing that names the id outlives the reservation.
    pub id_reuse_after_secs: u64,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        Self {
            default_quotas: Quotas::default(),
            // A day past the default longest token lifetime (30 days).
            id_reuse_after_secs: 31 * 24 * 3600,
        }
    }
}

/// Per-principal rate limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per second per token subject (anonymous callers: per address).
    pub per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Sustained (and burst) requests per second of all of a standard-tier tenant's callers
    /// together: a tenant-admin can mint tokens for any number of subjects.
    pub standard_tenant_per_second: u32,
    /// The same for an enterprise-tier tenant.
    pub enterprise_tenant_per_second: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 1000,
            burst: 1000,
            standard_tenant_per_second: 2000,
            enterprise_tenant_per_second: 5000,
        }
    }
}

/// How requests no one answers for (no valid token, no route, over a rate limit) reach the
/// audit log: rolled up per source network, actor, action and window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The roll-up window; each window's rows are written when it ends.
    pub rollup_window_secs: u64,
    /// Most rows one window writes; requests past it fold into one `audit.overflow` row.
    pub rollup_max_rows: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            rollup_window_secs: 60,
            rollup_max_rows: 256,
        }
    }
}

/// A configuration problem, reported in one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {problem}{}", source_suffix(.origin))]
pub struct ConfigError {
    /// The dotted key, e.g. `server.listen`.
    pub key: String,
    /// What is wrong with its value.
    pub problem: String,
    /// Where the value came from, when known.
    pub origin: Option<String>,
}

fn source_suffix(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" (set by {o})"))
        .unwrap_or_default()
}

impl ConfigError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            problem: problem.into(),
            origin: None,
        }
    }
}

/// Values given as command-line flags; they win over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `server.listen`.
    pub listen: Option<String>,
    /// `data_dir`.
    pub data_dir: Option<String>,
    /// `database.url`.
    pub database_url: Option<String>,
    /// `log.level`.
    pub log_level: Option<String>,
}

impl Config {
    /// Loads the layers and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} is not a readable file", file.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("LAKEPLANE__").split("__"));
        // Raw strings, not typed values, so a bad flag is reported by the same typed parse as
        // every other layer, naming its key.
        for (key, flag, value) in [
            ("server.listen", "--listen", &overrides.listen),
            ("data_dir", "--data-dir", &overrides.data_dir),
            ("database.url", "--database-url", &overrides.database_url),
            ("log.level", "--log-level", &overrides.log_level),
        ] {
            if let Some(value) = value {
                figment = figment.merge(Flag {
                    key,
                    flag,
                    value: value.clone(),
                });
            }
        }
        let config: Config = figment.extract().map_err(from_figment)?;
        config.validate()?;
        Ok(config)
    }

    /// How long an erasure waits after its request before deleting (see
    /// `tables.erasure_drain_secs`).
    pub fn erasure_drain(&self) -> std::time::Duration {
        let linger = std::time::Duration::from_millis(self.ingest.kafka_linger_ms);
        match self.tables.erasure_drain_secs {
            Some(secs) => std::time::Duration::from_secs(secs),
            None => std::time::Duration::from_secs(self.ingest.idempotency_takeover_secs) + linger,
        }
    }

    /// The shortest drain that still outlasts every buffered event: a push still queued at
    /// its acknowledgement timeout is withdrawn, and a Kafka worker commits within its linger.
    fn least_erasure_drain(&self) -> std::time::Duration {
        self.ingest.ack_timeout(&self.server) + std::time::Duration::from_millis(self.ingest.kafka_linger_ms)
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir", "must not be empty"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::new("log.level", format!("not a valid filter: {e}")));
        }
        if !(1..=3600).contains(&self.server.request_timeout_secs) {
            return Err(ConfigError::new(
                "server.request_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        // An attempt's handler has given up (and withdrawn what had not started) before a
        // retry may take its key over.
        if self.ingest.idempotency_takeover_secs <= self.server.request_timeout_secs {
            return Err(ConfigError::new(
                "ingest.idempotency_takeover_secs",
                "must be above server.request_timeout_secs",
            ));
        }
        // A push answers on its own before the request timeout cuts it off, so its answer says
        // whether its events were withdrawn or may still commit.
        if self
            .ingest
            .ack_timeout_ms
            .is_some_and(|ms| ms >= self.server.request_timeout_secs.saturating_mul(1000))
        {
            return Err(ConfigError::new(
                "ingest.ack_timeout_ms",
                "must be below server.request_timeout_secs",
            ));
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.server.body_limit_bytes) {
            return Err(ConfigError::new(
                "server.body_limit_bytes",
                "must be between 1024 and 1073741824",
            ));
        }
        if self.server.shutdown_grace_secs > 3600 {
            return Err(ConfigError::new(
                "server.shutdown_grace_secs",
                "must be at most 3600",
            ));
        }
        if !(1..=1000).contains(&self.database.max_connections) {
            return Err(ConfigError::new(
                "database.max_connections",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=300).contains(&self.database.acquire_timeout_secs) {
            return Err(ConfigError::new(
                "database.acquire_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        if let Err(problem) = lake_manager::layout::validate_bucket_prefix(&self.storage.s3.bucket_prefix) {
            return Err(ConfigError::new("storage.s3.bucket_prefix", problem));
        }
        if !(3..=3600).contains(&self.tables.maintenance_lease_secs) {
            return Err(ConfigError::new(
                "tables.maintenance_lease_secs",
                "must be between 3 and 3600",
            ));
        }
        // The window must end, and the vacuum and log cleanup run, before the deadline.
        let deadline_secs = u64::from(tenancy::erasure::DEFAULT_DEADLINE_DAYS) * 24 * 3600;
        if self.tables.erasure_window_secs >= deadline_secs / 2 {
            return Err(ConfigError::new(
                "tables.erasure_window_secs",
                format!(
                    "must be less than {} (half the {}-day erasure deadline, leaving the other half \
                     for the vacuum and log cleanup and their retries)",
                    deadline_secs / 2,
                    tenancy::erasure::DEFAULT_DEADLINE_DAYS
                ),
            ));
        }
        if self.erasure_drain() < self.least_erasure_drain() {
            return Err(ConfigError::new(
                "tables.erasure_drain_secs",
                format!(
                    "must be at least {} ms: ingest.ack_timeout_ms plus ingest.kafka_linger_ms, \
                     the longest an accepted event can wait in a buffer",
                    self.least_erasure_drain().as_millis()
                ),
            ));
        }
        let drain = self.erasure_drain().as_secs();
        if drain > 86_400 || self.tables.erasure_window_secs + drain >= deadline_secs / 2 {
            return Err(ConfigError::new(
                "tables.erasure_drain_secs",
                format!(
                    "must be at most 86400 (a day), and with tables.erasure_window_secs less \
                     than {} (half the {}-day erasure deadline)",
                    deadline_secs / 2,
                    tenancy::erasure::DEFAULT_DEADLINE_DAYS
                ),
            ));
        }
        if self.tables.metadata_staleness_ms > 60_000 {
            return Err(ConfigError::new(
                "tables.metadata_staleness_ms",
                "must be at most 60000",
            ));
        }
        if let Some((field, problem)) = self.ingest.problem() {
            return Err(ConfigError::new(&format!("ingest.{field}"), problem));
        }
        if let Some((field, problem)) = self.sharing.problem() {
            return Err(ConfigError::new(&format!("sharing.{field}"), problem));
        }
        if let Some((field, problem)) = self.console.problem() {
            return Err(ConfigError::new(&format!("console.{field}"), problem));
        }
        if self.tables.small_file_bytes == 0 {
            return Err(ConfigError::new("tables.small_file_bytes", "must be at least 1"));
        }
        if let Some((field, problem)) = self.storage.s3.copy.problem() {
            return Err(ConfigError::new(&format!("storage.s3.copy.{field}"), problem));
        }
        if let Err((key, problem)) = self.placement.validate() {
            return Err(ConfigError::new(key, problem));
        }
        if let Err(violations) = self.tenants.default_quotas.validate() {
            let first = &violations[0];
            return Err(ConfigError::new(
                &format!("tenants.default_{}", first.field),
                first.message.clone(),
            ));
        }
        if self.auth.issuer.trim().is_empty() {
            return Err(ConfigError::new("auth.issuer", "must not be empty"));
        }
        if self.auth.audience.trim().is_empty() {
            return Err(ConfigError::new("auth.audience", "must not be empty"));
        }
        if self.tenants.id_reuse_after_secs < self.auth.max_token_ttl_secs.max(3600)
            || self.tenants.id_reuse_after_secs > 100 * 365 * 24 * 3600
        {
            return Err(ConfigError::new(
                "tenants.id_reuse_after_secs",
                "must be at least auth.max_token_ttl_secs (and an hour, the longest STS session), and at most 100 years",
            ));
        }
        if self.auth.max_live_tokens_per_tenant == 0 {
            return Err(ConfigError::new(
                "auth.max_live_tokens_per_tenant",
                "must be at least 1",
            ));
        }
        if self.auth.max_token_ttl_secs < MIN_TTL_SECS {
            return Err(ConfigError::new(
                "auth.max_token_ttl_secs",
                format!("must be at least {MIN_TTL_SECS}"),
            ));
        }
        if self.auth.leeway_secs > 300 {
            return Err(ConfigError::new("auth.leeway_secs", "must be at most 300"));
        }
        if !(1..=60_000).contains(&self.auth.revocation_cache_ttl_ms) {
            return Err(ConfigError::new(
                "auth.revocation_cache_ttl_ms",
                "must be between 1 and 60000",
            ));
        }
        for (index, issuer) in self.auth.oidc.iter().enumerate() {
            if let Err((field, problem)) = issuer.validate() {
                return Err(ConfigError::new(&format!("auth.oidc[{index}].{field}"), problem));
            }
            if issuer.issuer == self.auth.issuer {
                return Err(ConfigError::new(
                    &format!("auth.oidc[{index}].issuer"),
                    "must differ from auth.issuer",
                ));
            }
            // A deleted tenant's id is reused only once every token naming it has expired.
            if issuer.max_token_lifetime_secs > self.tenants.id_reuse_after_secs {
                return Err(ConfigError::new(
                    &format!("auth.oidc[{index}].max_token_lifetime_secs"),
                    "must be at most tenants.id_reuse_after_secs",
                ));
            }
        }
        if let Err(v) = self.zones.validate() {
            return Err(ConfigError::new(&v.field, v.message));
        }
        if self.rate_limit.per_second == 0 {
            return Err(ConfigError::new("rate_limit.per_second", "must be at least 1"));
        }
        if self.rate_limit.burst == 0 {
            return Err(ConfigError::new("rate_limit.burst", "must be at least 1"));
        }
        if self.rate_limit.standard_tenant_per_second == 0 {
            return Err(ConfigError::new(
                "rate_limit.standard_tenant_per_second",
                "must be at least 1",
            ));
        }
        if self.rate_limit.enterprise_tenant_per_second == 0 {
            return Err(ConfigError::new(
                "rate_limit.enterprise_tenant_per_second",
                "must be at least 1",
            ));
        }
        if !(1..=64).contains(&self.tables.maintenance_concurrency) {
            return Err(ConfigError::new(
                "tables.maintenance_concurrency",
                "must be 1 to 64",
            ));
        }
        if !(1..=self.tables.maintenance_concurrency)
            .contains(&self.tables.maintenance_concurrency_per_tenant)
        {
            return Err(ConfigError::new(
                "tables.maintenance_concurrency_per_tenant",
                "must be 1 to tables.maintenance_concurrency",
            ));
        }
        // Three zone rules and two housekeeping rules at most are the platform's own.
        if !(1..=lake_manager::lifecycle::MAX_RULES_PER_BUCKET - 5)
            .contains(&self.storage.lifecycle_rules_per_shard)
        {
            return Err(ConfigError::new(
                "storage.lifecycle_rules_per_shard",
                "must be 1 to 995",
            ));
        }
        if !(1..=7 * 86_400).contains(&self.storage.migration_give_up_secs) {
            return Err(ConfigError::new(
                "storage.migration_give_up_secs",
                "must be 1 to 604800 (7 days)",
            ));
        }
        if self.audit.rollup_window_secs == 0 {
            return Err(ConfigError::new("audit.rollup_window_secs", "must be at least 1"));
        }
        if self.audit.rollup_max_rows == 0 {
            return Err(ConfigError::new("audit.rollup_max_rows", "must be at least 1"));
        }
        if self.storage.kind == StorageKind::S3 && self.storage.s3.region.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError::new(
                "storage.s3.region",
                "is required when storage.kind = \"s3\"",
            ));
        }
        if self.storage.s3.iam.enabled {
            if self.storage.kind != StorageKind::S3 {
                return Err(ConfigError::new(
                    "storage.s3.iam.enabled",
                    "needs storage.kind = \"s3\"",
                ));
            }
            if self
                .storage
                .s3
                .iam
                .broker_principal
                .as_deref()
                .is_none_or(|p| !p.starts_with("arn:"))
            {
                return Err(ConfigError::new(
                    "storage.s3.iam.broker_principal",
                    "must be the ARN allowed to assume data roles when IAM is enabled",
                ));
            }
        }
        if let Some(url) = &self.storage.s3.iam.sts_endpoint
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(ConfigError::new(
                "storage.s3.iam.sts_endpoint",
                "must be an http or https URL",
            ));
        }
        if !(1..=1_000_000).contains(&self.storage.s3.iam.credentials_cache_entries) {
            return Err(ConfigError::new(
                "storage.s3.iam.credentials_cache_entries",
                "must be 1 to 1000000",
            ));
        }
        if !(1..=100_000).contains(&self.storage.s3.iam.sts_calls_per_minute_per_tenant) {
            return Err(ConfigError::new(
                "storage.s3.iam.sts_calls_per_minute_per_tenant",
                "must be 1 to 100000",
            ));
        }
        if let Some((field, problem)) = self.workers.problem() {
            return Err(ConfigError::new(&format!("workers.{field}"), problem));
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets and database passwords shown as `***`
    /// (what `lakeplane config check` prints).
    pub fn to_masked_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// The metadata database URL, with the embedded default resolved.
    pub fn database_url(&self) -> DatabaseUrl {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::sqlite_in(&self.data_dir))
    }

    /// The local lake root, with the default resolved.
    pub fn storage_root(&self) -> PathBuf {
        self.storage
            .root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("lake"))
    }

    /// Pool settings for the metadata store.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_secs(self.database.acquire_timeout_secs),
        }
    }
}

/// One command-line flag as a figment layer, so errors can name the flag that set a value.
struct Flag {
    key: &'static str,
    flag: &'static str,
    value: String,
}

impl figment::Provider for Flag {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("flag {}", self.flag))
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let nested = figment::util::nest(self.key, self.value.clone().into());
        let dict = nested.into_dict().unwrap_or_default();
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Turns figment's error into one line naming the key and, where figment knows it, the
/// environment variable, file or flag that set it.
fn from_figment(error: figment::Error) -> ConfigError {
    // figment's path already ends with an unknown key's own name.
    let key = if error.path.is_empty() {
        "(root)".to_owned()
    } else {
        error.path.join(".")
    };
    let problem = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => format!("unknown key `{field}`"),
        kind => kind.to_string(),
    };
    let origin = error.metadata.as_ref().map(|meta| match &meta.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        // figment names env values by key path; operators set the variable, so name that.
        _ if meta.name.contains("environment") => {
            format!("LAKEPLANE__{}", error.path.join("__").to_uppercase())
        }
        _ => meta.name.to_string(),
    });
    ConfigError {
        key,
        problem: problem.replace('\n', " "),
        origin,
    }
}

#[cfg(test)]
// figment::Jail closures return figment's own large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn console_settings_are_checked_and_named() {
        let mut config = Config::default();
        config.console.session_secret = Some(Secret("short".into()));
        let err = config.validate().expect_err("a short secret");
        assert!(err.to_string().contains("console.session_secret"), "{err}");
        let issuer = |console: serde_json::Value, allow_http: bool| -> OidcIssuer {
            serde_json::from_value(serde_json::json!({
                "issuer": "https://idp.example.test/", "jwks_url": "https://idp.example.test/jwks",
                "audience": "lakeplane", "tenants": ["*"], "allow_http_jwks": allow_http, "console": console,
            }))
            .expect("issuer")
        };
        let login = |endpoint: &str, field: &str| {
            serde_json::json!({"client_id": "c", "authorization_endpoint": endpoint,
                "token_endpoint": "https://idp.example.test/token", "token_field": field})
        };
        for (console, allow_http, field) in [
            (
                login("http://idp.example.test/authorize", "id_token"),
                false,
                "console.authorization_endpoint",
            ),
            (
                login("https://idp.example.test/authorize", "refresh_token"),
                false,
                "console.token_field",
            ),
        ] {
            let mut config = Config::default();
            config.auth.oidc = vec![issuer(console, allow_http)];
            let err = config.validate().expect_err("refused");
            assert!(
                err.to_string().contains(&format!("auth.oidc[0].{field}")),
                "{err}"
            );
        }
        let mut config = Config::default();
        config.auth.oidc = vec![issuer(
            login("http://127.0.0.1:9/authorize", "access_token"),
            true,
        )];
        config
            .validate()
            .expect("http with allow_http_jwks, access_token");
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let config = Config::default();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url().expose(), "sqlite://./data/lakeplane.db");
        assert_eq!(config.storage_root(), PathBuf::from("./data/lake"));
        assert_eq!(config.storage.s3.bucket_prefix, "lakeplane");
        assert_eq!(config.workers.launcher, Launcher::InProcess);
        config.validate().expect("defaults are valid");
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "lakeplane.toml",
                "data_dir = \"/from/file\"\n[server]\nlisten = \"127.0.0.1:9001\"\nrequest_timeout_secs = 7\n",
            )?;
            jail.set_env("LAKEPLANE__SERVER__LISTEN", "127.0.0.1:9002");
            jail.set_env("LAKEPLANE__DATABASE__MAX_CONNECTIONS", "3");
            let overrides = Overrides {
                data_dir: Some("/from/flag".into()),
                ..Default::default()
            };
            let config = Config::load(Some(Path::new("lakeplane.toml")), &overrides).expect("loads");
            assert_eq!(config.server.request_timeout_secs, 7, "file beats default");
            assert_eq!(
                config.server.listen.to_string(),
                "127.0.0.1:9002",
                "env beats file"
            );
            assert_eq!(config.database.max_connections, 3);
            assert_eq!(config.data_dir, PathBuf::from("/from/flag"), "flag beats file");
            assert_eq!(config.database_url().expose(), "sqlite:///from/flag/lakeplane.db");
            Ok(())
        });
    }

    #[test]
    fn bad_env_value_names_key_and_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAKEPLANE__SERVER__LISTEN", "not-an-address");
            let err = Config::load(None, &Overrides::default()).expect_err("rejected");
            let line = err.to_string();
            assert_eq!(err.key, "server.listen");
            assert!(line.contains("LAKEPLANE__SERVER__LISTEN"), "{line}");
            assert!(!line.contains('\n'));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_ranges_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAKEPLANE__SERVER__LISTNE", "127.0.0.1:1");
            let err = Config::load(None, &Overrides::default()).expect_err("typo rejected");
            assert_eq!(err.key, "server.listne", "{err}");
            assert_eq!(err.origin.as_deref(), Some("LAKEPLANE__SERVER__LISTNE"));
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAKEPLANE__DATABASE__MAX_CONNECTIONS", "0");
            let err = Config::load(None, &Overrides::default()).expect_err("zero rejected");
            assert_eq!(err.key, "database.max_connections");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAKEPLANE__DATABASE__URL", "mysql://nope");
            let err = Config::load(None, &Overrides::default()).expect_err("scheme rejected");
            assert_eq!(err.key, "database.url");
            Ok(())
        });
    }

    #[test]
    fn bad_flag_and_bad_file_value_name_their_origin() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[database]\nacquire_timeout_secs = \"soon\"\n")?;
            let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).expect_err("rejected");
            assert_eq!(err.key, "database.acquire_timeout_secs");
            assert!(
                err.origin.as_deref().is_some_and(|o| o.ends_with("bad.toml")),
                "{err}"
            );
            let flags = Overrides {
                listen: Some("nowhere".into()),
                ..Default::default()
            };
            let err = Config::load(None, &flags).expect_err("rejected");
            assert_eq!(
                (err.key.as_str(), err.origin.as_deref()),
                ("server.listen", Some("flag --listen"))
            );
            Ok(())
        });
    }

    #[test]
    fn an_erasure_drain_shorter_than_a_buffered_event_can_wait_is_refused() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).expect("defaults");
            assert_eq!(
                config.erasure_drain(),
                std::time::Duration::from_millis(300_000 + 500),
                "the takeover plus the Kafka linger"
            );
            // The acknowledgement timeout defaults to 25 s of the 30 s request timeout.
            jail.set_env("LAKEPLANE__TABLES__ERASURE_DRAIN_SECS", "25");
            let err = Config::load(None, &Overrides::default()).expect_err("25 s < 25.5 s");
            assert_eq!(err.key, "tables.erasure_drain_secs");
            assert!(err.problem.contains("25500 ms"), "{}", err.problem);
            jail.set_env("LAKEPLANE__TABLES__ERASURE_DRAIN_SECS", "26");
            Config::load(None, &Overrides::default()).expect("26 s");
            jail.set_env("LAKEPLANE__TABLES__ERASURE_DRAIN_SECS", "86401");
            let err = Config::load(None, &Overrides::default()).expect_err("over a day");
            assert_eq!(err.key, "tables.erasure_drain_secs");
            assert!(err.problem.contains("86400"), "{}", err.problem);
            jail.set_env("LAKEPLANE__TABLES__ERASURE_WINDOW_SECS", "1290000");
            jail.set_env("LAKEPLANE__TABLES__ERASURE_DRAIN_SECS", "6000");
            let err = Config::load(None, &Overrides::default()).expect_err("window + drain past 15 days");
            assert_eq!(err.key, "tables.erasure_drain_secs");
            jail.set_env("LAKEPLANE__TABLES__ERASURE_WINDOW_SECS", "604800");
            jail.set_env("LAKEPLANE__INGEST__ACK_TIMEOUT_MS", "400");
            jail.set_env("LAKEPLANE__TABLES__ERASURE_DRAIN_SECS", "1");
            Config::load(None, &Overrides::default()).expect("0.9 s fits in 1 s");
            Ok(())
        });
    }

    #[test]
    fn an_early_flush_size_above_the_flush_size_is_refused() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).expect("defaults");
            assert!(config.ingest.min_flush_bytes <= config.ingest.flush_bytes);
            jail.set_env("LAKEPLANE__INGEST__FLUSH_BYTES", "1048576");
            jail.set_env("LAKEPLANE__INGEST__MIN_FLUSH_BYTES", "1048577");
            let err = Config::load(None, &Overrides::default()).expect_err("above flush_bytes");
            assert_eq!(err.key, "ingest.min_flush_bytes");
            jail.set_env("LAKEPLANE__INGEST__MIN_FLUSH_BYTES", "0");
            Config::load(None, &Overrides::default()).expect("0: commit whenever the committer is idle");
            Ok(())
        });
    }

    #[test]
    fn an_erasure_window_reaching_half_the_deadline_is_refused() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None, &Overrides::default()).expect("defaults");
            assert_eq!(config.tables.erasure_window_secs, 7 * 24 * 3600);
            jail.set_env("LAKEPLANE__TABLES__ERASURE_WINDOW_SECS", "1296000");
            let err = Config::load(None, &Overrides::default()).expect_err("15 days");
            assert_eq!(err.key, "tables.erasure_window_secs");
            assert!(err.problem.contains("1296000"), "{}", err.problem);
            // The default drain (300.5 s) must fit beside it.
            jail.set_env("LAKEPLANE__TABLES__ERASURE_WINDOW_SECS", "1295699");
            Config::load(None, &Overrides::default()).expect("under 15 days with the drain");
            Ok(())
        });
    }

    #[test]
    fn unavailable_settings_are_refused_not_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAKEPLANE__STORAGE__KIND", "s3");
            let err = Config::load(None, &Overrides::default()).expect_err("s3 without a region");
            assert_eq!(err.key, "storage.s3.region");
            jail.set_env("LAKEPLANE__STORAGE__S3__REGION", "eu-west-1");
            Config::load(None, &Overrides::default()).expect("s3 with a region");
            jail.set_env("LAKEPLANE__STORAGE__S3__IAM__ENABLED", "true");
            let err = Config::load(None, &Overrides::default()).expect_err("iam needs a broker");
            assert_eq!(err.key, "storage.s3.iam.broker_principal");
            jail.set_env(
                "LAKEPLANE__STORAGE__S3__IAM__BROKER_PRINCIPAL",
                "arn:aws:iam::1:role/b",
            );
            Config::load(None, &Overrides::default()).expect("iam with a broker");
            jail.set_env("LAKEPLANE__STORAGE__S3__IAM__CREDENTIALS_CACHE_ENTRIES", "0");
            let err = Config::load(None, &Overrides::default()).expect_err("an empty cache");
            assert_eq!(err.key, "storage.s3.iam.credentials_cache_entries");
            jail.set_env("LAKEPLANE__STORAGE__S3__IAM__CREDENTIALS_CACHE_ENTRIES", "100");
            jail.set_env("LAKEPLANE__STORAGE__S3__IAM__STS_ENDPOINT", "ftp://sts.example");
            let err = Config::load(None, &Overrides::default()).expect_err("not http");
            assert_eq!(err.key, "storage.s3.iam.sts_endpoint");
            jail.set_env(
                "LAKEPLANE__STORAGE__S3__IAM__STS_ENDPOINT",
                "https://sts.eu-west-1.amazonaws.com",
            );
            Config::load(None, &Overrides::default()).expect("a custom STS endpoint");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAKEPLANE__WORKERS__LAUNCHER", "kubernetes");
            let config = Config::load(None, &Overrides::default()).expect("kubernetes");
            assert_eq!(config.workers.launcher, Launcher::Kubernetes);
            jail.set_env("LAKEPLANE__WORKERS__KUBERNETES__NAMESPACE", "Not_A_Label");
            let err = Config::load(None, &Overrides::default()).expect_err("bad namespace");
            assert_eq!(err.key, "workers.kubernetes.namespace");
            jail.set_env("LAKEPLANE__WORKERS__KUBERNETES__NAMESPACE", "data");
            jail.set_env("LAKEPLANE__WORKERS__HEARTBEAT_SECS", "5");
            jail.set_env("LAKEPLANE__WORKERS__HEARTBEAT_TIMEOUT_SECS", "9");
            let err = Config::load(None, &Overrides::default()).expect_err("timeout below two beats");
            assert_eq!(err.key, "workers.heartbeat_timeout_secs");
            jail.set_env("LAKEPLANE__WORKERS__HEARTBEAT_TIMEOUT_SECS", "10");
            jail.set_env("LAKEPLANE__WORKERS__LAUNCHER", "cron");
            let err = Config::load(None, &Overrides::default()).expect_err("unknown launcher");
            assert_eq!(err.key, "workers.launcher");
            Ok(())
        });
    }

    #[test]
    fn the_printed_config_loads_back_as_the_same_config() {
        let text = Config::default().to_masked_toml().expect("toml");
        let back: Config = toml::from_str(&text).expect("the printed config is valid config");
        assert_eq!(
            back.to_masked_toml().expect("toml"),
            text,
            "printing is stable: every key survives the round trip"
        );
        assert!(text.contains("[workers.kubernetes]"), "{text}");
    }

    #[test]
    fn signing_key_never_prints() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "LAKEPLANE__AUTH__SIGNING_KEY",
                "-----BEGIN PRIVATE KEY-----secret",
            );
            let config = Config::load(None, &Overrides::default()).expect("loads");
            let shown = format!(
                "{config:?} {}",
                serde_json::to_string(&config).unwrap_or_default()
            );
            assert!(!shown.contains("BEGIN PRIVATE KEY"), "{shown}");
            assert_eq!(
                config.auth.signing_key.as_ref().map(Secret::expose),
                Some("-----BEGIN PRIVATE KEY-----secret")
            );
            Ok(())
        });
    }

    #[test]
    fn database_password_never_prints() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAKEPLANE__DATABASE__URL", "postgres://app:hunter2@db:5432/lake");
            let config = Config::load(None, &Overrides::default()).expect("loads");
            let shown = format!("{config:?}");
            assert!(!shown.contains("hunter2") && shown.contains("***"), "{shown}");
            assert!(config.database_url().expose().contains("hunter2"));
            Ok(())
        });
    }
}
