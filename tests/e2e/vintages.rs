//! Boundary vintages across a reform, on the hand-made fixture described in
//! `tests/fixtures/README.md` (old: P1 > D1, D2 > C1–C4; new: 19 > N1–N4).
//!
//! Samples (local time, UTC+7): June on the old units: s1 in C1, s2 in C2,
//! s3 in C3's west half, s9 in C3's east half at 23:59 on 30 June.
//! July: s4 in C1 at 00:30 on 1 July (17:30Z on 30 June), s5 in C3 west,
//! s6 in C3 east, s7 in C4, s8 in C2.

use std::path::PathBuf;

use crate::util::{fixture, gapmap, gapmap_ok, json, read_csv, s};

const OLD_LEVELS: &str =
    "province=prov_code:prov_name,district=dist_code:dist_name,commune=comm_code:comm_name";
const NEW_LEVELS: &str = "province=province_code:province,commune=commune_code:commune";

fn run(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let (samples, old) = (fixture("reform_samples.csv"), fixture("reform_old.geojson"));
    let mut args = vec![
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&old),
        "--levels",
        OLD_LEVELS,
        "--out",
        s(&out),
        "--quota",
        "2",
    ];
    args.extend_from_slice(extra);
    gapmap_ok(&args);
    (dir, out)
}

fn crosswalk_arg() -> String {
    format!("2025-07-01={}", s(&fixture("reform_crosswalk.csv")))
}

