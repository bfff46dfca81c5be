//! The Kubernetes launcher: each worker is a Kubernetes object named by its id, an ingest
//! worker a one-replica Deployment and every other kind a Job, all from the one image
//! running `lakeplane worker run --id <id>`. The objects are built by pure functions
//! (`manifests`); this module only sends them.
//!
//! The launcher keeps no state of its own: Kubernetes is the record of what runs, so a new
//! leader finds the workers the old one started, and `stop_local` has nothing to do.

mod manifests;

use std::collections::BTreeSet;
use std::fmt;

use ::kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use ::kube::{Client, Resource, ResourceExt};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tenancy::worker::{WorkerKind, WorkerSpec};

pub use manifests::{
    CONFIG_DIR, CONFIG_FILE, FINGERPRINT, INSTANCE, MANAGED_BY, MANAGED_SELECTOR, MANAGER, RUN_AS, TENANT,
    WORKER_ID, WORKER_KIND, deployment, job, labels, managed_selector,
};

use super::{Launcher, WorkersError};

/// The field manager named in server-side apply, so Kubernetes records who owns the fields.
pub const FIELD_MANAGER: &str = "lakeplane";

/// Every Kubernetes API call the launcher makes, as RBAC rules `(API group, resource, verbs)`,
/// in the worker namespace: server-side apply (`patch`, and `create`, which the API server also
/// checks when the applied object does not exist yet), listing by label and deleting ingest
/// Deployments; creating, reading, listing and deleting one-shot Jobs. The Helm chart's Role
/// grants exactly these, and a test checks both this list against the requests the launcher
/// sends and the rendered Role against this list.
pub const RBAC_RULES: [(&str, &str, &[&str]); 2] = [
    ("apps", "deployments", &["create", "delete", "list", "patch"]),
    ("batch", "jobs", &["create", "delete", "get", "list"]),
];

/// Objects listed per request when looking for orphans; bounds memory with many tenants.
const LIST_PAGE: u32 = 500;

/// CPU and memory for one worker container, in Kubernetes quantity notation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU the scheduler reserves, such as `250m`.
    pub cpu_request: String,
    /// Memory the scheduler reserves, such as `256Mi`.
    pub memory_request: String,
    /// CPU the container is throttled at.
    pub cpu_limit: String,
    /// Memory the container is killed at.
    pub memory_limit: String,
}

impl Resources {
    /// Resources from the four quantities, in the order of the fields.
    pub fn new(cpu_request: &str, memory_request: &str, cpu_limit: &str, memory_limit: &str) -> Self {
        Self {
            cpu_request: cpu_request.to_owned(),
            memory_request: memory_request.to_owned(),
            cpu_limit: cpu_limit.to_owned(),
            memory_limit: memory_limit.to_owned(),
        }
    }
}

/// Resources for each worker kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindResources {
    /// Kafka ingest workers.
    pub ingest: Resources,
    /// Compaction workers.
    pub compact: Resources,
    /// Retention workers.
    pub retention: Resources,
    /// Storage migration workers.
    pub migrate: Resources,
    /// Purge workers.
    pub purge: Resources,
    /// Pipeline runs.
    pub pipeline: Resources,
}

impl Default for KindResources {
    fn default() -> Self {
        Self {
            ingest: Resources::new("250m", "256Mi", "1", "1Gi"),
            // Compaction rewrites files and holds the most data in memory.
            compact: Resources::new("500m", "1Gi", "2", "4Gi"),
            retention: Resources::new("250m", "512Mi", "1", "2Gi"),
            migrate: Resources::new("250m", "256Mi", "1", "1Gi"),
            purge: Resources::new("100m", "128Mi", "500m", "512Mi"),
            // A run holds the batch it read (the source's new files) and its output in memory.
            pipeline: Resources::new("500m", "1Gi", "2", "4Gi"),
        }
    }
}

