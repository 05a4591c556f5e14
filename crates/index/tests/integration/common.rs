//! Shared helpers.
#![allow(dead_code)]
use std::sync::Arc;

use apksift_index::{Batch, Column, Database, FieldSchema, FieldType, IndexSpec, Options, Schema};
use apksift_storage::{Directory, MemDirectory};
use apksift_tlsh::{DIGEST_LEN, Digest};
use rand::{Rng, SeedableRng};

pub fn opts() -> Options {
    Options {
        background: false,
        memtable_rows: 1000,
        ..Options::default()
    }
}

pub fn mem_db() -> (Database, Arc<dyn Directory>) {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    (Database::open_dir(dir.clone(), opts()).unwrap(), dir)
}

/// pk + a TLSH field (tree) + a 64-bit binary field + scalars.
pub fn sample_schema() -> Schema {
    Schema::new(
        "sha256",
        vec![
            FieldSchema::new("tlsh", FieldType::Tlsh),
            FieldSchema::new("code", FieldType::BinaryVector { dim: 64 }),
            FieldSchema::new("family", FieldType::String { max_len: 64 }),
            FieldSchema::new("threat", FieldType::Int),
            FieldSchema::new("malware", FieldType::Bool),
        ],
    )
}

pub fn ivf_schema(dim: u32, nlist: u32) -> Schema {
    Schema::new(
        "id",
        vec![
            FieldSchema::new("v", FieldType::BinaryVector { dim })
                .with_index(IndexSpec::IvfFlat { nlist }),
        ],
    )
}

pub fn digest(rng: &mut impl Rng) -> Digest {
    let mut a = [0u8; DIGEST_LEN];
    rng.fill(&mut a[..]);
    Digest::from_bytes(a)
}

pub fn near(d: &Digest, rng: &mut impl Rng, flips: usize) -> Digest {
    let mut a = *d.as_bytes();
    for _ in 0..flips {
        let i = rng.random_range(3..DIGEST_LEN);
        a[i] ^= 1 << rng.random_range(0..8);
    }
    Digest::from_bytes(a)
}

pub struct SampleRow {
    pub key: String,
    pub tlsh: Option<Digest>,
    pub code: [u8; 8],
    pub family: Option<String>,
    pub threat: Option<i64>,
    pub malware: Option<bool>,
}

pub fn rows(n: usize, seed: u64, prefix: &str) -> Vec<SampleRow> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut root = digest(&mut rng);
    (0..n)
        .map(|i| {
            if i % 7 == 0 {
                root = digest(&mut rng);
            }
            let mut code = [0u8; 8];
            rng.fill(&mut code);
            SampleRow {
                key: format!("{prefix}{i:06}"),
                tlsh: (i % 13 != 5).then(|| {
                    let f = rng.random_range(0..8);
                    near(&root, &mut rng, f)
                }),
                code,
                family: (i % 5 != 0).then(|| ["Anubis", "ExoBot", "Kmin"][i % 3].to_string()),
                threat: (i % 11 != 0).then_some((i % 5) as i64),
                malware: Some(i % 2 == 0),
            }
        })
        .collect()
}

pub fn batch(rows: &[SampleRow]) -> Batch {
    let mut b = Batch {
        keys: rows.iter().map(|r| r.key.clone()).collect(),
        ..Batch::default()
    };
    b.columns.insert(
        "tlsh".into(),
        Column::Tlsh(rows.iter().map(|r| r.tlsh).collect()),
    );
    b.columns.insert(
        "code".into(),
        Column::Binary(rows.iter().flat_map(|r| r.code).collect()),
    );
    b.columns.insert(
        "family".into(),
        Column::Str(rows.iter().map(|r| r.family.clone()).collect()),
    );
    b.columns.insert(
        "threat".into(),
        Column::Int(rows.iter().map(|r| r.threat).collect()),
    );
    b.columns.insert(
        "malware".into(),
        Column::Bool(rows.iter().map(|r| r.malware).collect()),
    );
    b
}
