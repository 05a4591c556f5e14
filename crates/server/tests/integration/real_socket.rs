//! The service on a real socket: plain HTTP, graceful shutdown that drains
//! requests in flight, and HTTPS through rustls. The same drain through the
//! built `apksift serve` binary and SIGTERM is tested in crates/cli/tests/cli/service.rs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// Reads one HTTP/1.1 response (Connection: close) and returns (status, body).
async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> (u16, String) {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

async fn write_request<S: AsyncWrite + Unpin>(s: &mut S, method: &str, path: &str, body: &str) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_socket_serves_and_drains_in_flight_on_shutdown() {
    let t = test_app();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(apksift_server::serve(
        listener,
        t.router.clone(),
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(10),
    ));

    let mut s = TcpStream::connect(addr).await.unwrap();
    write_request(&mut s, "GET", "/healthz", "").await;
    let (status, body) = read_response(&mut s).await;
    assert_eq!(status, 200, "{body}");

    let create =
        json!({"name": "c", "fields": [{"name": "v", "type": "binary_vector", "dim": 256}]})
            .to_string();
    let mut s = TcpStream::connect(addr).await.unwrap();
    write_request(&mut s, "POST", "/v1/collections", &create).await;
    assert_eq!(read_response(&mut s).await.0, 201);

    // A request in flight: headers and half the body sent, then shutdown.
    let body = json!({"rows": [{"id": "a", "v": vec_b64(3)}]}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/collections/c/upsert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused once shutdown began.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener should be closed after the shutdown signal"
    );
    assert!(
        !server.is_finished(),
        "server must wait for the request in flight"
    );
    slow.write_all(rest.as_bytes()).await.unwrap();
    let (status, text) = read_response(&mut slow).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"rows\":1"), "{text}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops after draining")
        .unwrap()
        .unwrap();
    assert_eq!(t.state.backend().count("c").unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_socket_tls_with_rustls() {
    let t = test_app();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = t.router.clone();
    let (c2, k2) = (cert_path.clone(), key_path.clone());
    let server = tokio::spawn(async move {
        apksift_server::serve::serve_tls(
            listener,
            router,
            &c2,
            &k2,
            async {
                let _ = stop_rx.await;
            },
            Duration::from_secs(5),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    write_request(&mut tls, "GET", "/v1/collections", "").await;
    let (status, body) = read_response(&mut tls).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("collections"), "{body}");

    // Plain HTTP on the TLS port does not get an answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    write_request(&mut plain, "GET", "/healthz", "").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
