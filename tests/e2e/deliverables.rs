//! What people open: every layer of the demo in GeoJSON, FlatGeobuf and
//! GeoPackage read by GDAL (an independent reader) without a warning, with
//! the right geometry type, SRS and contents; the QGIS styles; the
//! spreadsheet read back with calamine against `quota.csv`; the manifest's
//! hashes against `sha256sum`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{gapmap_ok, json, read_csv, s};

/// A small demo (3 000 tests a month, twelve months) in every format.
fn demo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    gapmap_ok(&["demo", "--out", s(&out), "--samples", "3000"]);
    (dir, out)
}

/// Runs ogrinfo; `None` when GDAL is absent and GAPMAP_SKIP_GDAL is set.
fn ogrinfo(args: &[&str]) -> Option<(String, String)> {
    match Command::new("ogrinfo").args(args).output() {
        Ok(o) => {
            let (out, err) = (
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            );
            assert!(o.status.success(), "ogrinfo {args:?} failed: {err}");
            Some((out, err))
        }
        Err(e) if std::env::var_os("GAPMAP_SKIP_GDAL").is_some() => {
            eprintln!("ogrinfo unavailable ({e}); skipped because GAPMAP_SKIP_GDAL is set");
            None
        }
        Err(e) => panic!(
            "ogrinfo not found ({e}): install Debian's gdal-bin (.ci/run does), or set GAPMAP_SKIP_GDAL=1"
        ),
    }
}

/// Sum of an integer property over a GeoJSON layer, read with serde_json.
fn geojson_sum(path: &Path, prop: &str) -> (usize, u64) {
    let v = json(path);
    let f = v["features"].as_array().expect("features");
    (
        f.len(),
        f.iter()
            .map(|x| x["properties"][prop].as_u64().expect("integer"))
            .sum(),
    )
}

#[test]
fn every_layer_opens_in_gdal_in_each_format() {
    let (_dir, out) = demo();
    let layers: [(&str, &str, &str, &str); 8] = [
        ("heatmap/viettel", "viettel", "Polygon", "samples"),
        ("heatmap/vinaphone", "vinaphone", "Polygon", "samples"),
        ("heatmap/mobifone", "mobifone", "Polygon", "samples"),
        ("heatmap/vietnamobile", "vietnamobile", "Polygon", "samples"),
        ("heatmap/all", "all", "Polygon", "samples"),
        ("villages", "villages", "Point", "samples_viettel"),
        ("plan", "plan", "Point", "tests_needed"),
        ("units", "units", "Multi Polygon", "samples"),
    ];
    for (stem, name, geometry, field) in layers {
        let (count, sum) = geojson_sum(&out.join(format!("{stem}.geojson")), field);
        assert!(count > 0, "{stem} is empty");
        for ext in ["geojson", "fgb", "gpkg"] {
            let path = out.join(format!("{stem}.{ext}"));
            let Some((info, err)) = ogrinfo(&["-ro", "-so", s(&path), name]) else {
                return;
            };
            assert!(err.trim().is_empty(), "{stem}.{ext}: GDAL warned: {err}");
            assert!(
                info.contains(&format!("Geometry: {geometry}\n")),
                "{stem}.{ext}: {info}"
            );
            assert!(
                info.contains(&format!("Feature Count: {count}\n")),
                "{stem}.{ext}: {info}"
            );
            assert!(
                info.contains("ID[\"EPSG\",4326]"),
                "{stem}.{ext}: not WGS 84: {info}"
            );
            // Read every feature, and let GDAL add up a column.
            let sql = format!("SELECT SUM(\"{field}\") AS total FROM \"{name}\"");
            let (q, err) = ogrinfo(&["-ro", "-q", "-dialect", "SQLite", "-sql", &sql, s(&path)])
                .expect("gdal");
            assert!(err.trim().is_empty(), "{stem}.{ext}: {err}");
            assert!(
                q.contains(&format!("total (Integer) = {sum}\n")),
                "{stem}.{ext}: {q}"
            );
            let (_, err) = ogrinfo(&["-ro", "-al", s(&path)]).expect("gdal");
            assert!(err.trim().is_empty(), "{stem}.{ext}: {err}");
            if ext != "gpkg" {
                let qml = std::fs::read_to_string(out.join(format!("{stem}.qml")))
                    .expect("a .qml beside the layer");
                assert!(qml.contains("RuleRenderer"), "{stem}.qml");
            }
        }
        // The GeoPackage carries its style for QGIS.
        let gpkg = out.join(format!("{stem}.gpkg"));
        let sql = format!(
            "SELECT styleName, useAsDefault, length(styleQML) AS n FROM layer_styles WHERE f_table_name = '{name}'"
        );
        let (q, _) = ogrinfo(&["-ro", "-q", "-sql", &sql, s(&gpkg)]).expect("gdal");
        assert!(
            q.contains(&format!("styleName (String) = {name}")),
            "{stem}: {q}"
        );
        assert!(
            q.contains("useAsDefault (Integer(Boolean)) = 1"),
            "{stem}: {q}"
        );
    }
    // Styles name the insufficient-data class and the village statuses in both languages.
    let heat = std::fs::read_to_string(out.join("heatmap/all.qml")).expect("qml");
    assert!(heat.contains("Chưa đủ dữ liệu / Insufficient data"));
    let v = std::fs::read_to_string(out.join("villages.qml")).expect("qml");
    assert!(
        v.contains("Yếu / Weak") && v.contains("&quot;worst_status&quot; = &apos;weak&apos;"),
        "{v}"
    );
}

