//! `apksift serve`: options, start-up, TLS and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::ApiKeys;
use crate::state::{AppState, Config, Limits};

/// Options of `apksift serve` (flattened into the CLI's subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Open the store as a read-only replica that follows the writer's log.
    #[arg(long)]
    pub read_only: bool,
    /// File of API keys, one `ROLE KEY` per line (roles: read, write, admin).
    /// Keys can also come from APKSIFT_API_KEYS (`ROLE:KEY,...`).
    #[arg(long, env = "APKSIFT_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Serve without authentication (every request is admin). Refused
    /// together with keys; meant for local experiments.
    #[arg(long)]
    pub no_auth: bool,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 100 << 20)]
    pub max_body_bytes: usize,
    /// Bytes inflated per APK, all entries together; beyond, 413.
    #[arg(long, default_value_t = 512 << 20)]
    pub max_decompressed_bytes: u64,
    /// Largest k of a search (at most 16384).
    #[arg(long, default_value_t = 16_384)]
    pub max_k: usize,
    /// Most query digests or vectors per search request.
    #[arg(long, default_value_t = 1024)]
    pub max_nq: usize,
    /// Most rows or keys per write, get or delete request.
    #[arg(long, default_value_t = 10_000)]
    pub max_batch: usize,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout: f64,
    /// APK fingerprints computed at once (default: number of cores).
    #[arg(long)]
    pub max_concurrent_scans: Option<usize>,
    /// Scans that may wait for a slot; beyond, 429.
    #[arg(long, default_value_t = 64)]
    pub max_queued_scans: usize,
    /// Requests in flight; beyond, 503.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// /readyz fails on a replica lagging more than this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub max_replica_lag: f64,
    /// Seconds to drain requests in flight after SIGTERM or ctrl-c.
    #[arg(long, default_value_t = 30.0)]
    pub shutdown_timeout: f64,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            read_only: false,
            api_keys_file: None,
            no_auth: false,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 100 << 20,
            max_decompressed_bytes: 512 << 20,
            max_k: 16_384,
            max_nq: 1024,
            max_batch: 10_000,
            request_timeout: 30.0,
            max_concurrent_scans: None,
            max_queued_scans: 64,
            max_in_flight: 4096,
            max_replica_lag: 30.0,
            shutdown_timeout: 30.0,
        }
    }
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Bad options or key file.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened or closed.
    #[error("store: {0}")]
    Store(String),
    /// Network or TLS failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn secs(what: &str, v: f64) -> Result<Duration, ServeError> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ServeError::Config(format!("--{what} must be a positive number of seconds")))
}

impl ServeArgs {
    /// The service configuration these options describe (reads the key
    /// file and `APKSIFT_API_KEYS`).
    pub fn config(&self, data_dir: Option<PathBuf>) -> Result<Config, ServeError> {
        let mut keys = ApiKeys::new();
        if let Some(p) = &self.api_keys_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ServeError::Config(format!("cannot read API key file {}: {e}", p.display()))
            })?;
            keys.add_file_text(&text)
                .map_err(|e| ServeError::Config(format!("API key file {}: {e}", p.display())))?;
        }
        if let Ok(text) = std::env::var("APKSIFT_API_KEYS") {
            keys.add_env_text(&text).map_err(ServeError::Config)?;
        }
        if self.no_auth {
            if !keys.is_empty() {
                return Err(ServeError::Config(
                    "--no-auth was given together with API keys; choose one".into(),
                ));
            }
            keys = ApiKeys::open();
        } else if keys.is_empty() {
            return Err(ServeError::Config(
                "no API keys: give --api-keys-file FILE or APKSIFT_API_KEYS=ROLE:KEY,..., or --no-auth for a local experiment".into(),
            ));
        }
        if self.max_k == 0 || self.max_k > crate::state::MAX_K {
            return Err(ServeError::Config(format!(
                "--max-k must be between 1 and {}",
                crate::state::MAX_K
            )));
        }
        let defaults = Limits::default();
        Ok(Config {
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                max_decompressed_bytes: self.max_decompressed_bytes,
                max_k: self.max_k,
                max_nq: self.max_nq.max(1),
                max_batch: self.max_batch.max(1),
                request_timeout: secs("request-timeout", self.request_timeout)?,
                max_concurrent_scans: self
                    .max_concurrent_scans
                    .unwrap_or(defaults.max_concurrent_scans)
                    .max(1),
                max_queued_scans: self.max_queued_scans,
                max_in_flight: self.max_in_flight.max(1),
            },
            keys,
            max_replica_lag: secs("max-replica-lag", self.max_replica_lag)?,
            data_dir,
        })
    }
}