/// Where and how worker objects are created in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeSettings {
    /// The namespace the worker objects live in.
    pub namespace: String,
    /// The Lakeplane image; its binary runs the worker.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; unset leaves Kubernetes' default for the tag.
    pub image_pull_policy: Option<String>,
    /// The service account the worker pods run as (cloud IAM bindings hang off it).
    pub service_account: String,
    /// The ConfigMap holding `lakeplane.toml`, mounted at `/etc/lakeplane`.
    pub config_map: String,
    /// A Secret whose keys become environment variables (`LAKEPLANE__DATABASE__URL`, ...).
    pub secret: Option<String>,
    /// How long a finished Job stays for inspection before Kubernetes deletes it.
    pub job_ttl_secs: i32,
    /// CPU and memory per worker kind.
    pub resources: KindResources,
    /// The installation's name (the chart sets its release name): a label on every worker
    /// object and pod, and the scope of orphan removal, so several installations can share a
    /// workers' namespace. A Kubernetes label value: at most 63 of `A-Za-z0-9-_.`, starting
    /// and ending alphanumeric.
    pub instance: Option<String>,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            namespace: "lakeplane".to_owned(),
            image: "ghcr.io/lakeplane/lakeplane:latest".to_owned(),
            image_pull_policy: None,
            service_account: "lakeplane-worker".to_owned(),
            config_map: "lakeplane-config".to_owned(),
            secret: Some("lakeplane-secrets".to_owned()),
            job_ttl_secs: 3600,
            resources: KindResources::default(),
            instance: None,
        }
    }
}

impl KubeSettings {
    /// The resources for one worker kind.
    pub fn resources(&self, kind: WorkerKind) -> &Resources {
        let r = &self.resources;
        match kind {
            WorkerKind::Ingest => &r.ingest,
            WorkerKind::Compact => &r.compact,
            WorkerKind::Retention => &r.retention,
            WorkerKind::Migrate => &r.migrate,
            WorkerKind::Purge => &r.purge,
            WorkerKind::Pipeline => &r.pipeline,
        }
    }
}

/// Runs workers as Kubernetes Deployments (ingest) and Jobs (everything else).
#[derive(Clone)]
pub struct KubeLauncher {
    /// The API client.
    client: Client,
    /// Namespace, image and the rest of the manifest settings.
    settings: KubeSettings,
}

impl fmt::Debug for KubeLauncher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeLauncher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KubeLauncher {
    /// A launcher that uses `client`.
    pub fn new(client: Client, settings: KubeSettings) -> Self {
        Self { client, settings }
    }

    /// A launcher with the in-cluster service account, or else the local kubeconfig.
    pub async fn connect(settings: KubeSettings) -> Result<Self, WorkersError> {
        let client = Client::try_default()
            .await
            .map_err(|e| WorkersError::Launcher(format!("cannot reach Kubernetes: {e}")))?;
        Ok(Self::new(client, settings))
    }

    /// The settings the manifests are built with.
    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// Creates a worker's Job. An existing Job with the same name is kept while it runs the
    /// same spec; a finished or outdated one is deleted and the start reported as failed, so
    /// the reconciler's next pass (after the deletion went through) creates it afresh.
    async fn create_job(&self, spec: &WorkerSpec) -> Result<(), WorkersError> {
        let id = spec.id();
        let jobs = self.jobs();
        let err = match jobs
            .create(&PostParams::default(), &job(spec, &self.settings))
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if !already_exists(&err) {
            return Err(failed("create job", &id, &err));
        }
        let existing = jobs.get_opt(&id).await.map_err(|e| failed("read job", &id, &e))?;
        let Some(existing) = existing else {
            return Err(WorkersError::Launcher(format!(
                "job {id} existed and is gone now; it is created on the next pass"
            )));
        };
        // Worker objects are named by worker id: another installation sharing the namespace
        // with a tenant of the same id has a Job of the same name. It is left alone.
        if let Some(ours) = &self.settings.instance
            && let Some(theirs) = existing.labels().get(INSTANCE)
            && theirs != ours
        {
            return Err(WorkersError::Launcher(format!(
                "job {id} in namespace {} belongs to installation {theirs}; installations sharing \
                 a workers' namespace cannot have tenants of the same id: give each its own \
                 workers.kubernetes.namespace",
                self.settings.namespace
            )));
        }
        let same_spec = existing.annotations().get(FINGERPRINT) == Some(&spec.fingerprint());
        if same_spec && !finished(&existing) && existing.meta().deletion_timestamp.is_none() {
            return Ok(());
        }
        delete(&jobs, &id).await?;
        Err(WorkersError::Launcher(format!(
            "an old job {id} (finished, or made from another spec) is being removed; \
             the new one is created on the next pass"
        )))
    }
}

