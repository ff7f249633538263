//! National scale (ignored by default: it reads ../shared/data and takes
//! minutes). Run: `cargo test --release --test e2e national -- --ignored --nocapture`.
//! 1 million simulated samples (override with GAPMAP_NATIONAL_SAMPLES) over
//! the 11 163 communes of 2009; every commune's count in quota.csv must equal
//! the brute-force point-in-polygon count of `oracle::brute_locate`.

use std::collections::HashMap;
use std::time::Instant;

use crate::oracle::{brute_locate, load_units};
use crate::util::{gapmap_ok, json, read_csv, repo, s};

#[test]
#[ignore = "needs ../shared/data and several minutes"]
fn national_quota_counts_equal_brute_force() {
    let shared = repo().join("../shared/data/vn");
    let (b, v) = (
        shared.join("boundaries_2009/communes.geojson"),
        shared.join("villages_wof.geojson"),
    );
    let n = std::env::var("GAPMAP_NATIONAL_SAMPLES").unwrap_or_else(|_| "1000000".to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("national.csv");
    let out = dir.path().join("out");
    let t = Instant::now();
    gapmap_ok(&[
        "simulate",
        "--boundaries",
        s(&b),
        "--villages",
        s(&v),
        "--out",
        s(&samples),
        "--samples",
        &n,
    ]);
    println!("simulate {n}: {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&b),
        "--villages",
        s(&v),
        "--out",
        s(&out),
    ]);
    println!("analyze: {:.1} s", t.elapsed().as_secs_f64());

    let units = load_units(&b, "commune_id");
    let (header, rows) = read_csv(&samples);
    let col = |n: &str| header.iter().position(|h| h == n).expect(n);
    let summary = json(&out.join("summary.json"));
    let (_, rejects) = read_csv(&out.join("rejects.csv"));
    // Only rows that passed every check but the boundary one are located by the
    // oracle: take the accepted rows as the input minus every rejected line
    // other than outside_boundaries, minus WIFI.
    let rejected_lines: HashMap<u64, String> = rejects
        .iter()
        .map(|r| (r[1].parse().expect("line"), r[2].clone()))
        .collect();
    let candidates: Vec<(f64, f64)> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            let line = *i as u64 + 2;
            !matches!(rejected_lines.get(&line).map(String::as_str), Some(x) if x != "outside_boundaries")
                && !r[col("network")].eq_ignore_ascii_case("wifi")
        })
        .map(|(_, r)| (r[col("lon")].parse().expect("lon"), r[col("lat")].parse().expect("lat")))
        .collect();
    let t = Instant::now();
    let halves: Vec<HashMap<String, u64>> = std::thread::scope(|sc| {
        let chunks: Vec<_> = candidates.chunks(candidates.len().div_ceil(2)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let units = &units;
                sc.spawn(move || {
                    let mut m: HashMap<String, u64> = HashMap::new();
                    for &(x, y) in chunk {
                        if let Some(c) = brute_locate(units, x, y) {
                            *m.entry(c).or_default() += 1;
                        }
                    }
                    m
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut count: HashMap<String, u64> = HashMap::new();
    for h in halves {
        for (k, v) in h {
            *count.entry(k).or_default() += v;
        }
    }
    println!(
        "brute force over {} points: {:.1} s",
        candidates.len(),
        t.elapsed().as_secs_f64()
    );
    let (_, quota) = read_csv(&out.join("quota.csv"));
    let communes: Vec<&Vec<String>> = quota.iter().filter(|r| r[1] == "commune").collect();
    assert_eq!(communes.len(), 11_163);
    let mismatches: Vec<String> = communes
        .iter()
        .filter(|r| r[5] != count.get(&r[2]).copied().unwrap_or(0).to_string())
        .map(|r| {
            format!(
                "{}: gapmap {} brute force {}",
                r[2],
                r[5],
                count.get(&r[2]).copied().unwrap_or(0)
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
    let total: u64 = count.values().sum();
    assert_eq!(summary["rows"]["accepted"].as_u64(), Some(total));
    println!("{total} accepted samples; every commune count equals the brute force");
}
