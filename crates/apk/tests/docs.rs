//! `docs/APK.md` lists every anomaly code defined in `src/anomaly.rs`.

#[test]
fn every_anomaly_code_is_documented() {
    let source = include_str!("../src/anomaly.rs");
    let doc = include_str!("../../../docs/APK.md");
    let mut n = 0;
    for line in source.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub const ")
            && rest.contains(": &str = \"")
        {
            let code = rest.split('"').nth(1).unwrap();
            assert!(
                doc.contains(&format!("| `{code}` |")),
                "docs/APK.md does not document `{code}`"
            );
            n += 1;
        }
    }
    assert!(n >= 50, "only {n} codes found");
}
