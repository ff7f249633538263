//! Property: on random samples (ties, duplicates, bad rows, devices that
//! jump and over-test), every output is byte-identical whatever the thread
//! count and the order of the input rows (`rejects.csv` aside: it names
//! lines; the manifest aside: it names the command).

use std::path::Path;

use proptest::prelude::*;

use crate::util::{default_data, repo, s};

/// Village points of the default data: places inside its communes.
fn anchors() -> Vec<(f64, f64)> {
    let v = crate::util::json(&repo().join("data/vn_default/villages.geojson"));
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .step_by(37)
        .take(12)
        .map(|f| {
            let c = &f["geometry"]["coordinates"];
            (c[0].as_f64().unwrap(), c[1].as_f64().unwrap())
        })
        .collect()
}

/// One generated row: (anchor, jitter step, device, minute, download step,
/// upload, latency, network, carrier, accuracy, defect).
type Row = (
    usize,
    u8,
    u8,
    u16,
    u16,
    Option<u16>,
    Option<u16>,
    u8,
    u8,
    Option<u16>,
    u8,
);

fn csv_text(rows: &[Row], anchors: &[(f64, f64)]) -> Vec<String> {
    const NETWORKS: [&str; 6] = ["LTE", "4G", "3G", "5G", "2G", "WIFI"];
    const CARRIERS: [&str; 4] = ["Viettel", "VinaPhone", "MobiFone", "viettel"];
    let mut lines = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let (x, y) = anchors[r.0 % anchors.len()];
        // Few spots (4 places, 2 offsets of ~100 m): devices test again and
        // again in one cell, and jump between places.
        let jitter = f64::from(r.1 % 5) * 0.001;
        let (lon, lat) = (x + jitter, y - jitter);
        // Half-hour slots over two days: tests of one device often share a
        // second, so ties between them must not fall to input order.
        let slot = r.3 % 96;
        let (d, h, m) = (10 + slot / 48, (slot / 2) % 24, (slot % 2) * 30);
        let mut fields = [
            format!("T{i:05}"),
            format!("2025-06-{d:02}T{h:02}:{m:02}:00+07:00"),
            format!("{lat}"),
            format!("{lon}"),
            CARRIERS[usize::from(r.8) % 4].to_owned(),
            NETWORKS[usize::from(r.7) % 6].to_owned(),
            format!("{}", f64::from(r.4) / 2.0),
            r.5.map(|u| format!("{}", f64::from(u) / 4.0))
                .unwrap_or_default(),
            r.6.map(|l| l.to_string()).unwrap_or_default(),
            format!("dev-{}", r.2 % 9),
            "android".to_owned(),
            r.9.map(|a| (u32::from(a) * 10).to_string())
                .unwrap_or_default(),
        ];
        match r.10 % 12 {
            0 => fields[2] = "0".to_owned(),                // null island
            1 => fields[6] = "-1".to_owned(),               // bad speed
            2 => fields[9] = String::new(),                 // no device
            3 => fields[1] = "2025-06-10 at 10".to_owned(), // bad timestamp
            _ => {}
        }
        let line = fields.join(",");
        // An upload sent twice: the same row again.
        if r.10 % 12 == 4 {
            lines.push(line.clone());
        }
        lines.push(line);
    }
    lines
}

const HEADER: &str = "test_id,timestamp,lat,lon,carrier,network,download_mbps,upload_mbps,latency_ms,device_id,platform,accuracy_m";

fn run(dir: &Path, samples: &Path, out: &str, threads: &str) {
    let (b, v) = default_data();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gapmap"))
        .env("RAYON_NUM_THREADS", threads)
        .args(["--quiet", "analyze", "--samples", s(samples)])
        .args(["--boundaries", s(&b), "--villages", s(&v)])
        .args([
            "--format",
            "geojson,gpkg",
            "--heatmap-format",
            "geojson,csv,parquet",
        ])
        .args(["--min-samples", "3", "--out", s(&dir.join(out))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every file of `a` equals its namesake in `b` (rejects and manifest aside);
/// returns how many were compared.
fn same_outputs(a: &Path, b: &Path) -> Result<usize, TestCaseError> {
    let mut stack = vec![std::path::PathBuf::new()];
    let mut compared = 0;
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(a.join(&rel)).unwrap() {
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
            let (x, y) = (
                std::fs::read(a.join(&r)).unwrap(),
                std::fs::read(b.join(&r)).unwrap(),
            );
            prop_assert!(
                x == y,
                "{} differs with another thread count and row order",
                name
            );
            compared += 1;
        }
    }
    Ok(compared)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_202),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn outputs_equal_on_any_thread_count_and_row_order(
        rows in proptest::collection::vec(
            (0usize..4, 0u8..2, 0u8..9, 0u16..4320, 0u16..200, proptest::option::of(0u16..400),
             proptest::option::of(5u16..200), 0u8..6, 0u8..4, proptest::option::of(0u16..400), 0u8..255),
            1..400,
        ),
        shuffle_seed in any::<u64>(),
    ) {
        let anchors = anchors();
        let dir = tempfile::tempdir().unwrap();
        let mut lines = csv_text(&rows, &anchors);
        let write = |name: &str, lines: &[String]| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("{HEADER}\n{}\n", lines.join("\n"))).unwrap();
            p
        };
        let original = write("original.csv", &lines);
        // Fisher–Yates with a xorshift from the generated seed.
        let mut state = shuffle_seed | 1;
        for i in (1..lines.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            lines.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let shuffled = write("shuffled.csv", &lines);
        run(dir.path(), &original, "one", "1");
        run(dir.path(), &shuffled, "two", "2");
        let compared = same_outputs(&dir.path().join("one"), &dir.path().join("two"))?;
        prop_assert!(compared >= 15, "only {} files compared", compared);
    }
}
