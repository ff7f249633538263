//! Parquet and CSV inputs agree; repeated runs are byte-identical.

use crate::util::{analyze_default, read_csv, simulate_default};

fn simulate(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    simulate_default(&p, 3, 3000, 0.05);
    p
}

#[test]
fn parquet_and_csv_give_the_same_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = simulate(dir.path(), "s.csv");
    let pq = simulate(dir.path(), "s.parquet");
    analyze_default(&csv, &dir.path().join("a"));
    analyze_default(&pq, &dir.path().join("b"));
    for f in ["quota.csv", "unit_stats.csv"] {
        let a = std::fs::read(dir.path().join("a").join(f)).expect("a");
        let b = std::fs::read(dir.path().join("b").join(f)).expect("b");
        assert!(a == b, "{f} differs between CSV and Parquet input");
    }
    // Rejects: same rows and reasons; Parquet lines are rows (CSV line - 1).
    let (_, ra) = read_csv(&dir.path().join("a/rejects.csv"));
    let (_, rb) = read_csv(&dir.path().join("b/rejects.csv"));
    assert!(
        ra.len() > 50,
        "the 5 % dirty rate yields rejects ({})",
        ra.len()
    );
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(
            x[1].parse::<u64>().unwrap(),
            y[1].parse::<u64>().unwrap() + 1
        );
        assert_eq!(x[2..], y[2..]);
    }
}

#[test]
fn runs_are_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = simulate(dir.path(), "s.csv");
    let again = dir.path().join("again.csv");
    std::fs::copy(&csv, &again).expect("copy");
    let csv2 = simulate(dir.path(), "s.csv"); // re-simulating with the same seed …
    assert_eq!(
        std::fs::read(&csv2).unwrap(),
        std::fs::read(&again).unwrap(),
        "… gives the same file"
    );
    analyze_default(&csv, &dir.path().join("a"));
    analyze_default(&csv, &dir.path().join("b"));
    let mut names = Vec::new();
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.path().join("a").join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                names.push(r);
            }
        }
    }
    names.sort();
    // quota, unit_stats, rejects, summary and five heatmap layers.
    assert!(names.len() >= 9, "{names:?}");
    for n in names {
        if n == std::path::Path::new("manifest.json") {
            // It records the command, whose --out differs; what it says of
            // the outputs must not.
            let m = |d: &str| {
                crate::util::json(&dir.path().join(d).join("manifest.json"))["outputs"].clone()
            };
            assert_eq!(m("a"), m("b"));
            continue;
        }
        let a = std::fs::read(dir.path().join("a").join(&n)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(&n)).unwrap();
        assert!(a == b, "{n:?} differs between runs");
    }
}
