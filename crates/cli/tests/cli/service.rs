//! The built `apksift` binary as a service and as batch jobs, with the real monitoring
//! stack: `apksift serve` drains on SIGTERM; Debian's `prometheus` scrapes `apksift serve`
//! and a `prometheus-pushgateway` that real `apksift ingest --pushgateway` and
//! `apksift import --pushgateway` runs push to, checked through both HTTP APIs.
//!
//! The Prometheus test skips with a notice when `prometheus` or `prometheus-pushgateway` is
//! not installed (`bash .ci/prometheus.sh` installs both); with `APKSIFT_REQUIRE_PROMETHEUS`
//! set (CI) that is a failure. The binary is cargo's own build of this package
//! (`CARGO_BIN_EXE_apksift`), so it is never missing here.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::*;

const READ: &str = "read-key-0123456789abcdef";
const WRITE: &str = "write-key-0123456789abcdef";
const ADMIN: &str = "admin-key-0123456789abcdef";

fn keys() -> String {
    format!("read:{READ},write:{WRITE},admin:{ADMIN}")
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[test]
fn serve_sigterm_drains_the_request_in_flight_then_exits_0() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let log = t.path().join("serve.log");
    let (mut server, port) = start_serve(&db, &keys(), &[], &log);
    let auth = bearer(ADMIN);
    let create =
        json!({"name": "c", "fields": [{"name": "v", "type": "binary_vector", "dim": 256}]})
            .to_string();
    let (code, body) = http_call(
        port,
        "POST",
        "/v1/collections",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        create.as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 201, "{body}");

    // Half a request in flight, then SIGTERM.
    let vector = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; // 32 bytes, bit 0 set
    let body = json!({"rows": [{"id": "a", "v": vector}]}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        slow,
        "POST /v1/collections/c/upsert HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&server.0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "apksift serve exited with a request in flight: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    // Draining: no new connections.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "apksift serve still accepts connections after SIGTERM"
    );
    slow.write_all(rest.as_bytes()).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut slow, &mut raw).unwrap();
    let (code, text) = parse_response(&raw).unwrap();
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"rows\":1"), "{text}");
    let st = wait_exit(&mut server.0, 30, "apksift serve after draining");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "exit {st}: {log}");
    assert!(log.contains("draining") && log.contains("stopped"), "{log}");
    // The write acknowledged during the drain survived the shutdown.
    let db = apksift_index::Database::open(&db, Default::default()).unwrap();
    assert_eq!(db.count("c").unwrap(), 1);
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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

