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
