//! The committed OpenAPI document equals the one generated from the code.
//! `APKSIFT_UPDATE_OPENAPI=1 cargo test -p apksift-server --test integration openapi`
//! rewrites it.

#[test]
fn openapi_document_matches_committed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json");
    let generated = apksift_server::openapi::json();
    if std::env::var_os("APKSIFT_UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the code; regenerate it with\n  APKSIFT_UPDATE_OPENAPI=1 cargo test -p apksift-server --test integration openapi_document_matches_committed\nand commit the result"
    );
    // sanity: every documented path is served (not 404 from the fallback)
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["paths"].as_object().unwrap().len() >= 18);
}
