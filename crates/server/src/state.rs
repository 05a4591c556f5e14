//! Shared state of the service: the store, the configuration, the limits,
//! the metrics and the scan slots.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apksift_core::Backend;
use apksift_index::Database;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::ApiKeys;
use crate::error::ApiError;
use crate::metrics::{
    Counter, Encoder, FSYNC_BUCKETS, Family, Histogram, LATENCY_BUCKETS, dir_bytes,
    filesystem_space, process_stats,
};

/// Largest `k` of a search (Milvus's topk limit).
pub const MAX_K: usize = apksift_index::search::MAX_K;

/// Request limits. Each one, when exceeded, gets a 4xx (or 429/503 for
/// load) whose message names the limit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body in bytes (413 beyond). Default 100 MiB.
    pub max_body_bytes: usize,
    /// Bytes inflated per APK, all entries together (413 beyond). Default 512 MiB.
    pub max_decompressed_bytes: u64,
    /// Largest `k` (at most 16,384). Default 16,384.
    pub max_k: usize,
    /// Most query vectors or digests per search. Default 1,024.
    pub max_nq: usize,
    /// Most rows or keys per write, get or delete. Default 10,000.
    pub max_batch: usize,
    /// Time a request may take before it is answered 503 `timeout`. Default 30 s.
    pub request_timeout: Duration,
    /// APK fingerprints computed at once (scan and APK upload). Default: cores.
    pub max_concurrent_scans: usize,
    /// Scans that may wait for a slot; beyond, 429. Default 64.
    pub max_queued_scans: usize,
    /// Requests in flight; beyond, 503 `overloaded`. Default 4,096.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 100 << 20,
            max_decompressed_bytes: 512 << 20,
            max_k: MAX_K,
            max_nq: 1024,
            max_batch: 10_000,
            request_timeout: Duration::from_secs(30),
            max_concurrent_scans: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queued_scans: 64,
            max_in_flight: 4096,
        }
    }
}

/// Service configuration besides the store.
#[derive(Debug, Clone)]
pub struct Config {
    /// Limits.
    pub limits: Limits,
    /// API keys.
    pub keys: ApiKeys,
    /// `/readyz` fails on a replica that lags more than this.
    pub max_replica_lag: Duration,
    /// The store directory (for disk-space metrics); `None` for in-memory stores.
    pub data_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            keys: ApiKeys::new(),
            max_replica_lag: Duration::from_secs(30),
            data_dir: None,
        }
    }
}

/// Scan stages timed in `apksift_scan_stage_duration_seconds`: `read_body`, `fingerprint` and
/// `search` are wall-clock time one after the other; `unzip` and `hash` split the fingerprint's
/// work (busy time summed over the threads that fingerprint in parallel, so together they can
/// exceed `fingerprint`).
pub const SCAN_STAGES: &[&str] = &["read_body", "fingerprint", "unzip", "hash", "search"];

/// The service's metrics.
#[derive(Debug)]
pub struct ServiceMetrics {
    /// `apksift_http_requests_total{endpoint,method,status}`.
    pub requests: Family<Counter>,
    /// `apksift_http_request_duration_seconds{endpoint,method,status}`.
    pub request_duration: Family<Histogram>,
    /// `apksift_scan_stage_duration_seconds{stage}`.
    pub scan_stage: Family<Histogram>,
    /// `apksift_scans_total{verdict}`.
    pub scans: Family<Counter>,
    /// `apksift_search_queries_total{api}`: query vectors or digests searched.
    pub search_queries: Family<Counter>,
    /// `apksift_inserted_rows_total{api}`: rows inserted or upserted through the API.
    pub inserted_rows: Family<Counter>,
    /// `apksift_deleted_rows_total{api}`.
    pub deleted_rows: Family<Counter>,
    /// `apksift_rejected_requests_total{reason}`.
    pub rejected: Family<Counter>,
    /// `apksift_wal_fsync_duration_seconds`.
    pub wal_fsync: Histogram,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        fn lat() -> Histogram {
            Histogram::new(LATENCY_BUCKETS)
        }
        ServiceMetrics {
            requests: Family::new(&["endpoint", "method", "status"], Counter::default),
            request_duration: Family::new(&["endpoint", "method", "status"], lat),
            scan_stage: Family::new(&["stage"], lat),
            scans: Family::new(&["verdict"], Counter::default),
            search_queries: Family::new(&["api"], Counter::default),
            inserted_rows: Family::new(&["api"], Counter::default),
            deleted_rows: Family::new(&["api"], Counter::default),
            rejected: Family::new(&["reason"], Counter::default),
            wal_fsync: Histogram::new(FSYNC_BUCKETS),
        }
    }
}

