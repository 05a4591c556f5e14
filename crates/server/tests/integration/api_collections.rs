//! Generic collections through the API: every operation, the JSON
//! encodings, and the 4xx answers that name the problem.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn collections_lifecycle_and_every_operation() {
    if on_milvus("collections_lifecycle_and_every_operation (binary-vector field)") {
        return;
    }
    let t = test_app();
    let r = &t.router;
    make_collection(r).await;
    let v = call(r, "GET", "/v1/collections", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(v, json!({"collections": ["c", "components", "samples"]}));
    let d = call(r, "GET", "/v1/collections/c", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(d["primary_key"], "sha256");
    assert_eq!(d["fields"][0]["type"], "binary_vector");
    assert_eq!(d["fields"][0]["dim"], 256);
    assert_eq!(d["fields"][0]["index"]["kind"], "FLAT");
    assert_eq!(d["fields"][0]["metric"], "HAMMING");
    assert_eq!(d["fields"][1]["index"]["kind"], "TLSH_TREE");

    let rows: Vec<_> = (0..10)
        .map(|i| json!({"sha256": format!("k{i}"), "v": vec_b64(i * 8), "family": if i % 2 == 0 {"even"} else {"odd"}, "threat": i}))
        .collect();
    let w = call(
        r,
        "POST",
        "/v1/collections/c/insert",
        Some(WRITE),
        Some(json!({"rows": rows})),
    )
    .await
    .expect(200, None);
    assert_eq!(w["rows"], 10);
    // insert of an existing key: 409, nothing stored
    call(r, "POST", "/v1/collections/c/insert", Some(WRITE),
        Some(json!({"rows": [{"sha256": "k1", "v": vec_b64(0)}, {"sha256": "new", "v": vec_b64(0)}]})))
        .await
        .expect(409, Some("already_exists"));
    // upsert replaces; hex encoding accepted
    call(r, "POST", "/v1/collections/c/upsert", Some(WRITE),
        Some(json!({"encoding": "hex", "rows": [{"sha256": "k1", "v": "ff".repeat(32), "t": T1, "family": "odd"}]})))
        .await
        .expect(200, None);
    let c = call(r, "GET", "/v1/collections/c/count", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(c["count"], 10);

    let g = call(
        r,
        "POST",
        "/v1/collections/c/get",
        Some(READ),
        Some(
            json!({"keys": ["k1", "zz"], "output_fields": ["v", "t", "threat"], "encoding": "hex"}),
        ),
    )
    .await
    .expect(200, None);
    assert_eq!(g["rows"][0]["key"], "k1");
    assert_eq!(g["rows"][0]["fields"]["v"], "ff".repeat(32));
    assert_eq!(g["rows"][0]["fields"]["t"], T1);
    assert_eq!(g["rows"][0]["fields"]["threat"], serde_json::Value::Null);
    assert_eq!(g["missing"], json!(["zz"]));

    // search among even rows: k2 (16 ones) at 0, then k0 and k4 at 16 (ties by key)
    let s = call(r, "POST", "/v1/collections/c/search", Some(READ),
        Some(json!({"field": "v", "vectors": [vec_b64(16)], "k": 3, "filter": "family == \"even\"", "output_fields": ["threat"]})))
        .await
        .expect(200, None);
    let hits = s["results"][0]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["key"], "k2");
    assert_eq!(hits[0]["distance"], 0.0);
    assert_eq!(hits[0]["fields"]["threat"], 2);
    assert_eq!(hits[1]["distance"], 16.0);
    assert_eq!(hits[1]["key"], "k0");
    // TLSH field search
    let s = call(
        r,
        "POST",
        "/v1/collections/c/search",
        Some(READ),
        Some(json!({"field": "t", "vectors": [T1.to_lowercase()], "k": 5})),
    )
    .await
    .expect(200, None);
    assert_eq!(s["results"][0]["hits"][0]["key"], "k1");
    assert_eq!(s["results"][0]["hits"][0]["distance"], 0.0);

    let q = call(
        r,
        "POST",
        "/v1/collections/c/query",
        Some(READ),
        Some(
            json!({"filter": "threat >= 7", "output_fields": ["threat"], "limit": 2, "offset": 1}),
        ),
    )
    .await
    .expect(200, None);
    assert_eq!(q["rows"].as_array().unwrap().len(), 2);
    assert_eq!(q["rows"][0]["key"], "k8");

    let d = call(
        r,
        "POST",
        "/v1/collections/c/delete",
        Some(WRITE),
        Some(json!({"keys": ["k1", "k2", "nope"]})),
    )
    .await
    .expect(200, None);
    assert_eq!(d["rows"], 2);
    let c = call(r, "GET", "/v1/collections/c/count", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(c["count"], 8);

    let resp = call(r, "DELETE", "/v1/collections/c", Some(ADMIN), None).await;
    assert_eq!(resp.status.as_u16(), 204);
    call(r, "GET", "/v1/collections/c", Some(READ), None)
        .await
        .expect(404, Some("not_found"));
    call(r, "DELETE", "/v1/collections/c", Some(ADMIN), None)
        .await
        .expect(404, Some("not_found"));
}

#[tokio::test]
async fn collections_errors_name_the_problem() {
    if on_milvus("collections_errors_name_the_problem (binary-vector field)") {
        return;
    }
    let t = test_app();
    let r = &t.router;
    make_collection(r).await;
    let cases: Vec<(&str, serde_json::Value, u16, &str, &str)> = vec![
        // unknown JSON field in a request body
        (
            "/v1/collections/c/search",
            json!({"field": "v", "vectors": [vec_b64(1)], "topk": 3}),
            400,
            "unknown_field",
            "topk",
        ),
        // unknown field in a row
        (
            "/v1/collections/c/insert",
            json!({"rows": [{"sha256": "a", "v": vec_b64(1), "colour": "red"}]}),
            400,
            "unknown_field",
            "colour",
        ),
        // wrong vector length
        (
            "/v1/collections/c/insert",
            json!({"rows": [{"sha256": "a", "v": "AAAA"}]}),
            400,
            "invalid_argument",
            "wrong vector length",
        ),
        (
            "/v1/collections/c/search",
            json!({"field": "v", "vectors": ["AAAA"]}),
            400,
            "invalid_argument",
            "dim 256",
        ),
        // bad base64
        (
            "/v1/collections/c/insert",
            json!({"rows": [{"sha256": "a", "v": "%%%"}]}),
            400,
            "invalid_argument",
            "base64",
        ),
        // bad digest
        (
            "/v1/collections/c/insert",
            json!({"rows": [{"sha256": "a", "v": vec_b64(1), "t": "T1XYZ"}]}),
            400,
            "invalid_argument",
            "not a TLSH digest",
        ),
        (
            "/v1/collections/c/search",
            json!({"field": "t", "vectors": ["T2AB"]}),
            400,
            "invalid_argument",
            "not a TLSH digest",
        ),
        // k too large, k zero
        (
            "/v1/collections/c/search",
            json!({"field": "v", "vectors": [vec_b64(1)], "k": 16385}),
            400,
            "invalid_argument",
            "16384",
        ),
        (
            "/v1/collections/c/search",
            json!({"field": "v", "vectors": [vec_b64(1)], "k": 0}),
            400,
            "invalid_argument",
            "k = 0",
        ),
        // unsupported parameter for the field (nprobe on FLAT) or metric on TLSH
        (
            "/v1/collections/c/search",
            json!({"field": "t", "vectors": [T1], "metric": "JACCARD"}),
            400,
            "invalid_argument",
            "JACCARD",
        ),
        (
            "/v1/collections/c/search",
            json!({"field": "v", "vectors": [vec_b64(1)], "metric": "COSINE"}),
            400,
            "invalid_argument",
            "unknown metric",
        ),
        // unknown field in a search
        (
            "/v1/collections/c/search",
            json!({"field": "nope", "vectors": [vec_b64(1)]}),
            400,
            "invalid_argument",
            "unknown field",
        ),
        (
            "/v1/collections/c/search",
            json!({"field": "family", "vectors": ["x"]}),
            400,
            "invalid_argument",
            "vector field",
        ),
        // bad filter
        (
            "/v1/collections/c/query",
            json!({"filter": "family ==="}),
            400,
            "invalid_argument",
            "filter",
        ),
        // type errors
        (
            "/v1/collections/c/insert",
            json!({"rows": [{"sha256": "a", "v": vec_b64(1), "threat": "high"}]}),
            400,
            "invalid_argument",
            "threat",
        ),
        (
            "/v1/collections/c/insert",
            json!({"rows": [{"v": vec_b64(1)}]}),
            400,
            "invalid_argument",
            "missing primary key",
        ),
        (
            "/v1/collections/c/insert",
            json!({"rows": [{"sha256": "a"}]}),
            400,
            "invalid_argument",
            "required",
        ),
        (
            "/v1/collections/c/search",
            json!({"field": "v", "vectors": [vec_b64(1)], "k": "ten"}),
            400,
            "invalid_argument",
            "k",
        ),
        // collections
        (
            "/v1/collections",
            json!({"name": "bad-name", "fields": [{"name": "v", "type": "binary_vector", "dim": 8}]}),
            400,
            "invalid_argument",
            "invalid collection name",
        ),
        (
            "/v1/collections",
            json!({"name": "x", "fields": [{"name": "v", "type": "binary_vector", "dim": 12}]}),
            400,
            "invalid_argument",
            "multiple of 8",
        ),
        (
            "/v1/collections",
            json!({"name": "x", "fields": [{"name": "v", "type": "binary_vector"}]}),
            400,
            "invalid_argument",
            "dim",
        ),
        (
            "/v1/collections",
            json!({"name": "x", "fields": [{"name": "v", "type": "vector", "dim": 8}]}),
            400,
            "invalid_argument",
            "unknown variant",
        ),
        (
            "/v1/collections",
            json!({"name": "x", "fields": [{"name": "v", "type": "binary_vector", "dim": 8, "dims": 8}]}),
            400,
            "unknown_field",
            "dims",
        ),
        (
            "/v1/collections",
            json!({"name": "c", "fields": [{"name": "v", "type": "binary_vector", "dim": 8}]}),
            409,
            "already_exists",
            "already exists",
        ),
        (
            "/v1/collections/none/search",
            json!({"field": "v", "vectors": [vec_b64(1)]}),
            404,
            "not_found",
            "none",
        ),
    ];
    for (uri, body, status, code, needle) in cases {
        let resp = call(r, "POST", uri, Some(ADMIN), Some(body.clone())).await;
        let v = resp.expect(status, Some(code));
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{uri} {body}: message {msg:?} should mention {needle:?}"
        );
    }
    // malformed JSON and wrong content type
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/collections/c/search")
        .header("authorization", format!("Bearer {READ}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"field\": "))
        .unwrap();
    send(r, req).await.expect(400, Some("invalid_json"));
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/collections/c/search")
        .header("authorization", format!("Bearer {READ}"))
        .body(axum::body::Body::from("{}"))
        .unwrap();
    send(r, req)
        .await
        .expect(415, Some("unsupported_media_type"));
    // unknown route and wrong method are JSON too
    call(r, "GET", "/v1/nope", Some(READ), None)
        .await
        .expect(404, Some("not_found"));
    call(r, "PUT", "/v1/collections", Some(ADMIN), None)
        .await
        .expect(405, Some("method_not_allowed"));
}

/// `T1` with its last body byte replaced by `b` (digests a few TLSH units apart).
fn t1_variant(b: u8) -> String {
    format!("{}{b:02X}", &T1[..T1.len() - 2])
}

/// The operations a TLSH-only collection has on every store (embedded, and Milvus with
/// `APKSIFT_TEST_STORE=milvus://…`): the same requests and the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_tlsh_lifecycle_on_any_store() {
    let t = test_app();
    let r = &t.router;
    call(
        r,
        "POST",
        "/v1/collections",
        Some(ADMIN),
        Some(json!({
            "name": "d",
            "primary_key": "sha256",
            "fields": [
                {"name": "t", "type": "tlsh"},
                {"name": "family", "type": "string"},
                {"name": "threat", "type": "int"}
            ]
        })),
    )
    .await
    .expect(201, None);
    call(
        r,
        "POST",
        "/v1/collections",
        Some(ADMIN),
        Some(json!({
            "name": "d", "fields": [{"name": "t", "type": "tlsh"}]
        })),
    )
    .await
    .expect(409, Some("already_exists"));
    let v = call(r, "GET", "/v1/collections", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(v, json!({"collections": ["components", "d", "samples"]}));
    let d = call(r, "GET", "/v1/collections/d", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(d["primary_key"], "sha256");
    assert_eq!(d["fields"][0]["type"], "tlsh");
    assert_eq!(d["rows"], 0);

    // rows k0..k9: digest variants 0x00, 0x11, …; k9's family is odd
    let rows: Vec<_> = (0..10u8)
        .map(|i| json!({"sha256": format!("k{i}"), "t": t1_variant(i * 0x11), "family": if i % 2 == 0 {"even"} else {"odd"}, "threat": i}))
        .collect();
    let w = call(
        r,
        "POST",
        "/v1/collections/d/insert",
        Some(WRITE),
        Some(json!({"rows": rows})),
    )
    .await
    .expect(200, None);
    assert_eq!(w["rows"], 10);
    // an existing key: 409 and nothing of the batch is stored
    call(
        r,
        "POST",
        "/v1/collections/d/insert",
        Some(WRITE),
        Some(json!({"rows": [{"sha256": "k1", "t": T1}, {"sha256": "new", "t": T1}]})),
    )
    .await
    .expect(409, Some("already_exists"));
    call(
        r,
        "POST",
        "/v1/collections/d/upsert",
        Some(WRITE),
        Some(json!({"rows": [{"sha256": "k1", "t": T1, "family": "odd"}]})),
    )
    .await
    .expect(200, None);
    let c = call(r, "GET", "/v1/collections/d/count", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(c["count"], 10);
    let g = call(
        r,
        "POST",
        "/v1/collections/d/get",
        Some(READ),
        Some(json!({"keys": ["k1", "new"], "output_fields": ["t", "threat"]})),
    )
    .await
    .expect(200, None);
    assert_eq!(g["rows"][0]["key"], "k1");
    assert_eq!(g["rows"][0]["fields"]["t"], T1);
    assert_eq!(g["rows"][0]["fields"]["threat"], serde_json::Value::Null);
    assert_eq!(g["missing"], json!(["new"]));

    // exact TLSH: k1 holds T1 itself (0); with a filter, only the even rows
    let s = call(r, "POST", "/v1/collections/d/search", Some(READ),
        Some(json!({"field": "t", "vectors": [T1.to_lowercase()], "k": 3, "output_fields": ["family"]})))
        .await
        .expect(200, None);
    let hits = s["results"][0]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3, "{s}");
    assert_eq!(hits[0]["key"], "k1");
    assert_eq!(hits[0]["distance"], 0.0);
    assert_eq!(hits[0]["fields"]["family"], "odd");
    let d0 = hits[1]["distance"].as_f64().unwrap();
    assert!(d0 > 0.0 && d0 <= hits[2]["distance"].as_f64().unwrap());
    let s = call(r, "POST", "/v1/collections/d/search", Some(READ),
        Some(json!({"field": "t", "vectors": [T1], "k": 10, "filter": "family == \"even\" and threat >= 4"})))
        .await
        .expect(200, None);
    let keys: Vec<&str> = s["results"][0]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["k4", "k6", "k8"], "{s}");
    // a bad digest is a 400 that names it
    call(
        r,
        "POST",
        "/v1/collections/d/search",
        Some(READ),
        Some(json!({"field": "t", "vectors": ["T1XYZ"], "k": 3})),
    )
    .await
    .expect(400, Some("invalid_argument"));

    let q = call(
        r,
        "POST",
        "/v1/collections/d/query",
        Some(READ),
        Some(
            json!({"filter": "threat >= 7", "output_fields": ["threat"], "limit": 2, "offset": 1}),
        ),
    )
    .await
    .expect(200, None);
    assert_eq!(q["rows"].as_array().unwrap().len(), 2, "{q}");
    assert_eq!(q["rows"][0]["key"], "k8");
    assert_eq!(q["rows"][0]["fields"]["threat"], 8);

    let del = call(
        r,
        "POST",
        "/v1/collections/d/delete",
        Some(WRITE),
        Some(json!({"keys": ["k1", "k2", "nope"]})),
    )
    .await
    .expect(200, None);
    assert_eq!(del["rows"], 2);
    let c = call(r, "GET", "/v1/collections/d/count", Some(READ), None)
        .await
        .expect(200, None);
    assert_eq!(c["count"], 8);
    let resp = call(r, "DELETE", "/v1/collections/d", Some(ADMIN), None).await;
    assert_eq!(resp.status.as_u16(), 204, "{}", resp.text());
    call(r, "GET", "/v1/collections/d", Some(READ), None)
        .await
        .expect(404, Some("not_found"));
}
