//! The Helm chart (`helm/lakeplane`), rendered offline with Helm's own engine (helm-python-sdk:
//! Helm v4 as a library; no cluster runs here) for the default values and every value set in
//! `helm/lakeplane/ci/` by `scripts/helm-render`, which also validates each object with
//! `kubernetes-validate --strict` for Kubernetes 1.37. Here: every set renders and validates,
//! the schema refuses bad values, every rendered ConfigMap is accepted by `lakeplane config
//! check`, the Role grants exactly the launcher's calls, the default manifests equal the
//! golden file (`LAKEPLANE_BLESS=1` rewrites it), and the chart's appVersion is the crate's.
//!
//! The other tests render value sets of their own through the same `render` function and read
//! the objects the way a cluster would: which addresses a NetworkPolicy lets a pod reach, which
//! paths an Ingress routes, where the launcher's Role applies and what a worker pod's Secret
//! holds, with the worker pods built by the launcher's own manifest functions from the
//! rendered config.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lake_manager::workers::kube::KubeSettings;
use serde_json::{Value, json};
use tenancy::tenant::TenantId;
use tenancy::worker::{WorkerKind, WorkerSpec, WorkerTarget};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_chart_renders_validates_and_matches_the_server() {
    let python = std::env::var("LAKEPLANE_PYTHON").expect(
        "LAKEPLANE_PYTHON must name the test venv's python with helm-python-sdk (scripts/test sets it)",
    );
    let out = tempfile::tempdir().expect("out dir");
    let chart = repo().join("helm/lakeplane");
    let rendered = Command::new(python)
        .arg(repo().join("scripts/helm-render"))
        .arg(&chart)
        .arg(out.path())
        .output()
        .expect("run scripts/helm-render");
    let summary: Value = serde_json::from_slice(&rendered.stdout).unwrap_or_else(|_| {
        panic!(
            "no summary; stderr: {}",
            String::from_utf8_lossy(&rendered.stderr)
        )
    });
    assert!(rendered.status.success(), "{summary:#}");

    let sets = summary["sets"].as_object().expect("sets");
    let names: Vec<&str> = sets.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "default",
            "external-postgres-s3-irsa",
            "kubernetes-launcher-autoscaling",
            "sqlite-single-replica"
        ]
    );
    for (name, set) in sets {
        assert_eq!(set["errors"], serde_json::json!([]), "{name}: {set}");
        // Only the Prometheus Operator's CRD has no schema in kubernetes-validate.
        for kind in set["not_validated"].as_array().expect("list") {
            assert_eq!(kind, "ServiceMonitor", "{name}");
        }
        let kinds: Vec<&str> = set["kinds"]
            .as_array()
            .expect("kinds")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for always in ["ConfigMap", "Deployment", "Service", "ServiceAccount", "Pod"] {
            assert!(kinds.contains(&always), "{name} has a {always}: {kinds:?}");
        }
        // The rendered config is the file the binary reads: its own loader must accept it.
        let config = out.path().join(format!("{name}.config.toml"));
        let checked = Command::new(env!("CARGO_BIN_EXE_lakeplane"))
            .args(["config", "check", "--file"])
            .arg(&config)
            .env_remove("LAKEPLANE__DATA_DIR")
            .output()
            .expect("config check");
        assert!(
            checked.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        // RBAC only with the Kubernetes launcher, and then exactly the launcher's calls.
        let roles: Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join(format!("{name}.roles.json"))).expect("roles"),
        )
        .expect("json");
        let launcher = kinds.contains(&"Role");
        assert_eq!(
            roles.as_array().map(Vec::len),
            Some(usize::from(launcher)),
            "{name}"
        );
        if launcher {
            let granted: Vec<(String, String, Vec<String>)> = roles[0]["rules"]
                .as_array()
                .expect("rules")
                .iter()
                .map(|r| {
                    let one = |k: &str| {
                        let v = r[k].as_array().expect(k);
                        assert_eq!(v.len(), 1, "one {k} per rule: {r}");
                        v[0].as_str().expect("string").to_owned()
                    };
                    let verbs = r["verbs"]
                        .as_array()
                        .expect("verbs")
                        .iter()
                        .map(|v| v.as_str().expect("verb").to_owned())
                        .collect();
                    (one("apiGroups"), one("resources"), verbs)
                })
                .collect();
            let wanted: Vec<(String, String, Vec<String>)> = lake_manager::workers::kube::RBAC_RULES
                .iter()
                .map(|(g, r, v)| {
                    (
                        (*g).to_owned(),
                        (*r).to_owned(),
                        v.iter().map(|s| (*s).to_owned()).collect(),
                    )
                })
                .collect();
            assert_eq!(
                granted, wanted,
                "{name}: the Role grants exactly the launcher's calls"
            );
            // Never the release namespace "lakeplane": see the_launcher_role_stays_out_of_the_release_namespace.
            assert_eq!(roles[0]["namespace"], "lakeplane-workers");
        }
    }
    let kube = sets["kubernetes-launcher-autoscaling"]["kinds"].to_string();
    for kind in [
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "RoleBinding",
    ] {
        assert!(kube.contains(kind), "{kind} in {kube}");
    }
    let irsa = std::fs::read_to_string(out.path().join("external-postgres-s3-irsa.yaml")).expect("irsa");
    assert!(
        irsa.contains("eks.amazonaws.com/role-arn"),
        "IRSA annotation on the service account"
    );
    assert!(
        irsa.contains("\"helm.sh/hook\": pre-install,pre-upgrade"),
        "migration hook"
    );
    assert!(irsa.contains("kind: Ingress") && irsa.contains("kind: NetworkPolicy"));
    // Workers run as their own account (no API token); the migration hook runs before the
    // chart's account exists, so it names none; the server listens where the probes look.
    let kube_yaml =
        std::fs::read_to_string(out.path().join("kubernetes-launcher-autoscaling.yaml")).expect("kube");
    assert!(
        kube_yaml.contains("name: lakeplane-worker\n  namespace: lakeplane-workers"),
        "worker account"
    );
    let kube_config = std::fs::read_to_string(out.path().join("kubernetes-launcher-autoscaling.config.toml"))
        .expect("config");
    assert!(
        kube_config.contains("service_account = \"lakeplane-worker\""),
        "{kube_config}"
    );
    let job = &irsa[irsa.find("kind: Job").expect("job")..];
    let job = &job[..job.find("\n---").unwrap_or(job.len())];
    assert!(!job.contains("serviceAccountName"), "{job}");
    assert!(irsa.contains("value: \"0.0.0.0:8080\""), "listen set in the pod");
    let sqlite = std::fs::read_to_string(out.path().join("sqlite-single-replica.yaml")).expect("sqlite");
    assert!(sqlite.contains("kind: PersistentVolumeClaim") && sqlite.contains("type: Recreate"));
    assert!(
        !sqlite.contains("kind: Job"),
        "no migration hook on the embedded database"
    );

    // The schema refuses a typo'd key, a wrong type and a negative replica count, by name.
    let rejections = &summary["rejections"];
    for (case, names) in [
        ("typo", "replicaCounts"),
        ("wrong_type", "/replicaCount"),
        ("negative_replicas", "/replicaCount"),
        ("nested_typo", "kindd"),
    ] {
        let message = rejections[case]
            .as_str()
            .unwrap_or_else(|| panic!("{case} was accepted"));
        assert!(message.contains(names), "{case}: {message}");
    }

    for (case, reason) in [
        ("replicas_on_sqlite", "database.mode=external"),
        ("external_without_url", "database.external.url"),
        ("s3_without_region", "storage.s3.region"),
        ("kubernetes_workers_on_sqlite", "database.mode=external"),
        ("ephemeral_keys", "secrets.signingKey"),
        ("pdb_with_one_replica", "node drains"),
    ] {
        let message = summary["refusals"][case]
            .as_str()
            .unwrap_or_else(|| panic!("{case} was accepted"));
        assert!(message.contains(reason), "{case}: {message}");
    }

    for (name, problems) in summary["lint"].as_object().expect("lint") {
        assert_eq!(problems, &serde_json::json!([]), "helm lint --strict on {name}");
    }
    assert_eq!(
        summary["undocumented"],
        serde_json::json!([]),
        "every value is in the chart README"
    );

    // Golden file of the default manifests.
    let golden = chart.join("ci/golden/default.yaml");
    let actual = std::fs::read_to_string(out.path().join("default.yaml")).expect("default");
    if std::env::var_os("LAKEPLANE_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().expect("dir")).expect("golden dir");
        std::fs::write(&golden, &actual).expect("bless");
    }
    let expected = std::fs::read_to_string(&golden)
        .expect("golden file; regenerate with LAKEPLANE_BLESS=1 cargo nextest run -p api --test binary helm");
    assert_eq!(
        actual, expected,
        "the default manifests changed; bless them if intended"
    );

    // The chart deploys this build.
    let chart_yaml = std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml");
    assert!(
        chart_yaml.contains(&format!("appVersion: \"{}\"", env!("CARGO_PKG_VERSION"))),
        "appVersion is the crate version {}",
        env!("CARGO_PKG_VERSION")
    );
}

