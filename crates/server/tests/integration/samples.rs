//! Scan, search and samples through the API, on the real sample store.

use std::time::Duration;

use apksift_server::Limits;
use serde_json::json;

use crate::common::*;

const APK: &str = "application/vnd.android.package-archive";

fn multipart(name: &str, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "XapksiftBOUNDARYx";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {APK}\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_upload_scan_get_delete() {
    let t = test_app();
    let r = &t.router;
    let a = apk(1, 0);
    // nothing stored: no_match
    let v = send(r, raw_post("/v1/scan", READ, a.clone(), APK))
        .await
        .expect(200, None);
    assert_eq!(v["verdict"], "no_match", "{v}");
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    assert!(v["components"].as_array().unwrap().len() >= 4, "{v}");
    let sha = v["sha256"].as_str().unwrap().to_string();

    // upload as malware (write role; read gets 403)
    send(
        r,
        raw_post(
            "/v1/samples/apk?family=Anubis&threat=high",
            READ,
            a.clone(),
            APK,
        ),
    )
    .await
    .expect(403, Some("forbidden"));
    let up = send(
        r,
        raw_post(
            "/v1/samples/apk?family=Anubis&threat=high",
            WRITE,
            a.clone(),
            APK,
        ),
    )
    .await
    .expect(200, None);
    assert_eq!(up["sha256"], sha.as_str());
    assert_eq!(up["replaced"], false);

    // the same file: malicious, exact match
    let v = send(r, raw_post("/v1/scan?cutoff=50", READ, a.clone(), APK))
        .await
        .expect(200, None);
    assert_eq!(v["verdict"], "malicious", "{v}");
    assert_eq!(v["exact_match"], true);
    assert_eq!(v["family"], "Anubis");
    // a variant (a few dex bytes changed), as multipart with a file name
    let (ct, body) = multipart("file", "variant.apk", &apk(1, 7));
    let v = send(r, raw_post("/v1/scan", READ, body, &ct))
        .await
        .expect(200, None);
    assert_eq!(v["verdict"], "malicious", "{v}");
    assert_eq!(v["exact_match"], false);
    assert_eq!(v["file"], "variant.apk");
    assert_eq!(v["nearest"][0]["sha256"], sha.as_str());
    // an unrelated APK
    let v = send(
        r,
        raw_post(
            "/v1/scan?file=other.apk",
            READ,
            apk(99, 0),
            "application/octet-stream",
        ),
    )
    .await
    .expect(200, None);
    assert_eq!(v["verdict"], "no_match", "{v}");
    assert_eq!(v["file"], "other.apk");

    let s = call(
        r,
        "GET",
        &format!("/v1/samples/{}", sha.to_uppercase()),
        Some(READ),
        None,
    )
    .await
    .expect(200, None);
    assert_eq!(s["family"], "Anubis");
    assert_eq!(s["threat"], "high");
    assert_eq!(s["label"], "malware");
    call(r, "GET", "/v1/samples/not-a-sha", Some(READ), None)
        .await
        .expect(400, Some("invalid_argument"));
    call(r, "DELETE", &format!("/v1/samples/{sha}"), Some(READ), None)
        .await
        .expect(403, Some("forbidden"));
    let resp = call(
        r,
        "DELETE",
        &format!("/v1/samples/{sha}"),
        Some(WRITE),
        None,
    )
    .await;
    assert_eq!(resp.status.as_u16(), 204, "{}", resp.text());
    call(r, "GET", &format!("/v1/samples/{sha}"), Some(READ), None)
        .await
        .expect(404, Some("not_found"));
    call(
        r,
        "DELETE",
        &format!("/v1/samples/{sha}"),
        Some(WRITE),
        None,
    )
    .await
    .expect(404, Some("not_found"));

    // metrics saw the stages and verdicts
    let m = call(r, "GET", "/metrics", None, None).await.text();
    for s in [
        "apksift_scan_stage_duration_seconds_count{stage=\"fingerprint\"} 4",
        "apksift_scan_stage_duration_seconds_count{stage=\"search\"} 4",
        "apksift_scan_stage_duration_seconds_count{stage=\"read_body\"} 4",
        "apksift_scan_stage_duration_seconds_count{stage=\"unzip\"} 4",
        "apksift_scan_stage_duration_seconds_count{stage=\"hash\"} 4",
        "apksift_scans_total{verdict=\"malicious\"} 2",
        "apksift_scans_total{verdict=\"no_match\"} 2",
        "apksift_deleted_rows_total{api=\"samples\"} 1",
    ] {
        assert!(m.contains(s), "missing {s}");
    }
}

#[tokio::test]
async fn samples_scan_errors() {
    let t = test_app();
    let r = &t.router;
    send(r, raw_post("/v1/scan", READ, Vec::new(), APK))
        .await
        .expect(400, Some("invalid_argument"));
    send(r, raw_post("/v1/scan?topk=3", READ, apk(1, 0), APK))
        .await
        .expect(400, Some("unknown_parameter"));
    let v = send(r, raw_post("/v1/scan?cutoff=0", READ, apk(1, 0), APK))
        .await
        .expect(400, Some("invalid_argument"));
    assert!(v["error"]["message"].as_str().unwrap().contains("cutoff"));
    let (ct, body) = multipart("upload", "x.apk", &apk(1, 0));
    send(r, raw_post("/v1/scan", READ, body, &ct))
        .await
        .expect(400, Some("unknown_field"));
    send(
        r,
        raw_post("/v1/scan", "nope-nope-nope-nope", apk(1, 0), APK),
    )
    .await
    .expect(401, Some("unauthorized"));
    // not a ZIP at all: still a verdict, with a warning
    let v = send(r, raw_post("/v1/scan", READ, noise(5, 5000), APK))
        .await
        .expect(200, None);
    assert_eq!(v["verdict"], "no_match");
    assert!(!v["warnings"].as_array().unwrap().is_empty(), "{v}");
}

#[tokio::test]
async fn samples_upsert_digests_and_fingerprints_then_search() {
    let t = test_app();
    let r = &t.router;
    let fp_a = apksift_core::fingerprint(&apk(3, 0), &Default::default());
    let fp_b = apksift_core::fingerprint(&apk(4, 0), &Default::default());
    let tl_a = fp_a.tlsh.unwrap().to_canonical();
    let body = json!({"samples": [
        {"fingerprint": fp_a, "family": "Joker", "threat": 3},
        {"sha256": "ab".repeat(32), "tlsh": fp_b.tlsh.unwrap().to_canonical().to_lowercase(), "family": "Hydra", "label": "grayware"},
        {"md5": "cd".repeat(16), "tlsh": tl_a.clone(), "family": "Copy"},
    ]});
    call(r, "POST", "/v1/samples", Some(READ), Some(body.clone()))
        .await
        .expect(403, Some("forbidden"));
    let v = call(r, "POST", "/v1/samples", Some(WRITE), Some(body))
        .await
        .expect(200, None);
    assert_eq!(v["stored"], 3, "{v}");
    assert_eq!(v["fingerprints"][0]["key"], fp_a.sha256.as_str());
    // idempotent: the same again updates, never duplicates
    let again = json!({"samples": [{"sha256": "ab".repeat(32), "tlsh": fp_b.tlsh.unwrap().to_canonical(), "family": "Hydra2"}]});
    call(r, "POST", "/v1/samples", Some(WRITE), Some(again))
        .await
        .expect(200, None);
    let s = call(
        r,
        "GET",
        &format!("/v1/samples/{}", "ab".repeat(32)),
        Some(READ),
        None,
    )
    .await
    .expect(200, None);
    assert_eq!(s["family"], "Hydra2");

    let v = call(
        r,
        "POST",
        "/v1/search",
        Some(READ),
        Some(json!({"digests": [tl_a], "k": 5})),
    )
    .await
    .expect(200, None);
    let m = v["results"][0]["matches"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{v}");
    assert_eq!(m[0]["distance"], 0);
    assert_eq!(m[1]["distance"], 0);
    let fams: Vec<_> = m[..2]
        .iter()
        .map(|x| x["family"].as_str().unwrap())
        .collect();
    assert!(fams.contains(&"Joker") && fams.contains(&"Copy"), "{v}");
    // cutoff and filter
    let v = call(r, "POST", "/v1/search", Some(READ),
        Some(json!({"digests": [fp_b.tlsh.unwrap().to_canonical()], "cutoff": 1, "filter": "family == \"Hydra2\""})))
        .await
        .expect(200, None);
    assert_eq!(
        v["results"][0]["matches"].as_array().unwrap().len(),
        1,
        "{v}"
    );
    // by fingerprint, on the dex field
    let fp_a_variant = apksift_core::fingerprint(&apk(3, 9), &Default::default());
    let v = call(
        r,
        "POST",
        "/v1/search",
        Some(READ),
        Some(json!({"fingerprints": [fp_a_variant], "field": "dex", "k": 3})),
    )
    .await
    .expect(200, None);
    assert_eq!(
        v["results"][0]["query"],
        format!("fingerprint:{}", fp_a_variant.sha256)
    );
    assert_eq!(
        v["results"][0]["matches"][0]["sha256"],
        fp_a.sha256.as_str(),
        "{v}"
    );
    // scan by fingerprint
    let v = call(
        r,
        "POST",
        "/v1/scan/fingerprint",
        Some(READ),
        Some(json!({"fingerprint": fp_a_variant, "file": "phone.apk"})),
    )
    .await
    .expect(200, None);
    assert_eq!(v["verdict"], "malicious", "{v}");
    assert_eq!(v["file"], "phone.apk");

    // errors name the item and the problem; nothing is written
    for (body, needle) in [
        (
            json!({"samples": [{"sha256": "ab".repeat(32), "tlsh": "T1ZZ"}]}),
            "samples[0]: tlsh: not a TLSH digest",
        ),
        (
            json!({"samples": [{"sha256": "abc", "tlsh": tl_a.clone()}]}),
            "invalid sha256",
        ),
        (
            json!({"samples": [{"sha256": "ab".repeat(32), "threat": "extreme"}]}),
            "threat",
        ),
        (
            json!({"samples": [{"sha256": "ab".repeat(32), "label": "evil"}]}),
            "label",
        ),
        (json!({"samples": [{"family": "x"}]}), "needs"),
        (json!({"samples": []}), "empty"),
    ] {
        let v = call(r, "POST", "/v1/samples", Some(WRITE), Some(body))
            .await
            .expect(400, Some("invalid_argument"));
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    call(
        r,
        "POST",
        "/v1/samples",
        Some(WRITE),
        Some(json!({"samples": [{"sha256": "ab".repeat(32), "colour": 1}]})),
    )
    .await
    .expect(400, Some("unknown_field"));
    for (body, needle) in [
        (json!({"digests": ["T1XYZ"]}), "digests[0]"),
        (json!({"digests": [tl_a.clone()], "k": 16385}), "16384"),
        (json!({"digests": []}), "no query"),
        (
            json!({"digests": [tl_a.clone()], "field": "icon"}),
            "unknown variant",
        ),
        (
            json!({"digests": [tl_a.clone()], "filter": "colour == 1"}),
            "colour",
        ),
    ] {
        let v = call(r, "POST", "/v1/search", Some(READ), Some(body))
            .await
            .expect(400, Some("invalid_argument"));
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    call(
        r,
        "POST",
        "/v1/search",
        Some(READ),
        Some(json!({"digest": [tl_a]})),
    )
    .await
    .expect(400, Some("unknown_field"));
    // the sample store's collections are readable but not writable through /v1/collections
    call(r, "GET", "/v1/collections/samples/count", Some(READ), None)
        .await
        .expect(200, None);
    call(
        r,
        "POST",
        "/v1/collections/samples/delete",
        Some(ADMIN),
        Some(json!({"keys": ["x"]})),
    )
    .await
    .expect(409, Some("reserved_collection"));
    call(r, "DELETE", "/v1/collections/components", Some(ADMIN), None)
        .await
        .expect(409, Some("reserved_collection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_decompression_budget_413() {
    let t = test_app_with(Limits {
        max_decompressed_bytes: 100_000,
        ..Limits::default()
    });
    let big = zip(&[
        ("AndroidManifest.xml", noise(1, 2000)),
        ("classes.dex", noise(2, 80_000)),
        ("classes2.dex", noise(3, 80_000)),
    ]);
    let v = send(&t.router, raw_post("/v1/scan", READ, big.clone(), APK))
        .await
        .expect(413, Some("decompression_limit"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-decompressed-bytes")
    );
    send(&t.router, raw_post("/v1/samples/apk", WRITE, big, APK))
        .await
        .expect(413, Some("decompression_limit"));
    send(&t.router, raw_post("/v1/scan", READ, apk(1, 0), APK))
        .await
        .expect(200, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_scan_concurrency_bound_429() {
    let t = test_app_with(Limits {
        max_concurrent_scans: 1,
        max_queued_scans: 0,
        request_timeout: Duration::from_millis(500),
        ..Limits::default()
    });
    let held = t.state.scan_slot().await.unwrap();
    let v = send(&t.router, raw_post("/v1/scan", READ, apk(1, 0), APK))
        .await
        .expect(429, Some("too_many_requests"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-concurrent-scans")
    );
    send(
        &t.router,
        raw_post("/v1/samples/apk", WRITE, apk(1, 0), APK),
    )
    .await
    .expect(429, Some("too_many_requests"));
    drop(held);
    send(&t.router, raw_post("/v1/scan", READ, apk(1, 0), APK))
        .await
        .expect(200, None);
    let m = call(&t.router, "GET", "/metrics", None, None).await.text();
    assert!(
        m.contains("apksift_rejected_requests_total{reason=\"scan_queue_full\"} 2"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_scan_body_limit_413_declared_chunked_and_multipart() {
    let t = test_app_with(Limits {
        max_body_bytes: 50_000,
        ..Limits::default()
    });
    let big = apk(1, 0); // about 71 kB
    assert!(big.len() > 50_000);
    // declared Content-Length: refused before the body is read
    let v = send(&t.router, raw_post("/v1/scan", READ, big.clone(), APK))
        .await
        .expect(413, Some("payload_too_large"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-body-bytes")
    );
    // no Content-Length: cut while reading
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/scan")
        .header("authorization", format!("Bearer {READ}"))
        .body(axum::body::Body::from_stream(futures_once(big.clone())))
        .unwrap();
    send(&t.router, req)
        .await
        .expect(413, Some("payload_too_large"));
    let (ct, body) = multipart("file", "big.apk", &big);
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/samples/apk")
        .header("authorization", format!("Bearer {WRITE}"))
        .header("content-type", ct)
        .body(axum::body::Body::from_stream(futures_once(body)))
        .unwrap();
    send(&t.router, req)
        .await
        .expect(413, Some("payload_too_large"));
}

/// A one-chunk stream (the body has no known length).
fn futures_once(
    b: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    struct Once(Option<bytes::Bytes>);
    impl futures_core::Stream for Once {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.take().map(Ok))
        }
    }
    Once(Some(bytes::Bytes::from(b)))
}
