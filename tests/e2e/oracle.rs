//! Simulated samples over the embedded default data (Bắc Kạn + Quảng Ninh,
//! 308 communes), checked against a brute-force oracle written here: its own
//! ray-casting point-in-polygon against every polygon (no spatial index, no
//! geo crate) and its own nearest-edge search for snapping.

use std::collections::HashMap;

use crate::util::{analyze_default, gapmap_ok, in_ring, read_csv, repo, s, simulate_default};

const R: f64 = 6_371_008.8;

fn haversine(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let a = ((p2 - p1) / 2.0).sin().powi(2)
        + p1.cos() * p2.cos() * ((lon2 - lon1).to_radians() / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

/// Distance to a segment: dense sampling along it (an independent, slower
/// method than the library's projection), good to well under a metre here.
fn seg_dist(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let len = haversine(a[0], a[1], b[0], b[1]);
    let steps = ((len / 0.5).ceil() as usize).clamp(1, 200_000);
    (0..=steps)
        .map(|i| {
            let t = i as f64 / steps as f64;
            haversine(
                p[0],
                p[1],
                a[0] + t * (b[0] - a[0]),
                a[1] + t * (b[1] - a[1]),
            )
        })
        .fold(f64::INFINITY, f64::min)
}

type Poly = Vec<Vec<[f64; 2]>>;

/// A unit's code, polygons and bounding box (min lon, min lat, max lon, max lat).
pub struct OracleUnit {
    pub code: String,
    polys: Vec<Poly>,
    bbox: [f64; 4],
}

fn communes() -> Vec<OracleUnit> {
    load_units(
        &repo().join("data/vn_default/communes.geojson"),
        "commune_id",
    )
}

/// Loads polygons with plain serde_json, sorted by numeric code.
pub fn load_units(path: &std::path::Path, code_prop: &str) -> Vec<OracleUnit> {
    let text = std::fs::read_to_string(path).expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut out: Vec<OracleUnit> = v["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| {
            let v = &f["properties"][code_prop];
            let code = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            // A Polygon is a MultiPolygon of one.
            let coords = &f["geometry"]["coordinates"];
            let parts: Vec<&serde_json::Value> = match f["geometry"]["type"].as_str() {
                Some("Polygon") => vec![coords],
                _ => coords.as_array().expect("multipolygon").iter().collect(),
            };
            let polys: Vec<Poly> = parts
                .into_iter()
                .map(|poly| {
                    poly.as_array()
                        .expect("rings")
                        .iter()
                        .map(|ring| {
                            ring.as_array()
                                .expect("ring")
                                .iter()
                                .map(|p| [p[0].as_f64().expect("x"), p[1].as_f64().expect("y")])
                                .collect()
                        })
                        .collect()
                })
                .collect();
            let mut bbox = [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ];
            for p in polys.iter().flatten().flatten() {
                let p: &[f64; 2] = p;
                bbox = [
                    bbox[0].min(p[0]),
                    bbox[1].min(p[1]),
                    bbox[2].max(p[0]),
                    bbox[3].max(p[1]),
                ];
            }
            OracleUnit { code, polys, bbox }
        })
        .collect();
    out.sort_by_key(|u| (u.code.parse::<u64>().expect("numeric code"), u.code.clone()));
    out
}

/// Every unit whose polygons contain a point (ray casting, holes excluded).
pub fn brute_contains(cs: &[OracleUnit], x: f64, y: f64) -> Vec<String> {
    cs.iter()
        .filter(|u| {
            let b = u.bbox;
            x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]
        })
        .filter(|u| {
            u.polys
                .iter()
                .any(|p| in_ring(x, y, &p[0]) && !p[1..].iter().any(|h| in_ring(x, y, h)))
        })
        .map(|u| u.code.clone())
        .collect()
}

/// The commune of a point: containment (lowest code first), else the nearest
/// edge within 500 m, else None.
pub fn brute_locate(cs: &[OracleUnit], x: f64, y: f64) -> Option<String> {
    for u in cs {
        let b = u.bbox;
        if x < b[0] || x > b[2] || y < b[1] || y > b[3] {
            continue;
        }
        if u.polys
            .iter()
            .any(|p| in_ring(x, y, &p[0]) && !p[1..].iter().any(|h| in_ring(x, y, h)))
        {
            return Some(u.code.clone());
        }
    }
    let mut best: Option<(f64, &str)> = None;
    for u in cs {
        // Prefilter: 0.01° (≥ 1 km at these latitudes) around the bounding box.
        let b = u.bbox;
        if x < b[0] - 0.01 || x > b[2] + 0.01 || y < b[1] - 0.01 || y > b[3] + 0.01 {
            continue;
        }
        let code = u.code.as_str();
        for ring in u.polys.iter().flatten() {
            for w in ring.windows(2) {
                let d = seg_dist([x, y], w[0], w[1]);
                if d <= 500.0 && best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, code));
                }
            }
        }
    }
    best.map(|(_, c)| c.to_owned())
}