/// Renders each case with `scripts/helm-render`'s own `render` (the same engine, Kubernetes
/// version and release: "lakeplane" in namespace "lakeplane"): the values of a CI file, when
/// named, with the case's values merged over them (a list replaces a list). Prints per case
/// either `{"error"}` or `{"objects", "problems"}`, where a problem is an object that fails
/// `kubernetes-validate --strict` or YAML with a repeated key (invalid YAML, which Kubernetes'
/// own parsers may refuse or resolve differently).
const RENDER_CASES: &str = r#"
import importlib.machinery, importlib.util, json, sys
import helm_python as helm
import kubernetes_validate
import yaml

script, chart = sys.argv[1], sys.argv[2]
loader = importlib.machinery.SourceFileLoader("helm_render", script)
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("helm_render", loader))
loader.exec_module(module)


class Strict(yaml.SafeLoader):
    pass


def mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"repeated key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)


def merge(base, over):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


out = {}
for name, case in json.load(sys.stdin).items():
    values = {}
    if case.get("ci"):
        with open(f"{chart}/ci/{case['ci']}.yaml") as f:
            values = helm.values_from_yaml(f.read())
    merge(values, case.get("values", {}))
    try:
        files = module.render(chart, values)
    except helm.HelmError as e:
        out[name] = {"error": str(e)}
        continue
    objects, problems = [], []
    for path, text in files.items():
        try:
            docs = [d for d in yaml.load_all(text, Loader=Strict) if d]
        except yaml.YAMLError as e:
            problems.append(f"{path}: {e}")
            continue
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, module.KUBE_VERSION, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                pass
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{path}: {doc.get('kind')}: {e.message}")
            objects.append(doc)
    out[name] = {"objects": objects, "problems": problems}
