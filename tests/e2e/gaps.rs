//! Villages, heatmaps, plan and rollups on a hand-made fixture.
//!
//! Villages (wards fixture): "9" and "10" at lon 105.0546875 and 105.0703125,
//! lat 21.0625, in ward 0101, each exactly 0.0078125° (≈ 811 m) from the
//! point (105.0625, 21.0625) where five Viettel tests, all failed (0 Mbps),
//! were taken by two devices; "B1" (population 500) on the 0101/0102 border
//! (belongs to 0101, the lowest code); "C1" in 0201 with four VinaPhone tests
//! at 50 Mbps; "OUT" outside every ward. A MobiFone test in 0102, 104 m from
//! B1, has no village (B1 is in another ward). Vietnamobile has no samples.

use std::collections::HashMap;

use crate::util::{fixture, gapmap_ok, json, read_csv, s};

const LEVELS: &str = "region=reg_code:reg_name,ward=ward_code:ward_name";

fn run_with(extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let (smp, w, v) = (
        fixture("village_samples.csv"),
        fixture("wards.geojson"),
        fixture("villages.geojson"),
    );
    let mut args = vec![
        "analyze",
        "--samples",
        s(&smp),
        "--boundaries",
        s(&w),
        "--levels",
        LEVELS,
        "--villages",
        s(&v),
        "--out",
        s(&out),
    ];
    args.extend_from_slice(extra);
    gapmap_ok(&args);
    dir
}

fn run() -> tempfile::TempDir {
    run_with(&[])
}

fn rows_by_key(
    path: &std::path::Path,
    keys: &[&str],
) -> HashMap<Vec<String>, HashMap<String, String>> {
    let (header, rows) = read_csv(path);
    rows.into_iter()
        .map(|r| {
            let m: HashMap<String, String> = header.iter().cloned().zip(r).collect();
            (keys.iter().map(|k| m[*k].clone()).collect(), m)
        })
        .collect()
}

#[test]
fn village_status_edges() {
    let dir = run();
    let out = dir.path().join("out");
    let (header, rows) = read_csv(&out.join("villages.csv"));
    assert_eq!(
        header[..11],
        [
            "village_id",
            "name",
            "unit_code",
            "carrier",
            "samples",
            "devices",
            "download_median_mbps",
            "share_below",
            "weak_p",
            "status",
            "below_target"
        ]
    );
    // 4 villages inside wards × 4 default carriers; OUT is not listed.
    assert_eq!(rows.len(), 16);
    let v = rows_by_key(&out.join("villages.csv"), &["village_id", "carrier"]);
    let get = |id: &str, c: &str| &v[&vec![id.to_owned(), c.to_owned()]];
    // Tie: "9" and "10" are equally far; "9" < "10" as numbers (not as strings).
    let nine = get("9", "Viettel");
    assert_eq!(
        (
            nine["samples"].as_str(),
            nine["devices"].as_str(),
            nine["download_median_mbps"].as_str()
        ),
        ("5", "2", "0")
    );
    // All five below T: p = P[Bin(5, ½) ≥ 5] = 1/32.
    assert_eq!(
        (nine["share_below"].as_str(), nine["weak_p"].as_str()),
        ("1", "0.03125")
    );
    assert_eq!(
        (nine["status"].as_str(), nine["below_target"].as_str()),
        ("weak", "true")
    );
    let ten = get("10", "Viettel");
    assert_eq!(
        (
            ten["samples"].as_str(),
            ten["status"].as_str(),
            ten["weak_p"].as_str()
        ),
        ("0", "no_data", "")
    );
    // Four samples from two devices: insufficient (n < 5); p = P[Bin(4, ½) ≥ 0] = 1.
    let c1 = get("C1", "VinaPhone");
    assert_eq!(
        (
            c1["status"].as_str(),
            c1["weak_p"].as_str(),
            c1["below_target"].as_str()
        ),
        ("insufficient", "1", "false")
    );
    // Border village belongs to the lowest code.
    assert_eq!(get("B1", "Viettel")["unit_code"], "0101");
    assert_eq!(
        get("B1", "MobiFone")["samples"],
        "0",
        "the 0102 test is not B1's"
    );
    // A carrier with no samples anywhere: a no_data row for every village.
    for id in ["9", "10", "B1", "C1"] {
        assert_eq!(get(id, "Vietnamobile")["status"], "no_data");
    }
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["villages"]["outside"], 1);
    assert_eq!(summary["villages"]["inside"], 4);
    assert_eq!(
        summary["villages"]["samples_with_village"], 9,
        "x1 has no village"
    );
    assert_eq!(summary["villages"]["status"]["Viettel"]["weak"], 1);
}

