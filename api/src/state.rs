//! Shared application state and the start-up sequence that builds it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lake_manager::catalog::Catalog;
use lake_manager::credentials::{AwsSts, CredentialVendor};
use lake_manager::delta::DeltaSettings;
use lake_manager::identity::{AwsIam, IamAdmin};
use lake_manager::ingest::group_commit::GroupCommitSettings;
use lake_manager::ingest::kafka::KafkaSettings;
use lake_manager::ingest::secrets::Sealer;
use lake_manager::ingest::streams::Ingest;
use lake_manager::provision::{IamSettings, ProvisionSettings, Provisioner};
use lake_manager::storage::{
    LocalStorage, ObjectStorageAdmin, S3Settings, S3Storage, StorageError, StorageKind,
};
use lake_manager::tenants::Tenants;
use lake_manager::workers::body::Bodies;
use lake_manager::workers::external::External;
use lake_manager::workers::in_process::InProcess;
use lake_manager::workers::kube::KubeLauncher;
use lake_manager::workers::{Launcher, Reconciler, Runner};
use tenancy::share::{UrlSigner, new_url_secret};
use tenancy::store::{self, Instance, MetadataStore, StoreError};
use tenancy::tenant::{Tenant, TenantId};
use tenancy::token::{KeyError, RevocationList, SigningKey, Verifier, load_or_generate_private};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::routes::views::MigrationView;

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The metadata store.
    pub store: Arc<dyn MetadataStore>,
    /// The lake's object storage.
    pub storage: Arc<dyn ObjectStorageAdmin>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The token signing key.
    pub signer: Arc<SigningKey>,
    /// Token verification for Lakeplane's and trusted issuers' tokens.
    pub verifier: Arc<Verifier>,
    /// Revoked token ids.
    pub revocations: Arc<RevocationList>,
    /// Tenants' table grants, cached.
    pub grants: Arc<lake_manager::grants::Grants>,
    /// Storage provisioning.
    pub provisioner: Arc<Provisioner>,
    /// Tenant workflows: create, change placement, rebalance.
    pub tenants: Arc<Tenants>,
    /// Delta tables and their maintenance.
    pub catalog: Arc<Catalog>,
    /// Data subject erasures.
    pub erasures: Arc<lake_manager::erasures::Erasures>,
    /// Pipelines: making them, asking for runs.
    pub pipelines: lake_manager::pipelines::Pipelines,
    /// Temporary AWS credentials; `None` on local storage and on S3 without IAM.
    pub credentials: Option<Arc<CredentialVendor>>,
    /// Streams and ingestion.
    pub ingest: Arc<Ingest>,
    /// The reconciler (it reconciles only on the process holding the leadership).
    pub workers: Arc<Reconciler>,
    /// Runs one worker with claim and heartbeats (`lakeplane worker run`, in-process tasks).
    pub runner: Runner,
    /// The in-process launcher, when it is the one configured.
    pub in_process: Option<Arc<InProcess>>,
    /// Signs and checks the file URLs of Delta Sharing on local storage.
    pub url_signer: Arc<UrlSigner>,
    /// Seals the console's session cookies.
    pub console_sealer: Arc<lake_manager::ingest::secrets::Sealer>,
    /// Streams' ingest rates, with what was read of their tables' logs.
    pub ingest_rates: Arc<lake_manager::ingest::rate::IngestRates>,
    /// Per-tenant request rate limits.
    pub tenant_limits: Arc<crate::limits::TenantLimits>,
    /// Tenants as `GET /v1/tenants/{tenant}` read them, for [`TENANT_CACHE_TTL`].
    pub tenant_cache: Arc<TenantCache>,
    /// Requests no one answers for, counted until their roll-up rows are written.
    pub audit_rollup: Arc<crate::rollup::AuditRollup>,
    /// This installation's identity.
    pub instance: Instance,
    /// When this process started serving.
    pub started_at: DateTime<Utc>,
}

/// A tenant's row and its migration, as its read route answers them.
pub type TenantCache = tenancy::expiring::ExpiringMap<TenantId, Arc<(Tenant, Option<MigrationView>)>>;

/// How long a tenant read stays in [`AppState::tenant_cache`]. Changes through this process's
/// tenant routes drop the entry at once; changes made elsewhere (another replica, a
/// provisioning or migration step in the background) show within this.
pub const TENANT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Distinct tenants cached.
const TENANT_CACHE_CAPACITY: usize = 10_000;

