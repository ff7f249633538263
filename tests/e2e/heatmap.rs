//! Heatmap layers: RFC 7946 structure, every sample inside exactly one
//! hexagon of the ALL layer (checked by ray casting here, independent of
//! h3o), counts that add up, and GDAL opening the layer without warnings.

use crate::util::{
    analyze_default, default_data, gapmap, gapmap_ok, in_ring, json, read_csv, s, simulate_default,
};

fn simulate_and_analyze() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = dir.path().join("s.csv");
    let out = dir.path().join("out");
    simulate_default(&samples, 11, 4000, 0.0);
    analyze_default(&samples, &out);
    (dir, samples, out)
}

#[test]
fn layers_are_rfc7946_and_cover_every_sample() {
    let (_dir, samples, out) = simulate_and_analyze();
    for name in ["viettel", "vinaphone", "mobifone", "vietnamobile", "all"] {
        assert!(
            out.join(format!("heatmap/{name}.geojson")).exists(),
            "{name}"
        );
    }
    let text = std::fs::read_to_string(out.join("heatmap/all.geojson")).unwrap();
    assert!(!text.contains("\"crs\""));
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(g["type"], "FeatureCollection");
    let feats = g["features"].as_array().unwrap();
    // The documented property order, checked on the text of the first feature.
    let first = text.lines().nth(1).expect("a feature line");
    let order = [
        "h3",
        "carrier",
        "samples",
        "devices",
        "download_median_mbps",
        "download_p10_mbps",
        "upload_median_mbps",
        "latency_median_ms",
        "status",
        "weak_p",
    ];
    let pos: Vec<usize> = order
        .iter()
        .map(|k| first.find(&format!("\"{k}\":")).expect(k))
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "property order: {first}"
    );
    let mut cells: Vec<(u64, Vec<[f64; 2]>, u64)> = Vec::new();
    for f in feats {
        let p = &f["properties"];
        assert!(p.as_object().unwrap().len() >= 10);
        assert_eq!(p["carrier"], "ALL");
        assert_eq!(f["geometry"]["type"], "Polygon");
        let ring: Vec<[f64; 2]> = f["geometry"]["coordinates"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| [c[0].as_f64().unwrap(), c[1].as_f64().unwrap()])
            .collect();
        assert_eq!(ring.first(), ring.last(), "closed ring");
        assert_eq!(ring.len(), 7, "hexagon");
        let area2: f64 = ring
            .windows(2)
            .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
            .sum();
        assert!(area2 > 0.0, "counter-clockwise exterior ring");
        for c in &ring {
            assert!(
                (100.0..115.0).contains(&c[0]) && (8.0..24.0).contains(&c[1]),
                "lon/lat order: {c:?}"
            );
            for v in c {
                let scaled = v * 1e6;
                assert!(
                    (scaled - scaled.round()).abs() < 1e-6,
                    "at most 6 decimals: {v}"
                );
            }
        }
        let h3 = u64::from_str_radix(p["h3"].as_str().unwrap(), 16).expect("hex H3 index");
        assert_eq!((h3 >> 52) & 0xF, 8, "resolution 8");
        cells.push((h3, ring, p["samples"].as_u64().unwrap()));
    }
    assert!(cells.windows(2).all(|w| w[0].0 < w[1].0), "sorted by cell");
    // Every accepted sample lies in exactly one hexagon, and per-hexagon counts agree.
    let summary = json(&out.join("summary.json"));
    let (header, rows) = read_csv(&samples);
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let (lat, lon, net) = (col("lat"), col("lon"), col("network"));
    let mut hits = vec![0u64; cells.len()];
    let mut placed = 0u64;
    for r in &rows {
        if r[net].eq_ignore_ascii_case("wifi") {
            continue;
        }
        let (y, x): (f64, f64) = (r[lat].parse().unwrap(), r[lon].parse().unwrap());
        let inside: Vec<usize> = (0..cells.len())
            .filter(|&i| in_ring(x, y, &cells[i].1))
            .collect();
        if let [i] = inside[..] {
            hits[i] += 1;
            placed += 1;
        }
    }
    let total: u64 = cells.iter().map(|c| c.2).sum();
    assert_eq!(
        total,
        summary["rows"]["accepted"].as_u64().unwrap()
            - summary["gaming"]["flagged"]["flagged"].as_u64().unwrap(),
        "ALL layer counts every accepted sample no plausibility rule flagged"
    );
    // Samples outside the boundaries fall in no hexagon of the layer, or in one
    // shared with accepted samples; vertices are rounded to 6 decimals (≈ 0.1 m),
    // so allow a handful of points within that distance of an edge.
    let agree = cells.iter().zip(&hits).filter(|(c, h)| c.2 == **h).count();
    assert!(
        agree as f64 >= 0.97 * cells.len() as f64,
        "{agree} of {} cells agree",
        cells.len()
    );
    assert!(
        placed >= total,
        "{placed} samples in a hexagon, {total} accepted"
    );
}