json.dump(out, sys.stdout)
"#;

/// The release's namespace in every render (`scripts/helm-render`'s NAMESPACE).
const RELEASE_NAMESPACE: &str = "lakeplane";

/// The objects of one successful render.
struct Rendered {
    objects: Vec<Value>,
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str, namespace: &str, name: &str) -> &Value {
        let found: Vec<&Value> = self
            .all(kind)
            .into_iter()
            .filter(|o| o["metadata"]["namespace"] == namespace && o["metadata"]["name"] == name)
            .collect();
        assert_eq!(found.len(), 1, "one {kind} {namespace}/{name}");
        found[0]
    }

    /// The server's Deployment (the only one the chart renders).
    fn server(&self) -> &Value {
        let deployments = self.all("Deployment");
        assert_eq!(deployments.len(), 1, "one Deployment");
        deployments[0]
    }

    /// The config the server reads: the lakeplane.toml of the ConfigMap its pods mount.
    fn server_config(&self) -> api::config::Config {
        let server = self.server();
        let volumes = server["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes");
        let map = volumes
            .iter()
            .find_map(|v| v["configMap"]["name"].as_str())
            .expect("a ConfigMap volume");
        let namespace = server["metadata"]["namespace"].as_str().expect("namespace");
        let text = self.one("ConfigMap", namespace, map)["data"]["lakeplane.toml"]
            .as_str()
            .expect("lakeplane.toml");
        toml::from_str(text).expect("the rendered config parses")
    }

    /// The launcher's settings, as the server builds them from its config.
    fn launcher(&self) -> KubeSettings {
        let config = self.server_config();
        assert_eq!(config.workers.launcher, api::config::Launcher::Kubernetes);
        config.workers.kubernetes.settings()
    }
}

/// Renders every case (name, CI file, values over it); a successful render must have no
/// problems.
fn render(cases: &[(&str, Option<&str>, Value)]) -> BTreeMap<String, Result<Rendered, String>> {
    let python = std::env::var("LAKEPLANE_PYTHON").expect(
        "LAKEPLANE_PYTHON must name the test venv's python with helm-python-sdk (scripts/test sets it)",
    );
    let input: serde_json::Map<String, Value> = cases
        .iter()
        .map(|(name, ci, values)| ((*name).to_owned(), json!({"ci": ci, "values": values})))
        .collect();
    let mut child = Command::new(python)
        .arg("-c")
        .arg(RENDER_CASES)
        .arg(repo().join("scripts/helm-render"))
        .arg(repo().join("helm/lakeplane"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the renderer");
    serde_json::to_writer(child.stdin.take().expect("stdin"), &input).expect("send the cases");
    let done = child.wait_with_output().expect("renderer output");
    assert!(
        done.status.success(),
        "renderer failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let out: BTreeMap<String, Value> = serde_json::from_slice(&done.stdout).expect("renderer json");
    out.into_iter()
        .map(|(name, result)| {
            let rendered = match result["error"].as_str() {
                Some(error) => Err(error.to_owned()),
                None => {
                    assert_eq!(result["problems"], json!([]), "{name}");
                    Ok(Rendered {
                        objects: result["objects"].as_array().expect("objects").clone(),
                    })
                }
            };
            (name, rendered)
        })
        .collect()
}

fn rendered<'a>(all: &'a BTreeMap<String, Result<Rendered, String>>, case: &str) -> &'a Rendered {
    match &all[case] {
        Ok(r) => r,
        Err(e) => panic!("{case} did not render: {e}"),
    }
}

fn refused<'a>(all: &'a BTreeMap<String, Result<Rendered, String>>, case: &str) -> &'a str {
    match &all[case] {
        Ok(_) => panic!("{case} rendered; it must be refused"),
        Err(e) => e,
    }
}

/// Whether a label selector (`matchLabels` and `matchExpressions`, all terms ANDed, as the
/// Kubernetes API defines them) selects `labels`.
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().expect("key");
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let value = labels.get(key).map(String::as_str);
            match e["operator"].as_str().expect("operator") {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown selector operator {other}"),
            }
        });
    by_labels && by_expressions
}

fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
        .collect()
}

/// Where a packet goes: an address, or a pod in a namespace (by their labels).
enum Peer<'a> {
    Ip(Ipv4Addr),
    Pod {
        namespace: BTreeMap<String, String>,
        pod: BTreeMap<String, String>,
        /// The namespace's name, for a peer without a namespaceSelector (the policy's own).
        name: &'a str,
    },
}

