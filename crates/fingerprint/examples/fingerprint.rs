//! Prints the fingerprint of each file given as JSON (one object per line).
//!
//! `cargo run -p apksift-fingerprint --example fingerprint -- [--entries] FILE...`

fn main() {
    let mut opts = apksift_fingerprint::Options::default();
    for arg in std::env::args().skip(1) {
        if arg == "--entries" {
            opts.include_entries = true;
            continue;
        }
        match std::fs::read(&arg) {
            Ok(bytes) => {
                let t = std::time::Instant::now();
                let fp = apksift_fingerprint::fingerprint(&bytes, &opts);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                match serde_json::to_string(&fp) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("{arg}: {e}"),
                }
                eprintln!("{arg}: {ms:.1} ms");
            }
            Err(e) => eprintln!("{arg}: {e}"),
        }
    }
}
