//! Bad input: a clear message naming the file and the fix, exit code 2, no panic.

use crate::util::{fixture, gapmap, s};

fn fails_with(args: &[&str], needles: &[&str]) {
    let out = gapmap(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 for {args:?}; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

#[test]
fn a_missing_file_is_named_with_its_reason_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_villages.geojson");
    let out = gapmap(&[
        "simulate",
        "--boundaries",
        s(&fixture("wards.geojson")),
        "--levels",
        LEVELS,
        "--villages",
        s(&missing),
        "--out",
        s(&dir.path().join("s.csv")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no_such_villages.geojson"), "{err}");
    // The OS's reason, once: the chain of causes repeated it.
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn simulate_into_a_folder_names_a_file_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let (b, v) = crate::util::default_data();
    fails_with(
        &[
            "simulate",
            "--boundaries",
            s(&b),
            "--villages",
            s(&v),
            "--out",
            s(dir.path()),
        ],
        &["is a folder", "samples.parquet"],
    );
}

const LEVELS: &str = "region=reg_code:reg_name,ward=ward_code:ward_name";

/// `analyze` of the fixture `a.csv` over the wards into `dir/o`, with the
/// samples on disk, then `extra`.
fn on_disk_args(dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let (a, w) = (fixture("a.csv"), fixture("wards.geojson"));
    let mut args: Vec<String> = [
        "analyze",
        "--samples",
        s(&a),
        "--boundaries",
        s(&w),
        "--levels",
        LEVELS,
        "--out",
        s(&dir.join("o")),
        "--column",
        "lat=latitude",
        "--samples-on-disk",
        "always",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|e| (*e).to_owned()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn parts_of_no_samples_are_refused_with_the_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    let args = on_disk_args(dir.path(), &["--part-samples", "0"]);
    fails_with(&strs(&args), &["--part-samples must be at least 1"]);
}

#[test]
fn samples_on_disk_go_to_the_work_dir_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("scratch");
    let args = on_disk_args(dir.path(), &["--work-dir", s(&work)]);
    let out = crate::util::gapmap_ok(&strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    let said = format!("kept on disk in {}, 73 bytes each", work.display());
    assert!(err.contains(&said), "{err}");
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}

#[test]
fn a_work_dir_that_cannot_hold_files_is_named_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("a file");
    std::fs::write(&not_a_folder, "").unwrap();
    let args = on_disk_args(dir.path(), &["--work-dir", s(&not_a_folder)]);
    fails_with(
        &strs(&args),
        &[
            "cannot make working files in",
            "a file",
            "--work-dir",
            "--samples-on-disk never",
        ],
    );
}

#[test]
fn missing_column_names_file_and_mapping_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (a, w) = (fixture("a.csv"), fixture("wards.geojson"));
    let out = dir.path().join("o");
    // a.csv calls latitude "latitude": without --column it is missing.
    fails_with(
        &[
            "analyze",
            "--samples",
            s(&a),
            "--boundaries",
            s(&w),
            "--levels",
            LEVELS,
            "--out",
            s(&out),
        ],
        &["a.csv", "no column 'lat'", "--column lat="],
    );
}

#[test]
fn wrong_levels_name_the_feature_and_property() {
    let dir = tempfile::tempdir().unwrap();
    let (a, w) = (fixture("a.csv"), fixture("wards.geojson"));
    let out = dir.path().join("o");
    fails_with(
        &[
            "analyze",
            "--samples",
            s(&a),
            "--boundaries",
            s(&w),
            "--out",
            s(&out),
            "--column",
            "lat=latitude",
        ],
        &["wards.geojson", "feature 0", "province_id", "--levels"],
    );
    fails_with(
        &[
            "analyze",
            "--samples",
            s(&a),
            "--boundaries",
            s(&w),
            "--levels",
            "region",
            "--out",
            s(&out),
        ],
        &["--levels", "level=code_property:name_property"],
    );
}

#[test]
fn unreadable_and_unknown_files() {
    let dir = tempfile::tempdir().unwrap();
    let w = fixture("wards.geojson");
    let out = dir.path().join("o");
    let args = |samples: &str| -> Vec<String> {
        [
            "analyze",
            "--samples",
            samples,
            "--boundaries",
            s(&w),
            "--levels",
            LEVELS,
            "--out",
            s(&out),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let missing = dir.path().join("nope.csv");
    let a: Vec<String> = args(s(&missing));
    fails_with(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &["nope.csv"],
    );
    let txt = dir.path().join("samples.txt");
    std::fs::write(&txt, "x").unwrap();
    let a = args(s(&txt));
    fails_with(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &["samples.txt", ".csv or .parquet"],
    );
    let bad_geo = dir.path().join("b.geojson");
    std::fs::write(
        &bad_geo,
        "{\"type\": \"FeatureCollection\", \"features\": [",
    )
    .unwrap();
    fails_with(
        &[
            "analyze",
            "--samples",
            s(&fixture("b.csv")),
            "--boundaries",
            s(&bad_geo),
            "--out",
            s(&out),
        ],
        &["b.geojson", "not valid GeoJSON"],
    );
    let garbage_pq = dir.path().join("g.parquet");
    std::fs::write(&garbage_pq, b"PAR1 this is not parquet").unwrap();
    let a = args(s(&garbage_pq));
    fails_with(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &["g.parquet", "Parquet"],
    );
}

#[test]
fn bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (b, w) = (fixture("b.csv"), fixture("wards.geojson"));
    let out = dir.path().join("o");
    let base = [
        "analyze",
        "--samples",
        s(&b),
        "--boundaries",
        s(&w),
        "--levels",
        LEVELS,
        "--out",
        s(&out),
    ];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    fails_with(&with(&["--from", "2025-3"]), &["YYYY-MM"]);
    fails_with(&with(&["--from", "2025-05", "--to", "2025-03"]), &["after"]);
    fails_with(
        &with(&["--column", "speed=dl"]),
        &["unknown canonical column 'speed'"],
    );
    fails_with(&with(&["--resolution", "16"]), &["0 to 15"]);
}

#[test]
fn garbage_rows_are_rejected_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let w = fixture("wards.geojson");
    let f = dir.path().join("junk.csv");
    let mut bytes = b"test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id\n".to_vec();
    bytes.extend_from_slice(b"\xff\xfe\x00garbage\n,,,\n\"unterminated,1,2\nok1,2025-03-05T10:00:00Z,21.05,105.05,viettel,LTE,5,d\n");
    std::fs::write(&f, bytes).unwrap();
    let out = dir.path().join("o");
    let o = gapmap(&[
        "analyze",
        "--samples",
        s(&f),
        "--boundaries",
        s(&w),
        "--levels",
        LEVELS,
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = crate::util::json(&out.join("summary.json"));
    let rows = &summary["rows"];
    let read = rows["read"].as_u64().unwrap();
    let rejected = crate::util::total(&rows["rejected"]);
    let excluded = crate::util::total(&rows["excluded"]);
    assert_eq!(
        read,
        rows["accepted"].as_u64().unwrap() + rejected + excluded
    );
    assert!(rows["rejected"]["missing_field"].as_u64().unwrap() >= 2);
    // The unbalanced quote on line 4 swallowed line 5: a warning says where to look.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("junk.csv: line 4: a quoted field spans lines 4-"),
        "{stderr}"
    );
    assert!(
        summary["warnings"][0].as_str().unwrap().contains("line 4"),
        "{summary}"
    );
}

#[test]
fn an_unwritable_out_is_named_with_the_fix() {
    let (b, _) = crate::util::default_data();
    let o = crate::util::gapmap(&[
        "analyze",
        "--samples",
        crate::util::s(&crate::util::fixture("a.csv")),
        "--boundaries",
        crate::util::s(&b),
        "--out",
        "/dev/null/gapmap-out",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot write to --out /dev/null/gapmap-out")
            && err.contains("choose a folder"),
        "{err}"
    );
}

/// gapmap run with `args` and sent Ctrl-C (SIGINT) after `delay_ms`.
fn interrupted(args: &[&str], delay_ms: u64) -> std::process::Output {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gapmap"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    child.wait_with_output().expect("wait")
}

#[test]
fn ctrl_c_leaves_no_partial_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("s.csv");
    crate::util::simulate_default(&samples, 5, 150_000, 0.0);
    let (b, v) = crate::util::default_data();
    // Interrupt at growing delays until a run is caught in the middle.
    for delay_ms in [150u64, 300, 600, 1200, 2400] {
        let out = dir.path().join(format!("out{delay_ms}"));
        let o = interrupted(
            &[
                "analyze",
                "--samples",
                crate::util::s(&samples),
                "--boundaries",
                crate::util::s(&b),
                "--villages",
                crate::util::s(&v),
                "--format",
                "geojson,fgb,gpkg",
                "--out",
                crate::util::s(&out),
            ],
            delay_ms,
        );
        if o.status.code() != Some(130) {
            continue; // finished before the signal, or not started: try later
        }
        assert!(String::from_utf8_lossy(&o.stderr).contains("interrupted"));
        // No temporary file is left, and every output there is whole.
        for sub in [out.clone(), out.join("heatmap")] {
            let Ok(entries) = std::fs::read_dir(&sub) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(!name.ends_with(".tmp"), "{name} left behind");
                if name.ends_with(".csv") {
                    let mut r = csv::Reader::from_path(e.path()).expect("csv");
                    assert!(r.records().all(|x| x.is_ok()), "{name} is not whole");
                } else if name.ends_with(".geojson") || name.ends_with(".json") {
                    let t = std::fs::read_to_string(e.path()).expect("read");
                    serde_json::from_str::<serde_json::Value>(&t)
                        .unwrap_or_else(|err| panic!("{name}: {err}"));
                }
            }
        }
        return;
    }
    panic!("no run was interrupted in the middle; raise the sample count");
}

#[test]
fn ctrl_c_during_simulate_leaves_no_file() {
    // The simulator writes as it goes: an interrupted run must leave
    // neither its temporary file nor a partial sample file.
    let dir = tempfile::tempdir().expect("tempdir");
    let (b, v) = crate::util::default_data();
    let samples = dir.path().join("s.csv");
    for delay_ms in [300u64, 600, 1200, 2400] {
        let o = interrupted(
            &[
                "simulate",
                "--boundaries",
                crate::util::s(&b),
                "--villages",
                crate::util::s(&v),
                "--out",
                crate::util::s(&samples),
                "--samples",
                "3000000",
            ],
            delay_ms,
        );
        if o.status.code() != Some(130) {
            let _ = std::fs::remove_file(&samples);
            continue; // finished before the signal, or not started: try later
        }
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        return;
    }
    panic!("no simulation was interrupted in the middle; raise the sample count");
}

#[test]
fn a_page_with_a_negative_value_count_is_an_error_not_an_abort() {
    // Found by the parquet_samples fuzz target: polars' decoder asks for
    // 2^61 bytes on it, and the failed allocation aborts (exit 134).
    let dir = tempfile::tempdir().expect("tempdir");
    let o = crate::util::analyze_default_run(
        &crate::util::fixture("negative_page_count.parquet"),
        &dir.path().join("out"),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("negative_page_count.parquet")
            && err.contains("row group 0, column test_id: a page claims -42 values")
            && err.contains("export it again"),
        "{err}"
    );
    assert!(!dir.path().join("out/quota.csv").exists());
}

#[test]
fn a_damaged_parquet_file_is_an_error_not_a_crash() {
    // Found by the parquet_samples fuzz target: polars' reader panics on it.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = crate::util::analyze_default_run(
        &crate::util::fixture("damaged.parquet"),
        &dir.path().join("out"),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("damaged.parquet") && err.contains("damaged or not Parquet"),
        "{err}"
    );
}

#[test]
fn a_parquet_column_shorter_than_its_rows_is_an_error_not_lost_fields() {
    // Found by the parquet_samples fuzz target (2026-12-02): damaged pages
    // decode to 40 device ids for 41 rows. Read as records, the last row
    // lost its device id silently (a missing_field reject); now the file is
    // reported, with the column and rows.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = crate::util::analyze_default_run(
        &crate::util::fixture("short_column.parquet"),
        &dir.path().join("out"),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("short_column.parquet")
            && err.contains("column device_id has 40 values in rows 1–41")
            && err.contains("export it again"),
        "{err}"
    );
    assert!(!dir.path().join("out/quota.csv").exists());
}

#[test]
fn a_carrier_column_of_a_name_per_row_stops_with_the_line_not_wrong_carriers() {
    // A shifted column puts a new "carrier" on every row. Samples number
    // their carrier in 16 bits: past 65 536 names they were numbered
    // modulo 2^16 (silently wrong carriers), and each new name scanned
    // every one before it (200 000 rows took 107 s).
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("s.csv");
    let mut text =
        String::from("test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id\n");
    // Bắc Kạn town, inside the default communes.
    for i in 0..70_000 {
        text.push_str(&format!(
            "t{i},2025-06-10T08:00:00Z,22.1419,105.8499,C{i},4G,20,d{}\n",
            i % 500
        ));
    }
    std::fs::write(&samples, &text).expect("write");
    let o = crate::util::analyze_default_run(&samples, &dir.path().join("out"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    // Row i (0-based) is on line i + 2 and names the (i + 1)th carrier.
    assert!(
        err.contains("s.csv: line 65538: carrier 'C65536' is the 65537th different carrier name")
            && err.contains("--column carrier="),
        "{err}"
    );
    assert!(!dir.path().join("out/quota.csv").exists());
    // At the limit, every name is a carrier of its own.
    let at_limit: String = text
        .lines()
        .take(65_537)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&samples, at_limit).expect("write");
    let out = dir.path().join("out2");
    crate::util::analyze_default(&samples, &out);
    let summary = crate::util::json(&out.join("summary.json"));
    let carriers = summary["carriers"].as_array().expect("carriers");
    assert_eq!(carriers.len(), 65_536);
    assert!(
        carriers.iter().all(|c| c["samples"] == 1),
        "one sample each"
    );
}