fn in_cidr(ip: Ipv4Addr, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').expect("a CIDR");
    let net: Ipv4Addr = net.parse().expect("an IPv4 network");
    let bits: u32 = bits.parse().expect("prefix length");
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn peer_matches(peer: &Value, to: &Peer<'_>, policy_namespace: &str) -> bool {
    match to {
        Peer::Ip(ip) => peer.get("ipBlock").is_some_and(|block| {
            in_cidr(*ip, block["cidr"].as_str().expect("cidr"))
                && !block["except"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| in_cidr(*ip, e.as_str().expect("except")))
        }),
        Peer::Pod { namespace, pod, name } => {
            if peer.get("ipBlock").is_some() {
                return false;
            }
            let namespace_ok = match peer.get("namespaceSelector") {
                Some(selector) => selects(selector, namespace),
                None => *name == policy_namespace,
            };
            let pod_ok = peer.get("podSelector").is_none_or(|s| selects(s, pod));
            namespace_ok && pod_ok
        }
    }
}

/// Whether the NetworkPolicies selecting a pod (labels in a namespace) let it send to `to` on
/// `port`/`protocol`: Kubernetes' rules, where a pod no Egress policy selects may send anywhere
/// and the selecting policies' rules add up.
fn egress_allowed(
    policies: &[&Value],
    namespace: &str,
    pod: &BTreeMap<String, String>,
    to: &Peer<'_>,
    port: u16,
    protocol: &str,
) -> bool {
    let selecting = selecting_policies(policies, namespace, pod, "Egress");
    if selecting.is_empty() {
        return true;
    }
    selecting.iter().any(|policy| {
        policy["spec"]["egress"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| {
                let port_ok = rule["ports"].as_array().is_none_or(|ports| {
                    ports.iter().any(|p| {
                        p["port"] == json!(port) && p["protocol"].as_str().unwrap_or("TCP") == protocol
                    })
                });
                let peer_ok = rule["to"].as_array().is_none_or(|peers| {
                    peers.is_empty() || peers.iter().any(|peer| peer_matches(peer, to, namespace))
                });
                port_ok && peer_ok
            })
    })
}

/// The policies in `namespace` that select `pod` and restrict its `direction` (`Ingress` or
/// `Egress`).
fn selecting_policies<'a>(
    policies: &'a [&'a Value],
    namespace: &str,
    pod: &BTreeMap<String, String>,
    direction: &str,
) -> Vec<&'a &'a Value> {
    policies
        .iter()
        .filter(|p| p["metadata"]["namespace"] == namespace && selects(&p["spec"]["podSelector"], pod))
        .filter(|p| {
            p["spec"]["policyTypes"]
                .as_array()
                .expect("policyTypes")
                .contains(&json!(direction))
        })
        .collect()
}

/// Whether any ingress at all can reach a pod: false when an Ingress policy selects it and no
/// rule of any selecting policy allows anything.
fn any_ingress(policies: &[&Value], namespace: &str, pod: &BTreeMap<String, String>) -> bool {
    let selecting = selecting_policies(policies, namespace, pod, "Ingress");
    selecting.is_empty()
        || selecting.iter().any(|p| {
            p["spec"]["ingress"]
                .as_array()
                .is_some_and(|rules| !rules.is_empty())
        })
}

/// The pods the launcher creates with these settings (an ingest Deployment's and a one-shot
/// Job's), by the launcher's own manifest functions: (namespace, pod labels, envFrom Secrets).
fn worker_pods(settings: &KubeSettings) -> Vec<(String, BTreeMap<String, String>, Vec<String>)> {
    let tenant = TenantId::parse("acme").expect("tenant");
    let ingest = WorkerSpec::ingest(tenant.clone(), uuid::Uuid::nil());
    let purge = WorkerSpec {
        kind: WorkerKind::Purge,
        tenant,
        target: WorkerTarget::Tenant,
        operations: Vec::new(),
        run: None,
    };
    let deployment =
        serde_json::to_value(lake_manager::workers::kube::deployment(&ingest, settings)).expect("json");
    let job = serde_json::to_value(lake_manager::workers::kube::job(&purge, settings)).expect("json");
    [deployment, job]
        .iter()
        .map(|object| {
            let template = &object["spec"]["template"];
            let secrets = template["spec"]["containers"]
                .as_array()
                .expect("containers")
                .iter()
                .flat_map(|c| c["envFrom"].as_array().cloned().unwrap_or_default())
                .map(|e| e["secretRef"]["name"].as_str().expect("secretRef").to_owned())
                .collect();
            (
                object["metadata"]["namespace"]
                    .as_str()
                    .expect("namespace")
                    .to_owned(),
                labels_of(&template["metadata"]["labels"]),
                secrets,
            )
        })
        .collect()
}

