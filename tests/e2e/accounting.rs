//! Every row accounted for, on a fixture whose numbers are worked out by hand.
//!
//! `wards.geojson` has two regions (levels `region=reg_code:reg_name`,
//! `ward=ward_code:ward_name`): wards 0101 (lon 105.0–105.1) and 0102
//! (105.1–105.2) at lat 21.0–21.1 in region 01, ward 0201 (105.0–105.2,
//! lat 21.1–21.2) in region 02. `a.csv` (20 rows, lat in column
//! `latitude`) then `b.csv` (2 rows).

use crate::util::{fixture, gapmap_ok, json, read_csv, s};

const LEVELS: &str = "region=reg_code:reg_name,ward=ward_code:ward_name";

/// `analyze` of `samples` on `wards.geojson` (latitude in column `latitude`).
fn analyze_wards(
    samples: &[&std::path::Path],
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let w = fixture("wards.geojson");
    let mut args = vec!["analyze", "--samples"];
    args.extend(samples.iter().map(|p| s(p)));
    args.extend([
        "--boundaries",
        s(&w),
        "--levels",
        LEVELS,
        "--out",
        s(out),
        "--column",
        "lat=latitude",
    ]);
    args.extend_from_slice(extra);
    gapmap_ok(&args)
}

fn run(extra: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let (a, b) = (fixture("a.csv"), fixture("b.csv"));
    let mut args = vec!["--quota", "2"];
    args.extend_from_slice(extra);
    let o = analyze_wards(&[&a, &b], &out, &args);
    (dir, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The ways of finding duplicate test ids: the table of every id read, and
/// the ids that repeat found first on disk; each must give the hand-worked
/// figures.
const SPILL: [&str; 2] = ["never", "always"];

#[test]
fn rows_read_equals_accepted_plus_excluded_plus_rejected() {
    for spill in SPILL {
        rows_add_up(spill);
    }
}

fn rows_add_up(spill: &str) {
    let (dir, stdout) = run(&["--from", "2025-03", "--to", "2025-04", "--spill", spill]);
    let out = dir.path().join("out");
    let summary = json(&out.join("summary.json"));
    let rows = &summary["rows"];
    // a.csv lines 2–21 (20 rows) + b.csv lines 2–3 (2 rows).
    assert_eq!(rows["read"], 22);
    // t1 (L2), t2 (L3), t3 (L4), t12 snapped (L14), t15 on the 0101/0102 edge
    // (L17), t17 failed test (L19), second t9 (L20: the first t9 failed
    // bad_speed, so this is the first that passes the earlier checks), t20 (b L3).
    assert_eq!(rows["accepted"], 8);
    assert_eq!(rows["excluded"]["wifi"], 1, "t4 (L5)");
    assert_eq!(rows["excluded"]["outside_window"], 1, "t14 (L16), May");
    let r = &rows["rejected"];
    assert_eq!(
        r["missing_field"], 3,
        "t5 no device (L6), t13 truncated (L15), blank test_id (L18)"
    );
    assert_eq!(r["bad_timestamp"], 1, "t6 (L7), no offset");
    assert_eq!(r["bad_coordinates"], 2, "t7 0,0 (L8), t8 inf (L9)");
    assert_eq!(r["bad_speed"], 2, "t9 -1 (L10), t10 NaN latency (L11)");
    assert_eq!(
        r["duplicate_test_id"], 3,
        "t1 (L12), t11 (L21), t2 in b.csv (L2)"
    );
    assert_eq!(r["outside_boundaries"], 1, "t11 (L13)");
    assert_eq!(rows["snapped"], 1, "t12, 311 m east of ward 0102");
    assert!(
        stdout.contains("rows read 22 = accepted 8 + excluded 2"),
        "{stdout}"
    );
    assert_eq!(summary["window"]["from"], "2025-03");
    assert_eq!(summary["window"]["to"], "2025-04");
    assert_eq!(summary["levels"], serde_json::json!(["region", "ward"]));
}

#[test]
fn rejects_csv_lists_each_rejected_row_with_physical_line() {
    for spill in SPILL {
        rejects_listed(spill);
    }
}

fn rejects_listed(spill: &str) {
    let (dir, _) = run(&["--from", "2025-03", "--to", "2025-04", "--spill", spill]);
    let (header, rows) = read_csv(&dir.path().join("out/rejects.csv"));
    assert_eq!(header, ["file", "line", "reason", "test_id"]);
    let got: Vec<(String, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            let file = std::path::Path::new(&r[0])
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (file, r[1].as_str(), r[2].as_str(), r[3].as_str())
        })
        .collect();
    let want: Vec<(String, &str, &str, &str)> = [
        ("a.csv", "6", "missing_field", "t5"),
        ("a.csv", "7", "bad_timestamp", "t6"),
        ("a.csv", "8", "bad_coordinates", "t7"),
        ("a.csv", "9", "bad_coordinates", "t8"),
        ("a.csv", "10", "bad_speed", "t9"),
        ("a.csv", "11", "bad_speed", "t10"),
        ("a.csv", "12", "duplicate_test_id", "t1"),
        ("a.csv", "13", "outside_boundaries", "t11"),
        ("a.csv", "15", "missing_field", "t13"),
        ("a.csv", "18", "missing_field", ""),
        ("a.csv", "21", "duplicate_test_id", "t11"),
        ("b.csv", "2", "duplicate_test_id", "t2"),
    ]
    .into_iter()
    .map(|(f, l, r, t)| (f.to_owned(), l, r, t))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn quota_rows_per_month_level_unit_with_utc7_months() {
    let (dir, _) = run(&["--from", "2025-03", "--to", "2025-04"]);
    let (header, rows) = read_csv(&dir.path().join("out/quota.csv"));
    assert_eq!(
        header,
        [
            "month",
            "level",
            "code",
            "name",
            "parent_code",
            "samples",
            "devices",
            "quota",
            "met",
            "deficit",
            "vintage",
            "effective_samples",
            "cells",
            "villages_measured",
            "share_villages_reached"
        ]
    );
    // The last four columns: no device tests twice in one cell and day here, so
    // effective = samples; the accepted points lie at least 0.03° (3 km) apart
    // but for t2 and t20 (one point, in different months), so each sample has
    // its own H3 cell (edge 461 m) and cells = samples; no villages were given.
    let want = [
        // March: 0101 = t1 (16:59:59Z = 23:59:59 local), t15, t17 (devices d1, d2);
        // 0102 = t20; 0201 = t3 (00:30+09:00 on 1 April = 22:30 local on 31 March).
        [
            "2025-03", "region", "01", "North", "", "4", "3", "2", "true", "0", "initial", "4",
            "4", "", "",
        ],
        [
            "2025-03", "region", "02", "South", "", "1", "1", "2", "false", "1", "initial", "1",
            "1", "", "",
        ],
        [
            "2025-03", "ward", "0101", "Ward A", "01", "3", "2", "2", "true", "0", "initial", "3",
            "3", "", "",
        ],
        [
            "2025-03", "ward", "0102", "Ward B", "01", "1", "1", "2", "false", "1", "initial", "1",
            "1", "", "",
        ],
        [
            "2025-03", "ward", "0201", "Ward C", "02", "1", "1", "2", "false", "1", "initial", "1",
            "1", "", "",
        ],
        // April: 0102 = t2 (17:00Z on 31 March = midnight local) and snapped t12, one device;
        // 0201 = the second t9.
        [
            "2025-04", "region", "01", "North", "", "2", "1", "2", "true", "0", "initial", "2",
            "2", "", "",
        ],
        [
            "2025-04", "region", "02", "South", "", "1", "1", "2", "false", "1", "initial", "1",
            "1", "", "",
        ],
        [
            "2025-04", "ward", "0101", "Ward A", "01", "0", "0", "2", "false", "2", "initial", "0",
            "0", "", "",
        ],
        [
            "2025-04", "ward", "0102", "Ward B", "01", "2", "1", "2", "true", "0", "initial", "2",
            "2", "", "",
        ],
        [
            "2025-04", "ward", "0201", "Ward C", "02", "1", "1", "2", "false", "1", "initial", "1",
            "1", "", "",
        ],
    ];
    assert_eq!(rows, want.map(|r| r.map(str::to_owned)).to_vec());
    let summary = json(&dir.path().join("out/summary.json"));
    let march_wards = &summary["quota"][1];
    assert_eq!(march_wards["level"], "ward");
    assert_eq!(march_wards["units_met"], 1);
    assert!((march_wards["share_met"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn unit_stats_hand_computed() {
    let (dir, _) = run(&["--from", "2025-03", "--to", "2025-04"]);
    let (header, rows) = read_csv(&dir.path().join("out/unit_stats.csv"));
    assert_eq!(
        header,
        [
            "month",
            "level",
            "code",
            "carrier",
            "samples",
            "devices",
            "download_median_mbps",
            "download_p10_mbps",
            "download_p90_mbps",
            "upload_median_mbps",
            "latency_median_ms",
            "vintage"
        ]
    );
    let find = |m: &str, code: &str, c: &str| {
        rows.iter()
            .find(|r| r[0] == m && r[2] == code && r[3] == c)
            .cloned()
            .unwrap_or_else(|| panic!("{m} {code} {c}"))
    };
    // 0101 March: downloads 10, 20, 0 → sorted 0, 10, 20: median 10;
    // p10 = 0 + 0.2 × 10 = 2; p90 = 10 + 0.8 × 10 = 18. Uploads 2, 4 → 3;
    // latencies 30, 20 → 25 (t17 has neither). All three are Viettel
    // (viettel, Viettel, 452-04).
    let want = [
        "2025-03", "ward", "0101", "ALL", "3", "2", "10", "2", "18", "3", "25", "initial",
    ];
    assert_eq!(find("2025-03", "0101", "ALL"), want.map(str::to_owned));
    let viettel = find("2025-03", "0101", "Viettel");
    assert_eq!(
        viettel[4..],
        want[4..].iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]
    );
    // 0102 April, VinaPhone (vnpt, Vinaphone): 30 and 8 → median 19,
    // p10 = 8 + 0.1 × 22 = 10.2, p90 = 8 + 0.9 × 22 = 27.8; uploads 5, 1 → 3; latency 40 only.
    assert_eq!(
        find("2025-04", "0102", "VinaPhone"),
        [
            "2025-04",
            "ward",
            "0102",
            "VinaPhone",
            "2",
            "1",
            "19",
            "10.2",
            "27.8",
            "3",
            "40",
            "initial"
        ]
        .map(str::to_owned)
    );
    // b.csv's 452-01 is MobiFone.
    assert_eq!(find("2025-03", "0102", "MobiFone")[4], "1");
    // A unit without samples still has its ALL row, with empty statistics.
    assert_eq!(
        find("2025-04", "0101", "ALL"),
        [
            "2025-04", "ward", "0101", "ALL", "0", "0", "", "", "", "", "", "initial"
        ]
        .map(str::to_owned)
    );
    // One ALL row per quota row: 2 months × 5 units.
    assert_eq!(rows.iter().filter(|r| r[3] == "ALL").count(), 10);
}

#[test]
fn default_window_spans_rows_that_pass_every_check() {
    let (dir, _) = run(&[]);
    let summary = json(&dir.path().join("out/summary.json"));
    // t14 (May) passes every check, so the default window runs March to May.
    assert_eq!(summary["window"]["from"], "2025-03");
    assert_eq!(summary["window"]["to"], "2025-05");
    assert_eq!(summary["rows"]["excluded"]["outside_window"], 0);
    assert_eq!(summary["rows"]["accepted"], 9);
}

#[test]
fn repeated_samples_flag_equals_one_flag_with_several_files() {
    let (one, _) = run(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let (a, b, w) = (fixture("a.csv"), fixture("b.csv"), fixture("wards.geojson"));
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&a),
        "--boundaries",
        s(&w),
        "--samples",
        s(&b),
        "--levels",
        LEVELS,
        "--out",
        s(&out),
        "--column",
        "lat=latitude",
        "--quota",
        "2",
    ]);
    for f in ["quota.csv", "unit_stats.csv", "rejects.csv", "summary.json"] {
        let x = std::fs::read(one.path().join("out").join(f)).expect("one flag");
        let y = std::fs::read(out.join(f)).expect("repeated flag");
        assert!(x == y, "{f} differs");
    }
}

#[test]
fn duplicates_and_rejects_keep_input_order_across_pieces_and_chunks() {
    // Ingestion checks rows in pieces of 4 096 within chunks (of
    // CSV_CHUNK_ROWS: this file is CSV) and accounts for one chunk while the
    // next is placed: a repeat of a test id must be found whichever piece or
    // chunk holds the first row, and the first row that passes the checks is
    // the one kept. Oracle: a naive loop.
    const C: usize = gapmap_core::ingest::CSV_CHUNK_ROWS;
    const N: usize = C + 3 * 4_096 + 7;
    // (row, row whose test id it repeats): across a piece boundary, a chunk
    // boundary, back to the very first row, and after a failed first row.
    let repeats = [
        (4_096, 4_095),
        (C, 0),
        (C + 7_232, C - 1),
        (8_192, 8_191),
        (12_288, 8_191),
    ];
    let bad = [8_191, 20_000]; // bad timestamps: not kept, not "seen"
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("many.csv");
    let id = |i: usize| repeats.iter().find(|r| r.0 == i).map_or(i, |r| r.1);
    let mut text =
        String::from("test_id,timestamp,latitude,lon,carrier,network,download_mbps,device_id\n");
    for i in 0..N {
        let ts = if bad.contains(&i) {
            "2025-03-15T10:00:00"
        } else {
            "2025-03-15T10:00:00Z"
        };
        text.push_str(&format!(
            "t{},{ts},21.05,105.05,viettel,LTE,{},d{}\n",
            id(i),
            1 + i % 50,
            i % 997
        ));
    }
    std::fs::write(&csv, &text).expect("write");
    // The same rows in two files, split inside a piece of the second chunk
    // (row C + 7 232, in the second, repeats the first's C - 1):
    // a chunk is accounted for while the next is placed, across files.
    const SPLIT: usize = C + 3_233;
    let (head, rows) = text.split_once('\n').expect("a header");
    let lines: Vec<&str> = rows.lines().collect();
    let part = |name: &str, rows: &[&str]| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{head}\n{}\n", rows.join("\n"))).expect("write");
        p
    };
    let (first, second) = (
        part("first.csv", &lines[..SPLIT]),
        part("second.csv", &lines[SPLIT..]),
    );
    // (file, line, reason, test id) of each rejected row, in order.
    let mut seen = std::collections::HashSet::new();
    let mut want = Vec::new();
    for i in 0..N {
        let (file, line) = if i < SPLIT {
            (0, i + 2)
        } else {
            (1, i - SPLIT + 2)
        };
        let reason = if bad.contains(&i) {
            "bad_timestamp"
        } else if !seen.insert(id(i)) {
            "duplicate_test_id"
        } else {
            continue;
        };
        want.push((
            file,
            line.to_string(),
            reason.to_owned(),
            format!("t{}", id(i)),
        ));
    }
    assert_eq!(
        want.len(),
        bad.len() + repeats.len() - 1,
        "8 192 is the first good t8191"
    );
    assert!(want.iter().any(|w| w.0 == 1), "rejects in the second file");
    for spill in SPILL {
        for (name, files) in [("one", vec![csv.as_path()]), ("two", vec![&first, &second])] {
            let out = dir.path().join(format!("{spill}_{name}"));
            analyze_wards(&files, &out, &["--spill", spill]);
            let (_, rows) = read_csv(&out.join("rejects.csv"));
            let got: Vec<(usize, String, String, String)> = rows
                .into_iter()
                .map(|r| {
                    let file = files
                        .iter()
                        .position(|f| s(f) == r[0])
                        .expect("a file read");
                    (file, r[1].clone(), r[2].clone(), r[3].clone())
                })
                .collect();
            let want: Vec<_> = want
                .iter()
                .map(|(file, line, reason, id)| {
                    // One file: lines run on from the first file's.
                    let (file, line) = match (name, file) {
                        ("one", 1) => (
                            0,
                            (line.parse::<usize>().expect("line") + SPLIT).to_string(),
                        ),
                        _ => (*file, line.clone()),
                    };
                    (file, line, reason.clone(), id.clone())
                })
                .collect();
            assert_eq!(got, want, "--spill {spill}, {name} file(s)");
            let summary = json(&out.join("summary.json"));
            assert_eq!(summary["rows"]["read"], N);
            assert_eq!(summary["rows"]["accepted"], N - want.len());
        }
    }
}

/// The local (UTC+7) month of a simulated timestamp, worked out from its
/// text alone: `…+07:00` is local already; `…Z` moves to the next month
/// from 17:00 on a month's last day.
fn local_month(timestamp: &str) -> String {
    let (year, month): (i32, u32) = (
        timestamp[0..4].parse().unwrap(),
        timestamp[5..7].parse().unwrap(),
    );
    let (day, hour): (u32, u32) = (
        timestamp[8..10].parse().unwrap(),
        timestamp[11..13].parse().unwrap(),
    );
    let last_day = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let next = timestamp.ends_with('Z') && day == last_day && hour >= 17;
    assert!(
        next || timestamp.ends_with('Z') || timestamp.ends_with("+07:00"),
        "{timestamp}"
    );
    match (next, month) {
        (false, _) => format!("{year:04}-{month:02}"),
        (true, 12) => format!("{:04}-01", year + 1),
        (true, _) => format!("{year:04}-{:02}", month + 1),
    }
}

/// Samples outside `--from`/`--to` are dropped while the rows are read (so
/// that memory holds only the window's); the results are those of the
/// window's rows alone, cut from the file by hand.
#[test]
fn a_window_analyses_exactly_the_rows_of_its_months() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = crate::util::default_data();
    let all = dir.path().join("three_months.csv");
    crate::util::simulate_default_months(&all, 42, 2000, 0.0, ("2025-05", "2025-07"));
    let text = std::fs::read_to_string(&all).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let time_col = header.split(',').position(|h| h == "timestamp").unwrap();
    let (mut june, mut others) = (vec![header], 0u64);
    for line in lines {
        if local_month(line.split(',').nth(time_col).unwrap()) == "2025-06" {
            june.push(line);
        } else {
            others += 1;
        }
    }
    assert!(
        june.len() > 1000 && others > 2000,
        "{} {others}",
        june.len()
    );
    let cut = dir.path().join("june.csv");
    std::fs::write(&cut, june.join("\n") + "\n").unwrap();

    let (windowed, alone) = (dir.path().join("windowed"), dir.path().join("alone"));
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&all),
        "--boundaries",
        s(&b),
        "--out",
        s(&windowed),
        "--from",
        "2025-06",
        "--to",
        "2025-06",
    ]);
    crate::util::analyze_default(&cut, &alone);
    for file in [
        "quota.csv",
        "unit_stats.csv",
        "units.geojson",
        "heatmap/all.geojson",
        "heatmap/viettel.geojson",
    ] {
        let read = |dir: &std::path::Path| std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(read(&windowed) == read(&alone), "{file} differs");
    }
    // Rows are checked before their month is: the window's run rejects
    // June's rows the cut's run rejects, and those of May and July.
    let rejected_ids = |dir: &std::path::Path, keep: &dyn Fn(&str) -> bool| {
        let (_, rows) = read_csv(&dir.join("rejects.csv"));
        rows.into_iter()
            .map(|r| r[3].clone())
            .filter(|id| keep(id))
            .collect::<Vec<_>>()
    };
    let june_ids: std::collections::HashSet<&str> = june
        .iter()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let of_june = rejected_ids(&windowed, &|id| june_ids.contains(id));
    assert_eq!(of_june, rejected_ids(&alone, &|_| true));
    assert!(rejected_ids(&windowed, &|_| true).len() > of_june.len());
    let (w, a) = (
        json(&windowed.join("summary.json")),
        json(&alone.join("summary.json")),
    );
    let (w, a) = (&w["rows"], &a["rows"]);
    assert_eq!(w["read"], text.lines().count() as u64 - 1);
    assert_eq!(w["accepted"], a["accepted"]);
    assert_eq!(a["excluded"]["outside_window"], 0);
    // Every row of May and July is rejected, or excluded as Wi-Fi or as
    // outside the window.
    let not_accepted = |r: &serde_json::Value| {
        crate::util::total(&r["rejected"]) + crate::util::total(&r["excluded"])
    };
    assert_eq!(not_accepted(w), not_accepted(a) + others);
    assert!(w["excluded"]["outside_window"].as_u64().unwrap() > 2000);
}
