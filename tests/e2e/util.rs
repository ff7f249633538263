//! Helpers: run the binary, read CSV outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

pub fn gapmap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gapmap"))
        .args(args)
        .output()
        .expect("run gapmap")
}

/// Runs gapmap and asserts success, printing stderr on failure.
pub fn gapmap_ok(args: &[&str]) -> Output {
    let out = gapmap(args);
    assert!(
        out.status.success(),
        "gapmap {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// A CSV file as a header and rows of strings.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = r
        .records()
        .map(|rec| rec.expect("record").iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read json")).expect("parse json")
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