#[test]
fn every_set_parses_strictly() {
    let mut cases = vec![("default", None, json!({}))];
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repo().join("helm/lakeplane/ci")).expect("ci dir") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if let Some(set) = name.strip_suffix(".yaml") {
            names.push(set.to_owned());
        }
    }
    for name in &names {
        cases.push((name.as_str(), Some(name.as_str()), json!({})));
    }
    // `render` asserts that no object repeats a key (a label written twice, say).
    let all = render(&cases);
    for (name, _, _) in &cases {
        rendered(&all, name);
    }
}

#[test]
fn network_policies_let_out_only_what_the_values_name() {
    let prod = "external-postgres-s3-irsa";
    let all = render(&[
        ("prod", Some(prod), json!({})),
        ("embedded", None, json!({"networkPolicy": {"enabled": true}})),
        // The Kubernetes launcher's set, whose database and MinIO run inside the cluster.
        (
            "in_cluster",
            Some("kubernetes-launcher-autoscaling"),
            json!({"networkPolicy": {"enabled": true, "egress": {
                "database": {"peers": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}},
                    "podSelector": {"matchLabels": {"app": "postgres"}},
                }]},
                "s3": {"ports": [9000], "peers": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "storage"}},
                    "podSelector": {"matchLabels": {"app": "minio"}},
                }]},
                "kubernetesApi": {"cidrs": ["192.0.2.128/28"]},
            }}}),
        ),
        // Each needed destination left out, with the extra (STS) rule still there.
        (
            "no_s3_cidrs",
            Some(prod),
            json!({"networkPolicy": {"egress": {"s3": {"cidrs": []}}}}),
        ),
        (
            "no_database_cidrs",
            Some(prod),
            json!({"networkPolicy": {"egress": {"database": {"cidrs": []}}}}),
        ),
        (
            "no_api_cidrs",
            Some(prod),
            json!({"networkPolicy": {"egress": {"kubernetesApi": {"cidrs": []}}}}),
        ),
    ]);

    let dns_pod = Peer::Pod {
        namespace: [("kubernetes.io/metadata.name".to_owned(), "kube-system".to_owned())].into(),
        pod: [("k8s-app".to_owned(), "kube-dns".to_owned())].into(),
        name: "kube-system",
    };
    let other_pod = Peer::Pod {
        namespace: [("kubernetes.io/metadata.name".to_owned(), "payments".to_owned())].into(),
        pod: [("app".to_owned(), "ledger".to_owned())].into(),
        name: "payments",
    };
    let ip = |s: &str| Peer::Ip(s.parse().expect("ip"));
    // The CI set's addresses (helm/lakeplane/ci/external-postgres-s3-irsa.yaml).
    let database = ip("192.0.2.20");
    let s3 = ip("198.51.100.7");
    let kafka = ip("192.0.2.70");
    let api_server = ip("192.0.2.130");
    let sts = ip("203.0.113.5");
    let internet = ip("8.8.8.8");

    let r = rendered(&all, "prod");
    let policies = r.all("NetworkPolicy");
    let server = r.server();
    let server_ns = server["metadata"]["namespace"].as_str().expect("namespace");
    let server_pod = labels_of(&server["spec"]["template"]["metadata"]["labels"]);
    let out = |to: &Peer<'_>, port: u16, protocol: &str| {
        egress_allowed(&policies, server_ns, &server_pod, to, port, protocol)
    };
    assert!(
        out(&dns_pod, 53, "UDP") && out(&dns_pod, 53, "TCP"),
        "server: DNS"
    );
    assert!(out(&database, 5432, "TCP"), "server: the database");
    assert!(out(&s3, 443, "TCP"), "server: S3");
    assert!(out(&kafka, 9094, "TCP"), "server: Kafka brokers");
    assert!(out(&api_server, 6443, "TCP"), "server: the API server (launcher)");
    assert!(out(&sts, 443, "TCP"), "server: STS through the extra rule");
    assert!(!out(&internet, 443, "TCP"), "server: not the internet");
    assert!(
        !out(&internet, 53, "UDP"),
        "server: DNS only from the cluster's resolver"
    );
    assert!(
        !out(&database, 22, "TCP"),
        "server: the database host on its port only"
    );
    assert!(!out(&s3, 80, "TCP"), "server: S3 on its port only");
    assert!(!out(&other_pod, 8080, "TCP"), "server: not other pods");

    // Worker pods as the launcher makes them from the rendered config, in its namespace.
    let pods = worker_pods(&r.launcher());
    for (namespace, labels, _) in &pods {
        assert!(
            policies
                .iter()
                .any(|p| p["metadata"]["namespace"] == namespace.as_str()
                    && selects(&p["spec"]["podSelector"], labels)),
            "a policy selects worker pods {labels:?} in {namespace}"
        );
        let out = |to: &Peer<'_>, port: u16, protocol: &str| {
            egress_allowed(&policies, namespace, labels, to, port, protocol)
        };
        assert!(
            !any_ingress(&policies, namespace, labels),
            "nothing comes into a worker"
        );
        assert!(
            out(&dns_pod, 53, "UDP") && out(&dns_pod, 53, "TCP"),
            "worker: DNS"
        );
        assert!(out(&database, 5432, "TCP"), "worker: the database");
        assert!(out(&s3, 443, "TCP"), "worker: S3");
        assert!(out(&kafka, 9094, "TCP"), "worker: Kafka brokers");
        assert!(out(&sts, 443, "TCP"), "worker: STS (IRSA)");
        assert!(!out(&api_server, 6443, "TCP"), "worker: never the API server");
        assert!(!out(&api_server, 443, "TCP"), "worker: never the API server");
        assert!(!out(&internet, 443, "TCP"), "worker: not the internet");
        assert!(!out(&other_pod, 8080, "TCP"), "worker: not other pods");
        // Another release sharing the workers' namespace labels its pods with its own name:
        // this release's policies leave them to that release.
        assert_eq!(
            labels.get("app.kubernetes.io/instance").map(String::as_str),
            Some(
                r.server()["metadata"]["labels"]["app.kubernetes.io/instance"]
                    .as_str()
                    .expect("release")
            ),
            "worker pods carry the release"
        );
        let mut other_release = labels.clone();
        other_release.insert(
            "app.kubernetes.io/instance".to_owned(),
            "other-release".to_owned(),
        );
        assert!(
            !policies
                .iter()
                .any(|p| p["metadata"]["namespace"] == namespace.as_str()
                    && selects(&p["spec"]["podSelector"], &other_release)),
            "another release's worker pods in {namespace} are not this release's to select"
        );
        // A pod made before workers carried their release (an upgrade) is held to the same
        // egress rules.
        let mut unlabelled = labels.clone();
        unlabelled.remove("app.kubernetes.io/instance");
        let legacy_out = |to: &Peer<'_>, port: u16, protocol: &str| {
            egress_allowed(&policies, namespace, &unlabelled, to, port, protocol)
        };
        assert!(
            legacy_out(&database, 5432, "TCP"),
            "unlabelled worker: the database"
        );
        assert!(
            !legacy_out(&internet, 443, "TCP"),
            "unlabelled worker: not the internet"
        );
        assert!(
            !legacy_out(&api_server, 6443, "TCP"),
            "unlabelled worker: never the API server"
        );
    }

    // Destinations inside the cluster, named by namespace and pod labels.
    let r = rendered(&all, "in_cluster");
    let policies = r.all("NetworkPolicy");
    let pod = |namespace: &'static str, app: &str| Peer::Pod {
        namespace: [("kubernetes.io/metadata.name".to_owned(), namespace.to_owned())].into(),
        pod: [("app".to_owned(), app.to_owned())].into(),
        name: namespace,
    };
    let server_pod = labels_of(&r.server()["spec"]["template"]["metadata"]["labels"]);
    let mut pods = vec![(RELEASE_NAMESPACE.to_owned(), server_pod)];
    pods.extend(
        worker_pods(&r.launcher())
            .into_iter()
            .map(|(ns, labels, _)| (ns, labels)),
    );
    for (namespace, labels) in &pods {
        let out = |to: &Peer<'_>, port: u16| egress_allowed(&policies, namespace, labels, to, port, "TCP");
        assert!(out(&pod("db", "postgres"), 5432), "{labels:?}: the database");
        assert!(out(&pod("storage", "minio"), 9000), "{labels:?}: MinIO");
        assert!(
            !out(&pod("db", "postgres"), 22),
            "{labels:?}: the database's port only"
        );
        assert!(
            !out(&pod("db", "pgadmin"), 5432),
            "{labels:?}: the database pods only"
        );
        assert!(
            !out(&pod("storage", "minio"), 443),
            "{labels:?}: MinIO's port only"
        );
    }

    // The embedded default with policies on: no database, S3 or broker named, so only DNS.
    let r = rendered(&all, "embedded");
    let policies = r.all("NetworkPolicy");
    assert_eq!(policies.len(), 1, "no worker policy with in-process workers");
    let server_pod = labels_of(&r.server()["spec"]["template"]["metadata"]["labels"]);
    let out =
        |to: &Peer<'_>, port: u16| egress_allowed(&policies, RELEASE_NAMESPACE, &server_pod, to, port, "TCP");
    assert!(out(&dns_pod, 53));
    assert!(!out(&database, 5432) && !out(&kafka, 9092) && !out(&internet, 443));

    // A policy that would cut the server off from what it needs is refused, naming the value.
    for (case, names) in [
        ("no_s3_cidrs", "networkPolicy.egress.s3.cidrs"),
        ("no_database_cidrs", "networkPolicy.egress.database.cidrs"),
        ("no_api_cidrs", "networkPolicy.egress.kubernetesApi.cidrs"),
    ] {
        let message = refused(&all, case);
        assert!(message.contains(names), "{case}: {message}");
    }
}

