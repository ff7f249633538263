//! A quota met by testing in one room is visible: `quota.csv` keeps the
//! official count and `met`, and adds the effective count (at most
//! `--device-cap` tests per device, H3 cell and day), the H3 cells measured
//! and the share of the commune's villages reached.

use std::fmt::Write as _;

use crate::util::{fixture, gapmap_ok, json, read_csv, s};

const LEVELS: &str =
    "province=prov_code:prov_name,district=dist_code:dist_name,commune=comm_code:comm_name";

#[test]
fn three_hundred_tests_in_one_spot_are_flagged_by_the_spread() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Five villages in C1 (lon 105.0–105.1) and five in C2 (105.1–105.2), lat 21.0–21.1,
    // 0.015° (≈ 1.6 km) apart along lat 21.05 and 21.02.
    let mut features = Vec::new();
    let mut villages = Vec::new();
    for (c, x0) in [("C1", 105.01), ("C2", 105.11)] {
        for k in 0..5 {
            let (x, y) = (
                x0 + 0.02 * f64::from(k),
                if k % 2 == 0 { 21.05 } else { 21.02 },
            );
            let id = format!("{c}-v{k}");
            features.push(format!(
                r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[{x},{y}]}},"properties":{{"village_id":"{id}","name":"Thôn {id}"}}}}"#
            ));
            villages.push((c, x, y));
        }
    }
    let vpath = dir.path().join("villages.geojson");
    std::fs::write(
        &vpath,
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            features.join(",")
        ),
    )
    .expect("write");
    let mut csv =
        String::from("test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id\n");
    // C1: 50 testers, 6 tests each, all on 10 June at the first village (the commune office).
    let (ox, oy) = (villages[0].1, villages[0].2);
    for d in 0..50 {
        for t in 0..6 {
            writeln!(
                csv,
                "a{d}-{t},2025-06-10T0{}:00:00+07:00,{oy},{ox},Viettel,4G,20,office{d}",
                t + 1
            )
            .expect("fmt");
        }
    }
    // C2: 60 tests at each of its five villages, one per device, over the month.
    for (k, (_, x, y)) in villages[5..].iter().enumerate() {
        for t in 0..60 {
            writeln!(
                csv,
                "b{k}-{t},2025-06-{:02}T10:00:00+07:00,{y},{x},Viettel,4G,20,field{k}-{t}",
                1 + t % 28
            )
            .expect("fmt");
        }
    }
    let spath = dir.path().join("samples.csv");
    std::fs::write(&spath, csv).expect("write");
    let out = dir.path().join("out");
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&spath),
        "--boundaries",
        s(&fixture("reform_old.geojson")),
        "--levels",
        LEVELS,
        "--villages",
        s(&vpath),
        "--out",
        s(&out),
    ]);
    let (h, rows) = read_csv(&out.join("quota.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    let row = |code: &str| {
        rows.iter()
            .find(|r| r[c("code")] == code)
            .expect(code)
            .clone()
    };
    let (room, field) = (row("C1"), row("C2"));
    // Both meet the official quota …
    for r in [&room, &field] {
        assert_eq!(r[c("samples")], "300");
        assert_eq!(r[c("met")], "true");
    }
    // … but the room is one H3 cell, one village of five, and 50 devices × 2.
    assert_eq!(room[c("cells")], "1");
    assert_eq!(room[c("villages_measured")], "1");
    assert_eq!(room[c("share_villages_reached")], "0.2");
    assert_eq!(room[c("effective_samples")], "100");
    // The field campaign reaches every village, in five cells, every test counting.
    assert_eq!(field[c("cells")], "5");
    assert_eq!(field[c("villages_measured")], "5");
    assert_eq!(field[c("share_villages_reached")], "1");
    assert_eq!(field[c("effective_samples")], "300");
    // District D1 holds both: 10 villages, 6 reached.
    let d1 = row("D1");
    assert_eq!(
        (
            d1[c("villages_measured")].as_str(),
            d1[c("share_villages_reached")].as_str()
        ),
        ("6", "0.6")
    );
    // The cap is counted, and village statistics use the capped tests:
    // the office village has 100 Viettel tests, not 300.
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["gaming"]["flagged"]["over_device_cap"], 200);
    assert_eq!(summary["gaming"]["flagged"]["flagged"], 200);
    assert_eq!(summary["settings"]["device_cap"], 2);
    let (vh, vrows) = read_csv(&out.join("villages.csv"));
    let vc = |n: &str| vh.iter().position(|x| x == n).expect(n);
    let office = vrows
        .iter()
        .find(|r| r[vc("village_id")] == "C1-v0" && r[vc("carrier")] == "Viettel")
        .expect("office village");
    assert_eq!(office[vc("samples")], "100");
    // --device-cap 0 keeps every test.
    let out0 = dir.path().join("out0");
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&spath),
        "--boundaries",
        s(&fixture("reform_old.geojson")),
        "--levels",
        LEVELS,
        "--villages",
        s(&vpath),
        "--device-cap",
        "0",
        "--out",
        s(&out0),
    ]);
    let (h0, rows0) = read_csv(&out0.join("quota.csv"));
    let e = h0
        .iter()
        .position(|x| x == "effective_samples")
        .expect("column");
    let code = h0.iter().position(|x| x == "code").expect("column");
    assert_eq!(
        rows0.iter().find(|r| r[code] == "C1").expect("C1")[e],
        "300"
    );
}

