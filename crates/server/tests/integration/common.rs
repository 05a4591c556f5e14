//! Shared helpers: a service over a temporary store, and request helpers.

use std::path::PathBuf;

use apksift_server::auth::{ApiKeys, Role};
use apksift_server::{AppState, Config, Limits, app};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const READ: &str = "read-key-0123456789abcdef";
pub const WRITE: &str = "write-key-0123456789abcdef";
pub const ADMIN: &str = "admin-key-0123456789abcdef";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub dir: tempfile::TempDir,
}

/// `APKSIFT_TEST_STORE`, when it names a Milvus server (`bash .ci/milvus.sh start`; the
/// tests need the cargo feature `milvus`): the service under test then keeps its store in
/// fresh Milvus collections, dropped when the test ends.
pub fn milvus_base() -> Option<String> {
    std::env::var("APKSIFT_TEST_STORE")
        .ok()
        .filter(|s| s.starts_with("milvus://"))
}

/// True when the tests run on Milvus; the few tests of embedded-only features (binary-
/// vector collections, WAL sequence numbers) print a SKIP line then.
pub fn on_milvus(test: &str) -> bool {
    let m = milvus_base().is_some();
    if m {
        println!("SKIP: {test}: embedded-store feature, the store is APKSIFT_TEST_STORE (Milvus)");
    }
    m
}

/// Where the test's store lives: the temporary directory, or a fresh prefix on Milvus.
fn location(dir: &tempfile::TempDir) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let Some(base) = milvus_base() else {
        return dir.path().to_str().unwrap().to_string();
    };
    let (addr, query) = base.split_once('?').unwrap_or((&base, ""));
    let rest = &addr["milvus://".len()..];
    let (hostport, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = match prefix.trim_matches('/') {
        "" => "apksift_srv",
        p => p,
    };
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut url = format!("milvus://{hostport}/{prefix}_{}_{n}", std::process::id());
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    url
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let b = self.state.backend();
        if b.kind() == "milvus" {
            for c in b.list_collections().unwrap_or_default() {
                let _ = b.drop_collection(&c);
            }
        }
    }
}

pub fn keys() -> ApiKeys {
    let mut k = ApiKeys::new();
    k.add(Role::Read, READ).unwrap();
    k.add(Role::Write, WRITE).unwrap();
    k.add(Role::Admin, ADMIN).unwrap();
    k
}

pub fn test_app_with(limits: Limits) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        limits,
        keys: keys(),
        data_dir: Some(PathBuf::from(dir.path())),
        ..Config::default()
    };
    let state = apksift_server::state::open_state(&location(&dir), false, config).unwrap();
    TestApp {
        router: app(state.clone()),
        state,
        dir,
    }
}

pub fn test_app() -> TestApp {
    test_app_with(Limits::default())
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.bytes))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Asserts the status and, for errors, the error code; returns the JSON.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        let v = self.json();
        if let Some(c) = code {
            assert_eq!(v["error"]["code"], c, "body: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        v
    }
}

pub async fn send(router: &Router, req: Request<Body>) -> Resp {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        bytes,
    }
}

pub fn request(method: &str, uri: &str, key: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(v).unwrap()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

pub async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Resp {
    send(router, request(method, uri, key, body.as_ref())).await
}

/// Creates collection `c` with a 256-bit binary vector `v`, a TLSH field `t`
/// and scalars `family` (string) and `threat` (int).
pub async fn make_collection(router: &Router) {
    call(
        router,
        "POST",
        "/v1/collections",
        Some(ADMIN),
        Some(serde_json::json!({
            "name": "c",
            "primary_key": "sha256",
            "fields": [
                {"name": "v", "type": "binary_vector", "dim": 256},
                {"name": "t", "type": "tlsh"},
                {"name": "family", "type": "string"},
                {"name": "threat", "type": "int"}
            ]
        })),
    )
    .await
    .expect(201, None);
}

/// A 32-byte vector with `ones` leading one bits, as base64.
pub fn vec_b64(ones: usize) -> String {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    for i in 0..ones {
        b[i / 8] |= 1 << (i % 8);
    }
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub const T1: &str = "T1D3A1F6C2A4F1C2B2E3E5D1A2B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F8091A";

/// Pseudo-random bytes with enough variety for TLSH.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A ZIP of stored entries (enough of an APK for fingerprinting).
pub fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in entries {
        let off = out.len() as u32;
        let crc = crc32fast::hash(data);
        let n = name.as_bytes();
        let mut lh = Vec::new();
        lh.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        lh.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        lh.extend_from_slice(&crc.to_le_bytes());
        lh.extend_from_slice(&(data.len() as u32).to_le_bytes());
        lh.extend_from_slice(&(data.len() as u32).to_le_bytes());
        lh.extend_from_slice(&(n.len() as u16).to_le_bytes());
        lh.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&lh);
        out.extend_from_slice(n);
        out.extend_from_slice(data);
        cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        cd.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(n.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(n);
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A small APK-like archive; `variant` changes a little of the dex.
pub fn apk(seed: u64, variant: u8) -> Vec<u8> {
    let mut dex = noise(seed, 40_000);
    dex[100] ^= variant;
    dex[20_000] ^= variant;
    zip(&[
        ("AndroidManifest.xml", noise(seed + 1, 3000)),
        ("classes.dex", dex),
        ("resources.arsc", noise(seed + 2, 8000)),
        ("lib/arm64-v8a/libx.so", noise(seed + 3, 20_000)),
    ])
}

/// A raw-body POST.
pub fn raw_post(uri: &str, key: &str, body: Vec<u8>, content_type: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}