/// Whether an Ingress routes a request for `path` on `host`, by the Ingress API's matching:
/// Exact compares the whole path; Prefix compares whole `/`-separated elements, so `/v1`
/// matches `/v1/tenants` and `/v1/` but not `/v1x`.
fn routed(ingress: &Value, host: &str, path: &str) -> bool {
    let elements = |p: &str| {
        p.split('/')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let wanted = elements(path);
    ingress["spec"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .any(|rule| {
            rule["host"].as_str().is_none_or(|h| h == host)
                && rule["http"]["paths"].as_array().expect("paths").iter().any(|p| {
                    let route = p["path"].as_str().expect("path");
                    match p["pathType"].as_str().expect("pathType") {
                        "Exact" => route == path,
                        "Prefix" => {
                            let prefix = elements(route);
                            wanted.len() >= prefix.len() && wanted[..prefix.len()] == prefix[..]
                        }
                        other => panic!("pathType {other} has no defined meaning"),
                    }
                })
        })
}

#[test]
fn the_ingress_routes_the_api_but_not_metrics() {
    let prod = "external-postgres-s3-irsa";
    let all = render(&[
        ("prod", Some(prod), json!({})),
        ("no_sharing", Some(prod), json!({"sharing": {"enabled": false}})),
        ("monitored", Some("kubernetes-launcher-autoscaling"), json!({})),
    ]);
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("openapi/openapi.json")).expect("openapi.json"),
    )
    .expect("json");
    let documented: Vec<String> = spec["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(|p| {
            p.split('/')
                .map(|e| if e.starts_with('{') { "x" } else { e })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    assert!(
        documented.iter().any(|p| p == "/metrics"),
        "the server serves /metrics"
    );
    // The undocumented routes: the docs UI and the Delta Sharing protocol
    // (api/src/routes/sharing.rs).
    let sharing = [
        "/delta-sharing/shares",
        "/delta-sharing/shares/s/schemas/z/tables/t/query",
        "/files/t/part-0.parquet",
    ];

    let host = "lake.example.com";
    let r = rendered(&all, "prod");
    let ingresses = r.all("Ingress");
    assert_eq!(ingresses.len(), 1);
    let ingress = ingresses[0];
    for path in ["/metrics", "/metrics/", "/metrics/x"] {
        assert!(!routed(ingress, host, path), "{path} is not public");
    }
    for path in documented.iter().filter(|p| p.as_str() != "/metrics") {
        assert!(routed(ingress, host, path), "{path} is routed");
    }
    for path in ["/docs", "/docs/", "/docs/index.html", "/openapi.json"]
        .iter()
        .chain(&sharing)
    {
        assert!(routed(ingress, host, path), "{path} is routed");
    }

    // Sharing off: its protocol stays off the Ingress, the API does not.
    let r = rendered(&all, "no_sharing");
    let ingress = r.all("Ingress")[0];
    for path in sharing {
        assert!(
            !routed(ingress, host, path),
            "{path} is not routed without sharing"
        );
    }
    assert!(routed(ingress, host, "/v1/tenants") && !routed(ingress, host, "/metrics"));

    // Prometheus still scrapes /metrics, through a Service port that reaches the server pods.
    let r = rendered(&all, "monitored");
    let monitors = r.all("ServiceMonitor");
    assert_eq!(monitors.len(), 1);
    let server_pod = labels_of(&r.server()["spec"]["template"]["metadata"]["labels"]);
    let endpoints = monitors[0]["spec"]["endpoints"].as_array().expect("endpoints");
    assert!(endpoints.iter().any(|e| e["path"] == "/metrics"), "{endpoints:?}");
    for endpoint in endpoints {
        let port = &endpoint["port"];
        assert!(
            r.all("Service").iter().any(|s| {
                selects(&json!({"matchLabels": s["spec"]["selector"]}), &server_pod)
                    && selects(
                        &monitors[0]["spec"]["selector"],
                        &labels_of(&s["metadata"]["labels"]),
                    )
                    && s["spec"]["ports"]
                        .as_array()
                        .expect("ports")
                        .iter()
                        .any(|p| &p["name"] == port)
            }),
            "a Service of the server pods has the scraped port {port}"
        );
    }
}

#[test]
fn sharing_needs_a_public_url() {
    let all = render(&[
        ("without_url", None, json!({"sharing": {"enabled": true}})),
        (
            "with_url",
            None,
            json!({"sharing": {"enabled": true, "publicUrl": "https://lake.example.com"}}),
        ),
    ]);
    let message = refused(&all, "without_url");
    assert!(message.contains("sharing.publicUrl"), "{message}");
    let config = rendered(&all, "with_url").server_config();
    assert_eq!(
        config.sharing.public_url.map(|u| u.to_string()),
        Some("https://lake.example.com/".to_owned()),
        "the server builds recipients' URLs from the configured one"
    );
}

#[test]
fn the_launcher_role_stays_out_of_the_release_namespace() {
    let kube = "kubernetes-launcher-autoscaling";
    let all = render(&[
        ("default_namespace", Some(kube), json!({})),
        (
            "named_namespace",
            Some(kube),
            json!({"workers": {"namespace": "lake-jobs"}}),
        ),
        (
            "release_namespace",
            Some(kube),
            json!({"workers": {"namespace": RELEASE_NAMESPACE}}),
        ),
    ]);
    for (case, workers) in [
        ("default_namespace", "lakeplane-workers"),
        ("named_namespace", "lake-jobs"),
    ] {
        let r = rendered(&all, case);
        let settings = r.launcher();
        assert_eq!(
            settings.namespace, workers,
            "{case}: where the launcher creates workers"
        );
        let server = r.server();
        assert_eq!(server["metadata"]["namespace"], RELEASE_NAMESPACE);
        let account = server["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .expect("account");
        // RBAC objects: one Role and its binding, both in the worker namespace; nothing in the
        // release namespace or cluster-wide.
        for kind in ["ClusterRole", "ClusterRoleBinding"] {
            assert!(r.all(kind).is_empty(), "{case}: no {kind}");
        }
        let roles = r.all("Role");
        let bindings = r.all("RoleBinding");
        assert_eq!((roles.len(), bindings.len()), (1, 1), "{case}");
        for object in roles.iter().chain(&bindings) {
            assert_eq!(
                object["metadata"]["namespace"], workers,
                "{case}: {}",
                object["kind"]
            );
        }
        let binding = bindings[0];
        assert_eq!(binding["roleRef"]["name"], roles[0]["metadata"]["name"]);
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE}]),
            "{case}: granted to the server's account"
        );
        // What the grant reaches: only Deployments and Jobs, and not in the namespace of the
        // server's own Deployment.
        let kinds: BTreeSet<&str> = roles[0]["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .flat_map(|r| {
                r["resources"]
                    .as_array()
                    .expect("resources")
                    .iter()
                    .map(|k| k.as_str().expect("kind"))
            })
            .collect();
        assert_eq!(kinds, BTreeSet::from(["deployments", "jobs"]), "{case}");
        assert_ne!(
            roles[0]["metadata"]["namespace"], server["metadata"]["namespace"],
            "{case}"
        );
    }
    let message = refused(&all, "release_namespace");
    assert!(message.contains("workers.namespace"), "{message}");
}