/// Installs a `tracing` subscriber (RUST_LOG, default `info`) unless one exists.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for requests in flight (at most `drain`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let mut rx2 = rx.clone();
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r.map_err(std::io::Error::other)?,
        _ = rx2.wait_for(|v| *v) => {}
    }
    tracing::info!(
        "shutting down: draining requests in flight (at most {:?})",
        drain
    );
    match tokio::time::timeout(drain, &mut server).await {
        Ok(r) => r.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("drain timeout: closing connections with requests still in flight");
            server.abort();
            Ok(())
        }
    }
}

/// Serves HTTPS with rustls on `listener` until `shutdown` resolves, then
/// drains like [`serve`].
pub async fn serve_tls(
    listener: std::net::TcpListener,
    router: Router,
    cert: &Path,
    key: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> Result<(), ServeError> {
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| ServeError::Io {
            context: format!(
                "cannot load TLS certificate {} and key {}",
                cert.display(),
                key.display()
            ),
            source: e,
        })?;
    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            "shutting down: draining requests in flight (at most {:?})",
            drain
        );
        h2.graceful_shutdown(Some(drain));
    });
    let server = axum_server::from_tcp_rustls(listener, tls).map_err(|e| ServeError::Io {
        context: "cannot serve TLS on the listener".into(),
        source: e,
    })?;
    server
        .handle(handle)
        .serve(router.into_make_service())
        .await
        .map_err(|e| ServeError::Io {
            context: "TLS server".into(),
            source: e,
        })
}

/// Background chores: drain WAL fsync timings into the histogram every
/// second (so they do not pile up between scrapes).
fn spawn_chores(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(1));
        loop {
            t.tick().await;
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || s.drain_fsync()).await;
        }
    })
}

/// Opens the store at `location` (a directory, or with the cargo feature `milvus` a
/// `milvus://…` address) and serves until SIGTERM or ctrl-c.
/// Builds its own tokio runtime; call it from synchronous `main`.
pub fn run(location: &str, args: &ServeArgs) -> Result<(), ServeError> {
    init_logging();
    let data_dir = (!apksift_core::is_milvus_url(location)).then(|| PathBuf::from(location));
    let config = args.config(data_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("apksift-http")
        .build()
        .map_err(|e| ServeError::Io {
            context: "cannot start the async runtime".into(),
            source: e,
        })?;
    rt.block_on(run_async(location, args, config))
}

async fn run_async(location: &str, args: &ServeArgs, config: Config) -> Result<(), ServeError> {
    let state = crate::state::open_state(location, args.read_only, config)?;
    let db = state.backend().clone();
    let chores = spawn_chores(state.clone());
    let router = crate::app(state.clone());
    let drain = secs("shutdown-timeout", args.shutdown_timeout)?;
    let std_listener = std::net::TcpListener::bind(args.listen).map_err(|e| ServeError::Io {
        context: format!("cannot listen on {}", args.listen),
        source: e,
    })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| ServeError::Io {
            context: "listener".into(),
            source: e,
        })?;
    let addr = std_listener.local_addr().map_err(|e| ServeError::Io {
        context: "listener".into(),
        source: e,
    })?;
    tracing::info!(
        listen = %addr,
        store = %state.backend().location(),
        engine = state.backend().kind(),
        read_only = args.read_only,
        tls = args.tls_cert.is_some(),
        auth = if state.config().keys.is_open() { "off (--no-auth)" } else { "api keys" },
        "apksift serve started"
    );
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            serve_tls(std_listener, router, cert, key, shutdown_signal(), drain).await?;
        }
        _ => {
            let listener = TcpListener::from_std(std_listener).map_err(|e| ServeError::Io {
                context: "listener".into(),
                source: e,
            })?;
            serve(listener, router, shutdown_signal(), drain)
                .await
                .map_err(|e| ServeError::Io {
                    context: "server".into(),
                    source: e,
                })?;
        }
    }
    chores.abort();
    drop(state);
    tokio::task::spawn_blocking(move || db.close())
        .await
        .map_err(|e| ServeError::Store(e.to_string()))?
        .map_err(|e| ServeError::Store(e.to_string()))?;
    tracing::info!("apksift serve stopped");
    Ok(())
}