#[test]
fn implausible_tests_count_in_the_quota_but_not_in_the_statistics() {
    // One device in C1 (lon 105.0–105.1, lat 21.0–21.1), four tests a day apart but for
    // the third, which is 0.09° (~10 km) away only 60 s after the second and 60 s before
    // a return: ~560 km/h each way, a location jump. Another device has accuracy 5 km.
    // A 3G test at 100 Mbps is above DC-HSPA+'s 42.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id,accuracy_m\n\
        m1,2025-06-01T10:00:00+07:00,21.05,105.05,Viettel,4G,10,walker,15\n\
        m2,2025-06-02T10:00:00+07:00,21.05,105.05,Viettel,4G,20,walker,15\n\
        m3,2025-06-02T10:01:00+07:00,21.05,105.14,Viettel,4G,30,walker,15\n\
        m4,2025-06-02T10:02:00+07:00,21.05,105.05,Viettel,4G,40,walker,15\n\
        a1,2025-06-03T10:00:00+07:00,21.06,105.06,Viettel,4G,50,fuzzy,5000\n\
        a2,2025-06-03T11:00:00+07:00,21.06,105.06,Viettel,4G,60,fuzzy,\n\
        s1,2025-06-04T10:00:00+07:00,21.07,105.07,Viettel,3G,100,fast,10\n\
        s2,2025-06-05T10:00:00+07:00,21.07,105.07,Viettel,3G,12,fast,10\n";
    let spath = dir.path().join("samples.csv");
    std::fs::write(&spath, csv).expect("write");
    let old = fixture("reform_old.geojson");
    let run = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "analyze",
            "--samples",
            s(&spath),
            "--boundaries",
            s(&old),
            "--levels",
            LEVELS,
            "--out",
            s(out),
            "--quota",
            "8",
        ];
        args.extend_from_slice(extra);
        gapmap_ok(&args);
    };
    let out = dir.path().join("out");
    run(&out, &[]);
    let summary = json(&out.join("summary.json"));
    let f = &summary["gaming"]["flagged"];
    assert_eq!(
        f["implausible_movement"], 1,
        "m3 only: m2 → m3 and m3 → m4 are both too fast"
    );
    assert_eq!(f["low_accuracy"], 1, "a1");
    assert_eq!(f["implausible_speed"], 1, "s1");
    assert_eq!(f["flagged"], 3);
    assert_eq!(
        summary["rows"]["accepted"], 8,
        "flagged tests are not rejected"
    );
    let (h, rows) = read_csv(&out.join("quota.csv"));
    let c = |n: &str| h.iter().position(|x| x == n).expect(n);
    let c1 = rows.iter().find(|r| r[c("code")] == "C1").expect("C1");
    // m3 lies in C2 (lon 105.14): C1 has 7 tests, 2 of them flagged.
    assert_eq!(
        (
            c1[c("samples")].as_str(),
            c1[c("effective_samples")].as_str()
        ),
        ("7", "5")
    );
    assert_eq!(c1[c("met")], "false", "quota 8");
    // The heatmap holds the 5 unflagged tests.
    let heat = json(&out.join("heatmap/all.geojson"));
    let n: u64 = heat["features"]
        .as_array()
        .expect("f")
        .iter()
        .map(|x| x["properties"]["samples"].as_u64().expect("n"))
        .sum();
    assert_eq!(n, 5);
    // Every rule can be turned off.
    let out0 = dir.path().join("out0");
    run(
        &out0,
        &[
            "--max-accuracy-m",
            "0",
            "--max-movement-kmh",
            "0",
            "--no-network-speed-limits",
        ],
    );
    assert_eq!(
        json(&out0.join("summary.json"))["gaming"]["flagged"]["flagged"],
        0
    );
    // A bad accuracy value is a bad location.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "test_id,timestamp,lat,lon,carrier,network,download_mbps,device_id,accuracy_m\n\
        x1,2025-06-01T10:00:00+07:00,21.05,105.05,Viettel,4G,10,d,-5\n",
    )
    .expect("write");
    let out_bad = dir.path().join("outbad");
    gapmap_ok(&[
        "analyze",
        "--samples",
        s(&bad),
        "--boundaries",
        s(&fixture("reform_old.geojson")),
        "--levels",
        LEVELS,
        "--out",
        s(&out_bad),
    ]);
    assert_eq!(
        json(&out_bad.join("summary.json"))["rows"]["rejected"]["bad_coordinates"],
        1
    );
}
