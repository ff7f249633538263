//! The fast placement (H3 cells wholly inside one unit need no polygon
//! test) gives byte-identical outputs to the exact test on every sample:
//! 1 million simulated samples over the 11 163 communes of 2009. So does
//! finding the repeated test ids on disk first, against the table of every
//! id read, and keeping the accepted samples on disk and reading them back
//! part by part (many small parts), against holding them all.

use std::path::Path;

use crate::reform::shared;
use crate::util::{gapmap_ok, s};

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
                // The manifest records the command line, which differs by flag.
                if rel != "manifest.json" {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

/// Runs `analyze` with `args` (and `--out`) as it is, with
/// `--exact-placement`, with `--spill never` (the table of every test id
/// read, where the default Parquet run finds the repeated ids on disk
/// first), and with the samples on disk in parts of `part` samples (their
/// files in `--out`, then in a `--work-dir` of their own), and asserts
/// every output byte-identical; returns the first run's directory
/// and its files.
fn fast_equals_exact(dir: &Path, args: &[&str], part: usize) -> (std::path::PathBuf, Vec<String>) {
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut all = vec!["--quiet", "analyze"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--out", s(&out)]);
        all.extend_from_slice(extra);
        gapmap_ok(&all);
        out
    };
    let fast = run("fast", &[]);
    let a = files(&fast);
    let part = format!("--part-samples={part}");
    let work = dir.join("work");
    let elsewhere = format!("--work-dir={}", work.display());
    for (name, flag) in [
        ("exact", &["--exact-placement"][..]),
        ("in_memory", &["--spill=never"]),
        ("on_disk", &["--samples-on-disk=always", &part]),
        (
            "on_disk_elsewhere",
            &["--samples-on-disk=always", &part, &elsewhere],
        ),
    ] {
        let other = run(name, flag);
        let flag = flag.join(" ");
        assert_eq!(a, files(&other));
        for f in &a {
            let (x, y) = (
                std::fs::read(fast.join(f)).expect("read"),
                std::fs::read(other.join(f)).expect("read"),
            );
            assert!(x == y, "{f} differs between the default run and {flag}");
        }
    }
    // The working files have no name: nothing is left in --work-dir.
    assert_eq!(
        std::fs::read_dir(&work).expect("work dir made").count(),
        0,
        "files left in --work-dir"
    );
    (fast, a)
}

#[test]
fn fast_placement_is_byte_identical_to_the_exact_test_nationally() {
    let shared = shared();
    let (b, v) = (
        shared.join("boundaries_2009/communes.geojson"),
        shared.join("villages_wof.geojson"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("national.parquet");
    gapmap_ok(&[
        "--quiet",
        "simulate",
        "--boundaries",
        s(&b),
        "--villages",
        s(&v),
        "--out",
        s(&samples),
        "--samples",
        "1000000",
        "--seed",
        "11",
    ]);
    let (fast, outputs) = fast_equals_exact(
        dir.path(),
        &[
            "--samples",
            s(&samples),
            "--boundaries",
            s(&b),
            "--villages",
            s(&v),
            "--heatmap-format",
            "geojson,parquet",
        ],
        // About 900 000 accepted samples: seven parts per stage.
        150_000,
    );
    assert!(outputs.len() >= 20, "{outputs:?}");
    // The check can fail: the run placed samples in many communes, with
    // snapping and outside rejects (so both paths of the locator ran).
    let summary = crate::util::json(&fast.join("summary.json"));
    assert!(summary["rows"]["snapped"].as_u64().expect("snapped") > 1000);
    assert!(
        summary["rows"]["rejected"]["outside_boundaries"]
            .as_u64()
            .expect("outside")
            > 100
    );
}

#[test]
fn fast_placement_is_byte_identical_across_two_polygon_vintages() {
    // The memo of hexagons keeps each boundary set's cell-table value beside
    // a cell; two sets numbered differently (the 2009 communes and the 2025
    // ones of the default data, dated view) must each get their own. Enough
    // rows (three chunks of CHUNK_ROWS and a part) for the memo and the
    // locators to learn, then answer.
    let repo = crate::util::repo();
    let (old, new, villages) = (
        repo.join("data/vn_default/communes.geojson"),
        repo.join("data/vn_2025_default/communes_2025.geojson"),
        repo.join("data/vn_default/villages.geojson"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("two_vintages.parquet");
    gapmap_ok(&[
        "--quiet",
        "simulate",
        "--boundaries",
        s(&old),
        "--villages",
        s(&villages),
        "--out",
        s(&samples),
        "--samples",
        "400000",
        "--from",
        "2025-06",
        "--to",
        "2025-07",
        "--seed",
        "5",
    ]);
    let new_spec = format!("2025-07-01={}", s(&new));
    let (fast, _) = fast_equals_exact(
        dir.path(),
        &[
            "--samples",
            s(&samples),
            "--boundaries",
            s(&old),
            "--boundaries",
            &new_spec,
            "--levels",
            gapmap_core::boundaries::DEFAULT_LEVELS,
            "--levels",
            "province=province_code:province,commune=commune_code:commune",
        ],
        40_000,
    );
    // Both vintages reported units: June on the old, July on the new.
    let quota = std::fs::read_to_string(fast.join("quota.csv")).expect("quota");
    assert!(
        quota.contains("2025-06") && quota.contains("2025-07"),
        "{quota:.300}"
    );
}