#[test]
fn units_layer_quota_status_matches_quota_csv() {
    let (_dir, out) = demo();
    let (h, rows) = read_csv(&out.join("quota.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    let last = rows
        .iter()
        .map(|r| r[c("month")].clone())
        .max()
        .expect("rows");
    let v = json(&out.join("units.geojson"));
    let features = v["features"].as_array().expect("features");
    let communes: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[c("month")] == last && r[c("level")] == "commune")
        .collect();
    assert_eq!(features.len(), communes.len());
    for f in features {
        let p = &f["properties"];
        let row = communes
            .iter()
            .find(|r| r[c("code")] == p["code"].as_str().expect("code"))
            .expect("a quota row for every unit polygon");
        assert_eq!(
            p["samples"].as_u64().map(|n| n.to_string()).as_deref(),
            Some(row[c("samples")].as_str())
        );
        assert_eq!(
            p["met"].as_bool().map(|b| b.to_string()).as_deref(),
            Some(row[c("met")].as_str())
        );
        assert_eq!(p["vintage"].as_str(), Some(row[c("vintage")].as_str()));
        let (villages, reached) = (
            p["villages"].as_u64().expect("n"),
            p["villages_reached"].as_u64().expect("n"),
        );
        assert!(reached <= villages);
    }
}

#[test]
fn report_xlsx_reads_back_as_the_quota_table() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let (_dir, out) = demo();
    let mut wb: Xlsx<_> = open_workbook(out.join("report.xlsx")).expect("open report.xlsx");
    assert_eq!(wb.sheet_names(), ["Tổng hợp", "Đơn vị"]);
    let units = wb.worksheet_range("Đơn vị").expect("units sheet");
    let rows: Vec<&[Data]> = units.rows().collect();
    assert_eq!(rows[0][6], Data::String("Số mẫu".into()));
    assert_eq!(rows[1][6], Data::String("Samples".into()));
    let (h, quota) = read_csv(&out.join("quota.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    assert_eq!(
        rows.len() - 2,
        quota.len(),
        "one spreadsheet row per quota row"
    );
    for (x, q) in rows[2..].iter().zip(&quota) {
        assert_eq!(x[0], Data::String(q[c("month")].clone()));
        assert_eq!(x[1], Data::String(q[c("vintage")].clone()));
        assert_eq!(x[3], Data::String(q[c("code")].clone()));
        // Numbers are numbers, not text.
        assert_eq!(
            x[6],
            Data::Float(q[c("samples")].parse().expect("n")),
            "{q:?}"
        );
        assert_eq!(x[10], Data::Float(q[c("deficit")].parse().expect("n")));
        assert_eq!(x[9], Data::Bool(q[c("met")] == "true"));
    }
    // Per-carrier medians equal unit_stats.csv.
    let (sh, stats) = read_csv(&out.join("unit_stats.csv"));
    let sc = |n: &str| sh.iter().position(|x| x == n).expect(n);
    let viettel_col = rows[1]
        .iter()
        .position(|d| *d == Data::String("Median download Viettel (Mbps)".into()))
        .expect("column");
    let mut checked = 0;
    for st in stats
        .iter()
        .filter(|r| r[sc("carrier")] == "Viettel" && r[sc("level")] == "commune")
        .take(200)
    {
        let x = rows[2..]
            .iter()
            .find(|x| {
                x[0] == Data::String(st[sc("month")].clone())
                    && x[3] == Data::String(st[sc("code")].clone())
            })
            .expect("row");
        let want: f64 = st[sc("download_median_mbps")].parse().expect("median");
        match &x[viettel_col] {
            Data::Float(v) => assert!((v - want).abs() < 5e-4, "{v} vs {want}"),
            other => panic!("median is not a number: {other:?}"),
        }
        checked += 1;
    }
    assert!(checked > 100);
    let summary = wb.worksheet_range("Tổng hợp").expect("summary sheet");
    let s_json = json(&out.join("summary.json"));
    let q = s_json["quota"].as_array().expect("quota");
    let srows: Vec<&[Data]> = summary.rows().collect();
    assert_eq!(srows.len() - 2, q.len());
    for (x, q) in srows[2..].iter().zip(q) {
        assert_eq!(x[5], Data::Float(q["share_met"].as_f64().expect("share")));
    }
}

#[test]
fn manifest_hashes_every_output_and_input() {
    let (_dir, out) = demo();
    let m = json(&out.join("manifest.json"));
    assert_eq!(m["command"][1], "demo");
    assert!(m["gapmap_version"].is_string());
    assert_eq!(m["boundary_vintages"].as_array().map(Vec::len), Some(2));
    assert!(m["settings"]["weak_below_mbps"].is_number());
    let outputs = m["outputs"].as_array().expect("outputs");
    assert!(outputs.len() >= 30, "{}", outputs.len());
    let check = |path: &Path, want: &serde_json::Value| {
        let o = Command::new("sha256sum")
            .arg(path)
            .output()
            .expect("sha256sum");
        let got = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            got.split_whitespace().next(),
            want["sha256"].as_str(),
            "{}",
            path.display()
        );
        assert_eq!(
            std::fs::metadata(path).expect("file").len(),
            want["bytes"].as_u64().expect("bytes")
        );
    };
    for o in outputs {
        check(&out.join(o["path"].as_str().expect("path")), o);
    }
    let inputs = m["inputs"].as_array().expect("inputs");
    let samples = inputs
        .iter()
        .find(|i| {
            i["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("samples.csv"))
        })
        .expect("the samples file is an input");
    check(&out.join("samples.csv"), samples);
    assert!(
        inputs
            .iter()
            .any(|i| i["path"] == "embedded:data/vn_2025_default/communes_2025.geojson")
    );
}

/// Headless Chromium, started as the machine notes say (no network, fresh profile).
fn chromium(args: &[&str]) -> Option<std::process::Output> {
    let profile = tempfile::tempdir().expect("profile");
    let dir = format!("--user-data-dir={}", s(profile.path()));
    let mut all = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=20000",
        dir.as_str(),
    ];
    all.extend_from_slice(args);
    match Command::new("chromium").args(&all).output() {
        Ok(o) => {
            assert!(
                o.status.success(),
                "chromium failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(o)
        }
        Err(e) if std::env::var_os("GAPMAP_SKIP_BROWSER").is_some() => {
            eprintln!("chromium unavailable ({e}); skipped because GAPMAP_SKIP_BROWSER is set");
            None
        }
        Err(e) => panic!(
            "chromium not found ({e}): install Debian's chromium (.ci/run does), or set GAPMAP_SKIP_BROWSER=1"
        ),
    }
}

#[test]
fn report_html_renders_offline_in_a_browser() {
    let (_dir, out) = demo();
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html");
    // Self-contained: nothing to fetch at view time.
    // (A hyperlink, such as Leaflet's attribution, loads nothing.)
    for needle in [
        "src=\"http",
        "url(http",
        "<link ",
        "sourceMappingURL",
        "import(",
    ] {
        assert!(
            !html.contains(needle),
            "report.html refers outside itself: {needle}"
        );
    }
    let url = format!("file://{}", s(&page));
    let Some(dom) = chromium(&["--dump-dom", &url]) else {
        return;
    };
    let dom = String::from_utf8_lossy(&dom.stdout);
    let attr = dom
        .split("data-drawn=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page published what it drew")
        .replace("&quot;", "\"");
    let drawn: serde_json::Value = serde_json::from_str(&attr).expect("json");
    let count = |p: &str| {
        json(&out.join(p))["features"]
            .as_array()
            .expect("features")
            .len() as u64
    };
    assert_eq!(drawn["units"].as_u64(), Some(count("units.geojson")));
    assert_eq!(
        drawn["cells"].as_u64(),
        Some(count("heatmap/all.geojson")),
        "the ALL layer shows first"
    );
    assert_eq!(drawn["villages"].as_u64(), Some(count("villages.geojson")));
    let total = count("units.geojson") + count("heatmap/all.geojson") + count("villages.geojson");
    assert!(drawn["paths"].as_u64().expect("paths") >= total, "{drawn}");

    let shot = out.join("shot.png");
    let arg = format!("--screenshot={}", s(&shot));
    chromium(&["--window-size=1200,850", &arg, &url]).expect("chromium ran above");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("png"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let page_colour = [0xe8u8, 0xee, 0xf2];
    let drawn_px = pixels.iter().filter(|p| p[..3] != page_colour).count();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(
        drawn_px * 10 > pixels.len(),
        "only {drawn_px} of {} pixels differ from the background",
        pixels.len()
    );
    assert!(
        colours.len() > 50,
        "{} colours: a blank page?",
        colours.len()
    );
}

#[test]
fn messages_name_every_file_and_quiet_silences_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = gapmap_ok(&["demo", "--out", s(&out), "--samples", "500"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let m = json(&out.join("manifest.json"));
    for f in m["outputs"].as_array().expect("outputs") {
        let name = f["path"].as_str().expect("path");
        assert!(
            err.lines().any(|l| l.trim() == name),
            "{name} not named in:\n{err}"
        );
    }
    assert!(err.lines().any(|l| l.trim() == "manifest.json"));
    // Not a terminal: no progress bar drawn.
    assert!(!err.contains("reading samples"), "{err}");
    let o = gapmap_ok(&["--quiet", "demo", "--out", s(&out), "--samples", "500"]);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.stdout.is_empty(), "results still go to stdout");
}

#[test]
fn empty_layers_open_in_gdal() {
    // The fixture has Viettel samples only: the VinaPhone heatmap is empty.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let f = |n: &str| crate::util::fixture(n);
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&f("reform_samples.csv")),
        "--boundaries",
        s(&f("reform_old.geojson")),
        "--levels",
        "province=prov_code:prov_name,district=dist_code:dist_name,commune=comm_code:comm_name",
        "--format",
        "geojson,fgb,gpkg",
        "--out",
        s(&out),
    ]);
    for ext in ["geojson", "fgb", "gpkg"] {
        let path = out.join(format!("heatmap/vinaphone.{ext}"));
        let Some((info, err)) = ogrinfo(&["-ro", "-so", s(&path), "vinaphone"]) else {
            return;
        };
        assert!(err.trim().is_empty(), "{ext}: {err}");
        assert!(info.contains("Feature Count: 0\n"), "{ext}: {info}");
    }
}