/// What a process builds the state for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `lakeplane serve`: the API, the reconciler and the configured launcher.
    Server,
    /// `lakeplane worker run`: one worker; it launches nothing.
    Worker,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The metadata database could not be opened or migrated.
    #[error("database.url: {0}")]
    Store(#[from] StoreError),
    /// The storage root could not be prepared.
    #[error("storage.root: {0}")]
    Storage(#[from] StorageError),
    /// The signing key could not be loaded or generated.
    #[error("auth.signing_key: {0}")]
    Key(#[from] KeyError),
    /// Ingestion could not start.
    #[error("ingest: {0}")]
    Ingest(String),
    /// The URL-signing secret could not be loaded or generated.
    #[error("sharing.url_signing_secret: {0}")]
    UrlSecret(String),
    /// The console's session secret could not be loaded or generated.
    #[error("console.session_secret: {0}")]
    ConsoleSecret(String),
    /// The worker launcher could not start.
    #[error("workers.launcher: {0}")]
    Launcher(String),
    /// The data directory could not be created.
    #[error("data_dir: cannot create {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl AppState {
    /// Prepares the data directory and storage, opens and migrates the store, reads the
    /// installation identity, and starts the background work (the reconciler among it).
    pub async fn start(config: Config) -> Result<Self, StartupError> {
        let state = Self::build(config, Role::Server).await?;
        let resumed = state.provisioner.resume_all().await?;
        if resumed > 0 {
            tracing::info!(tenants = resumed, "resuming provisioning left unfinished");
        }
        // Cleanups are due a grace period after a switch: look at least that often.
        let grace = state.config.storage.migration_grace_secs.clamp(1, 30);
        state
            .provisioner
            .spawn_migration_worker(std::time::Duration::from_secs(grace));
        if state.config.storage.drift_check_secs > 0 {
            state
                .provisioner
                .spawn_drift_worker(std::time::Duration::from_secs(
                    state.config.storage.drift_check_secs,
                ));
        }
        state.workers.spawn();
        state.audit_rollup.spawn_flusher(state.store.clone());
        Ok(state)
    }

    /// Everything `start` builds, without background work. `Role::Worker` (`lakeplane worker
    /// run`, which runs one worker and nothing else) launches nothing, so a worker pod needs no
    /// access to the Kubernetes API even though it reads the server's config.
    pub async fn build(config: Config, role: Role) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let storage: Arc<dyn ObjectStorageAdmin> = match config.storage.kind {
            StorageKind::Local => Arc::new(LocalStorage::open(&config.storage_root())?),
            StorageKind::S3 => {
                let s3 = &config.storage.s3;
                Arc::new(
                    S3Storage::connect(S3Settings {
                        endpoint: s3
                            .endpoint
                            .as_ref()
                            .map(|u| u.as_str().trim_end_matches('/').to_owned()),
                        region: s3.region.clone().unwrap_or_default(),
                        path_style: s3.path_style,
                        kms_key_id: s3.kms_key_id.clone(),
                        copy: s3.copy,
                    })
                    .await,
                )
            }
        };
        // A worker signs no token or URL and serves no HTTP: it gets throwaway secrets made in
        // memory, so its pod needs neither the signing key nor the URL secret, and a worker
        // never reads (or, on first start, generates) them.
        let (signer, url_signer, console_sealer) = match role {
            Role::Server => (
                load_signing_key(&config)?,
                load_url_signer(&config)?,
                crate::console::load_sealer(&config)
                    .map_err(|e| StartupError::ConsoleSecret(e.to_string()))?,
            ),
            Role::Worker => (
                SigningKey::ephemeral()?,
                UrlSigner::new(new_url_secret().as_bytes()).map_err(StartupError::UrlSecret)?,
                lake_manager::ingest::secrets::Sealer::from_key(&[0u8; 32]),
            ),
        };
        let (signer, url_signer, console_sealer) =
            (Arc::new(signer), Arc::new(url_signer), Arc::new(console_sealer));
        let url = config.database_url();
        let store = store::connect(&url, &config.pool_settings()).await?;
        let report = store.migrate().await?;
        if !report.applied.is_empty() {
            tracing::info!(applied = ?report.applied, current = ?report.current, "applied migrations");
        }
        let instance = store.ensure_instance().await?;
        tracing::info!(
            instance_id = %instance.id,
            database = %url,
            backend = store.backend().as_str(),
            storage = %storage.root_uri(),
            "metadata store ready"
        );
        if signer.generated {
            tracing::info!(
                key = %signer.origin,
                "generated a new token signing key; create the first platform-admin token with: \
                 lakeplane token create --role platform-admin --subject <you>"
            );
        }
        let verifier = Arc::new(Verifier::new(
            signer.clone(),
            config.auth.token_settings(),
            &config.auth.oidc,
        ));
        let ttl = std::time::Duration::from_millis(config.auth.revocation_cache_ttl_ms);
        let revocations = Arc::new(RevocationList::new(
            store.clone(),
            ttl,
            std::time::Duration::from_secs(config.auth.leeway_secs),
        ));
        let grants = Arc::new(lake_manager::grants::Grants::new(store.clone()));
        let s3 = &config.storage.s3;
        let (iam, iam_settings) = if s3.iam.enabled {
            let endpoint = s3
                .endpoint
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_owned());
            let client = AwsIam::connect(s3.region.as_deref().unwrap_or_default(), endpoint.as_deref()).await;
            let settings = IamSettings {
                broker_principal: s3.iam.broker_principal.clone().unwrap_or_default(),
                permissions_boundary: s3.iam.permissions_boundary.clone(),
            };
            (Some(Arc::new(client) as Arc<dyn IamAdmin>), Some(settings))
        } else {
            (None, None)
        };
        let provisioner = Arc::new(Provisioner::new(
            store.clone(),
            storage.clone(),
            iam,
            ProvisionSettings {
                bucket_prefix: config.storage.s3.bucket_prefix.clone(),
                zones: config.zones.clone(),
                iam: iam_settings,
                attempts: 3,
                backoff: std::time::Duration::from_millis(200),
                migration_grace: std::time::Duration::from_secs(config.storage.migration_grace_secs),
                migration_give_up: std::time::Duration::from_secs(config.storage.migration_give_up_secs),
            },
        ));
        let credentials = match (config.storage.kind, s3.iam.enabled) {
            (StorageKind::S3, true) => {
                let endpoint = s3
                    .iam
                    .sts_endpoint
                    .as_ref()
                    .or(s3.endpoint.as_ref())
                    .map(|u| u.as_str().trim_end_matches('/').to_owned());
                let sts =
                    AwsSts::connect(s3.region.as_deref().unwrap_or_default(), endpoint.as_deref()).await;
                Some(Arc::new(CredentialVendor::new(
                    Arc::new(sts),
                    provisioner.clone(),
                    s3.iam.credentials_cache_entries,
                    s3.iam.sts_calls_per_minute_per_tenant,
                )))
            }
            _ => None,
        };
        let mut delta = match config.storage.kind {
            StorageKind::Local => DeltaSettings::local(),
            StorageKind::S3 => DeltaSettings::s3(
                s3.endpoint.as_ref().map(|u| u.as_str().trim_end_matches('/')),
                s3.region.as_deref().unwrap_or_default(),
                s3.path_style,
            ),
        };
        delta.small_file_bytes = config.tables.small_file_bytes;
        let catalog_owner = format!("{}-{}", instance.id, uuid::Uuid::now_v7());
        let wake = Arc::new(tokio::sync::Notify::new());
        let catalog = Arc::new(
            Catalog::new(
                provisioner.clone(),
                delta,
                catalog_owner.clone(),
                std::time::Duration::from_secs(config.tables.maintenance_lease_secs),
            )
            .with_maintenance_limits(
                config.tables.maintenance_concurrency,
                config.tables.maintenance_concurrency_per_tenant,
            )
            .with_metadata_staleness(std::time::Duration::from_millis(
                config.tables.metadata_staleness_ms,
            )),
        );
        let ingest_config = &config.ingest;
        let sealer = match &ingest_config.secret_key {
            Some(key) => {
                Some(Sealer::from_base64(key.expose()).map_err(|e| StartupError::Ingest(e.to_string()))?)
            }
            None => None,
        };
        let ingest = Ingest::new(
            catalog.clone(),
            GroupCommitSettings {
                flush_bytes: ingest_config.flush_bytes,
                min_flush_bytes: ingest_config.min_flush_bytes,
                linger: std::time::Duration::from_millis(ingest_config.linger_ms),
                table_buffer_bytes: ingest_config.table_buffer_bytes,
                total_buffer_bytes: ingest_config.total_buffer_bytes,
                fsync: ingest_config.fsync,
                ..GroupCommitSettings::default()
            },
            lake_manager::ingest::admission::PushLimits {
                tenant_buffer_bytes: ingest_config.tenant_buffer_bytes,
                decode_threads: ingest_config.decode_threads,
                fence_wait: std::time::Duration::from_millis(ingest_config.fence_wait_ms),
                key_window: std::time::Duration::from_secs(ingest_config.idempotency_window_secs),
                key_takeover: std::time::Duration::from_secs(ingest_config.idempotency_takeover_secs),
            },
            KafkaSettings {
                flush_records: ingest_config.kafka_flush_records,
                linger: std::time::Duration::from_millis(ingest_config.kafka_linger_ms),
                request_timeout: std::time::Duration::from_millis(ingest_config.kafka_request_timeout_ms),
                ..KafkaSettings::default()
            },
            sealer,
            wake.clone(),
        );
        ingest.sweep_keys_every(std::time::Duration::from_secs(600));
        let mut settings = config.workers.settings();
        settings.maintenance_per_tenant = config.tables.maintenance_concurrency_per_tenant;
        // A run's lease lives as long as a worker's heartbeat, renewed as often.
        let pipelines = lake_manager::pipelines::Pipelines::new(catalog.clone())
            .with_lease(settings.policy.heartbeat_timeout, settings.heartbeat_every)
            .with_run_limit(settings.pipeline_run_limit);
        let bodies = Arc::new(Bodies::new(
            catalog.clone(),
            provisioner.clone(),
            ingest.kafka().clone(),
            pipelines.clone(),
        ));
        let runner = Runner::new(store.clone(), bodies, settings.clone());
        let (launcher, in_process): (Arc<dyn Launcher>, Option<Arc<InProcess>>) =
            match (role, config.workers.launcher) {
                (Role::Worker, _) | (_, crate::config::Launcher::External) => (Arc::new(External), None),
                (_, crate::config::Launcher::InProcess) => {
                    let launcher = InProcess::new(runner.clone(), catalog_owner.clone());
                    (launcher.clone(), Some(launcher))
                }
                (_, crate::config::Launcher::Kubernetes) => {
                    let launcher = KubeLauncher::connect(config.workers.kubernetes.settings())
                        .await
                        .map_err(|e| StartupError::Launcher(tenancy::error_chain(&e)))?;
                    (Arc::new(launcher), None)
                }
            };
        let tenants = Arc::new(
            Tenants::new(
                provisioner.clone(),
                config.placement,
                wake.clone(),
                revocations.clone(),
            )
            .with_id_reuse_after(std::time::Duration::from_secs(config.tenants.id_reuse_after_secs)),
        );
        let workers = Reconciler::new(catalog.clone(), launcher, settings, wake);
        let erasures = lake_manager::erasures::Erasures::new(
            catalog.clone(),
            provisioner.clone(),
            lake_manager::erasures::ErasureSettings {
                window: chrono::Duration::seconds(
                    i64::try_from(config.tables.erasure_window_secs).unwrap_or(i64::MAX),
                ),
                drain: chrono::Duration::from_std(config.erasure_drain()).unwrap_or(chrono::TimeDelta::MAX),
            },
        );
        workers.schedule_erasures(erasures.clone());
        workers.schedule_pipelines(pipelines.clone());
        if config.placement.rebalance_secs > 0 {
            workers.schedule_rebalance(
                tenants.clone(),
                std::time::Duration::from_secs(config.placement.rebalance_secs),
            );
        }
        let config_audit = config.audit.clone();
        let config_rate = config.rate_limit.clone();
        Ok(Self {
            workers,
            runner,
            in_process,
            ingest,
            config: Arc::new(config),
            store,
            storage,
            provisioner,
            tenants,
            pipelines,
            catalog,
            erasures,
            credentials,
            metrics: Arc::new(Metrics::new()),
            signer,
            url_signer,
            console_sealer,
            ingest_rates: Arc::default(),
            verifier,
            revocations,
            grants,
            tenant_limits: Arc::new(crate::limits::TenantLimits::new(&config_rate)),
            tenant_cache: Arc::new(TenantCache::new(TENANT_CACHE_CAPACITY)),
            audit_rollup: Arc::new(crate::rollup::AuditRollup::new(
                std::time::Duration::from_secs(config_audit.rollup_window_secs),
                config_audit.rollup_max_rows,
            )),
            instance,
            started_at: Utc::now(),
        })
    }
}

/// Loads the configured signing key, or the one generated in `data_dir`.
pub fn load_signing_key(config: &Config) -> Result<SigningKey, KeyError> {
    SigningKey::load(
        config.auth.signing_key.as_ref().map(|s| s.expose()),
        config.auth.signing_key_file.as_deref(),
        &config.data_dir,
    )
}

/// The configured URL-signing secret, or the one generated in `data_dir` on first start.
pub fn load_url_signer(config: &Config) -> Result<UrlSigner, StartupError> {
    let secret = match &config.sharing.url_signing_secret {
        Some(secret) => secret.expose().to_owned(),
        None => {
            let path = config.data_dir.join(crate::config::GENERATED_URL_SECRET_FILE);
            load_or_generate_private(&path, new_url_secret)
                .map_err(|e| StartupError::UrlSecret(e.to_string()))?
                .0
        }
    };
    UrlSigner::new(secret.trim().as_bytes()).map_err(StartupError::UrlSecret)
}
