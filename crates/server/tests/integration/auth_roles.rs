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

/// The committed OpenAPI document.
fn openapi() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const SAMPLE_KEY: &str = "5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1";

/// Puts the store in the state every example request below expects: collection `c` with
/// row `a`, and the digest-only sample `SAMPLE_KEY`.
async fn fixtures(r: &axum::Router) {
    let resp = call(r, "GET", "/v1/collections/c", Some(ADMIN), None).await;
    if resp.status.as_u16() == 404 {
        make_collection(r).await;
    }
    call(
        r,
        "POST",
        "/v1/collections/c/upsert",
        Some(ADMIN),
        Some(json!({"rows": [{"sha256": "a", "v": vec_b64(1)}]})),
    )
    .await
    .expect(200, None);
    call(
        r,
        "POST",
        "/v1/samples",
        Some(ADMIN),
        Some(json!({"samples": [{"sha256": SAMPLE_KEY, "tlsh": T1}]})),
    )
    .await
    .expect(200, None);
}

/// A request for (method, documented path) that succeeds when the key has the role; the
/// expected 2xx status, or None for an operation without an example here (new routes:
/// they are still checked for 401/403 and for passing authentication with the role).
fn example(
    method: &str,
    path: &str,
    n: usize,
) -> (Option<u16>, Option<serde_json::Value>, Option<Vec<u8>>) {
    let fp =
        serde_json::to_value(apksift_core::fingerprint(&apk(1, 0), &Default::default())).unwrap();
    let v = vec_b64(2);
    match (method, path) {
        ("GET", "/v1/collections") => (Some(200), None, None),
        ("POST", "/v1/collections") => (
            Some(201),
            Some(
                json!({"name": format!("other{n}"), "fields": [{"name": "v", "type": "binary_vector", "dim": 8}]}),
            ),
            None,
        ),
        ("GET", "/v1/collections/{name}") => (Some(200), None, None),
        ("DELETE", "/v1/collections/{name}") => (Some(204), None, None),
        ("GET", "/v1/collections/{name}/count") => (Some(200), None, None),
        ("POST", "/v1/collections/{name}/delete") => {
            (Some(200), Some(json!({"keys": ["a"]})), None)
        }
        ("POST", "/v1/collections/{name}/get") => (Some(200), Some(json!({"keys": ["a"]})), None),
        ("POST", "/v1/collections/{name}/insert") => (
            Some(200),
            Some(json!({"rows": [{"sha256": format!("new{n}"), "v": v}]})),
            None,
        ),
        ("POST", "/v1/collections/{name}/query") => (Some(200), Some(json!({})), None),
        ("POST", "/v1/collections/{name}/search") => {
            (Some(200), Some(json!({"field": "v", "vectors": [v]})), None)
        }
        ("POST", "/v1/collections/{name}/upsert") => (
            Some(200),
            Some(json!({"rows": [{"sha256": "a", "v": v}]})),
            None,
        ),
        ("POST", "/v1/samples") => (
            Some(200),
            Some(json!({"samples": [{"sha256": SAMPLE_KEY, "tlsh": T1, "family": "X"}]})),
            None,
        ),
        ("POST", "/v1/samples/apk") => (Some(200), None, Some(apk(2, 0))),
        ("GET", "/v1/samples/{key}") => (Some(200), None, None),
        ("DELETE", "/v1/samples/{key}") => (Some(204), None, None),
        ("POST", "/v1/scan") => (Some(200), None, Some(apk(1, 3))),
        ("POST", "/v1/scan/fingerprint") => (Some(200), Some(json!({"fingerprint": fp})), None),
        ("POST", "/v1/search") => (Some(200), Some(json!({"digests": [T1]})), None),
        _ => (None, None, None),
    }
}

/// The example request of an operation, or for one without an example a body of the
/// documented media type: authentication must come first either way.
fn request_for(
    method: &str,
    path: &str,
    op: &serde_json::Value,
    n: usize,
) -> (Option<u16>, Option<serde_json::Value>, Option<Vec<u8>>) {
    let (want, body, raw) = example(method, path, n);
    if body.is_some() || raw.is_some() || op.get("requestBody").is_none() {
        return (want, body, raw);
    }
    if op["requestBody"]["content"]
        .get("application/json")
        .is_some()
    {
        (want, Some(json!({})), None)
    } else {
        (want, None, Some(apk(3, 0)))
    }
}