#[test]
fn gdal_opens_heatmap_without_warnings() {
    let (_dir, _, out) = simulate_and_analyze();
    let layer = out.join("heatmap/viettel.geojson");
    let run = std::process::Command::new("ogrinfo")
        .args(["-ro", "-al", "-so", s(&layer)])
        .output();
    let o = match run {
        Ok(o) => o,
        Err(e) if std::env::var_os("GAPMAP_SKIP_GDAL").is_some() => {
            eprintln!("ogrinfo unavailable ({e}); skipped because GAPMAP_SKIP_GDAL is set");
            return;
        }
        Err(e) => panic!(
            "ogrinfo not found ({e}): install Debian's gdal-bin (.ci/run does), or set GAPMAP_SKIP_GDAL=1"
        ),
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "ogrinfo failed: {stderr}");
    assert!(stderr.trim().is_empty(), "GDAL printed warnings: {stderr}");
    let g = json(&layer);
    let n = g["features"].as_array().unwrap().len();
    assert!(stdout.contains(&format!("Feature Count: {n}")), "{stdout}");
    assert!(stdout.contains("Geometry: Polygon"), "{stdout}");
    assert!(stdout.contains("download_median_mbps: Real"), "{stdout}");
    assert!(stdout.contains("h3: String"), "{stdout}");
}

#[test]
fn cells_with_few_devices_publish_no_statistics() {
    let (dir, samples, out) = simulate_and_analyze();
    let internal = dir.path().join("internal");
    let (b, _) = crate::util::default_data();
    crate::util::gapmap_ok(&[
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&b),
        "--min-devices-public",
        "0",
        "--out",
        s(&internal),
    ]);
    let public = json(&out.join("heatmap/all.geojson"));
    let open = json(&internal.join("heatmap/all.geojson"));
    let (pf, of) = (
        public["features"].as_array().unwrap(),
        open["features"].as_array().unwrap(),
    );
    assert_eq!(
        pf.len(),
        of.len(),
        "the same cells, with or without suppression"
    );
    let mut suppressed = 0;
    for (p, o) in pf.iter().zip(of) {
        let (p, o) = (&p["properties"], &o["properties"]);
        assert_eq!(p["h3"], o["h3"]);
        assert_eq!(p["samples"], o["samples"], "counts stay public");
        assert_eq!(o["suppressed"], false);
        if p["devices"].as_u64().unwrap() < 3 {
            suppressed += 1;
            assert_eq!(p["suppressed"], true);
            assert_eq!(p["status"], "suppressed");
            for k in [
                "download_median_mbps",
                "download_p10_mbps",
                "upload_median_mbps",
                "weak_p",
                "share_below",
                "below_target",
            ] {
                assert!(p[k].is_null(), "{k} published for {}", p["h3"]);
            }
            assert!(
                o["download_median_mbps"].is_number(),
                "internal use keeps the median"
            );
        } else {
            assert_eq!(p["suppressed"], false);
            assert_eq!(p["download_median_mbps"], o["download_median_mbps"]);
        }
    }
    assert!(suppressed > 100, "{suppressed} cells suppressed");
}

#[test]
fn no_output_carries_a_device_id_or_a_sample_coordinate() {
    let (_dir, samples, out) = simulate_and_analyze();
    let (h, rows) = crate::util::read_csv(&samples);
    let c = |n: &str| h.iter().position(|x| x == n).unwrap();
    let devices: Vec<&str> = rows
        .iter()
        .map(|r| r[c("device_id")].as_str())
        .filter(|d| !d.is_empty())
        .take(300)
        .collect();
    let coords: Vec<String> = rows
        .iter()
        .take(300)
        .map(|r| format!("{},{}", r[c("lon")], r[c("lat")]))
        .collect();
    let coords_json: Vec<String> = rows
        .iter()
        .take(300)
        .map(|r| format!("[{},{}]", r[c("lon")], r[c("lat")]))
        .collect();
    let mut stack = vec![out.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            // Rejects stay with the data owner: they name test ids and lines.
            if p.file_name().is_some_and(|n| n == "rejects.csv") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for d in &devices {
                assert!(!text.contains(d), "{} carries device id {d}", p.display());
            }
            for (a, b) in coords.iter().zip(&coords_json) {
                assert!(
                    !text.contains(a.as_str()) && !text.contains(b.as_str()),
                    "{} carries sample coordinate {a}",
                    p.display()
                );
            }
            files += 1;
        }
    }
    assert!(files >= 10, "{files}");
}

