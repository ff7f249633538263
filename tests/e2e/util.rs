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

/// The sum of a JSON object's counts (`summary.json`'s `rejected`, `excluded`).
pub fn total(counts: &serde_json::Value) -> u64 {
    counts
        .as_object()
        .expect("an object of counts")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The embedded default boundaries and villages (Bắc Kạn + Quảng Ninh).
pub fn default_data() -> (PathBuf, PathBuf) {
    (
        repo().join("data/vn_default/communes.geojson"),
        repo().join("data/vn_default/villages.geojson"),
    )
}

/// Simulates one month (2025-06) over the default data into `out`.
pub fn simulate_default(out: &Path, seed: u64, samples: u64, dirty_rate: f64) {
    simulate_default_months(out, seed, samples, dirty_rate, ("2025-06", "2025-06"));
}

/// Simulates the months `from..=to` over the default data into `out`
/// (`samples` a month).
pub fn simulate_default_months(
    out: &Path,
    seed: u64,
    samples: u64,
    dirty_rate: f64,
    (from, to): (&str, &str),
) {
    let (b, v) = default_data();
    let (seed, samples, dirty) = (
        seed.to_string(),
        samples.to_string(),
        dirty_rate.to_string(),
    );
    gapmap_ok(&[
        "simulate",
        "--boundaries",
        s(&b),
        "--villages",
        s(&v),
        "--out",
        s(out),
        "--seed",
        &seed,
        "--from",
        from,
        "--to",
        to,
        "--samples",
        &samples,
        "--dirty-rate",
        &dirty,
    ]);
}

/// Ray casting (crossing number) on a closed ring: an oracle independent of geo and h3o.
pub fn in_ring(x: f64, y: f64, ring: &[[f64; 2]]) -> bool {
    let mut c = false;
    for w in ring.windows(2) {
        let ([x1, y1], [x2, y2]) = (w[0], w[1]);
        if (y1 > y) != (y2 > y) && x < (x2 - x1) * (y - y1) / (y2 - y1) + x1 {
            c = !c;
        }
    }
    c
}

/// Runs `gapmap analyze` on `samples` over the default boundaries into
/// `out`, whatever its outcome.
pub fn analyze_default_run(samples: &Path, out: &Path) -> Output {
    let (b, _) = default_data();
    gapmap(&[
        "analyze",
        "--samples",
        s(samples),
        "--boundaries",
        s(&b),
        "--out",
        s(out),
    ])
}

/// Analyses `samples` over the default boundaries into `out`, asserting success.
pub fn analyze_default(samples: &Path, out: &Path) {
    let o = analyze_default_run(samples, out);
    assert!(
        o.status.success(),
        "gapmap analyze {} failed: {}\n{}",
        samples.display(),
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
}
