//! The Helm chart (`helm/lakeplane`), rendered offline with Helm's own engine (helm-python-sdk:
//! Helm v4 as a library; no cluster runs here) for the default values and every value set in
//! `helm/lakeplane/ci/` by `scripts/helm-render`, which also validates each object with
//! `kubernetes-validate --strict` for Kubernetes 1.37. Here: every set renders and validates,
//! the schema refuses bad values, every rendered ConfigMap is accepted by `lakeplane config
//! check`, the Role grants exactly the launcher's calls, the default manifests equal the
//! golden file (`LAKEPLANE_BLESS=1` rewrites it), and the chart's appVersion is the crate's.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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
