//! Helpers shared by the API test binaries.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP forwarder in front of a real server (the PostgreSQL server, or moto), so a test can
/// make that dependency "go away" and come back without touching the server other tests share.
pub struct PgProxy {
    pub port: u16,
    upstream: SocketAddr,
    tasks: Option<JoinSet<()>>,
    running: Arc<AtomicBool>,
    /// While set, connections stay open and nothing is forwarded: a server that hangs.
    hung: Arc<tokio::sync::watch::Sender<bool>>,
}

impl PgProxy {
    /// Starts forwarding a free local port to the test PostgreSQL server.
    pub async fn start() -> Self {
        let admin = url::Url::parse(&tenancy::store::testing::postgres_admin_url()).expect("admin url");
        let upstream: SocketAddr = format!(
            "{}:{}",
            admin.host_str().unwrap_or("127.0.0.1"),
            admin.port().unwrap_or(5432)
        )
        .parse()
        .expect("postgres test server address is an IP:port");
        Self::start_to(upstream).await
    }

    /// Starts forwarding a free local port to any TCP server (moto, for an S3 outage).
    pub async fn start_to(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mut proxy = Self {
            port,
            upstream,
            tasks: None,
            running: Arc::new(AtomicBool::new(false)),
            hung: Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        proxy.run(listener);
        proxy
    }

    fn run(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        let mut tasks = JoinSet::new();
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let hung = self.hung.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while running.load(Ordering::SeqCst) {
                let Ok((mut client, _)) = listener.accept().await else {
                    break;
                };
                let mut hang = hung.subscribe();
                connections.spawn(async move {
                    // A hung proxy holds the connection open and answers nothing, until it
                    // is resumed: then the connection is cut, as a server restart would.
                    let hung_now = *hang.borrow();
                    if hung_now {
                        let _ = hang.wait_for(|h| !*h).await.map(|_| ());
                        return;
                    }
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let cut = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                            hung = hang.wait_for(|h| *h) => hung.is_ok(),
                        };
                        if cut {
                            let _ = hang.wait_for(|h| !*h).await.map(|_| ());
                        }
                    }
                });
            }
            // Dropping the set aborts every forwarded connection.
            drop(connections);
        });
        self.tasks = Some(tasks);
    }

    /// Cuts every connection and stops listening: the database is "down".
    pub async fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// The server hangs: every connection, open or new, stays open and gets no answer.
    pub fn hang(&self) {
        self.hung.send_replace(true);
    }

    /// Ends the hang: the held connections are cut and new ones are forwarded again.
    pub fn unhang(&self) {
        self.hung.send_replace(false);
    }

    /// Listens again on the same port: the database is "back".
    pub async fn resume(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind proxy port");
        self.run(listener);
    }

    /// A URL for `database` through this proxy.
    pub fn url_for(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(database_url).expect("database url");
        url.set_port(Some(self.port)).expect("set port");
        url.set_host(Some("127.0.0.1")).expect("set host");
        url.to_string()
    }
}

/// Checks a response's status (showing the body when it differs) and returns the body as JSON
/// (`Null` when empty). `what` names the request in the failure.
pub async fn expect_status(response: reqwest::Response, what: &str, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| format!("<unreadable body: {e}>"));
    assert_eq!(got, status, "{what}: {text}");
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// Runs Python from the test venv (`LAKEPLANE_PYTHON`, exported by `scripts/test`).
pub fn python(script: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = python_outcome(script, args);
    assert!(ok, "python failed: {stderr}");
    stdout
}

/// Runs Python from the test venv and returns whether it succeeded, its stdout and stderr,
/// for scripts that are expected to fail.
pub fn python_outcome(script: &str, args: &[&str]) -> (bool, String, String) {
    let python = std::env::var("LAKEPLANE_PYTHON")
        .expect("LAKEPLANE_PYTHON must name the test venv's python with deltalake (scripts/test sets it)");
    // The deltalake wheel (1.6.6) sometimes aborts in a thread destructor while the interpreter
    // exits ("terminate called without an active exception") after the script has finished.
    // Leaving with os._exit once the script succeeded skips that teardown and nothing else.
    let script = format!("{script}\nimport sys as _sys, os as _os\n_sys.stdout.flush()\n_os._exit(0)\n");
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Creates a fresh topic with `partitions` partitions on the test broker (tansu creates
/// nothing implicitly) and returns its name.
pub async fn topic(bootstrap: &str, partitions: i32) -> String {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let name = format!("lp-{}", uuid::Uuid::now_v7().simple());
    let admin: AdminClient<DefaultClientContext> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for result in created {
        result.expect("topic created");
    }
    name
}

/// `storage_options` for the Python `deltalake` reader (and boto3) against moto.
pub fn moto_storage_options(endpoint: &str) -> serde_json::Value {
    serde_json::json!({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    })
}

/// A moto server of the test's own (the S3 stand-in), so a test can freeze it (SIGSTOP) or
/// kill it without touching the one every other test shares. Killed when dropped.
pub struct PrivateMoto {
    child: std::process::Child,
    pub endpoint: String,
}

impl PrivateMoto {
    /// Starts `moto_server` from the test venv on a free port and waits until it answers.
    pub async fn start() -> Self {
        let python = std::env::var("LAKEPLANE_PYTHON")
            .expect("LAKEPLANE_PYTHON must name the test venv's python (scripts/test sets it)");
        let server = std::path::Path::new(&python).with_file_name("moto_server");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", server.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Self { child, endpoint };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let answered = client
                .get(format!("{}/moto-api/", moto.endpoint))
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                return moto;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start on {}",
                moto.endpoint
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} moto");
    }

    /// Freezes the server: connections are accepted by the kernel and never answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets it run again; what it received meanwhile is then processed.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        // SIGKILL ends a frozen process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Produces one record per id to `topic` on the test broker, partition `id % partitions`, with
/// the payload `payload(id)`, and waits until every one is delivered.
pub async fn produce_ids(
    bootstrap: &str,
    topic: &str,
    partitions: i64,
    ids: impl Iterator<Item = i64>,
    payload: impl Fn(i64) -> String,
) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let sends = ids.map(|id| {
        let (producer, body) = (&producer, payload(id));
        async move {
            producer
                .send(
                    FutureRecord::<(), String>::to(topic)
                        .payload(&body)
                        .partition(i32::try_from(id % partitions).expect("partition")),
                    std::time::Duration::from_secs(10),
                )
                .await
                .expect("delivered");
        }
    });
    futures_util::future::join_all(sends).await;
}