#[test]
fn villages_geojson_worst_status() {
    let dir = run();
    let g = json(&dir.path().join("out/villages.geojson"));
    let worst: HashMap<&str, &str> = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["properties"]["village_id"].as_str().unwrap(),
                f["properties"]["worst_status"].as_str().unwrap(),
            )
        })
        .collect();
    // weak > no_data > insufficient > ok
    assert_eq!(worst["9"], "weak");
    assert_eq!(
        worst["C1"], "no_data",
        "insufficient for VinaPhone, no data for the others"
    );
    assert_eq!(worst.len(), 4);
    let nine = g["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["village_id"] == "9")
        .unwrap();
    assert_eq!(nine["properties"]["status_viettel"], "weak");
    assert_eq!(
        nine["geometry"]["coordinates"],
        serde_json::json!([105.054688, 21.0625])
    );
}

#[test]
fn unit_gaps_rollup() {
    let dir = run();
    let g = rows_by_key(
        &dir.path().join("out/unit_gaps.csv"),
        &["level", "code", "carrier"],
    );
    let k = |l: &str, c: &str, car: &str| &g[&vec![l.to_owned(), c.to_owned(), car.to_owned()]];
    let w = k("ward", "0101", "Viettel");
    assert_eq!(
        [
            &w["villages"],
            &w["no_data"],
            &w["insufficient"],
            &w["weak"],
            &w["ok"]
        ]
        .map(String::as_str),
        ["3", "2", "0", "1", "0"]
    );
    assert_eq!(w["share_weak"], "0.3333");
    let r = k("region", "01", "Viettel");
    assert_eq!(r["villages"], "3");
    let r2 = k("region", "02", "VinaPhone");
    assert_eq!(
        (r2["villages"].as_str(), r2["insufficient"].as_str()),
        ("1", "1")
    );
    let empty = k("ward", "0102", "Viettel");
    assert_eq!(
        (empty["villages"].as_str(), empty["share_ok"].as_str()),
        ("0", "")
    );
}

#[test]
fn plan_ranks_and_closes_the_deficit() {
    let dir = run();
    let (_, rows) = read_csv(&dir.path().join("out/plan.csv"));
    let ward: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == "0101").collect();
    // 0101 had 5 samples in 2025-06: deficit 295. B1 and 10 lack all 4 carriers
    // (B1 first: population 500), 9 lacks 3. Needs: 5 tests per lacking carrier
    // (max(5 − 0, 2 − 0)) → 20, 20, 15 = 55; the other 240 are spread evenly:
    // 80 each → 100, 100, 95, summing to the deficit.
    let got: Vec<(&str, &str, &str, &str)> = ward
        .iter()
        .map(|r| (r[5].as_str(), r[6].as_str(), r[9].as_str(), r[11].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("1", "B1", "4", "100"),
            ("2", "10", "4", "100"),
            ("3", "9", "3", "95")
        ]
    );
    assert_eq!((ward[0][3].as_str(), ward[0][4].as_str()), ("5", "295"));
    // Every ward is under quota, 0102 has no village: it is absent.
    assert!(rows.iter().all(|r| r[1] != "0102"));
    let c1: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == "0201").collect();
    // C1: VinaPhone insufficient needs 1 (max(5 − 4, 2 − 2)), three others 5 each: 16 < deficit 296.
    assert_eq!(c1.len(), 1);
    assert_eq!(c1[0][11], "296");
    assert!(
        c1[0][10].contains("VinaPhone:insufficient"),
        "{}",
        c1[0][10]
    );
}

#[test]
fn networks_filter_limits_villages_and_heatmaps_not_quota() {
    // Every fixture test is LTE: judged on 3G only, village 9 has no data and
    // the Viettel heatmap is empty, while the quota still counts all 10 tests.
    let dir = run_with(&["--networks", "3G"]);
    let out = dir.path().join("out");
    let v = rows_by_key(&out.join("villages.csv"), &["village_id", "carrier"]);
    assert_eq!(
        v[&vec!["9".to_owned(), "Viettel".to_owned()]]["status"],
        "no_data"
    );
    let heat = json(&out.join("heatmap/viettel.geojson"));
    assert_eq!(heat["features"].as_array().map(Vec::len), Some(0));
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["rows"]["accepted"], 10);
    assert_eq!(summary["settings"]["networks"], serde_json::json!(["3G"]));
    assert_eq!(summary["settings"]["min_samples"], 5);
    // WIFI is not a mobile technology.
    let (smp, w) = (fixture("village_samples.csv"), fixture("wards.geojson"));
    let bad = crate::util::gapmap(&[
        "analyze",
        "--samples",
        s(&smp),
        "--boundaries",
        s(&w),
        "--levels",
        LEVELS,
        "--out",
        s(&out),
        "--networks",
        "4G,wifi",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'wifi' is not a mobile technology"));
}
