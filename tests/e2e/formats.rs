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

#[test]
fn outputs_do_not_depend_on_thread_count_or_row_order() {
    // The same rows shuffled with a fixed seed (the simulator's duplicated
    // uploads are identical rows, so which one is kept does not matter),
    // analysed on 1 and on 2 threads: every output is the same but
    // rejects.csv (line numbers) and the manifest (command and input hash).
    let dir = tempfile::tempdir().unwrap();
    let csv = simulate(dir.path(), "s.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..lines.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        lines.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let shuffled = dir.path().join("shuffled.csv");
    std::fs::write(&shuffled, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    let (b, v) = crate::util::default_data();
    let s = crate::util::s;
    let run = |samples: &std::path::Path, out: &str, threads: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_gapmap"))
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "analyze",
                "--samples",
                s(samples),
                "--boundaries",
                s(&b),
                "--villages",
                s(&v),
            ])
            .args([
                "--format",
                "geojson,fgb,gpkg",
                "--out",
                s(&dir.path().join(out)),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&csv, "one", "1");
    run(&shuffled, "two", "2");
    let mut stack = vec![std::path::PathBuf::new()];
    let mut compared = 0;
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.path().join("one").join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
                continue;
            }
            let name = r.to_string_lossy().into_owned();
            if name == "rejects.csv" || name == "manifest.json" {
                continue;
            }
            let a = std::fs::read(dir.path().join("one").join(&r)).unwrap();
            let c = std::fs::read(dir.path().join("two").join(&r)).unwrap();
            assert!(
                a == c,
                "{name} differs with another thread count and row order"
            );
            compared += 1;
        }
    }
    assert!(compared >= 30, "{compared}");
}
