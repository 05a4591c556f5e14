//! Pushgateway client for batch jobs (`apksift ingest`, `apksift import`).
//!
//! A job collects its counters and gauges in a [`JobMetrics`] and pushes them
//! once at the end with [`JobMetrics::push`]. The group is
//! `/metrics/job/<job>` (no instance label: a batch job is not tied to a
//! machine, as the Prometheus docs recommend). Besides the job's own series,
//! each push carries:
//!
//! - `apksift_job_duration_seconds`: wall time since [`JobMetrics::new`];
//! - `apksift_job_success`: 1 or 0;
//! - `apksift_job_last_success_timestamp_seconds`: only on success.
//!
//! A successful run pushes with `PUT` (replacing the group); a failed run
//! pushes with `POST` (replacing only the series it sends), so the last
//! success time of an earlier run survives a failure.
//!
//! The client is blocking, plain `http://` only, with a 10 s timeout, so the
//! synchronous CLI can call it without an async runtime:
//!
//! ```no_run
//! use apksift_server::push::JobMetrics;
//! let mut m = JobMetrics::new("apksift_ingest");
//! m.counter("apksift_ingest_files_total", "APK files read.", 42);
//! m.push("http://127.0.0.1:9091", true).unwrap();
//! ```

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::metrics::{Encoder, Kind};

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("invalid Pushgateway URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Network failure.
    #[error("Pushgateway {url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gateway answered with an error status.
    #[error("Pushgateway {url} answered {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the answer.
        body: String,
    },
}

/// Metrics of one batch-job run.
#[derive(Debug)]
pub struct JobMetrics {
    job: String,
    start: Instant,
    series: Vec<(String, String, Kind, f64)>,
}

impl JobMetrics {
    /// Starts timing a job run. `job` becomes the `job` label, e.g. `apksift_ingest`.
    pub fn new(job: &str) -> JobMetrics {
        JobMetrics {
            job: job.to_string(),
            start: Instant::now(),
            series: Vec::new(),
        }
    }

    /// Sets a counter (`name` should end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.series
            .push((name.into(), help.into(), Kind::Counter, value as f64));
        self
    }

    /// Sets a gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.series
            .push((name.into(), help.into(), Kind::Gauge, value));
        self
    }

    /// The job name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The body that [`JobMetrics::push`] sends (text format 0.0.4).
    pub fn encode(&self, success: bool) -> String {
        let mut e = Encoder::new();
        for (name, help, kind, v) in &self.series {
            e.header(name, help, *kind);
            e.sample(name, &[], &[], *v);
        }
        e.gauge(
            "apksift_job_duration_seconds",
            "Wall time of the last run of this batch job.",
            self.start.elapsed().as_secs_f64(),
        );
        e.gauge(
            "apksift_job_success",
            "1 if the last run of this batch job succeeded, else 0.",
            if success { 1.0 } else { 0.0 },
        );
        if success {
            e.gauge(
                "apksift_job_last_success_timestamp_seconds",
                "Unix time of the last successful run of this batch job.",
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            );
        }
        e.finish()
    }

    /// Pushes to the Pushgateway at `url` (e.g. `http://127.0.0.1:9091`).
    pub fn push(&self, url: &str, success: bool) -> Result<(), PushError> {
        let target = Target::parse(url)?;
        let path = format!(
            "{}/metrics/job/{}",
            target.prefix.trim_end_matches('/'),
            path_segment(&self.job)
        );
        let body = self.encode(success);
        let method = if success { "PUT" } else { "POST" };
        let io = |source| PushError::Io {
            url: url.to_string(),
            source,
        };
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| PushError::Url {
                url: url.into(),
                reason: "host does not resolve".into(),
            })?;
        let timeout = Duration::from_secs(10);
        let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: apksift/{}\r\n\r\n",
            target.host,
            target.port,
            body.len(),
            crate::state::VERSION
        );
        s.write_all(head.as_bytes()).map_err(io)?;
        s.write_all(body.as_bytes()).map_err(io)?;
        let mut resp = Vec::new();
        s.take(64 << 10).read_to_end(&mut resp).map_err(io)?;
        let text = String::from_utf8_lossy(&resp);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if !(200..300).contains(&status) {
            let body = text
                .split_once("\r\n\r\n")
                .map_or("", |(_, b)| b)
                .chars()
                .take(500)
                .collect();
            return Err(PushError::Status {
                url: url.into(),
                status,
                body,
            });
        }
        Ok(())
    }
}

/// Pushes, printing a warning on standard error instead of failing: a batch
/// job whose data was stored should not fail because monitoring is down.
/// Returns whether the push succeeded.
pub fn push_or_warn(url: &str, job: &JobMetrics, success: bool) -> bool {
    match job.push(url, success) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("apksift: warning: metrics of {} not pushed: {e}", job.job());
            false
        }
    }
}

/// Escapes a grouping-key value for the URL path (Pushgateway allows
/// `[A-Za-z0-9_.~-]` unescaped; anything else is percent-encoded).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.~-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Target {
    host: String,
    port: u16,
    prefix: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, PushError> {
        let bad = |reason: &str| PushError::Url {
            url: url.into(),
            reason: reason.into(),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is supported (put a TLS proxy in front for https)"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected http://host[:port][/path]"));
        }
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            let (h, p) = h.split_once(']').ok_or_else(|| bad("unclosed [ in host"))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
            None => 9091,
        };
        Ok(Target {
            host,
            port,
            prefix: prefix.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_url_parsing_and_body() {
        let t = Target::parse("http://127.0.0.1:9091").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("127.0.0.1", 9091, "")
        );
        let t = Target::parse("http://gw/prefix/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("gw", 9091, "/prefix/")
        );
        let t = Target::parse("http://[::1]:1234").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 1234));
        assert!(Target::parse("https://gw").is_err());
        assert!(Target::parse("http://gw:x").is_err());
        let mut m = JobMetrics::new("apksift_ingest");
        m.counter("apksift_ingest_files_total", "Files.", 3);
        let ok = m.encode(true);
        assert!(
            ok.contains(
                "# TYPE apksift_ingest_files_total counter\napksift_ingest_files_total 3\n"
            )
        );
        assert!(ok.contains("apksift_job_last_success_timestamp_seconds "));
        let failed = m.encode(false);
        assert!(failed.contains("apksift_job_success 0"));
        assert!(!failed.contains("last_success"));
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn push_to_a_closed_port_is_an_io_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let m = JobMetrics::new("x");
        let e = m
            .push(&format!("http://127.0.0.1:{port}"), true)
            .unwrap_err();
        assert!(matches!(e, PushError::Io { .. }), "{e}");
    }
}
