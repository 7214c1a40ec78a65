//! The fuzz targets' checks (`fuzz/src/lib.rs`, which uses only dbxport's public API) on every
//! committed seed (`fuzz/seeds/<target>/`) and every minimised finding
//! (`tests/data/fuzz-regressions/<target>/`), on stable, in the normal `cargo test`.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::PathBuf;

/// Every seed (`fuzz/seeds/<target>/`) and every minimised finding
/// (`tests/data/fuzz-regressions/<target>/`) of a target, through the target's function.
fn replay(target: &str, run: fn(&[u8])) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in [
        root.join("fuzz/seeds").join(target),
        root.join("tests/data/fuzz-regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let data = std::fs::read(&path).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "no inputs for {target}");
}

#[test]
fn prepare_inputs() {
    replay("prepare", checks::prepare);
}

#[test]
fn dropbox_responses_inputs() {
    replay("dropbox_responses", checks::dropbox_responses);
}

#[test]
fn api_arg_inputs() {
    replay("api_arg", checks::api_arg);
}

#[test]
fn paths_inputs() {
    replay("paths", checks::paths);
}

#[test]
fn config_inputs() {
    replay("config", checks::config);
}