/// One request with the key presented as `Authorization: Bearer` (or `X-Api-Key`).
async fn attempt(
    r: &axum::Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    x_api_key: bool,
    json_body: Option<&serde_json::Value>,
    raw: Option<&[u8]>,
) -> Resp {
    let mut b = axum::http::Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        b = if x_api_key {
            b.header("x-api-key", k)
        } else {
            b.header("authorization", format!("Bearer {k}"))
        };
    }
    let req = match (json_body, raw) {
        (Some(v), _) => b
            .header("content-type", "application/json")
            .body(axum::body::Body::from(serde_json::to_vec(v).unwrap())),
        (None, Some(bytes)) => b
            .header("content-type", "application/octet-stream")
            .body(axum::body::Body::from(bytes.to_vec())),
        (None, None) => b.body(axum::body::Body::empty()),
    };
    send(r, req.unwrap()).await
}

/// Every operation of `openapi/openapi.json` with a security requirement, whatever it is:
/// 401 without a key and with unknown keys (both headers), 403 with a valid key whose role
/// is below the documented one (the only role named in its `api_key` requirement), and
/// authentication passes with that role and every higher one (with a known example
/// request: the expected 2xx). Operations without a security requirement answer without a
/// key. The route list comes from the document, so a documented new route is covered; the
/// next test makes sure every route the server defines is documented.
#[tokio::test]
async fn auth_every_secured_operation_of_the_openapi_document() {
    let t = test_app();
    let r = &t.router;
    let doc = openapi();
    let roles = ["read", "write", "admin"];
    let keys = [READ, WRITE, ADMIN];
    let mut secured = Vec::new();
    let mut public = Vec::new();
    let mut n = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{name}", "c").replace("{key}", SAMPLE_KEY);
        assert!(!uri.contains('{'), "unhandled path parameter in {path}");
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            let Some(sec) = op.get("security") else {
                fixtures(r).await;
                let resp = attempt(r, &method, &uri, None, false, None, None).await;
                assert!(
                    resp.status.is_success(),
                    "{method} {path} is documented without a security requirement but answers {} without a key: {}",
                    resp.status,
                    resp.text()
                );
                public.push(format!("{method} {path}"));
                continue;
            };
            let sec = sec.as_array().unwrap();
            assert_eq!(
                sec.len(),
                1,
                "{method} {path}: one security requirement: {sec:?}"
            );
            let scopes = sec[0]["api_key"].as_array().unwrap_or_else(|| {
                panic!("{method} {path}: the requirement names the api_key scheme: {sec:?}")
            });
            assert_eq!(scopes.len(), 1, "{method} {path}: one role: {scopes:?}");
            let need = roles
                .iter()
                .position(|r| *r == scopes[0].as_str().unwrap())
                .unwrap_or_else(|| panic!("{method} {path}: unknown role {scopes:?}"));
            secured.push(format!("{method} {path}"));
            let (_, body, raw) = request_for(&method, path, op, n);
            n += 1;
            let what = format!("{method} {path}");
            fixtures(r).await;
            for x_api_key in [false, true] {
                let resp = attempt(
                    r,
                    &method,
                    &uri,
                    None,
                    x_api_key,
                    body.as_ref(),
                    raw.as_deref(),
                )
                .await;
                resp.expect(401, Some("unauthorized"));
                let challenge = resp
                    .headers
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_string());
                assert!(
                    challenge
                        .as_deref()
                        .is_some_and(|c| c.starts_with("Bearer")),
                    "{what}: WWW-Authenticate {challenge:?}"
                );
                for unknown in [
                    "read-key-0123456789abcdeX",
                    "not-a-key-of-this-server-at-all",
                ] {
                    attempt(
                        r,
                        &method,
                        &uri,
                        Some(unknown),
                        x_api_key,
                        body.as_ref(),
                        raw.as_deref(),
                    )
                    .await
                    .expect(401, Some("unauthorized"));
                }
                for role in 0..need {
                    let resp = attempt(
                        r,
                        &method,
                        &uri,
                        Some(keys[role]),
                        x_api_key,
                        body.as_ref(),
                        raw.as_deref(),
                    )
                    .await;
                    let v = resp.expect(403, Some("forbidden"));
                    let msg = v["error"]["message"].as_str().unwrap();
                    assert!(
                        msg.contains(&format!("the operation needs {}", roles[need])),
                        "{what} with a {} key: {msg}",
                        roles[role]
                    );
                }
            }
            for role in need..roles.len() {
                // a fresh example each time (an insert needs a new key)
                let (want, body, raw) = request_for(&method, path, op, n);
                n += 1;
                fixtures(r).await;
                let resp = attempt(
                    r,
                    &method,
                    &uri,
                    Some(keys[role]),
                    role % 2 == 1,
                    body.as_ref(),
                    raw.as_deref(),
                )
                .await;
                let s = resp.status.as_u16();
                assert!(
                    s != 401 && s != 403,
                    "{what} with a {} key: {s} {}",
                    roles[role],
                    resp.text()
                );
                if let Some(w) = want {
                    assert_eq!(s, w, "{what} with a {} key: {}", roles[role], resp.text());
                }
            }
        }
    }
    // The document's secured operations include every one of the API's resources (so the
    // loop above cannot pass by reading an empty or truncated document).
    for op in [
        "POST /v1/scan",
        "POST /v1/scan/fingerprint",
        "POST /v1/search",
        "GET /v1/samples/{key}",
        "DELETE /v1/samples/{key}",
        "POST /v1/samples",
        "POST /v1/samples/apk",
        "GET /v1/collections",
        "POST /v1/collections",
        "GET /v1/collections/{name}",
        "DELETE /v1/collections/{name}",
        "GET /v1/collections/{name}/count",
        "POST /v1/collections/{name}/insert",
        "POST /v1/collections/{name}/upsert",
        "POST /v1/collections/{name}/delete",
        "POST /v1/collections/{name}/get",
        "POST /v1/collections/{name}/search",
        "POST /v1/collections/{name}/query",
    ] {
        assert!(
            secured.iter().any(|s| s == op),
            "{op} is not secured: {secured:?}"
        );
    }
    public.sort();
    assert_eq!(
        public,
        [
            "GET /healthz",
            "GET /metrics",
            "GET /readyz",
            "GET /v1/openapi.json"
        ],
        "operations documented without a key"
    );
    eprintln!(
        "checked {} secured operations and {} public ones from openapi/openapi.json",
        secured.len(),
        public.len()
    );
}