#[test]
fn worker_pods_get_only_the_worker_secret() {
    let kube = "kubernetes-launcher-autoscaling";
    let prod = "external-postgres-s3-irsa";
    let all = render(&[
        ("chart_secrets", Some(kube), json!({})),
        (
            "no_ingest_key",
            Some(kube),
            json!({"secrets": {"ingestSecretKey": ""}}),
        ),
        ("existing_secrets", Some(prod), json!({})),
        (
            "existing_without_worker_secret",
            Some(prod),
            json!({"workers": {"existingSecret": ""}}),
        ),
    ]);
    let server_only = [
        "LAKEPLANE__AUTH__SIGNING_KEY",
        "LAKEPLANE__SHARING__URL_SIGNING_SECRET",
    ];
    let keys = |secret: &Value| -> BTreeSet<String> {
        secret["stringData"]
            .as_object()
            .expect("stringData")
            .keys()
            .cloned()
            .collect()
    };

    for (case, expected) in [
        (
            "chart_secrets",
            BTreeSet::from(["LAKEPLANE__DATABASE__URL", "LAKEPLANE__INGEST__SECRET_KEY"]),
        ),
        ("no_ingest_key", BTreeSet::from(["LAKEPLANE__DATABASE__URL"])),
    ] {
        let r = rendered(&all, case);
        let settings = r.launcher();
        for (namespace, _, secrets) in worker_pods(&settings) {
            assert_eq!(secrets.len(), 1, "{case}: one Secret");
            let secret = r.one("Secret", &namespace, &secrets[0]);
            let held = keys(secret);
            assert_eq!(
                held.iter().map(String::as_str).collect::<BTreeSet<_>>(),
                expected,
                "{case}: the worker Secret holds the database URL and the ingest key only"
            );
            assert_eq!(
                secret["stringData"]["LAKEPLANE__DATABASE__URL"],
                "postgres://lakeplane:change-me@postgres.db.svc:5432/lakeplane"
            );
        }
        // No Secret outside the release namespace holds the server's keys, while the server's
        // own still does.
        for secret in r.all("Secret") {
            if secret["metadata"]["namespace"] != RELEASE_NAMESPACE {
                for key in server_only {
                    assert!(
                        !keys(secret).contains(key),
                        "{case}: {key} in {}",
                        secret["metadata"]
                    );
                }
            }
        }
        let server = r.server();
        let from = server["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"]
            .as_str()
            .expect("server envFrom");
        let server_secret = keys(r.one("Secret", RELEASE_NAMESPACE, from));
        for key in server_only {
            assert!(server_secret.contains(key), "{case}: the server keeps {key}");
        }
    }
    let r = rendered(&all, "chart_secrets");
    assert_eq!(
        r.one("Secret", RELEASE_NAMESPACE, "lakeplane")["stringData"]["LAKEPLANE__INGEST__SECRET_KEY"],
        "bGFrZXBsYW5lLWluZ2VzdC1rZXktMzItYnl0ZXMtISE=",
        "the server seals with the key the workers open with"
    );

    // Brought Secrets: worker pods use the workers' one, never the server's.
    let r = rendered(&all, "existing_secrets");
    for (_, _, secrets) in worker_pods(&r.launcher()) {
        assert_eq!(secrets, ["lakeplane-prod-worker"]);
    }
    assert!(
        r.all("Secret").is_empty(),
        "the chart renders no Secret when both are brought"
    );
    let message = refused(&all, "existing_without_worker_secret");
    assert!(message.contains("workers.existingSecret"), "{message}");
}