#[async_trait]
impl Launcher for KubeLauncher {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn start(&self, spec: &WorkerSpec) -> Result<(), WorkersError> {
        if !spec.kind.long_running() {
            return self.create_job(spec).await;
        }
        let id = spec.id();
        // Server-side apply is idempotent: starting a running worker changes nothing, and a
        // changed spec (its fingerprint is in the pod template) rolls the pod.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.deployments()
            .patch(&id, &params, &Patch::Apply(&deployment(spec, &self.settings)))
            .await
            .map_err(|e| failed("apply deployment", &id, &e))?;
        Ok(())
    }

    async fn stop(&self, spec_id: &str) -> Result<(), WorkersError> {
        // The id starts with the kind, and the kind decides the object; an id of no known
        // kind is looked for as both.
        let kind = spec_id.split('-').next().and_then(WorkerKind::parse);
        if kind.is_none_or(WorkerKind::long_running) {
            delete(&self.deployments(), spec_id).await?;
        }
        if !kind.is_some_and(WorkerKind::long_running) {
            delete(&self.jobs(), spec_id).await?;
        }
        Ok(())
    }

    async fn remove_orphans(&self, desired: &BTreeSet<String>) -> Result<usize, WorkersError> {
        let mut removed = 0;
        let mut selectors = vec![managed_selector(self.settings.instance.as_deref())];
        if self.settings.instance.is_some() {
            // Objects made before workers carried their installation's label are this
            // installation's too (an upgrade), until they are made again.
            selectors.push(format!("{MANAGED_SELECTOR},!{INSTANCE}"));
        }
        for selector in &selectors {
            removed += remove_unwanted(&self.deployments(), selector, desired, |_| true).await?;
            // A finished Job runs nothing; it stays for inspection until its TTL removes it.
            removed += remove_unwanted(&self.jobs(), selector, desired, |j| !finished(j)).await?;
        }
        Ok(removed)
    }

    async fn stop_local(&self) {
        // Nothing runs in this process: the pods keep running for the next leader.
    }
}

/// Whether a Job has run to its end, successfully or not.
fn finished(job: &Job) -> bool {
    let Some(status) = &job.status else {
        return false;
    };
    let ended = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.status == "True" && matches!(c.type_.as_str(), "Complete" | "Failed"));
    // With backoffLimit 0 one finished pod ends the Job, even before its condition is set.
    ended
        || status.succeeded.unwrap_or(0) > 0
        || status.failed.unwrap_or(0) > 0
        || status.completion_time.is_some()
}

/// Deletes the Lakeplane-managed objects of one type that still run (`runs`) and whose
/// worker is not desired.
async fn remove_unwanted<K>(
    api: &Api<K>,
    selector: &str,
    desired: &BTreeSet<String>,
    runs: fn(&K) -> bool,
) -> Result<usize, WorkersError>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug,
{
    let mut removed = 0;
    let mut params = ListParams::default().labels(selector).limit(LIST_PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| failed("list", selector, &e))?;
        for object in &page.items {
            let name = object.name_any();
            let id = object.labels().get(WORKER_ID).unwrap_or(&name);
            if !desired.contains(id) && runs(object) && delete(api, &name).await? {
                removed += 1;
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(removed),
        }
    }
}

/// Deletes one object with its dependents (pods) going in the background; returns whether
/// it was there.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<bool, WorkersError>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(::kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(e) => Err(failed("delete", name, &e)),
    }
}

/// Whether a create failed because the object already exists.
fn already_exists(err: &::kube::Error) -> bool {
    matches!(err, ::kube::Error::Api(status) if status.is_already_exists() || status.code == 409)
}

/// A launcher error naming what was attempted on which object.
fn failed(action: &str, name: &str, err: &::kube::Error) -> WorkersError {
    WorkersError::Launcher(format!("kubernetes: {action} {name}: {err}"))
}
