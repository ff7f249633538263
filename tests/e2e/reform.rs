//! The reform data step (`gapmap reform`) on the real shared data: it is
//! reproducible (the shipped tables and polygons come out byte for byte),
//! hand-checked matches hold, and the derived polygons agree with the
//! crosswalk rule, checked with an oracle written here (ray casting and
//! haversine nearest centre, no geo crate).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::oracle::{brute_contains, load_units};
use crate::util::{gapmap_ok, json, read_csv, repo, s, simulate_default};

/// The shared public data: `$GAPMAP_SHARED_DATA`, else `../shared/data/vn`
/// beside the repository, else `/work/shared/data/vn`.
pub fn shared() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("GAPMAP_SHARED_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            repo().join("../shared/data/vn"),
            PathBuf::from("/work/shared/data/vn"),
        ])
        .collect();
    candidates
        .iter()
        .find(|d| d.join("admin_2025/units_2025.csv").exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the shared public data is missing (looked in {candidates:?}); set GAPMAP_SHARED_DATA to its vn/ folder"
            )
        })
}

fn same_bytes(a: &Path, b: &Path) {
    let (x, y) = (
        std::fs::read(a).expect("read"),
        std::fs::read(b).expect("read"),
    );
    assert!(
        x == y,
        "{} differs from {}: rerun `gapmap reform` (see data/README.md)",
        a.display(),
        b.display()
    );
}

#[test]
fn national_tables_are_reproducible_and_hand_checks_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("vn_2025");
    let o = gapmap_ok(&["reform", "--source", s(&shared()), "--out", s(&out)]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    println!("{stdout}");
    for f in [
        "crosswalk_2009_2025.csv",
        "match_2009_gso.csv",
        "match_rate_by_province.csv",
        "quality.json",
    ] {
        same_bytes(&out.join(f), &repo().join("data/vn_2025").join(f));
    }
    let (h, rows) = read_csv(&out.join("match_2009_gso.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    let by_id: HashMap<&str, &Vec<String>> = rows
        .iter()
        .map(|r| (r[c("commune_id")].as_str(), r))
        .collect();
    // Checked by hand in units_legacy.csv: Bắc Kạn's Phường Đức Xuân is 01840;
    // Xã Huyền Tụng became Phường Huyền Tụng (01846): the type word is ignored.
    assert_eq!(by_id["2070101"][c("gso_code")], "01840");
    assert_eq!(by_id["2070101"][c("method")], "name");
    assert_eq!(by_id["2070109"][c("gso_code")], "01846");
    // Hà Nội's Phường Nguyễn Trung Trực was merged away before 2024: no GSO
    // commune bears its name, so it is not a match, only an assignment.
    assert_eq!(by_id["1010103"][c("method")], "nearest_centre");
    // Every 2009 commune is in the table once.
    assert_eq!(rows.len(), 11_163);
    let q = json(&out.join("quality.json"));
    let rate = q["match_rate"].as_f64().expect("rate");
    assert!(rate > 0.85, "national match rate {rate}");
    let median = q["quality"]["area_ratio_median"].as_f64().expect("median");
    assert!(
        (0.95..=1.05).contains(&median),
        "median area ratio {median}"
    );
}

#[test]
fn default_polygons_are_reproducible_and_agree_with_the_crosswalk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cut");
    gapmap_ok(&[
        "reform",
        "--source",
        s(&shared()),
        "--out",
        s(&out),
        "--provinces",
        "207,225",
    ]);
    let shipped = repo().join("data/vn_2025_default");
    same_bytes(
        &out.join("communes_2025_derived.geojson"),
        &shipped.join("communes_2025.geojson"),
    );
    same_bytes(
        &out.join("crosswalk_2009_2025.csv"),
        &shipped.join("crosswalk_2009_2025.csv"),
    );

    // Oracle: each simulated sample's new commune by the crosswalk rule
    // (nearest centre among the old commune's targets, haversine) against
    // ray casting in the derived polygons.
    let sims = dir.path().join("samples.csv");
    simulate_default(&sims, 7, 20_000, 0.0);
    let (xh, xw) = read_csv(&shipped.join("crosswalk_2009_2025.csv"));
    let xc = |n: &str| xh.iter().position(|x| x == n).expect(n);
    let mut targets: HashMap<String, Vec<(String, f64, f64)>> = HashMap::new();
    for r in &xw {
        targets.entry(r[xc("old_code")].clone()).or_default().push((
            r[xc("new_code")].clone(),
            r[xc("new_lon")].parse().expect("lon"),
            r[xc("new_lat")].parse().expect("lat"),
        ));
    }
    let new = load_units(&shipped.join("communes_2025.geojson"), "commune_code");
    let old = load_units(&crate::util::default_data().0, "commune_id");
    let (sh, samples) = read_csv(&sims);
    let sc = |n: &str| sh.iter().position(|x| x == n).expect(n);
    let (mut agree, mut disagree, mut checked_splits) = (0u64, 0u64, 0u64);
    for r in samples.iter().take(5_000) {
        let (lon, lat): (f64, f64) = (
            r[sc("lon")].parse().expect("lon"),
            r[sc("lat")].parse().expect("lat"),
        );
        let inside = brute_contains(&old, lon, lat);
        let [old_code] = inside.as_slice() else {
            continue; // outside every 2009 commune (snapped), or on a shared edge
        };
        let Some(t) = targets.get(old_code) else {
            continue;
        };
        if t.len() > 1 {
            checked_splits += 1;
        }
        let want = t
            .iter()
            .min_by(|a, b| haversine(lon, lat, a.1, a.2).total_cmp(&haversine(lon, lat, b.1, b.2)))
            .map(|x| x.0.clone())
            .expect("a target");
        if brute_contains(&new, lon, lat) == [want] {
            agree += 1;
        } else {
            disagree += 1;
        }
    }
    println!(
        "crosswalk vs derived polygons: {agree} agree, {disagree} differ; {checked_splits} in split communes"
    );
    assert!(checked_splits > 100, "{checked_splits}");
    assert!(agree > 4_000);
    // Differences can only come from points within rounding of a shared edge.
    assert!(
        disagree * 1000 <= agree,
        "{disagree} of {}",
        agree + disagree
    );
}

fn haversine(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let a = ((p2 - p1) / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((lon2 - lon1).to_radians() / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * a.sqrt().asin()
}