/// Build information for `apksift_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store.backend().location())
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: apksift_core::Store,
    config: Config,
    metrics: ServiceMetrics,
    scan_slots: Arc<Semaphore>,
    scans_waiting: AtomicUsize,
    in_flight: AtomicUsize,
    started: Instant,
    started_unix: f64,
}

/// A held scan slot; released on drop (also when the blocking work outlives
/// a timed-out request, so the bound holds).
#[derive(Debug)]
pub struct ScanSlot {
    _permit: OwnedSemaphorePermit,
}

/// Counts a request in flight; decrements on drop.
#[derive(Debug)]
pub struct InFlight {
    state: AppState,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AppState {
    /// State over an open sample store.
    pub fn new(store: apksift_core::Store, config: Config) -> AppState {
        let slots = config.limits.max_concurrent_scans.max(1);
        AppState {
            inner: Arc::new(Inner {
                store,
                scan_slots: Arc::new(Semaphore::new(slots)),
                config,
                metrics: ServiceMetrics::default(),
                scans_waiting: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                started: Instant::now(),
                started_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            }),
        }
    }

    /// State over an open database: creates the sample store's collections
    /// on a writer; fails on a replica of a directory without them.
    pub fn from_database(db: Database, config: Config) -> Result<AppState, apksift_core::Error> {
        Ok(AppState::new(
            apksift_core::Store::from_database(db)?,
            config,
        ))
    }

    /// The sample store.
    pub fn store(&self) -> &apksift_core::Store {
        &self.inner.store
    }

    /// The engine under the sample store (generic collections): the embedded
    /// database or Milvus.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        self.inner.store.backend()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// The metrics.
    pub fn metrics(&self) -> &ServiceMetrics {
        &self.inner.metrics
    }

    /// Counts a request in flight, or refuses it (503) past the limit.
    pub fn enter(&self) -> Result<InFlight, ApiError> {
        let n = self.inner.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = InFlight {
            state: self.clone(),
        };
        if n > self.limits().max_in_flight {
            self.metrics().rejected.get(&["in_flight"]).inc();
            return Err(ApiError::unavailable(
                "overloaded",
                format!(
                    "more than {} requests in flight (--max-in-flight); retry later",
                    self.limits().max_in_flight
                ),
            ));
        }
        Ok(guard)
    }

    /// Takes a scan slot, waiting while at most `max_queued_scans` others
    /// wait; 429 when the queue is full, 503 when no slot frees up before the
    /// request timeout.
    pub async fn scan_slot(&self) -> Result<ScanSlot, ApiError> {
        if let Ok(p) = self.inner.scan_slots.clone().try_acquire_owned() {
            return Ok(ScanSlot { _permit: p });
        }
        let lim = self.limits();
        let waiting = self.inner.scans_waiting.fetch_add(1, Ordering::AcqRel);
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _w = Waiting(&self.inner.scans_waiting);
        if waiting >= lim.max_queued_scans {
            self.metrics().rejected.get(&["scan_queue_full"]).inc();
            return Err(ApiError::too_many(format!(
                "{} scans running and {} waiting (--max-concurrent-scans {}, --max-queued-scans {}); retry later",
                lim.max_concurrent_scans, waiting, lim.max_concurrent_scans, lim.max_queued_scans
            )));
        }
        match tokio::time::timeout(
            lim.request_timeout,
            self.inner.scan_slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Ok(ScanSlot { _permit: p }),
            _ => {
                self.metrics().rejected.get(&["scan_slot_timeout"]).inc();
                Err(ApiError::unavailable(
                    "timeout",
                    "no scan slot became free within the request timeout",
                ))
            }
        }
    }

    /// Scan slots free now.
    pub fn free_scan_slots(&self) -> usize {
        self.inner.scan_slots.available_permits()
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Drains WAL fsync timings into the histogram.
    pub fn drain_fsync(&self) {
        if let Some(db) = self.inner.store.embedded() {
            for ns in db.take_fsync_nanos() {
                self.inner.metrics.wal_fsync.observe(ns as f64 / 1e9);
            }
        }
    }

    /// The `/metrics` text (blocking: reads store stats and `/proc`).
    pub fn render_metrics(&self) -> String {
        self.drain_fsync();
        let m = &self.inner.metrics;
        let st = self.backend().stats();
        let mut e = Encoder::new();
        e.header(
            "apksift_build_info",
            "Build information; the value is always 1.",
            crate::metrics::Kind::Gauge,
        );
        e.sample(
            "apksift_build_info",
            &["version", "read_only"],
            &[VERSION.to_string(), st.read_only.to_string()],
            1.0,
        );
        e.gauge(
            "apksift_uptime_seconds",
            "Seconds since the service started.",
            self.uptime().as_secs_f64(),
        );
        e.counter_family(
            "apksift_http_requests_total",
            "HTTP requests answered, by route template, method and status class.",
            &m.requests,
        );
        e.histogram_family(
            "apksift_http_request_duration_seconds",
            "Time from request to response head, by route template, method and status class.",
            &m.request_duration,
        );
        e.gauge(
            "apksift_http_requests_in_flight",
            "Requests being served.",
            self.inner.in_flight.load(Ordering::Relaxed) as f64,
        );
        e.histogram_family(
            "apksift_scan_stage_duration_seconds",
            "Time spent per scan stage: read_body (upload), fingerprint (wall clock), search; unzip (ZIP structures and inflate) and hash (SHA-256 and TLSH) are the fingerprint's busy time summed over its threads.",
            &m.scan_stage,
        );
        e.counter_family("apksift_scans_total", "APKs scanned, by verdict.", &m.scans);
        e.gauge(
            "apksift_scan_slots_free",
            "Scan slots free now (--max-concurrent-scans).",
            self.free_scan_slots() as f64,
        );
        e.counter_family(
            "apksift_search_queries_total",
            "Query vectors or digests searched, by API (search, scan, collections).",
            &m.search_queries,
        );
        e.counter_family(
            "apksift_inserted_rows_total",
            "Rows inserted or upserted through the API, by API (samples, collections).",
            &m.inserted_rows,
        );
        e.counter_family(
            "apksift_deleted_rows_total",
            "Rows deleted through the API, by API (samples, collections).",
            &m.deleted_rows,
        );
        e.counter_family(
            "apksift_rejected_requests_total",
            "Requests refused by a load limit, by reason.",
            &m.rejected,
        );
        e.gauge(
            "apksift_store_rows",
            "Live rows in every collection.",
            st.rows as f64,
        );
        e.gauge(
            "apksift_store_memtable_rows",
            "Rows not yet flushed to segments.",
            st.memtable_rows as f64,
        );
        e.gauge("apksift_store_segments", "Segments.", st.segments as f64);
        e.gauge(
            "apksift_store_segment_bytes",
            "Bytes of segment files.",
            st.segment_bytes as f64,
        );
        e.counter(
            "apksift_store_rows_written_total",
            "Rows written (insert or upsert) since the store was opened.",
            st.rows_written as f64,
        );
        e.counter(
            "apksift_store_rows_deleted_total",
            "Rows deleted since the store was opened.",
            st.rows_deleted as f64,
        );
        e.counter(
            "apksift_store_flushes_total",
            "Memtable flushes since the store was opened.",
            st.flushes as f64,
        );
        e.counter(
            "apksift_store_merges_total",
            "Segment merges since the store was opened.",
            st.merges as f64,
        );
        e.gauge(
            "apksift_store_durable_lsn",
            "Last durable log sequence number.",
            st.durable_lsn as f64,
        );
        e.gauge(
            "apksift_store_background_error",
            "1 when the last background flush or merge failed.",
            if st.last_error.is_some() { 1.0 } else { 0.0 },
        );
        e.histogram(
            "apksift_wal_fsync_duration_seconds",
            "Duration of WAL fsyncs (group commits).",
            &m.wal_fsync,
        );
        e.gauge(
            "apksift_replica_lag_seconds",
            "Replica: seconds since it last caught up with the writer (0 on the writer).",
            st.replica_lag_seconds,
        );
        if let Some(dir) = &self.inner.config.data_dir {
            e.gauge(
                "apksift_store_disk_usage_bytes",
                "Bytes of the files in the store directory.",
                dir_bytes(dir),
            );
            if let Some((free, total)) = filesystem_space(dir) {
                e.gauge(
                    "apksift_store_filesystem_avail_bytes",
                    "Bytes available to the service on the store's filesystem.",
                    free,
                );
                e.gauge(
                    "apksift_store_filesystem_size_bytes",
                    "Size of the store's filesystem in bytes.",
                    total,
                );
            }
        }
        if let Some(p) = process_stats() {
            e.counter(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                p.cpu_seconds,
            );
            e.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes,
            );
            e.gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes,
            );
            e.gauge("process_threads", "OS threads.", p.threads);
            e.gauge("process_open_fds", "Open file descriptors.", p.open_fds);
            e.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            );
        }
        e.gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            self.inner.started_unix,
        );
        e.finish()
    }
}

/// Opens the sample store at `location` (a directory, or with the cargo feature `milvus` a
/// `milvus://HOST:PORT/PREFIX?…` address; as a replica with `read_only`) and builds the state.
pub fn open_state(
    location: &str,
    read_only: bool,
    config: Config,
) -> Result<AppState, crate::serve::ServeError> {
    let opts = apksift_core::StoreOptions::default();
    let store = if read_only {
        apksift_core::Store::open_url_read_only(location, opts)
    } else {
        apksift_core::Store::open_url(location, opts)
    }
    .map_err(|e| crate::serve::ServeError::Store(format!("{location}: {e}")))?;
    Ok(AppState::new(store, config))
}
