//! API keys: 401 for missing or unknown keys, 403 for a key without the
//! route's role, success with the role (or a higher one), for each role.

use serde_json::json;

use crate::common::*;

/// (method, uri, body, role needed: 0 read, 1 write, 2 admin)
fn routes() -> Vec<(&'static str, &'static str, Option<serde_json::Value>, usize)> {
    vec![
        ("GET", "/v1/collections", None, 0),
        ("GET", "/v1/collections/c", None, 0),
        ("GET", "/v1/collections/c/count", None, 0),
        (
            "POST",
            "/v1/collections/c/get",
            Some(json!({"keys": ["a"]})),
            0,
        ),
        (
            "POST",
            "/v1/collections/c/search",
            Some(json!({"field": "v", "vectors": [vec_b64(3)]})),
            0,
        ),
        ("POST", "/v1/collections/c/query", Some(json!({})), 0),
        (
            "POST",
            "/v1/collections/c/upsert",
            Some(json!({"rows": [{"sha256": "a", "v": vec_b64(1)}]})),
            1,
        ),
        (
            "POST",
            "/v1/collections/c/delete",
            Some(json!({"keys": ["zz"]})),
            1,
        ),
        (
            "POST",
            "/v1/collections",
            Some(
                json!({"name": "other", "fields": [{"name": "v", "type": "binary_vector", "dim": 8}]}),
            ),
            2,
        ),
    ]
}

#[tokio::test]
async fn auth_401_403_and_success_for_each_role() {
    let t = test_app();
    let r = &t.router;
    make_collection(r).await;
    let keys = [READ, WRITE, ADMIN];
    for (method, uri, body, need) in routes() {
        // missing key
        let resp = call(r, method, uri, None, body.clone()).await;
        resp.expect(401, Some("unauthorized"));
        assert!(resp.headers.get("www-authenticate").is_some());
        // unknown key (same length as a real one)
        call(
            r,
            method,
            uri,
            Some("read-key-0123456789abcdeX"),
            body.clone(),
        )
        .await
        .expect(401, Some("unauthorized"));
        for (role, key) in keys.iter().enumerate() {
            let resp = call(r, method, uri, Some(key), body.clone()).await;
            if role < need {
                let v = resp.expect(403, Some("forbidden"));
                assert!(v["error"]["message"].as_str().unwrap().contains("needs"));
            } else {
                assert!(
                    resp.status.is_success(),
                    "{method} {uri} with role {role}: {} {}",
                    resp.status,
                    resp.text()
                );
                if uri == "/v1/collections" && method == "POST" {
                    // make the next admin attempt succeed again
                    call(r, "DELETE", "/v1/collections/other", Some(ADMIN), None).await;
                }
            }
        }
    }
    // DELETE collection: admin only
    call(r, "DELETE", "/v1/collections/c", Some(WRITE), None)
        .await
        .expect(403, Some("forbidden"));
    call(r, "DELETE", "/v1/collections/c", None, None)
        .await
        .expect(401, Some("unauthorized"));
    assert_eq!(
        call(r, "DELETE", "/v1/collections/c", Some(ADMIN), None)
            .await
            .status
            .as_u16(),
        204
    );
    // X-Api-Key header works too
    let req = axum::http::Request::builder()
        .uri("/v1/collections")
        .header("x-api-key", READ)
        .body(axum::body::Body::empty())
        .unwrap();
    send(r, req).await.expect(200, None);
}

#[tokio::test]
async fn auth_operations_endpoints_need_no_key() {
    let t = test_app();
    for uri in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        let resp = call(&t.router, "GET", uri, None, None).await;
        assert_eq!(resp.status.as_u16(), 200, "{uri}: {}", resp.text());
    }
}

#[tokio::test]
async fn auth_no_auth_mode_is_admin_and_keys_are_required_otherwise() {
    let args = apksift_server::ServeArgs::default();
    let err = args.config(None).unwrap_err().to_string();
    assert!(err.contains("no API keys"), "{err}");
    let open = apksift_server::ServeArgs {
        no_auth: true,
        ..apksift_server::ServeArgs::default()
    };
    let cfg = open.config(None).unwrap();
    assert!(cfg.keys.is_open());
}