/// An instant query through Prometheus's HTTP API: the result vector.
fn query(prom: u16, q: &str) -> Vec<Value> {
    let (code, body) = http_call(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", pct(q)),
        &[],
        b"",
    )
    .unwrap_or_else(|e| panic!("query {q:?}: {e}"));
    assert_eq!(code, 200, "query {q:?}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "query {q:?}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Polls `q` until its first series satisfies `ok` (60 s at most); returns that value.
fn query_until(prom: u16, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = query(prom, q);
        if let Some(v) = r.first().map(value)
            && ok(v)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{q:?}: no acceptable value within 60 s; last answer {r:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn value(series: &Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

/// The value of `name{labels}` in a text-format scrape, e.g. `sample(m, "apksift_x", "job=\"j\"")`.
fn sample(metrics: &str, name: &str, label: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.contains(label)).then(|| v.parse().unwrap())
    })
}

fn run_job(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_apksift"))
        .args(args)
        .env_remove("APKSIFT_DB")
        .env_remove("APKSIFT_STORE")
        .env_remove("APKSIFT_PUSHGATEWAY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn prometheus_scrapes_serve_and_pushgateway_gets_ingest_and_import() {
    if !(have("prometheus") && have("prometheus-pushgateway")) {
        assert!(
            std::env::var_os("APKSIFT_REQUIRE_PROMETHEUS").is_none(),
            "APKSIFT_REQUIRE_PROMETHEUS is set but prometheus / prometheus-pushgateway are not installed (bash .ci/prometheus.sh)"
        );
        eprintln!(
            "SKIP: prometheus_scrapes_serve_and_pushgateway_gets_ingest_and_import: prometheus and prometheus-pushgateway are not installed (bash .ci/prometheus.sh)"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (known, variant) = demo_apks(t.path());

    // 1. `apksift serve` (the binary) with some traffic of every kind the metrics describe.
    let log = t.path().join("serve.log");
    let (mut server, app) = start_serve(&t.path().join("served"), &keys(), &[], &log);
    let (w, r) = (bearer(WRITE), bearer(READ));
    let apk_ct = ("Content-Type", "application/vnd.android.package-archive");
    let (code, body) = http_call(
        app,
        "POST",
        "/v1/samples/apk?label=malware&family=Demo",
        &[("Authorization", &w), apk_ct],
        &std::fs::read(&known).unwrap(),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let sha = serde_json::from_str::<Value>(&body).unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = http_call(
        app,
        "POST",
        "/v1/scan",
        &[("Authorization", &r), apk_ct],
        &std::fs::read(&variant).unwrap(),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let verdict: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(verdict["verdict"], "malicious", "{verdict}");
    let digest = verdict["tlsh"].as_str().unwrap().to_string();
    let (code, body) = http_call(
        app,
        "POST",
        "/v1/search",
        &[("Authorization", &r), ("Content-Type", "application/json")],
        json!({"digests": [digest]}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_call(
        app,
        "GET",
        &format!("/v1/samples/{sha}"),
        &[("Authorization", &r)],
        b"",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, _) = http_call(app, "GET", "/v1/samples/0", &[], b"").unwrap();
    assert_eq!(code, 401);

    // 2. Pushgateway and Prometheus on loopback, Prometheus scraping both with the alert rules.
    let pgw = free_port();
    let mut pgw_proc = Proc(
        Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{pgw}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let alerts = root
        .join("deploy/prometheus/alerts.yml")
        .canonicalize()
        .unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: apksift\n    static_configs:\n      - targets: ['127.0.0.1:{app}']\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{pgw}']\n",
        alerts.display()
    );
    let cfg = t.path().join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let prom = free_port();
    let mut prom_proc = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                t.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http_ok(pgw, "/-/ready", &mut pgw_proc.0, "prometheus-pushgateway");
    wait_http_ok(prom, "/-/ready", &mut prom_proc.0, "prometheus");

    // 3. The served binary's series arrive in Prometheus.
    let inst = format!("job=\"apksift\",instance=\"127.0.0.1:{app}\"");
    query_until(prom, &format!("up{{{inst}}}"), |v| v == 1.0);
    for (endpoint, method) in [
        ("/v1/samples/apk", "POST"),
        ("/v1/scan", "POST"),
        ("/v1/search", "POST"),
        ("/v1/samples/{key}", "GET"),
    ] {
        query_until(
            prom,
            &format!(
                "apksift_http_requests_total{{{inst},endpoint=\"{endpoint}\",method=\"{method}\",status=\"2xx\"}}"
            ),
            |v| v == 1.0,
        );
        query_until(
            prom,
            &format!(
                "apksift_http_request_duration_seconds_count{{{inst},endpoint=\"{endpoint}\",method=\"{method}\"}}"
            ),
            |v| v == 1.0,
        );
    }
    query_until(
        prom,
        &format!(
            "apksift_http_requests_total{{{inst},endpoint=\"/v1/samples/{{key}}\",status=\"4xx\"}}"
        ),
        |v| v == 1.0,
    );
    // the latency histogram has the alert thresholds as bucket bounds
    for le in ["0.095", "0.5", "+Inf"] {
        query_until(
            prom,
            &format!(
                "apksift_http_request_duration_seconds_bucket{{{inst},endpoint=\"/v1/scan\",le=\"{le}\"}}"
            ),
            |v| v <= 1.0,
        );
    }
    query_until(
        prom,
        &format!("apksift_scan_stage_duration_seconds_count{{{inst},stage=\"fingerprint\"}}"),
        |v| v == 1.0,
    );
    query_until(
        prom,
        &format!("apksift_scans_total{{{inst},verdict=\"malicious\"}}"),
        |v| v == 1.0,
    );
    // store rows: the uploaded sample and its dex component
    query_until(prom, &format!("apksift_store_rows{{{inst}}}"), |v| v >= 2.0);
    // the upload's WAL group commit, drained from the engine every second
    query_until(
        prom,
        &format!("apksift_wal_fsync_duration_seconds_count{{{inst}}}"),
        |v| v >= 1.0,
    );
    query_until(
        prom,
        &format!("apksift_wal_fsync_duration_seconds_bucket{{{inst},le=\"+Inf\"}}"),
        |v| v >= 1.0,
    );
    query_until(
        prom,
        &format!(
            "apksift_build_info{{{inst},version=\"{}\",read_only=\"false\"}}",
            env!("CARGO_PKG_VERSION")
        ),
        |v| v == 1.0,
    );
    for q in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_threads",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "apksift_uptime_seconds",
        "apksift_store_filesystem_avail_bytes",
    ] {
        query_until(prom, &format!("{q}{{{inst}}}"), |v| v > 0.0);
    }
    // the process metrics are the served process's own
    let started = query_until(
        prom,
        &format!("process_start_time_seconds{{{inst}}}"),
        |v| v > 0.0,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - started).abs() < 600.0,
        "process_start_time_seconds {started} vs now {now}"
    );
    query_until(
        prom,
        &format!("apksift_replica_lag_seconds{{{inst}}}"),
        |v| v == 0.0,
    );
    // PromQL over the histogram: a rate needs an increase between two scrapes, so one
    // more scan now that the first one has been scraped.
    let (code, body) = http_call(
        app,
        "POST",
        "/v1/scan",
        &[("Authorization", &r), apk_ct],
        &std::fs::read(&variant).unwrap(),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    query_until(
        prom,
        &format!(
            "histogram_quantile(0.99, sum by (le) (rate(apksift_http_request_duration_seconds_bucket{{{inst},endpoint=\"/v1/scan\"}}[1m])))"
        ),
        |v| v > 0.0,
    );

    // 4. A real `apksift ingest --pushgateway`.
    let url = format!("http://127.0.0.1:{pgw}");
    let ingest_db = t.path().join("ingest-db");
    let apks = t.path().join("apks");
    std::fs::create_dir_all(&apks).unwrap();
    std::fs::copy(&known, apks.join("a.apk")).unwrap();
    std::fs::copy(&variant, apks.join("b.apk")).unwrap();
    let run = run_job(&[
        "--db",
        s(&ingest_db),
        "ingest",
        "--label",
        "malware",
        "--quiet",
        "--pushgateway",
        &url,
        s(&apks),
    ]);
    assert_eq!(run.code, 0, "ingest: {}{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("not pushed"), "{}", run.stderr);
    let (code, m) = http_call(pgw, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(code, 200);
    let job = "job=\"apksift_ingest\"";
    assert_eq!(
        sample(&m, "apksift_ingest_files_total", job),
        Some(2.0),
        "{m}"
    );
    assert_eq!(sample(&m, "apksift_ingest_samples_total", job), Some(2.0));
    assert_eq!(
        sample(&m, "apksift_ingest_samples_new_total", job),
        Some(2.0)
    );
    assert_eq!(sample(&m, "apksift_ingest_errors_total", job), Some(0.0));
    assert_eq!(sample(&m, "apksift_job_success", job), Some(1.0));
    assert!(sample(&m, "apksift_ingest_component_rows_total", job).is_some_and(|v| v >= 2.0));
    assert!(sample(&m, "apksift_job_duration_seconds", job).is_some_and(|v| v > 0.0));
    assert!(sample(&m, "apksift_job_last_success_timestamp_seconds", job).is_some());
    // and through Prometheus scraping the Pushgateway, with the pushed job label
    query_until(
        prom,
        "apksift_ingest_samples_total{job=\"apksift_ingest\"}",
        |v| v == 2.0,
    );
    query_until(prom, "apksift_job_success{job=\"apksift_ingest\"}", |v| {
        v == 1.0
    });
    query_until(
        prom,
        "apksift_job_last_success_timestamp_seconds{job=\"apksift_ingest\"}",
        |v| v > 0.0,
    );

    // 5. A real `apksift import --pushgateway`: 4 rows, one without any identifier or
    //    valid digest (skipped), one with a bad digest (stored without it).
    let csv = t.path().join("digests.csv");
    std::fs::write(
        &csv,
        format!(
            "sha256,tlsh,family\n{},{digest},Demo\n{},T1ZZZ,Demo\n{},{digest},Other\n,not-a-digest,Nobody\n",
            "a".repeat(64),
            "b".repeat(64),
            "c".repeat(64)
        ),
    )
    .unwrap();
    let import_db = t.path().join("import-db");
    let run = run_job(&[
        "--db",
        s(&import_db),
        "import",
        s(&csv),
        "--json",
        "--pushgateway",
        &url,
    ]);
    assert_eq!(run.code, 0, "import: {}{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("not pushed"), "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        (report["rows"].as_u64(), report["stored"].as_u64()),
        (Some(4), Some(3)),
        "{report}"
    );
    let (_, m) = http_call(pgw, "GET", "/metrics", &[], b"").unwrap();
    let job = "job=\"apksift_import\"";
    for (metric, field) in [
        ("apksift_import_rows_total", "rows"),
        ("apksift_import_stored_total", "stored"),
        ("apksift_import_skipped_total", "skipped"),
        ("apksift_import_invalid_digests_total", "invalid_digest"),
    ] {
        assert_eq!(
            sample(&m, metric, job),
            report[field].as_f64(),
            "{metric} vs the report's {field}: {report}\n{m}"
        );
    }
    assert_eq!(sample(&m, "apksift_import_skipped_total", job), Some(1.0));
    assert_eq!(sample(&m, "apksift_job_success", job), Some(1.0));
    let last_ok = sample(&m, "apksift_job_last_success_timestamp_seconds", job).unwrap();
    // the ingest's group is untouched by the import's push
    assert_eq!(
        sample(&m, "apksift_ingest_samples_total", "job=\"apksift_ingest\""),
        Some(2.0)
    );
    query_until(
        prom,
        "apksift_import_stored_total{job=\"apksift_import\"}",
        |v| v == 3.0,
    );
    query_until(prom, "apksift_job_success{job=\"apksift_import\"}", |v| {
        v == 1.0
    });

    // 6. A failed import pushes success 0 (POST: the last success time stays), which
    //    Prometheus sees and ApksiftBatchJobFailed picks up.
    let bad = t.path().join("bad.csv");
    std::fs::write(&bad, "sha256,tlsh\n,nope\n,also-not\n").unwrap();
    let run = run_job(&[
        "--db",
        s(&import_db),
        "import",
        s(&bad),
        "--pushgateway",
        &url,
    ]);
    assert_eq!(
        run.code, 2,
        "a failing import: {}{}",
        run.stdout, run.stderr
    );
    let (_, m) = http_call(pgw, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(sample(&m, "apksift_job_success", job), Some(0.0), "{m}");
    assert_eq!(
        sample(&m, "apksift_job_last_success_timestamp_seconds", job),
        Some(last_ok)
    );
    query_until(prom, "apksift_job_success{job=\"apksift_import\"}", |v| {
        v == 0.0
    });
    query_until(
        prom,
        "ALERTS{alertname=\"ApksiftBatchJobFailed\",job=\"apksift_import\"}",
        |v| v == 1.0,
    );

    // 7. The alert rules loaded and evaluate without errors.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http_call(prom, "GET", "/api/v1/rules", &[], b"").unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        let rules: Vec<&Value> = v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        if rules.len() >= 11 && rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(Instant::now() < deadline, "rules not all healthy: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // 8. Every PromQL expression of the Grafana dashboard evaluates.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/apksift-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for tg in p["targets"].as_array().into_iter().flatten() {
            let expr = tg["expr"]
                .as_str()
                .unwrap()
                .replace("$job", "apksift")
                .replace("$instance", ".*");
            query(prom, &expr);
            n += 1;
        }
    }
    assert!(n >= 40, "{n} dashboard expressions");

    // 9. The service stops cleanly.
    sigterm(&server.0);
    let st = wait_exit(&mut server.0, 30, "apksift serve");
    assert!(
        st.success(),
        "exit {st}: {}",
        std::fs::read_to_string(&log).unwrap()
    );
}
