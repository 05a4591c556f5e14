//! `apksift demo`: works on a fresh machine with nothing but the binary. Writes two related
//! synthetic APKs (a "known" sample and a re-signed variant with a small code change),
//! ingests the first as malware and scans the second.

use std::path::PathBuf;

use anyhow::{Context, Result};
use apksift_core::{Label, SampleMeta, ScanOptions, ThreatLevel};

use super::Status;
use crate::cli::DemoArgs;
use crate::output;
use crate::util::{self, StoreLoc};

/// Deterministic pseudo-random bytes with some structure (xorshift over a small alphabet
/// mixed with raw bytes), so that TLSH has variety to work with.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = (x >> 24) as u8;
        out.push(if i % 3 == 0 {
            b
        } else {
            b"abcdefgh_0123;()LV"
                .get((b % 18) as usize)
                .copied()
                .unwrap_or(b'a')
        });
    }
    out
}

/// A ZIP archive with stored entries.
fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in entries {
        let off = out.len() as u32;
        let crc = crc32fast::hash(data);
        let n = name.len() as u16;
        let len = data.len() as u32;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        cd.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&len.to_le_bytes());
        cd.extend_from_slice(&len.to_le_bytes());
        cd.extend_from_slice(&n.to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    let count = entries.len() as u16;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The two demo APKs: (known, variant).
pub fn demo_apks() -> (Vec<u8>, Vec<u8>) {
    let dex = bytes(0xA11CE, 48 * 1024);
    let mut dex2 = dex.clone();
    for i in (1000..1400).step_by(7) {
        dex2[i] ^= 0x5a; // a small code change
    }
    let res = bytes(0xBEEF, 12 * 1024);
    let man = bytes(0xF00D, 2 * 1024);
    let known = zip(&[
        ("AndroidManifest.xml", man.clone()),
        ("classes.dex", dex),
        ("resources.arsc", res.clone()),
        ("META-INF/CERT.RSA", bytes(1, 1500)),
    ]);
    let variant = zip(&[
        ("AndroidManifest.xml", man),
        ("classes.dex", dex2),
        ("resources.arsc", res),
        ("META-INF/CERT.RSA", bytes(2, 1500)), // re-signed
        ("assets/extra.bin", bytes(3, 30 * 1024)),
    ]);
    (known, variant)
}

pub fn run(loc: &StoreLoc, a: DemoArgs) -> Result<Status> {
    let out: PathBuf = match (&a.out, loc) {
        (Some(o), _) => o.clone(),
        (None, StoreLoc::Dir(dbp)) => {
            let mut s = dbp.clone().into_os_string();
            s.push(".demo-apks");
            PathBuf::from(s)
        }
        (None, StoreLoc::Milvus(_)) => std::env::temp_dir().join("apksift-demo-apks"),
    };
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let (known, variant) = demo_apks();
    let kp = out.join("known-trojan.apk");
    let vp = out.join("variant-resigned.apk");
    std::fs::write(&kp, &known).with_context(|| kp.display().to_string())?;
    std::fs::write(&vp, &variant).with_context(|| vp.display().to_string())?;
    let store = util::open_writer(loc)?;
    let fp = util::fingerprint_file(&kp, false)?;
    let meta = SampleMeta::new(Label::Malware)
        .family("Demo.Trojan")
        .threat(ThreatLevel::High)
        .source("apksift demo");
    store.ingest(&fp, &meta)?;
    eprintln!(
        "apksift demo: wrote {} and {}; ingested the first into {} as malware (Demo.Trojan); scanning the second:",
        kp.display(),
        vp.display(),
        loc
    );
    let fp = util::fingerprint_file(&vp, false)?;
    let mut v = store.scan(&fp, &ScanOptions::default())?;
    v.file = Some(vp.display().to_string());
    if a.json {
        output::json_line(&v)?;
    } else {
        output::print(&super::scan::human(&v))?;
    }
    store.close()?;
    Ok(if v.is_match() {
        Status::Match
    } else {
        Status::Clean
    })
}
