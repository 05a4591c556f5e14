//! Running the binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `apksift --db DB ARGS` (with optional stdin); asserts it did not panic.
pub fn apksift(db: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apksift"));
    cmd.arg("--db").arg(db).args(args);
    cmd.env_remove("APKSIFT_DB").env_remove("APKSIFT_STORE");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out: Output = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "apksift {args:?} panicked: {}",
        r.stderr
    );
    assert!(
        [0, 1, 2].contains(&r.code),
        "apksift {args:?} exited {}: {}",
        r.code,
        r.stderr
    );
    r
}

/// Writes the two demo APKs into `dir` and returns (known, variant).
pub fn demo_apks(dir: &Path) -> (PathBuf, PathBuf) {
    let scratch = dir.join("scratch-db");
    let r = apksift(&scratch, &["demo", "--out", dir.to_str().unwrap()], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    (
        dir.join("known-trojan.apk"),
        dir.join("variant-resigned.apk"),
    )
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `$APKSIFT_TESTDATA` or `<workspace>/../shared/data`, if it exists.
pub fn testdata() -> Option<PathBuf> {
    let p = match std::env::var_os("APKSIFT_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    p.is_dir().then_some(p)
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed (by its own handle) when dropped, e.g. on a failed assert.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): (status, body), with
/// chunked bodies decoded. `headers` are extra header lines.
pub fn http_call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    parse_response(&out)
}

/// (status, body) of a raw HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((len, tail)) = rest.split_once("\r\n") {
            let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
                break;
            };
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Ok((code, body))
}

/// Waits until `GET path` on `port` answers 200, while `child` runs.
pub fn wait_http_ok(port: u16, path: &str, child: &mut std::process::Child, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http_call(port, "GET", path, &[], b"") {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited with {st} before answering {path} on port {port}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not answer 200 on {path} (port {port}) within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Starts `apksift --db DB serve --listen 127.0.0.1:PORT EXTRA…` with `APKSIFT_API_KEYS`,
/// standard error into `log`; waits for `/readyz`. Returns the process and its port.
pub fn start_serve(db: &Path, keys: &str, extra: &[&str], log: &Path) -> (Proc, u16) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_apksift"));
    assert!(
        bin.is_file(),
        "the apksift binary {} is missing",
        bin.display()
    );
    let port = free_port();
    let child = Command::new(&bin)
        .arg("--db")
        .arg(db)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_remove("APKSIFT_DB")
        .env_remove("APKSIFT_STORE")
        .env_remove("APKSIFT_API_KEYS_FILE")
        .env("APKSIFT_API_KEYS", keys)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    wait_http_ok(port, "/readyz", &mut p.0, "apksift serve");
    (p, port)
}

/// Sends SIGTERM to a process this test started (by its id).
pub fn sigterm(child: &std::process::Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -TERM {}", child.id());
}

/// Waits for `child` to exit (at most `secs`).
pub fn wait_exit(
    child: &mut std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not exit within {secs} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
