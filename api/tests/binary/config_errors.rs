use std::time::Duration;

use crate::helpers::lakeplane;

/// Runs `serve` expecting a configuration error; returns stderr.
async fn rejected(configure: impl FnOnce(&mut tokio::process::Command)) -> String {
    let cwd = tempfile::tempdir().expect("cwd");
    std::fs::write(
        cwd.path().join("typo.toml"),
        "[server]\nlisten_addr = \"127.0.0.1:1\"\n",
    )
    .expect("file");
    let mut command = lakeplane(cwd.path());
    configure(&mut command);
    let output = tokio::time::timeout(Duration::from_secs(20), command.arg("serve").output())
        .await
        .expect("exits promptly")
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "config errors exit 2; stderr: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        !cwd.path().join("data").exists(),
        "nothing created before config is valid"
    );
    stderr
}

#[tokio::test]
async fn invalid_values_stop_start_up_with_one_line_naming_the_key() {
    let env = rejected(|c| {
        c.env("LAKEPLANE__SERVER__LISTEN", "not-an-address");
    })
    .await;
    assert!(
        env.contains("server.listen") && env.contains("LAKEPLANE__SERVER__LISTEN"),
        "{env}"
    );

    let flag = rejected(|c| {
        c.args(["--database-url", "mysql://db/lake"]);
    })
    .await;
    assert!(
        flag.contains("database.url") && flag.contains("--database-url"),
        "{flag}"
    );

    let file = rejected(|c| {
        c.args(["--config", "typo.toml"]);
    })
    .await;
    assert!(
        file.contains("server.listen_addr") && file.contains("typo.toml"),
        "{file}"
    );

    let range = rejected(|c| {
        c.env("LAKEPLANE__SERVER__REQUEST_TIMEOUT_SECS", "0");
    })
    .await;
    assert!(range.contains("server.request_timeout_secs"), "{range}");

    let missing = rejected(|c| {
        c.args(["--config", "absent.toml"]);
    })
    .await;
    assert!(missing.contains("absent.toml"), "{missing}");
}

/// `lakeplane config check --file`: the rendered Helm ConfigMap is checked with it, so it must
/// accept a valid file, print the effective config with secrets masked, and refuse a bad one
/// the way `serve` does, without creating anything.
#[tokio::test]
async fn config_check_prints_the_effective_config_masked_or_names_the_bad_key() {
    let cwd = tempfile::tempdir().expect("cwd");
    let good = cwd.path().join("good.toml");
    std::fs::write(
        &good,
        "data_dir = \"/var/lib/lakeplane\"\n\
         [database]\nurl = \"postgres://lake:hunter2-secret@db:5432/lakeplane\"\n\
         [sharing]\nurl_signing_secret = \"a-url-signing-secret-of-32-bytes-or-more\"\n\
         [workers]\nlauncher = \"kubernetes\"\n",
    )
    .expect("file");
    let output = lakeplane(cwd.path())
        .args(["config", "check", "--file"])
        .arg(&good)
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("launcher = \"kubernetes\""), "{stdout}");
    assert!(stdout.contains("data_dir = \"/var/lib/lakeplane\""), "{stdout}");
    assert!(stdout.contains("url_signing_secret = \"***\""), "{stdout}");
    assert!(
        !stdout.contains("hunter2-secret") && !stdout.contains("32-bytes-or-more"),
        "{stdout}"
    );
    assert!(!cwd.path().join("data").exists() && !std::path::Path::new("/var/lib/lakeplane").exists());

    let bad = cwd.path().join("bad.toml");
    std::fs::write(&bad, "[workers]\nlaunchr = \"kubernetes\"\n").expect("file");
    let output = lakeplane(cwd.path())
        .args(["config", "check", "--file"])
        .arg(&bad)
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("launchr"), "names the unknown key: {stderr}");
    assert!(output.stdout.is_empty());
}
