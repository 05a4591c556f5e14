//! The OpenAPI document, generated from the handlers' annotations.
//!
//! It is committed as `openapi/openapi.json`; the test
//! `openapi_document_matches_committed` regenerates it and fails on drift
//! (run it with `APKSIFT_UPDATE_OPENAPI=1` to rewrite the file).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "apksift",
        description = "Real-time Android malware detection by similarity: scan APKs, search TLSH digests, manage known samples and generic binary-vector collections. Errors are `{\"error\": {\"code\", \"message\"}}`. See docs/API.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        api::ops::healthz,
        api::ops::readyz,
        api::ops::metrics,
        api::ops::openapi_json,
        api::samples::scan,
        api::samples::scan_fingerprint,
        api::samples::search,
        api::samples::upsert_samples,
        api::samples::get_sample,
        api::samples::delete_sample,
        api::samples::upload_apk,
        api::collections::create,
        api::collections::list,
        api::collections::describe,
        api::collections::drop_collection,
        api::collections::count,
        api::collections::insert,
        api::collections::upsert,
        api::collections::delete_rows,
        api::collections::get_rows,
        api::collections::search,
        api::collections::query,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::encoding::Encoding)),
    modifiers(&Security),
    tags(
        (name = "scan", description = "Scan APKs and search TLSH digests (role read)"),
        (name = "samples", description = "Known samples (read to get, write to change)"),
        (name = "collections", description = "Generic binary-vector collections (read, write; admin to create or drop)"),
        (name = "operations", description = "Health, readiness, metrics (no key needed)"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "API key as `Authorization: Bearer KEY` (or the X-Api-Key header); roles read < write < admin",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// The document as pretty JSON with a trailing newline.
pub fn json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
