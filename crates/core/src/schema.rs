//! The two collections of an apksift store.

use apksift_index::{FieldSchema, FieldType, Schema};

/// Collection of samples: one row per APK (or per imported digest record).
pub const SAMPLES: &str = "samples";
/// Collection of extra components: one row per `classes*.dex` and native library.
pub const COMPONENTS: &str = "components";

/// TLSH fields of `samples` (also the component names of the whole file, the manifest,
/// `resources.arsc` and the first `classes.dex`).
pub const SAMPLE_TLSH_FIELDS: [&str; 4] = ["whole", "manifest", "resources", "dex"];

fn s(name: &str, max_len: u32) -> FieldSchema {
    FieldSchema::new(name, FieldType::String { max_len })
}

fn i(name: &str) -> FieldSchema {
    FieldSchema::new(name, FieldType::Int)
}

fn t(name: &str) -> FieldSchema {
    FieldSchema::new(name, FieldType::Tlsh)
}

/// Schema of `samples`. Primary key `key`: the lower-case SHA-256 for APKs and for imported
/// records that have one; `sha1:<hex>`, `md5:<hex>`, `<id_type>:<id>` or `tlsh:<digest>` for
/// imported records without a SHA-256 (see `docs/ARCHITECTURE.md`).
pub fn samples_schema() -> Schema {
    let mut sc = Schema::new(
        "key",
        vec![
            t("whole"),
            t("manifest"),
            t("resources"),
            t("dex"),
            s("id_type", 32),
            s("label", 16),
            s("family", 256),
            i("threat"),
            s("source", 1024),
            i("first_seen"),
            i("ingested_at"),
            s("package", 1024),
            s("version_code", 256),
            s("cert_sha256", 65_535),
            i("size"),
            s("file_type", 64),
            i("dex_count"),
            i("native_count"),
            s("anomalies", 65_535),
            s("component_keys", 65_535),
        ],
    );
    sc.description = "apksift samples v1".into();
    sc
}

/// Schema of `components`. Primary key `key` = `<sample key>/<kind>/<escaped name>`.
/// `label`, `family` and `threat` are copies of the sample's, so that one filter expression
/// works on both collections.
pub fn components_schema() -> Schema {
    let mut sc = Schema::new(
        "key",
        vec![
            t("tlsh"),
            s("kind", 16),
            s("name", 1024),
            s("sample", 512),
            s("sha256", 64),
            i("size"),
            s("label", 16),
            s("family", 256),
            i("threat"),
        ],
    );
    sc.description = "apksift components v1".into();
    sc
}
