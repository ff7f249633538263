//! The fast placement (H3 cells wholly inside one unit need no polygon
//! test) gives byte-identical outputs to the exact test on every sample:
//! 1 million simulated samples over the 11 163 communes of 2009.

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
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "--quiet",
            "analyze",
            "--samples",
            s(&samples),
            "--boundaries",
            s(&b),
            "--villages",
            s(&v),
            "--out",
            s(&out),
            "--heatmap-format",
            "geojson,parquet",
        ];
        args.extend_from_slice(extra);
        gapmap_ok(&args);
        out
    };
    let fast = run("fast", &[]);
    let exact = run("exact", &["--exact-placement"]);
    let (a, b) = (files(&fast), files(&exact));
    assert_eq!(a, b);
    assert!(a.len() >= 20, "{a:?}");
    for f in &a {
        let (x, y) = (
            std::fs::read(fast.join(f)).expect("read"),
            std::fs::read(exact.join(f)).expect("read"),
        );
        assert!(
            x == y,
            "{f} differs between the fast and the exact placement"
        );
    }
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
