//! Serving with graceful shutdown: on SIGTERM or SIGINT, stop accepting, let in-flight
//! requests finish within a grace period, then return.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Layer;

use crate::config::Config;
use crate::error::chain;
use crate::state::{AppState, StartupError};

/// Why serving stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Start-up failed before listening.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The listen address could not be bound.
    #[error("server.listen: cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The accept loop failed.
    #[error("serving failed")]
    Io(#[source] std::io::Error),
    /// In-flight requests were still running when the grace period ended.
    #[error("in-flight requests did not finish within the {0:?} shutdown grace period")]
    GraceExceeded(Duration),
}

/// Starts everything from config and serves until a shutdown signal.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let addr = config.server.listen;
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let state = AppState::start(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(ServeError::Io)?;
    tracing::info!(addr = %local, "listening on http://{local}");
    let store = state.store.clone();
    let workers = state.workers.clone();
    let rollup = state.audit_rollup.clone();
    let result = serve(listener, crate::app::router(state), shutdown_signal(), grace).await;
    workers.shutdown().await;
    // The open window's counts too: nothing seen is dropped on a clean stop.
    rollup.flush(store.as_ref(), true).await;
    store.close().await;
    if result.is_ok() {
        tracing::info!("shutdown complete");
    }
    result
}

/// Serves `app` until `shutdown` resolves, then drains in-flight requests for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let signalled = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    // Outside the router: the merged path is the one routed.
    let app = tower::util::MapRequestLayer::new(crate::http::merge_slashes).layer(app);
    let server = axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(signalled);
    let deadline = async move {
        // Only an actual signal starts the clock; a dropped sender means serving ended first.
        if stopping_rx.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(ServeError::Io),
        () = deadline => Err(ServeError::GraceExceeded(grace)),
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %chain(&e), "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %chain(&e), "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!(signal = "SIGINT", "shutting down; draining in-flight requests"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down; draining in-flight requests"),
    }
}
