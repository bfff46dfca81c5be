//! The Kubernetes objects that run workers, as pure functions of the worker spec and the
//! settings: no I/O, so they are tested exactly (golden files) and validated offline.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvFromSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use tenancy::worker::WorkerSpec;

use super::{KubeSettings, Resources};

/// The label every object Lakeplane creates carries; orphan removal lists by it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGER: &str = "lakeplane";
/// The label selector that finds every worker object Lakeplane manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=lakeplane";
/// The label holding the worker id (the object's name).
pub const WORKER_ID: &str = "lakeplane.io/worker-id";
/// The label holding the worker kind.
pub const WORKER_KIND: &str = "lakeplane.io/worker-kind";
/// The label holding the tenant id.
pub const TENANT: &str = "lakeplane.io/tenant";
/// The annotation holding the spec fingerprint the object was made from.
pub const FINGERPRINT: &str = "lakeplane.io/spec-fingerprint";
/// Where the ConfigMap holding `lakeplane.toml` is mounted.
pub const CONFIG_DIR: &str = "/etc/lakeplane";
/// The config file the worker reads, inside [`CONFIG_DIR`].
pub const CONFIG_FILE: &str = "/etc/lakeplane/lakeplane.toml";
/// The user (and group) the worker runs as: the distroless `nonroot` user.
pub const RUN_AS: i64 = 65532;

/// The label naming the installation (the Helm release) a worker belongs to.
pub const INSTANCE: &str = "app.kubernetes.io/instance";

/// The labels of a worker's object and of its pods. With an `instance` (the chart sets its
/// release name) they also carry [`INSTANCE`], so releases sharing a workers' namespace tell
/// their pods apart: in NetworkPolicies, and when each launcher removes its orphans.
pub fn labels(spec: &WorkerSpec, instance: Option<&str>) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        (MANAGED_BY, MANAGER.to_owned()),
        ("app.kubernetes.io/name", "lakeplane-worker".to_owned()),
        (TENANT, spec.tenant.as_str().to_owned()),
        (WORKER_KIND, spec.kind.as_str().to_owned()),
        (WORKER_ID, spec.id()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(instance) = instance {
        labels.insert(INSTANCE.to_owned(), instance.to_owned());
    }
    labels
}

/// The label selector of the worker objects one launcher manages: every Lakeplane worker, or
/// with an `instance`, only that installation's.
pub fn managed_selector(instance: Option<&str>) -> String {
    match instance {
        Some(instance) => format!("{MANAGED_SELECTOR},{INSTANCE}={instance}"),
        None => MANAGED_SELECTOR.to_owned(),
    }
}

/// The Deployment that runs a long-running (ingest) worker: one replica, found by its id.
pub fn deployment(spec: &WorkerSpec, settings: &KubeSettings) -> Deployment {
    let id = spec.id();
    Deployment {
        metadata: metadata(spec, settings),
        spec: DeploymentSpec {
            replicas: Some(1),
            // Kafka ingest fences a second consumer of the same stream; Recreate stops the
            // old pod before the new one starts, so a rollout never runs two.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                rolling_update: None,
            }),
            // One Deployment per stream across many tenants: keep etcd small.
            revision_history_limit: Some(2),
            selector: LabelSelector {
                match_labels: Some([(WORKER_ID.to_owned(), id)].into()),
                match_expressions: None,
            },
            template: pod_template(spec, settings, None),
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// The Job that runs a worker to completion (every kind but ingest).
pub fn job(spec: &WorkerSpec, settings: &KubeSettings) -> Job {
    Job {
        metadata: metadata(spec, settings),
        spec: Some(JobSpec {
            // The reconciler owns retries (with backoff and a failure cap, recorded in the
            // database); Kubernetes retrying as well would run the work twice.
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(settings.job_ttl_secs),
            template: pod_template(spec, settings, Some("Never")),
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Name, namespace, labels and the fingerprint annotation of a worker's object.
fn metadata(spec: &WorkerSpec, settings: &KubeSettings) -> ObjectMeta {
    ObjectMeta {
        name: Some(spec.id()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels(spec, settings.instance.as_deref())),
        annotations: Some(annotations(spec)),
        ..ObjectMeta::default()
    }
}

/// The fingerprint, so a launcher can tell an object made from an older spec.
fn annotations(spec: &WorkerSpec) -> BTreeMap<String, String> {
    [(FINGERPRINT.to_owned(), spec.fingerprint())].into()
}

/// The pod every worker kind runs: the one image, `lakeplane worker run --id <id>`.
fn pod_template(spec: &WorkerSpec, settings: &KubeSettings, restart_policy: Option<&str>) -> PodTemplateSpec {
    let id = spec.id();
    let container = Container {
        name: "worker".to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        command: Some(vec!["lakeplane".to_owned()]),
        args: Some(
            ["worker", "run", "--id", &id, "--config", CONFIG_FILE]
                .map(str::to_owned)
                .to_vec(),
        ),
        // Secrets reach the process only by reference, never as literal values in the
        // manifest (which anyone who can read Deployments or Jobs could see).
        env_from: settings.secret.as_ref().map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }]
        }),
        resources: Some(requirements(settings.resources(spec.kind))),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".to_owned(),
                mount_path: CONFIG_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            // The root filesystem is read-only; Delta writes and spills need a scratch dir.
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(spec, settings.instance.as_deref())),
            annotations: Some(annotations(spec)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(settings.service_account.clone()),
            // Workers talk to the database and the object store, never to the Kubernetes
            // API; a mounted token would only widen what a compromised worker could do.
            automount_service_account_token: Some(false),
            restart_policy: restart_policy.map(str::to_owned),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            containers: vec![container],
            volumes: Some(vec![
                Volume {
                    name: "config".to_owned(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: settings.config_map.clone(),
                        optional: Some(false),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "tmp".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        }),
    }
}

/// The container runtime's default seccomp profile.
fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

/// Requests and limits in the shape Kubernetes wants.
fn requirements(r: &Resources) -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(&r.cpu_request, &r.memory_request)),
        limits: Some(pair(&r.cpu_limit, &r.memory_limit)),
        claims: None,
    }
}
