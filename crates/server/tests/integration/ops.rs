//! Health, readiness and metrics.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn ops_healthz_readyz_on_writer() {
    let t = test_app();
    let v = call(&t.router, "GET", "/healthz", None, None)
        .await
        .expect(200, None);
    assert_eq!(v["status"], "ok");
    let v = call(&t.router, "GET", "/readyz", None, None)
        .await
        .expect(200, None);
    assert_eq!(v["status"], "ready");
    assert_eq!(v["read_only"], false);
}

#[tokio::test]
async fn ops_readyz_on_replica_follows_lag_bound() {
    let t = test_app();
    make_collection(&t.router).await;
    // A replica of the same directory, with a lag bound it cannot meet
    // once it stops polling (replica_poll is long).
    let opts = apksift_index::Options {
        replica_poll: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let db = apksift_index::Database::open_read_only(t.dir.path(), opts).unwrap();
    let config = apksift_server::Config {
        keys: keys(),
        max_replica_lag: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let replica = apksift_server::app(apksift_server::AppState::from_database(db, config).unwrap());
    let v = call(&replica, "GET", "/readyz", None, None)
        .await
        .expect(200, None);
    assert_eq!(v["read_only"], true);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let v = call(&replica, "GET", "/readyz", None, None)
        .await
        .expect(503, None);
    assert_eq!(v["status"], "not_ready");
    assert!(v["reason"].as_str().unwrap().contains("lags"), "{v}");
    // writes on a replica: 409 read_only_replica
    call(
        &replica,
        "POST",
        "/v1/collections/c/upsert",
        Some(WRITE),
        Some(json!({"rows": [{"sha256": "a", "v": vec_b64(1)}]})),
    )
    .await
    .expect(409, Some("read_only_replica"));
}

fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn ops_metrics_names_and_labels() {
    let t = test_app();
    let r = &t.router;
    make_collection(r).await;
    call(
        r,
        "POST",
        "/v1/collections/c/upsert",
        Some(WRITE),
        Some(json!({"rows": [{"sha256": "a", "v": vec_b64(1)}, {"sha256": "b", "v": vec_b64(2)}]})),
    )
    .await
    .expect(200, None);
    call(
        r,
        "POST",
        "/v1/collections/c/search",
        Some(READ),
        Some(json!({"field": "v", "vectors": [vec_b64(1), vec_b64(2)]})),
    )
    .await
    .expect(200, None);
    call(r, "GET", "/v1/collections/c/nothing-here", Some(READ), None).await;
    let resp = call(r, "GET", "/metrics", None, None).await;
    assert_eq!(resp.status.as_u16(), 200);
    assert!(
        resp.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = resp.text();
    let ep = "endpoint=\"/v1/collections/{name}/upsert\",method=\"POST\",status=\"2xx\"";
    assert_eq!(
        metric_value(&m, &format!("apksift_http_requests_total{{{ep}}}")),
        Some(1.0),
        "{m}"
    );
    assert!(m.contains(&format!(
        "apksift_http_request_duration_seconds_bucket{{{ep},le=\"0.095\"}}"
    )));
    // unmatched routes are one series, never the raw path
    assert!(m.contains("endpoint=\"unmatched\",method=\"GET\",status=\"4xx\""));
    assert!(!m.contains("nothing-here"));
    assert_eq!(
        metric_value(&m, "apksift_inserted_rows_total{api=\"collections\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&m, "apksift_search_queries_total{api=\"collections\"}"),
        Some(2.0)
    );
    assert_eq!(metric_value(&m, "apksift_store_rows"), Some(2.0));
    assert!(metric_value(&m, "apksift_wal_fsync_duration_seconds_count").unwrap() >= 1.0);
    for name in [
        "apksift_build_info{",
        "apksift_uptime_seconds ",
        "apksift_store_segments ",
        "apksift_store_segment_bytes ",
        "apksift_store_memtable_rows ",
        "apksift_replica_lag_seconds ",
        "apksift_store_filesystem_avail_bytes ",
        "apksift_store_disk_usage_bytes ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
        "apksift_http_requests_in_flight ",
    ] {
        assert!(m.contains(name), "missing {name}");
    }
    // every counter ends in _total; every family has HELP and TYPE
    for l in m.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut p = l.split_whitespace().skip(2);
        let (name, kind) = (p.next().unwrap(), p.next().unwrap());
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{name}");
        }
        assert!(m.contains(&format!("# HELP {name} ")), "{name}");
    }
}