/// (month, vintage, level, code, samples) of every quota row.
fn quota(out: &std::path::Path) -> Vec<(String, String, String, String, u64)> {
    let (h, rows) = read_csv(&out.join("quota.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    rows.iter()
        .map(|r| {
            (
                r[c("month")].clone(),
                r[c("vintage")].clone(),
                r[c("level")].clone(),
                r[c("code")].clone(),
                r[c("samples")].parse().expect("count"),
            )
        })
        .collect()
}

fn rows(
    month: &str,
    vintage: &str,
    want: &[(&str, &str, u64)],
) -> Vec<(String, String, String, String, u64)> {
    want.iter()
        .map(|(l, c, n)| {
            (
                month.to_owned(),
                vintage.to_owned(),
                (*l).to_owned(),
                (*c).to_owned(),
                *n,
            )
        })
        .collect()
}

fn june_old() -> Vec<(String, String, String, String, u64)> {
    rows(
        "2025-06",
        "initial",
        &[
            ("province", "P1", 4),
            ("district", "D1", 2),
            ("district", "D2", 2),
            ("commune", "C1", 1),
            ("commune", "C2", 1),
            ("commune", "C3", 2),
            ("commune", "C4", 0),
        ],
    )
}

fn july_old() -> Vec<(String, String, String, String, u64)> {
    rows(
        "2025-07",
        "initial",
        &[
            ("province", "P1", 5),
            ("district", "D1", 2),
            ("district", "D2", 3),
            ("commune", "C1", 1),
            ("commune", "C2", 1),
            ("commune", "C3", 2),
            ("commune", "C4", 1),
        ],
    )
}

/// July on the crosswalk: s7 (in C4, unmapped) is in no new unit; no district level.
fn july_crosswalk() -> Vec<(String, String, String, String, u64)> {
    rows(
        "2025-07",
        "2025-07-01",
        &[
            ("province", "19", 4),
            ("commune", "N1", 2),
            ("commune", "N2", 1),
            ("commune", "N3", 1),
        ],
    )
}

#[test]
fn window_across_the_change_each_month_on_its_own_boundaries() {
    let (_dir, out) = run(&["--crosswalk", &crosswalk_arg()]);
    let mut want = june_old();
    want.extend(july_crosswalk());
    assert_eq!(quota(&out), want);
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["rows"]["accepted"], 9, "nothing is lost");
    assert_eq!(summary["view"], "dated");
    let v = &summary["vintages"];
    assert_eq!(v[0]["vintage"], "initial");
    assert_eq!(v[0]["months"], serde_json::json!(["2025-06"]));
    assert_eq!(v[0]["samples"], 4);
    assert_eq!(v[1]["vintage"], "2025-07-01");
    assert_eq!(v[1]["kind"], "crosswalk");
    assert_eq!(v[1]["months"], serde_json::json!(["2025-07"]));
    // s5 and s6 lie in C3, which the crosswalk splits: resolved by the nearest centre.
    assert_eq!(v[1]["nearest_centre"], 2);
    assert_eq!(v[1]["unmapped"], 1);
    assert_eq!(v[1]["samples"], 4);
    // The unmapped sample is reported, with its old unit.
    let (h, unplaced) = read_csv(&out.join("unplaced.csv"));
    assert_eq!(
        h,
        [
            "vintage", "month", "reason", "old_code", "old_name", "samples"
        ]
    );
    assert_eq!(
        unplaced,
        [[
            "2025-07-01",
            "2025-07",
            "unmapped",
            "C4",
            "Commune Four",
            "1"
        ]
        .map(str::to_owned)]
    );
    // …and it still counts where units are not needed: the heatmap.
    let all: serde_json::Value = json(&out.join("heatmap/all.geojson"));
    let n: u64 = all["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["properties"]["samples"].as_u64().expect("samples"))
        .sum();
    assert_eq!(n, 9);
    // unit_stats rows carry the vintage too; the July province median is of
    // s4, s5, s6, s8 = 50, 60, 70, 90 → 65.
    let (h, st) = read_csv(&out.join("unit_stats.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    let row = st
        .iter()
        .find(|r| r[c("month")] == "2025-07" && r[c("code")] == "19" && r[c("carrier")] == "ALL")
        .expect("July province row");
    assert_eq!(row[c("download_median_mbps")], "65");
    assert_eq!(row[c("vintage")], "2025-07-01");
}

#[test]
fn a_month_before_and_a_month_after() {
    let (_d, out) = run(&["--crosswalk", &crosswalk_arg(), "--to", "2025-06"]);
    assert_eq!(quota(&out), june_old());
    let (_d, out) = run(&["--crosswalk", &crosswalk_arg(), "--from", "2025-07"]);
    assert_eq!(quota(&out), july_crosswalk());
    let summary = json(&out.join("summary.json"));
    // Only the July set reports; the summary's levels are its two levels.
    assert_eq!(
        summary["levels"],
        serde_json::json!(["province", "commune"])
    );
}

#[test]
fn views_old_new_both() {
    let (_d, out) = run(&["--crosswalk", &crosswalk_arg(), "--view", "old"]);
    let mut want = june_old();
    want.extend(july_old());
    assert_eq!(quota(&out), want);

    // June on the new units: s1, s2 → N1; s3 (lon 105.03) → N2; s9 (105.16) → N3.
    let june_new = rows(
        "2025-06",
        "2025-07-01",
        &[
            ("province", "19", 4),
            ("commune", "N1", 2),
            ("commune", "N2", 1),
            ("commune", "N3", 1),
        ],
    );
    let (_d, out) = run(&["--crosswalk", &crosswalk_arg(), "--view", "new"]);
    let mut want = june_new.clone();
    want.extend(july_crosswalk());
    assert_eq!(quota(&out), want);
    let summary = json(&out.join("summary.json"));
    assert_eq!(
        summary["vintages"][1]["nearest_centre"], 4,
        "s3, s9, s5, s6"
    );

    let (_d, out) = run(&["--crosswalk", &crosswalk_arg(), "--view", "both"]);
    let mut want = june_old();
    want.extend(june_new);
    want.extend(july_old());
    want.extend(july_crosswalk());
    assert_eq!(quota(&out), want);
}

#[test]
fn new_polygons_instead_of_a_crosswalk() {
    let new = format!("2025-07-01={}", s(&fixture("reform_new.geojson")));
    let (_d, out) = run(&["--boundaries", &new, "--levels", NEW_LEVELS]);
    let mut want = june_old();
    // With polygons, C4's sample lies in N4.
    want.extend(rows(
        "2025-07",
        "2025-07-01",
        &[
            ("province", "19", 5),
            ("commune", "N1", 2),
            ("commune", "N2", 1),
            ("commune", "N3", 1),
            ("commune", "N4", 1),
        ],
    ));
    assert_eq!(quota(&out), want);
    let (_, unplaced) = read_csv(&out.join("unplaced.csv"));
    assert!(unplaced.is_empty(), "{unplaced:?}");
}

#[test]
fn bad_vintage_arguments_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let (samples, old) = (fixture("reform_samples.csv"), fixture("reform_old.geojson"));
    let base = |extra: &[&str]| {
        let mut a = vec![
            "analyze".to_owned(),
            "--samples".to_owned(),
            s(&samples).to_owned(),
            "--boundaries".to_owned(),
            s(&old).to_owned(),
            "--out".to_owned(),
            s(&out).to_owned(),
        ];
        a.extend(extra.iter().map(|x| (*x).to_owned()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = gapmap(&refs);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let mid = format!("2025-07-15={}", s(&fixture("reform_new.geojson")));
    let e = base(&["--levels", OLD_LEVELS, "--boundaries", &mid]);
    assert!(
        e.contains("first of a month") && e.contains("2025-07-01"),
        "{e}"
    );
    let new = format!("2025-07-01={}", s(&fixture("reform_new.geojson")));
    let e = base(&["--levels", OLD_LEVELS, "--boundaries", &new]);
    assert!(e.contains("one --levels per --boundaries"), "{e}");
    let e = base(&[
        "--levels",
        OLD_LEVELS,
        "--crosswalk",
        s(&fixture("reform_crosswalk.csv")),
    ]);
    assert!(e.contains("give its start"), "{e}");
    let e = base(&["--levels", OLD_LEVELS, "--view", "current"]);
    assert!(e.contains("--view") && e.contains("dated"), "{e}");
    let bad = format!("2025-07-01={}", s(&fixture("a.csv")));
    let e = base(&["--levels", OLD_LEVELS, "--crosswalk", &bad]);
    assert!(e.contains("a.csv") && e.contains("old_code"), "{e}");
}

#[test]
fn demo_reports_twelve_months_across_the_reform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    gapmap_ok(&["demo", "--out", s(&out), "--samples", "3000"]);
    let q = quota(&out);
    let months: Vec<String> = {
        let mut m: Vec<String> = q.iter().map(|r| r.0.clone()).collect();
        m.dedup();
        m
    };
    assert_eq!(months.len(), 12, "{months:?}");
    assert_eq!(
        (months[0].as_str(), months[11].as_str()),
        ("2024-08", "2025-07")
    );
    for (month, vintage, level, _, _) in &q {
        if month.as_str() < "2025-07" {
            assert_eq!(vintage, "2009-04-01", "{month}");
        } else {
            assert_eq!(vintage, "2025-07-01", "{month}");
            assert_ne!(level, "district", "the 2025 hierarchy has no districts");
        }
    }
    let count = |m: &str, l: &str| q.iter().filter(|r| r.0 == m && r.2 == l).count();
    assert_eq!(
        (count("2025-06", "commune"), count("2025-06", "district")),
        (308, 22)
    );
    // Bắc Kạn's 108 GSO communes became 37 of Thái Nguyên; Quảng Ninh has 54.
    assert_eq!(count("2025-07", "commune"), 91);
    // Every July sample placed on the 2009 communes is placed on the derived
    // 2025 ones too (they are dissolved from the same polygons).
    let summary = json(&out.join("summary.json"));
    let v = &summary["vintages"];
    let july_total: u64 = q
        .iter()
        .filter(|r| r.0 == "2025-07" && r.2 == "province")
        .map(|r| r.4)
        .sum();
    assert_eq!(v[1]["samples"].as_u64(), Some(july_total));
    assert_eq!(v[1]["unmapped"], 0);
    // Villages, gaps and the plan are on the units of the last month.
    let (h, villages) = read_csv(&out.join("villages.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    assert!(villages.iter().all(|r| r[c("vintage")] == "2025-07-01"));
    let new_codes: std::collections::HashSet<&str> = q
        .iter()
        .filter(|r| r.1 == "2025-07-01" && r.2 == "commune")
        .map(|r| r.3.as_str())
        .collect();
    assert!(
        villages
            .iter()
            .all(|r| new_codes.contains(r[c("unit_code")].as_str()))
    );
}

#[test]
fn a_national_crosswalk_over_regional_boundaries_reports_the_region() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let samples = dir.path().join("samples.csv");
    crate::util::simulate_default(&samples, 3, 2_000, 0.0);
    let national = format!(
        "2025-07-01={}",
        s(&crate::util::repo().join("data/vn_2025/crosswalk_2009_2025.csv"))
    );
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&crate::util::default_data().0),
        "--crosswalk",
        &national,
        "--view",
        "new",
        "--out",
        s(&out),
    ]);
    let q = quota(&out);
    let communes = q.iter().filter(|r| r.2 == "commune").count();
    let provinces: Vec<&str> = q
        .iter()
        .filter(|r| r.2 == "province")
        .map(|r| r.3.as_str())
        .collect();
    assert_eq!(communes, 91, "only the default territory's new communes");
    assert_eq!(provinces, ["19", "22"]);
}
