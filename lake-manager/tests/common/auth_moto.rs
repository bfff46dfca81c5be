//! A moto server of a test's own, shared by the lake-manager and API test binaries.

use std::process::Stdio;
use std::time::{Duration, Instant};

/// A moto server of this test's own, so switching its auth enforcement on cannot disturb the
/// shared one. Killed when dropped.
pub struct AuthMoto {
    child: tokio::process::Child,
    pub endpoint: String,
}

impl AuthMoto {
    pub async fn start() -> Self {
        let python = std::env::var("LAKEPLANE_PYTHON")
            .expect("LAKEPLANE_PYTHON must name the test venv's python with moto (scripts/test sets it)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = tokio::process::Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{endpoint}/moto-api/")).send().await.is_err() {
            assert!(Instant::now() < deadline, "moto did not start on {endpoint}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, endpoint }
    }

    /// From now on every request must be signed by a known identity and allowed by IAM.
    pub async fn enforce_auth(&self) {
        let answer = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body("0")
            .send()
            .await
            .expect("reset-auth");
        assert_eq!(answer.status(), 200, "moto switches auth on");
    }
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