#[test]
fn h3_tables_equal_the_geojson_layers_and_change_nothing_else() {
    let (dir, samples, out) = simulate_and_analyze();
    let (b, _) = default_data();
    let tables = dir.path().join("tables");
    let run = gapmap_ok(&[
        "--timings",
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&b),
        "--out",
        s(&tables),
        "--heatmap-format",
        "csv,parquet",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("timing total"));
    // Throughput: rows read per second of the placing stage and of placing,
    // checking and accounting together (a 4 000-row check alone can take
    // under the millisecond below which no rate is printed),
    // accepted samples per second of the heatmaps, each the count over the
    // printed wall time.
    let summary = crate::util::json(&tables.join("summary.json"));
    let rate_of = |stage: &str, unit: &str| {
        let line = stderr
            .lines()
            .find(|l| l.contains(stage))
            .unwrap_or_else(|| panic!("no {stage} in {stderr}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = |word: &str| fields.iter().position(|f| *f == word).expect(word);
        let wall: f64 = fields[at("s") - 1].parse().expect("wall");
        assert_eq!(fields[at(unit) - 1], "M", "{line}");
        let rate: f64 = fields[at(unit) - 2].parse().expect("rate");
        (wall, rate)
    };
    for (stage, unit, count) in [
        ("H3, assign units", "rows/s", &summary["rows"]["read"]),
        ("place, check, account", "rows/s", &summary["rows"]["read"]),
        ("heatmaps", "samples/s", &summary["rows"]["accepted"]),
    ] {
        let (wall, rate) = rate_of(stage, unit);
        let want = count.as_f64().expect("count") / wall / 1e6;
        // Both printed rounded: wall to 1 ms, the rate to 0.01.
        assert!(
            (rate - want).abs() <= 0.01 + want * 0.001 / wall,
            "{stage}: {rate} vs {want}"
        );
    }
    // Tables only: no heatmap geometry; every other output as without them.
    assert!(!tables.join("heatmap/all.geojson").exists());
    for f in [
        "quota.csv",
        "unit_stats.csv",
        "rejects.csv",
        "summary.json",
        "units.geojson",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(tables.join(f)).unwrap(),
            "{f}"
        );
    }
    for name in ["viettel", "vinaphone", "mobifone", "vietnamobile", "all"] {
        let layer = json(&out.join(format!("heatmap/{name}.geojson")));
        let features = layer["features"].as_array().unwrap();
        let (header, rows) = read_csv(&tables.join(format!("heatmap/{name}.csv")));
        assert_eq!(rows.len(), features.len(), "{name}");
        let file = std::fs::File::open(tables.join(format!("heatmap/{name}.parquet"))).unwrap();
        let df = {
            use polars::prelude::SerReader;
            polars::prelude::ParquetReader::new(file).finish().unwrap()
        };
        assert_eq!(df.height(), features.len(), "{name}");
        for (i, (row, f)) in rows.iter().zip(features).enumerate() {
            for (k, field) in header.iter().enumerate() {
                let want = &f["properties"][field];
                let text = &row[k];
                let cell = df.column(field).unwrap().get(i).unwrap();
                match want {
                    serde_json::Value::Null => {
                        assert!(text.is_empty(), "{name} {field}: {text}");
                        assert!(cell.is_null(), "{name} {field}: {cell:?}");
                    }
                    serde_json::Value::Number(n) => {
                        let v = n.as_f64().unwrap();
                        assert_eq!(text.parse::<f64>().unwrap(), v, "{name} {field}");
                        assert_eq!(cell.extract::<f64>().unwrap(), v, "{name} {field}");
                    }
                    serde_json::Value::Bool(v) => {
                        assert_eq!(text, &v.to_string(), "{name} {field}");
                        assert_eq!(
                            cell,
                            polars::prelude::AnyValue::Boolean(*v),
                            "{name} {field}"
                        );
                    }
                    serde_json::Value::String(v) => {
                        assert_eq!(text, v, "{name} {field}");
                        assert_eq!(cell.get_str(), Some(v.as_str()), "{name} {field}");
                    }
                    other => panic!("{name} {field}: unexpected {other}"),
                }
            }
        }
    }
    let bad = gapmap(&[
        "analyze",
        "--samples",
        s(&samples),
        "--boundaries",
        s(&b),
        "--out",
        s(&dir.path().join("bad")),
        "--heatmap-format",
        "shp",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("csv or parquet"));
}
