//! Generates the Milvus gRPC client from the vendored protos (feature `client` only).

fn main() {
    #[cfg(feature = "client")]
    generate();
}

#[cfg(feature = "client")]
fn generate() {
    const FILES: [&str; 6] = [
        "common.proto",
        "feder.proto",
        "milvus.proto",
        "msg.proto",
        "rg.proto",
        "schema.proto",
    ];
    for f in FILES {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
        // SAFETY of intent: build scripts are single-threaded; prost-build reads PROTOC.
        unsafe_set_protoc(protoc);
    }
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // The `Connect` RPC would clash with the generated `connect` constructor.
        .build_transport(false)
        .compile_protos(&["proto/milvus.proto"], &["proto"])
        .expect("compile Milvus protos");
}

#[cfg(feature = "client")]
#[allow(unsafe_code)]
fn unsafe_set_protoc(p: std::path::PathBuf) {
    // `set_var` is unsafe in edition 2024 because of other threads; a build script has none.
    unsafe { std::env::set_var("PROTOC", p) };
}
