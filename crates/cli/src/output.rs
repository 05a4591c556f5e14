//! Printing helpers.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// Writes one JSON value on one line to stdout.
pub fn json_line<T: Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes one pretty JSON value to stdout.
pub fn json_pretty<T: Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes text to stdout (propagating broken pipes as errors).
pub fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    Ok(())
}

/// Prints a per-file error on stderr, and as a JSON object on stdout in JSON mode.
pub fn file_error(file: &str, err: &anyhow::Error, json: bool) -> Result<()> {
    eprintln!("apksift: {err:#}");
    if json {
        json_line(&serde_json::json!({ "file": file, "error": format!("{err:#}") }))?;
    }
    Ok(())
}

/// First 16 hex digits of a key, for human output.
pub fn short(k: &str) -> &str {
    k.get(..16).unwrap_or(k)
}