/// Every route the server defines (`.route("…"` in crates/server/src) is documented, and
/// on every documented path the methods the document does not list answer 405: so no
/// route or method escapes the test above by being left out of the document.
#[tokio::test]
async fn auth_every_served_route_and_method_is_documented() {
    let doc = openapi();
    let paths = doc["paths"].as_object().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut routes = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, _) in text.match_indices(".route(") {
            let rest = text[i + ".route(".len()..].trim_start();
            let lit = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(l, _)| l.to_string())
                .unwrap_or_else(|| panic!("{}: a .route( without a literal path", p.display()));
            routes.push(lit);
        }
    }
    assert!(
        routes.len() >= 20,
        "found only {} routes: {routes:?}",
        routes.len()
    );
    for r in &routes {
        assert!(
            paths.contains_key(r),
            "route {r} is served but not in openapi/openapi.json"
        );
    }
    let t = test_app();
    for (path, ops) in paths {
        let uri = path.replace("{name}", "c").replace("{key}", SAMPLE_KEY);
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if ops.get(m.to_lowercase()).is_some() {
                continue;
            }
            let resp = call(&t.router, m, &uri, Some(ADMIN), None).await;
            assert_eq!(
                resp.status.as_u16(),
                405,
                "{m} {path} is not documented but answers {}: {}",
                resp.status,
                resp.text()
            );
        }
    }
}