#[test]
fn quota_counts_equal_brute_force_point_in_polygon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("samples.csv");
    let out = dir.path().join("out");
    simulate_default(&samples, 7, 6000, 0.0);
    analyze_default(&samples, &out);

    let cs = communes();
    let (header, rows) = read_csv(&samples);
    let col = |n: &str| header.iter().position(|h| h == n).expect(n);
    let (lat, lon, net, dl) = (col("lat"), col("lon"), col("network"), col("download_mbps"));
    let mut count: HashMap<String, u64> = HashMap::new();
    let mut downloads: HashMap<String, Vec<f64>> = HashMap::new();
    let (mut outside, mut wifi) = (0u64, 0u64);
    for r in &rows {
        let (y, x): (f64, f64) = (r[lat].parse().expect("lat"), r[lon].parse().expect("lon"));
        match brute_locate(&cs, x, y) {
            None => outside += 1,
            Some(_) if r[net].eq_ignore_ascii_case("wifi") => wifi += 1,
            Some(code) => {
                *count.entry(code.clone()).or_default() += 1;
                downloads
                    .entry(code)
                    .or_default()
                    .push(r[dl].parse().expect("download"));
            }
        }
    }
    let (_, quota) = read_csv(&out.join("quota.csv"));
    let communes: Vec<&Vec<String>> = quota.iter().filter(|r| r[1] == "commune").collect();
    assert_eq!(communes.len(), 308);
    let mut mismatches = Vec::new();
    for r in &communes {
        let want = count.get(&r[2]).copied().unwrap_or(0);
        if r[5] != want.to_string() {
            mismatches.push(format!("{}: gapmap {} brute force {want}", r[2], r[5]));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:?}");
    let total: u64 = count.values().sum();
    assert!(total > 5_000, "most samples land in a commune ({total})");
    let summary = crate::util::json(&out.join("summary.json"));
    assert_eq!(summary["rows"]["accepted"], total);
    assert_eq!(summary["rows"]["rejected"]["outside_boundaries"], outside);
    assert_eq!(summary["rows"]["excluded"]["wifi"], wifi);
    // Province totals are sums of their communes (province code = first 3 digits here).
    let province_sum: u64 = count
        .iter()
        .filter(|(c, _)| c.starts_with("207"))
        .map(|(_, n)| n)
        .sum();
    let bac_kan = quota
        .iter()
        .find(|r| r[1] == "province" && r[2] == "207")
        .expect("Bắc Kạn");
    assert_eq!(bac_kan[5], province_sum.to_string());

    // Medians: a naive sort per commune.
    let (_, stats) = read_csv(&out.join("unit_stats.csv"));
    for r in stats
        .iter()
        .filter(|r| r[1] == "commune" && r[3] == "ALL" && r[4] != "0")
    {
        let mut v = downloads[&r[2]].clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let got: f64 = r[6].parse().expect("median");
        assert!(
            (got - median).abs() <= 0.0005 + 1e-9,
            "{}: {got} vs {median}",
            r[2]
        );
    }
}

#[test]
fn two_level_reform_hierarchy_with_zero_padded_codes() {
    // Samples simulated over the 2009 communes, analysed with the two-level
    // 2025 layer of Quảng Ninh (province code "22", commune codes like "06652").
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("samples.csv");
    let out = dir.path().join("out");
    simulate_default(&samples, 5, 6000, 0.0);
    let b = crate::util::fixture("quang_ninh_2025_approx.geojson");
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&b),
        "--levels",
        "province=ma_tinh_2025:ma_tinh_2025,commune=ma_xa_2025:ten_xa_2025",
        "--out",
        s(&out),
    ]);
    let units = load_units(&b, "ma_xa_2025");
    let (header, rows) = read_csv(&samples);
    let col = |n: &str| header.iter().position(|h| h == n).expect(n);
    let mut count: HashMap<String, u64> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| !r[col("network")].eq_ignore_ascii_case("wifi"))
    {
        let (y, x): (f64, f64) = (
            r[col("lat")].parse().expect("lat"),
            r[col("lon")].parse().expect("lon"),
        );
        if let Some(code) = brute_locate(&units, x, y) {
            *count.entry(code).or_default() += 1;
        }
    }
    let (_, quota) = read_csv(&out.join("quota.csv"));
    assert_eq!(quota.len(), 1 + 54, "one month, one province, 54 communes");
    let province = &quota[0];
    assert_eq!(
        (
            province[1].as_str(),
            province[2].as_str(),
            province[4].as_str()
        ),
        ("province", "22", "")
    );
    for r in &quota[1..] {
        assert_eq!(r[1], "commune");
        assert_eq!(r[2].len(), 5, "zero-padded code kept: {}", r[2]);
        assert_eq!(r[4], "22");
        assert_eq!(
            r[5],
            count.get(&r[2]).copied().unwrap_or(0).to_string(),
            "{}",
            r[2]
        );
    }
    let total: u64 = count.values().sum();
    assert!(
        total > 1_000,
        "Quảng Ninh gets a share of the samples ({total})"
    );
    assert_eq!(province[5], total.to_string());
}
