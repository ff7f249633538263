//! Boundary files as provincial offices send them: each defect is either
//! repaired with a warning naming the feature, or an error naming the feature
//! and the fix. Placement in a repaired unit is checked against ray casting.

use std::path::Path;

use crate::util::{gapmap, gapmap_ok, in_ring, json, read_csv, s};

const LEVELS: &str = "province=p:pn,commune=c:cn";

fn feature(code: &str, geometry: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"type": "Feature",
        "properties": {"p": "1", "pn": "P", "c": code, "cn": format!("C {code}")},
        "geometry": geometry})
}

fn write_layer(path: &Path, features: Vec<serde_json::Value>) {
    let fc = serde_json::json!({"type": "FeatureCollection", "features": features});
    std::fs::write(path, fc.to_string()).expect("write layer");
}

/// A bowtie (figure-eight) exterior crossing itself at (105.1, 21.1).
fn bowtie() -> Vec<[f64; 2]> {
    vec![
        [105.0, 21.0],
        [105.2, 21.2],
        [105.2, 21.0],
        [105.0, 21.2],
        [105.0, 21.0],
    ]
}

#[test]
fn defects_are_repaired_with_a_warning_naming_the_feature() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = dir.path().join("b.geojson");
    // 10: bowtie; 11: clockwise and not closed; 12: split over two features.
    let cw_open = [[105.3, 21.0], [105.3, 21.2], [105.5, 21.2], [105.5, 21.0]];
    write_layer(
        &b,
        vec![
            feature(
                "10",
                &serde_json::json!({"type": "Polygon", "coordinates": [bowtie()]}),
            ),
            feature(
                "11",
                &serde_json::json!({"type": "Polygon", "coordinates": [cw_open]}),
            ),
            feature(
                "12",
                &serde_json::json!({"type": "Polygon", "coordinates":
                    [[[105.6, 21.0], [105.7, 21.0], [105.7, 21.2], [105.6, 21.2], [105.6, 21.0]]]}),
            ),
            feature(
                "12",
                &serde_json::json!({"type": "Polygon", "coordinates":
                    [[[105.7, 21.0], [105.8, 21.0], [105.8, 21.2], [105.7, 21.2], [105.7, 21.0]]]}),
            ),
        ],
    );
    // A 0.01° grid over the whole box; each point's expected unit comes from
    // ray casting in the raw rings (11 closed by hand, 12 as two boxes).
    let ring11: Vec<[f64; 2]> = cw_open.iter().chain(&cw_open[..1]).copied().collect();
    let ring12 = [
        [105.6, 21.0],
        [105.8, 21.0],
        [105.8, 21.2],
        [105.6, 21.2],
        [105.6, 21.0],
    ];
    let mut csv =
        String::from("test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id\n");
    let mut expected = std::collections::BTreeMap::<&str, u64>::new();
    let mut n = 0;
    for i in 0..90 {
        for j in 0..20 {
            // Offsets of a half and a quarter step keep points off every
            // edge, the bowtie's diagonals included.
            let (x, y) = (105.005 + f64::from(i) * 0.01, 21.0025 + f64::from(j) * 0.01);
            let unit = if in_ring(x, y, &bowtie()) {
                "10"
            } else if in_ring(x, y, &ring11) {
                "11"
            } else if in_ring(x, y, &ring12) {
                "12"
            } else {
                continue;
            };
            *expected.entry(unit).or_default() += 1;
            n += 1;
            csv.push_str(&format!(
                "t{n},2025-06-10T10:00:00+07:00,{y},{x},Viettel,4G,20,d{n}\n"
            ));
        }
    }
    // Hand-worked: a column at distance d = 0.005 + 0.01k from the crossing
    // (k = 0..9, one column each side) is inside for 21.1 − d < y < 21.1 + d,
    // i.e. rows 10 − k ..= 10 + k: 2k + 1 points, 100 a side, 200 in all.
    // Box 11 holds 20 × 20 = 400; the two boxes of 12, 20 × 20 = 400.
    assert_eq!(expected.get("10"), Some(&200));
    assert_eq!(expected.get("11"), Some(&400));
    assert_eq!(expected.get("12"), Some(&400));
    let samples = dir.path().join("s.csv");
    std::fs::write(&samples, csv).expect("write samples");
    let out = dir.path().join("out");
    let run = gapmap_ok(&[
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&b),
        "--levels",
        LEVELS,
        "--out",
        s(&out),
        "--snap-m",
        "0",
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    for needle in [
        "feature 0 (unit '10'), polygon 0: exterior crosses itself",
        "feature 1 (unit '11'), polygon 0, ring 0: a ring was not closed",
        "feature 1 (unit '11'), polygon 0: a ring had the wrong winding",
        "features 2, 3 share the code '12'",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
    let summary = json(&out.join("summary.json"));
    let warnings = summary["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    let (header, rows) = read_csv(&out.join("quota.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let got: std::collections::BTreeMap<&str, u64> = rows
        .iter()
        .filter(|r| r[col("level")] == "commune")
        .map(|r| {
            (
                r[col("code")].as_str(),
                r[col("samples")].parse().expect("count"),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(summary["rows"]["rejected"]["outside_boundaries"], 0);
}

fn fails_with(layer: &Path, needles: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("s.csv");
    std::fs::write(
        &samples,
        "test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id\n\
         t1,2025-06-10T10:00:00+07:00,21.1,105.1,Viettel,4G,20,d1\n",
    )
    .expect("write samples");
    let out = gapmap(&[
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(layer),
        "--levels",
        LEVELS,
        "--out",
        s(&dir.path().join("out")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

#[test]
fn unusable_geometries_are_errors_naming_the_feature_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = serde_json::json!({"type": "Polygon", "coordinates":
        [[[105.0, 21.0], [105.2, 21.0], [105.2, 21.2], [105.0, 21.2], [105.0, 21.0]]]});
    let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
        // VN-2000 / UTM metres instead of degrees.
        (
            serde_json::json!({"type": "Polygon", "coordinates":
                [[[583000.0, 2323000.0], [584000.0, 2323000.0], [584000.0, 2324000.0], [583000.0, 2323000.0]]]}),
            vec!["feature 1", "position 0", "EPSG:4326", "ogr2ogr"],
        ),
        (
            serde_json::json!({"type": "Polygon", "coordinates": []}),
            vec!["feature 1", "empty geometry"],
        ),
        (
            serde_json::json!({"type": "Polygon", "coordinates": [[[105.0, 21.0], [105.1, 21.1], [105.0, 21.0]]]}),
            vec!["feature 1", "three distinct points"],
        ),
        (
            serde_json::json!({"type": "LineString", "coordinates": [[105.0, 21.0], [105.1, 21.1]]}),
            vec!["feature 1", "LineString, not a Polygon or MultiPolygon"],
        ),
        (
            serde_json::Value::Null,
            vec!["feature 1", "has no geometry"],
        ),
    ];
    for (i, (geometry, needles)) in cases.into_iter().enumerate() {
        let layer = dir.path().join(format!("bad{i}.geojson"));
        write_layer(&layer, vec![feature("1", &good), feature("2", &geometry)]);
        let mut needles = needles;
        let name = layer
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        needles.push(&name);
        fails_with(&layer, &needles);
    }
    // NaN cannot be written in JSON: the parser's message names file, line and column.
    let nan = dir.path().join("nan.geojson");
    std::fs::write(
        &nan,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"p":"1","pn":"P","c":"1","cn":"C"},
"geometry":{"type":"Polygon","coordinates":[[[105.0,21.0],[NaN,21.0],[105.2,21.2],[105.0,21.0]]]}}]}"#,
    )
    .expect("write");
    fails_with(&nan, &["nan.geojson", "line 2"]);
    // A commune whose province changes between features.
    let two = dir.path().join("two_parents.geojson");
    let mut moved = feature("1", &good);
    moved["properties"]["p"] = "9".into();
    write_layer(&two, vec![feature("1", &good), moved]);
    fails_with(
        &two,
        &[
            "two_parents.geojson",
            "commune code '1' appears under two parents ('1' and '9')",
        ],
    );
}
