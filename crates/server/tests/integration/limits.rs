//! Limits: body size, batch size, nq, request timeout, requests in flight,
//! scan slots. Each gets a 4xx/429/503 whose message names the limit.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apksift_server::Limits;
use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::common::*;

/// A body that never finishes: the request stays in flight.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Pending
    }
}

/// One chunk of unknown length (no Content-Length, like a chunked upload).
struct Chunked(Option<Vec<u8>>);

impl http_body::Body for Chunked {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(
            self.0
                .take()
                .map(|b| Ok(http_body::Frame::data(bytes::Bytes::from(b)))),
        )
    }
}

fn stalled_body() -> Body {
    Body::new(Stalled)
}

#[tokio::test]
async fn limits_body_size_413_declared_and_streamed() {
    let t = test_app_with(Limits {
        max_body_bytes: 1000,
        ..Limits::default()
    });
    make_collection(&t.router).await;
    let big = json!({"rows": (0..40).map(|i| json!({"sha256": format!("k{i}"), "v": vec_b64(1)})).collect::<Vec<_>>()});
    let v = call(
        &t.router,
        "POST",
        "/v1/collections/c/upsert",
        Some(WRITE),
        Some(big.clone()),
    )
    .await
    .expect(413, Some("payload_too_large"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-body-bytes")
    );
    // without Content-Length (chunked): the extractor stops at the limit
    let bytes = serde_json::to_vec(&big).unwrap();
    let req = Request::builder()
        .method("POST")
        .uri("/v1/collections/c/upsert")
        .header("authorization", format!("Bearer {WRITE}"))
        .header("content-type", "application/json")
        .body(Body::new(Chunked(Some(bytes))))
        .unwrap();
    send(&t.router, req)
        .await
        .expect(413, Some("payload_too_large"));
}

#[tokio::test]
async fn limits_batch_and_nq() {
    let t = test_app_with(Limits {
        max_batch: 3,
        max_nq: 2,
        ..Limits::default()
    });
    make_collection(&t.router).await;
    let rows: Vec<_> = (0..4)
        .map(|i| json!({"sha256": format!("k{i}"), "v": vec_b64(i)}))
        .collect();
    let v = call(
        &t.router,
        "POST",
        "/v1/collections/c/upsert",
        Some(WRITE),
        Some(json!({"rows": rows})),
    )
    .await
    .expect(413, Some("payload_too_large"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-batch")
    );
    call(
        &t.router,
        "POST",
        "/v1/collections/c/delete",
        Some(WRITE),
        Some(json!({"keys": ["a", "b", "c", "d"]})),
    )
    .await
    .expect(413, Some("payload_too_large"));
    let v = call(
        &t.router,
        "POST",
        "/v1/collections/c/search",
        Some(READ),
        Some(json!({"field": "v", "vectors": [vec_b64(1), vec_b64(2), vec_b64(3)]})),
    )
    .await
    .expect(400, Some("invalid_argument"));
    assert!(v["error"]["message"].as_str().unwrap().contains("--max-nq"));

    // One fingerprint with three dex digests is three queries on the dex field.
    let mut fp =
        serde_json::to_value(apksift_core::fingerprint(&apk(3, 0), &Default::default())).unwrap();
    let comps = fp["components"].as_array_mut().unwrap();
    let dex = comps.iter().find(|c| c["kind"] == "dex").unwrap().clone();
    for i in 2..=3 {
        let mut c = dex.clone();
        c["name"] = json!(format!("classes{i}.dex"));
        comps.push(c);
    }
    let v = call(
        &t.router,
        "POST",
        "/v1/search",
        Some(READ),
        Some(json!({"fingerprints": [fp.clone()], "field": "dex"})),
    )
    .await
    .expect(400, Some("invalid_argument"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--max-nq"),
        "{v}"
    );
    // The same fingerprint on the whole-file field is one query.
    call(
        &t.router,
        "POST",
        "/v1/search",
        Some(READ),
        Some(json!({"fingerprints": [fp], "field": "whole"})),
    )
    .await
    .expect(200, None);
}

#[tokio::test]
async fn limits_request_timeout_503() {
    let t = test_app_with(Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    });
    make_collection(&t.router).await;
    let req = Request::builder()
        .method("POST")
        .uri("/v1/collections/c/upsert")
        .header("authorization", format!("Bearer {WRITE}"))
        .header("content-type", "application/json")
        .body(stalled_body())
        .unwrap();
    let start = std::time::Instant::now();
    let resp = send(&t.router, req).await;
    let v = resp.expect(503, Some("timeout"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--request-timeout")
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(resp.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn limits_requests_in_flight_503() {
    let t = test_app_with(Limits {
        max_in_flight: 1,
        request_timeout: Duration::from_secs(5),
        ..Limits::default()
    });
    make_collection(&t.router).await;
    let req = Request::builder()
        .method("POST")
        .uri("/v1/collections/c/upsert")
        .header("authorization", format!("Bearer {WRITE}"))
        .header("content-type", "application/json")
        .body(stalled_body())
        .unwrap();
    let router = t.router.clone();
    let stuck = tokio::spawn(async move { send(&router, req).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let v = call(&t.router, "GET", "/v1/collections", Some(READ), None)
        .await
        .expect(503, Some("overloaded"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-in-flight")
    );
    // The probes and the metrics scrape are not behind the bound: a saturated server
    // still reports itself alive and ready, and Prometheus still sees it.
    call(&t.router, "GET", "/healthz", None, None)
        .await
        .expect(200, None);
    call(&t.router, "GET", "/readyz", None, None)
        .await
        .expect(200, None);
    let m = call(&t.router, "GET", "/metrics", None, None).await;
    assert_eq!(m.status.as_u16(), 200);
    assert!(m.text().contains("apksift_http_requests_total"));
    stuck.abort();
    let _ = stuck.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    call(&t.router, "GET", "/v1/collections", Some(READ), None)
        .await
        .expect(200, None);
}

#[tokio::test]
async fn limits_scan_slots_queue_then_429_and_waiter_503() {
    let t = test_app_with(Limits {
        max_concurrent_scans: 1,
        max_queued_scans: 1,
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let held = t.state.scan_slot().await.unwrap();
    assert_eq!(t.state.free_scan_slots(), 0);
    // one waiter is allowed; it times out with 503 while the slot is held
    let s2 = t.state.clone();
    let waiter = tokio::spawn(async move { s2.scan_slot().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // the queue is full: 429 at once
    let e = t.state.scan_slot().await.unwrap_err();
    assert_eq!(e.status().as_u16(), 429);
    assert!(e.message().contains("--max-queued-scans"));
    let e = waiter.await.unwrap().unwrap_err();
    assert_eq!(e.status().as_u16(), 503);
    drop(held);
    let _again = t.state.scan_slot().await.unwrap();
}
