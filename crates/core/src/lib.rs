/*!
apksift's domain layer: the APK sample store on the embedded engine
([`apksift_index`]), ingest of fingerprinted APKs, import of known digests, scan verdicts and
direct TLSH search. Synchronous, no HTTP, no async runtime: the CLI calls it directly and the
server calls it from blocking tasks. [`Store`] is `Clone + Send + Sync`; clones share one
engine.

```no_run
use apksift_core::{Label, SampleMeta, ScanOptions, Store, StoreOptions, ThreatLevel};
use apksift_fingerprint::{fingerprint, Options};

let store = Store::open("/var/lib/apksift", StoreOptions::default())?;

// Ingest a known sample.
let bytes = std::fs::read("anubis.apk")?;
let fp = fingerprint(&bytes, &Options::default());
let meta = SampleMeta::new(Label::Malware).family("Anubis").threat(ThreatLevel::High);
store.ingest(&fp, &meta)?;

// Scan a new one.
let fp = fingerprint(&std::fs::read("suspicious.apk")?, &Options::default());
let verdict = store.scan(&fp, &ScanOptions::default())?;
println!("{}", serde_json::to_string_pretty(&verdict)?);
# Ok::<(), Box<dyn std::error::Error>>(())
```

# API

| call | what |
|---|---|
| [`Store::open`]`(dir, `[`StoreOptions`]`)` | open or create the store (single writer; takes the directory lock) |
| [`Store::open_read_only`] | read-only replica of an existing store (follows the writer) |
| [`Store::from_database`] / [`Store::database`] | wrap an open [`apksift_index::Database`] / reach it (backup, inspect, metrics) |
| [`Store::ingest`]`(&Fingerprint, &`[`SampleMeta`]`)` → [`IngestOutcome`] | upsert one APK and its components |
| [`Store::ingest_batch`] | the same for many, in a few engine writes |
| [`Store::import_digests`]`(reader, `[`ImportFormat`]`, &`[`ImportOptions`]`)` → [`ImportReport`] | MalwareBazaar CSV, simple CSV/TSV/JSONL, `all_digests.csv` |
| [`Store::get_sample`]`(key)` → `Option<`[`Sample`]`>` | one stored sample |
| [`Store::delete_sample`]`(key)` → `bool` | delete a sample and its component rows |
| [`Store::scan`]`(&Fingerprint, &`[`ScanOptions`]`)` → [`Verdict`] | the verdict for one APK |
| [`Store::search_digests`]`(&[Digest], &`[`SearchOptions`]`)` → `Vec<Vec<`[`Match`]`>>` | nearest stored digests of each query digest |
| [`Store::stats`] → [`StoreStats`] | row counts and engine statistics |
| [`Store::flush`], [`Store::close`] | flush memtables / stop background work |

Errors are [`Error`]: [`Error::Invalid`] and [`Error::NotFound`] are the caller's fault
([`Error::is_client_error`]), [`Error::ReadOnly`] is a write on a replica, the rest are
server-side.

# Collections

`samples` (primary key `key`): one row per APK, keyed by its lower-case SHA-256, with TLSH
fields `whole`, `manifest`, `resources`, `dex` (`classes.dex`) and scalars `label`
(`malware|grayware|benign|unknown`), `family`, `threat` (0 none, 1 low, 2 medium, 3 high,
4 critical), `source`, `first_seen`, `ingested_at` (unix seconds), `package`, `version_code`,
`cert_sha256` (comma-separated), `size`, `file_type`, `dex_count`, `native_count`,
`anomalies` (codes, comma-separated), `component_keys` (newline-separated), `id_type`.
Imported records without an APK are rows too: keyed by SHA-256 when they have one, else
`sha1:<hex>`, `md5:<hex>`, `<id_type>:<id>` (e.g. `cluster:…`) or, with no identifier at all,
`tlsh:<T1 digest>`.

`components` (primary key `<sample key>/<kind>/<escaped name>`): one row per `classes*.dex`
and per native library that has a TLSH digest, with `tlsh`, `kind` (`dex|native`), `name`,
`sample`, `sha256`, `size` and copies of the sample's `label`, `family`, `threat`.
Re-ingesting a sample replaces its rows and deletes the ones that no longer exist.

# Verdicts

A component *matches* a stored one when their TLSH distance is `< cutoff` (default
[`DEFAULT_CUTOFF`]); the paper's false-positive and detection rates for the cutoff come with
every verdict ([`rates`]). **malicious**: the exact SHA-256, the whole file or a dex file
matches a sample labelled `malware`. **suspicious**: only the manifest, `resources.arsc` or a
native library matches malware, or anything matches a `grayware`/`unknown` sample.
**no_match**: nothing else (matches with `benign` samples are listed but never raise a
verdict; an exact match with a benign sample is `no_match`). The figures behind this policy
are in `docs/DETECTION.md`.
*/

pub mod backend;
mod error;
pub mod import;
pub mod meta;
pub mod rates;
mod scan;
pub mod schema;
mod search;
mod store;

pub use backend::{Backend, View, Written};
pub use error::{Error, Result};
pub use import::{ImportFormat, ImportOptions, ImportReport, RowIssue};
pub use meta::{Label, SampleMeta, ThreatLevel, normalize_key, normalize_sha256};
pub use rates::PaperRates;
pub use scan::{
    ComponentHit, ComponentResult, DEFAULT_CUTOFF, MATCH_RULE, MAX_CUTOFF, Neighbour, ScanOptions,
    Verdict, VerdictKind, Via, WEAK_SINGLE_CUTOFF,
};
pub use search::{Match, SearchField, SearchOptions};
pub use store::{
    IngestOutcome, MAX_COMPONENTS_PER_SAMPLE, MILVUS_SCHEME, Sample, Store, StoreOptions,
    StoreStats, escape_key_name, is_milvus_url, kind_name,
};

/// Re-exported so that callers need not depend on the fingerprint crate for the basics.
pub use apksift_fingerprint::{Fingerprint, Options as FingerprintOptions, fingerprint};
pub use apksift_tlsh::Digest;
