//! Tested with the real thing: Debian's `prometheus` scrapes the service on
//! a real socket and a `prometheus-pushgateway` receives an ingest job's
//! push; the series are checked through Prometheus's HTTP API
//! (`/api/v1/query`), and the alert rules of `deploy/prometheus/alerts.yml`
//! are loaded by that Prometheus.
//!
//! Skips with a notice when the binaries are absent (install them with
//! `bash .ci/prometheus.sh`); `APKSIFT_REQUIRE_PROMETHEUS=1` turns the
//! skip into a failure (CI).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apksift_server::push::JobMetrics;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

async fn wait_ready(port: u16, path: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = http_get(port, path).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not become ready on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls an instant query until it returns at least one series; returns them.
async fn query_until(port: u16, q: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        if let Some((200, body)) = http_get(port, &format!("/api/v1/query?query={}", pct(q))).await
        {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(r) = v["data"]["result"].as_array()
                && !r.is_empty()
            {
                return r.clone();
            }
            last = body;
        }
        assert!(
            Instant::now() < deadline,
            "no series for {q:?} within 60 s; last answer {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn value(series: &Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_serve_and_pushgateway_receives_ingest() {
    if !(have("prometheus") && have("prometheus-pushgateway")) {
        assert!(
            std::env::var_os("APKSIFT_REQUIRE_PROMETHEUS").is_none(),
            "APKSIFT_REQUIRE_PROMETHEUS is set but prometheus / prometheus-pushgateway are not installed (bash .ci/prometheus.sh)"
        );
        eprintln!(
            "SKIPPED prometheus_scrapes_serve_and_pushgateway_receives_ingest: prometheus and prometheus-pushgateway are not installed (bash .ci/prometheus.sh)"
        );
        return;
    }
    // 1. The service on a real socket, with some traffic.
    let t = test_app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(apksift_server::serve(
        listener,
        t.router.clone(),
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    send(
        &t.router,
        raw_post(
            "/v1/samples/apk?family=Demo",
            WRITE,
            apk(1, 0),
            "application/octet-stream",
        ),
    )
    .await
    .expect(200, None);
    send(
        &t.router,
        raw_post("/v1/scan", READ, apk(1, 3), "application/octet-stream"),
    )
    .await
    .expect(200, None);
    call(
        &t.router,
        "POST",
        "/v1/search",
        Some(READ),
        Some(json!({"digests": [T1]})),
    )
    .await
    .expect(200, None);

    // 2. Pushgateway and Prometheus on loopback with temporary config and storage.
    let tmp = tempfile::tempdir().unwrap();
    let pgw_port = free_port();
    let _pgw = Proc(
        Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{pgw_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let alerts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yml");
    let alerts = alerts.canonicalize().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: apksift\n    static_configs:\n      - targets: ['127.0.0.1:{app_port}']\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{pgw_port}']\n",
        alerts.display()
    );
    let cfg_path = tmp.path().join("prometheus.yml");
    std::fs::write(&cfg_path, config).unwrap();
    let prom_port = free_port();
    let _prom = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(pgw_port, "/-/ready", "pushgateway").await;
    wait_ready(prom_port, "/-/ready", "prometheus").await;

    // 3. An ingest run pushes its metrics: the real `apksift ingest
    //    --pushgateway` when the binary is built (APKSIFT_BIN, or beside this
    //    test's target directory), else the same library calls it makes.
    let ingest_dir = tempfile::tempdir().unwrap();
    let pgw_url = format!("http://127.0.0.1:{pgw_port}");
    if let Some(bin) = apksift_bin() {
        let apks = ingest_dir.path().join("apks");
        std::fs::create_dir_all(&apks).unwrap();
        for s in 10..13u64 {
            std::fs::write(apks.join(format!("s{s}.apk")), apk(s, 0)).unwrap();
        }
        let out = Command::new(&bin)
            .arg("--db")
            .arg(ingest_dir.path().join("db"))
            .args([
                "ingest",
                "--label",
                "malware",
                "--quiet",
                "--pushgateway",
                &pgw_url,
            ])
            .arg(&apks)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} ingest: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("not pushed"));
        eprintln!("pushed by {} ingest --pushgateway", bin.display());
    } else {
        eprintln!(
            "apksift binary not built: pushing through the library calls of `apksift ingest`"
        );
        let store = apksift_core::Store::open(ingest_dir.path(), Default::default()).unwrap();
        let mut job = JobMetrics::new("apksift_ingest");
        let items: Vec<_> = (10..13)
            .map(|s| {
                (
                    apksift_core::fingerprint(&apk(s, 0), &Default::default()),
                    apksift_core::SampleMeta::new(apksift_core::Label::Malware),
                )
            })
            .collect();
        let outcomes = store.ingest_batch(&items).unwrap();
        job.counter(
            "apksift_ingest_files_total",
            "APK files read.",
            items.len() as u64,
        )
        .counter(
            "apksift_ingest_samples_total",
            "Samples stored.",
            outcomes.len() as u64,
        )
        .counter("apksift_ingest_errors_total", "Files that failed.", 0);
        tokio::task::spawn_blocking(move || job.push(&pgw_url, true))
            .await
            .unwrap()
            .unwrap();
    }
    let (status, pgw_metrics) = http_get(pgw_port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        pgw_metrics
            .contains("apksift_ingest_samples_total{instance=\"\",job=\"apksift_ingest\"} 3"),
        "{pgw_metrics}"
    );

    // 4. The series arrive in Prometheus.
    let up = query_until(prom_port, "up{job=\"apksift\"} == 1").await;
    assert_eq!(value(&up[0]), 1.0);
    let r = query_until(
        prom_port,
        "apksift_http_requests_total{job=\"apksift\",endpoint=\"/v1/scan\",status=\"2xx\"}",
    )
    .await;
    assert!(value(&r[0]) >= 1.0);
    query_until(prom_port, "apksift_http_request_duration_seconds_bucket{job=\"apksift\",endpoint=\"/v1/search\",le=\"0.095\"}").await;
    let r = query_until(
        prom_port,
        "apksift_scan_stage_duration_seconds_count{job=\"apksift\",stage=\"fingerprint\"}",
    )
    .await;
    assert!(value(&r[0]) >= 1.0);
    let r = query_until(prom_port, "apksift_store_rows{job=\"apksift\"}").await;
    assert!(value(&r[0]) >= 1.0);
    for q in [
        "apksift_build_info{job=\"apksift\"}",
        "apksift_wal_fsync_duration_seconds_count{job=\"apksift\"}",
        "apksift_replica_lag_seconds{job=\"apksift\"}",
        "apksift_store_filesystem_avail_bytes{job=\"apksift\"}",
        "process_cpu_seconds_total{job=\"apksift\"}",
        "process_resident_memory_bytes{job=\"apksift\"}",
        "apksift_uptime_seconds{job=\"apksift\"}",
    ] {
        query_until(prom_port, q).await;
    }
    // a PromQL aggregation over the histogram works
    query_until(prom_port, "histogram_quantile(0.99, sum by (le) (rate(apksift_http_request_duration_seconds_bucket{job=\"apksift\"}[1m])))").await;
    // the pushed batch-job series, with the job label the job pushed
    let r = query_until(
        prom_port,
        "apksift_ingest_samples_total{job=\"apksift_ingest\"}",
    )
    .await;
    assert_eq!(value(&r[0]), 3.0);
    query_until(
        prom_port,
        "apksift_job_last_success_timestamp_seconds{job=\"apksift_ingest\"}",
    )
    .await;
    let r = query_until(prom_port, "apksift_job_success{job=\"apksift_ingest\"}").await;
    assert_eq!(value(&r[0]), 1.0);

    // 5. The alert rules loaded and evaluate without errors.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http_get(prom_port, "/api/v1/rules").await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        let rules: Vec<&Value> = v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        let evaluated = rules.iter().all(|r| r["health"] == "ok");
        if rules.len() >= 10 && evaluated {
            break;
        }
        assert!(Instant::now() < deadline, "rules not all healthy: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 6. Every PromQL expression of the Grafana dashboard evaluates.
    let dash =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/apksift-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(dash).unwrap()).unwrap();
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$job", "apksift")
                .replace("$instance", ".*");
            let (status, body) =
                http_get(prom_port, &format!("/api/v1/query?query={}", pct(&expr)))
                    .await
                    .unwrap();
            assert_eq!(status, 200, "dashboard expression {expr:?}: {body}");
            assert!(body.contains("\"status\":\"success\""), "{expr:?}: {body}");
            n += 1;
        }
    }
    assert!(n >= 40, "{n} dashboard expressions");

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
