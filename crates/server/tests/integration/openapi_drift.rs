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
}

fn doc() -> serde_json::Value {
    serde_json::from_str(&apksift_server::openapi::json()).unwrap()
}

/// The properties of the schema a `$ref` (or an inline schema) names.
fn properties<'a>(doc: &'a serde_json::Value, schema: &'a serde_json::Value) -> Vec<&'a str> {
    let s = match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    };
    s["properties"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// utoipa keys component schemas by type name, so two `ToSchema` types of the same name
/// silently document one of them for both (this happened to `/v1/search`, whose request was
/// documented with the collections' search body). Every schema type of the server must have
/// a name of its own.
#[test]
fn openapi_schema_type_names_are_unique() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut names: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut pending = false;
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with("#[derive(") && l.contains("ToSchema") {
                pending = true;
            } else if pending && (l.starts_with("pub struct ") || l.starts_with("pub enum ")) {
                let name = l.split_whitespace().nth(2).unwrap();
                let name = name.trim_end_matches(['{', '(', ';']).to_string();
                names.entry(name).or_default().push(p.display().to_string());
                pending = false;
            } else if pending && l.starts_with("#[schema(as") {
                pending = false;
            }
        }
    }
    assert!(names.len() > 20, "found only {} schema types", names.len());
    let dups: Vec<_> = names.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(dups.is_empty(), "ToSchema types share a name: {dups:?}");
}

/// The documented request bodies of the two search endpoints are the ones their handlers
/// take (checked by field names, so a mix-up of schemas shows).
#[test]
fn openapi_search_bodies_are_the_handlers_bodies() {
    let d = doc();
    let body = |path: &str| {
        d["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    let samples = body("/v1/search");
    let p = properties(&d, &samples);
    for f in ["digests", "fingerprints", "k", "cutoff", "filter", "xlen"] {
        assert!(p.contains(&f), "/v1/search request lacks {f}: {p:?}");
    }
    assert!(
        !p.contains(&"vectors"),
        "/v1/search documents the collections body: {p:?}"
    );
    let coll = body("/v1/collections/{name}/search");
    let p = properties(&d, &coll);
    assert!(p.contains(&"vectors") && p.contains(&"field"), "{p:?}");
    assert!(!p.contains(&"digests"), "{p:?}");
}

/// Every documented path and method is routed: the router does not answer it with its
/// fallback ("no such route") or with 405.
#[tokio::test]
async fn openapi_every_documented_route_is_served() {
    use crate::common::*;
    let t = test_app();
    let d = doc();
    let mut checked = 0;
    for (path, ops) in d["paths"].as_object().unwrap() {
        let uri = path
            .replace("{name}", "c")
            .replace("{key}", &"0".repeat(64));
        assert!(!uri.contains('{'), "unhandled parameter in {path}");
        for method in ops.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let body = (m == "POST").then(|| serde_json::json!({}));
            let r = call(&t.router, &m, &uri, Some(ADMIN), body).await;
            assert_ne!(r.status.as_u16(), 405, "{m} {path}: {}", r.text());
            assert!(
                !(r.status.as_u16() == 404 && r.text().contains("no such route")),
                "{m} {path} is documented but not routed: {}",
                r.text()
            );
            checked += 1;
        }
    }
    assert!(checked >= 22, "only {checked} documented operations");
    // And the fallback does answer an undocumented path (so the check above can fail).
    let r = call(&t.router, "GET", "/v1/nope", Some(ADMIN), None).await;
    assert!(r.status.as_u16() == 404 && r.text().contains("no such route"));
}
