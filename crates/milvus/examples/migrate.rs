//! `milvus-migrate --from DIR|milvus://… --to DIR|milvus://… [--sample N]`: copies an apksift
//! store between the embedded engine and Milvus with a progress bar, then checks counts and a
//! sample of searches (exit code 1 when they disagree). The library call is
//! [`apksift_milvus::migrate::migrate`]; `apksift migrate` is meant to wrap it.

use apksift_index::{Database, Options};
use apksift_milvus::migrate::{Side, migrate};
use apksift_milvus::{MilvusEngine, MilvusUrl};

enum Open {
    Db(Database),
    Mv(MilvusEngine),
}

fn open(s: &str) -> Result<Open, Box<dyn std::error::Error>> {
    Ok(if MilvusUrl::is_milvus(s) {
        Open::Mv(MilvusEngine::connect(&MilvusUrl::parse(s)?)?)
    } else {
        Open::Db(Database::open(s, Options::default())?)
    })
}

fn side(o: &Open) -> Side<'_> {
    match o {
        Open::Db(d) => Side::Embedded(d),
        Open::Mv(m) => Side::Milvus(m),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let (Some(from), Some(to)) = (arg("--from"), arg("--to")) else {
        eprintln!(
            "usage: milvus-migrate --from DIR|milvus://HOST:PORT/PREFIX --to DIR|milvus://… [--sample N]"
        );
        std::process::exit(2);
    };
    let sample = arg("--sample").map_or(Ok(50), |s| s.parse())?;
    let (src, dst) = (open(&from)?, open(&to)?);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} rows {per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let rep = migrate(&side(&src), &side(&dst), sample, &mut |c, done, total| {
        bar.set_message(c.to_string());
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish();
    for (c, copied, before, after) in &rep.collections {
        println!("{c}: copied {copied}, source {before} rows, destination {after} rows");
    }
    println!(
        "searches compared: {}, mismatches: {}",
        rep.searches,
        rep.mismatches.len()
    );
    for m in &rep.mismatches {
        println!("  {m}");
    }
    if let Open::Db(d) = dst {
        d.close()?;
    }
    if !rep.ok() {
        std::process::exit(1);
    }
    Ok(())
}
