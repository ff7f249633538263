//! Properties checked on random inputs (proptest with a fixed seed, so CI
//! runs are repeatable): the library against naive oracles written here.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;

use gapmap_core::boundaries::{Boundaries, Locator};
use gapmap_core::ingest_run::{Ingested, Sample};
use gapmap_core::month::Month;
use gapmap_core::report::{GroupStats, aggregate, ancestor_table};
use gapmap_core::schema::Network;
use gapmap_core::stats::{median_sorted, quantile_sorted, sort_values};
use gapmap_core::vintage::NO_UNIT;
use proptest::prelude::*;

/// The k-th smallest value (0-based) by counting, no sort.
fn kth(v: &[f64], k: usize) -> f64 {
    *v.iter()
        .find(|&&x| {
            let below = v.iter().filter(|&&y| y < x).count();
            let at_most = v.iter().filter(|&&y| y <= x).count();
            below <= k && k < at_most
        })
        .unwrap()
}

/// The type-7 quantile by counting (median: the mean of the middle two).
fn naive_quantile(v: &[f64], p: f64) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    if p == 0.5 {
        return Some(if n % 2 == 1 {
            kth(v, n / 2)
        } else {
            (kth(v, n / 2 - 1) + kth(v, n / 2)) / 2.0
        });
    }
    let h = (n - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = h - h.floor();
    Some(if frac == 0.0 {
        kth(v, lo)
    } else {
        kth(v, lo) + frac * (kth(v, hi) - kth(v, lo))
    })
}

/// Group statistics by plain loops: counting for order statistics, a
/// linear search for distinct devices and cells.
fn naive_stats(group: &[&Sample]) -> GroupStats {
    let dl: Vec<f64> = group.iter().map(|s| s.download).collect();
    let ul: Vec<f64> = group.iter().filter_map(|s| s.upload.get()).collect();
    let lat: Vec<f64> = group.iter().filter_map(|s| s.latency.get()).collect();
    let mut devices: Vec<u32> = Vec::new();
    let mut cells: Vec<h3o::CellIndex> = Vec::new();
    for s in group {
        if !devices.contains(&s.device) {
            devices.push(s.device);
        }
        if !cells.contains(&s.cell) {
            cells.push(s.cell);
        }
    }
    GroupStats {
        samples: group.len() as u64,
        devices: devices.len() as u64,
        download_median: naive_quantile(&dl, 0.5),
        download_p10: naive_quantile(&dl, 0.1),
        download_p90: naive_quantile(&dl, 0.9),
        upload_median: naive_quantile(&ul, 0.5),
        latency_median: naive_quantile(&lat, 0.5),
        effective: group.iter().filter(|s| s.flags == 0).count() as u64,
        cells: cells.len() as u64,
    }
}

/// A sample with the fields the statistics read.
#[allow(clippy::too_many_arguments, reason = "a test fixture")]
fn stat_sample(
    month: Month,
    carrier: u16,
    device: u32,
    download: f64,
    upload: Option<f64>,
    latency: Option<f64>,
    flags: u8,
    cell: h3o::CellIndex,
) -> Sample {
    // Noon of the month's first day in Vietnam: the sample's month is its time's.
    let first = chrono::NaiveDate::from_ymd_opt(month.year(), month.month(), 1).expect("date");
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
    let time = (first - epoch).num_days() * 86_400 + 5 * 3600;
    let sample = Sample {
        time,
        download,
        upload: upload.into(),
        latency: latency.into(),
        cell,
        device,
        carrier,
        network: Network::G4,
        flags,
    };
    assert_eq!(sample.month(), month);
    sample
}

/// Edges, rectangles (x0, x1, y0, y1) and boundaries of a grid of
/// rectangles with shared edges at 105°E, 21°N; unit code = its index.
#[allow(clippy::type_complexity, reason = "a test fixture's parts")]
fn grid(
    widths: &[f64],
    heights: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<(f64, f64, f64, f64)>, Boundaries) {
    grid_in_provinces(widths, heights, false)
}

/// [`grid`], each row of rectangles its own province when `province_per_row`.
#[allow(clippy::type_complexity, reason = "a test fixture's parts")]
fn grid_in_provinces(
    widths: &[f64],
    heights: &[f64],
    province_per_row: bool,
) -> (Vec<f64>, Vec<f64>, Vec<(f64, f64, f64, f64)>, Boundaries) {
    let xs: Vec<f64> = std::iter::once(105.0)
        .chain(widths.iter().scan(105.0, |x, w| {
            *x += w;
            Some(*x)
        }))
        .collect();
    let ys: Vec<f64> = std::iter::once(21.0)
        .chain(heights.iter().scan(21.0, |y, h| {
            *y += h;
            Some(*y)
        }))
        .collect();
    let mut features = Vec::new();
    let mut rects = Vec::new();
    for j in 0..heights.len() {
        for i in 0..widths.len() {
            let code = rects.len();
            let (x0, x1, y0, y1) = (xs[i], xs[i + 1], ys[j], ys[j + 1]);
            let ring = vec![
                vec![x0, y0],
                vec![x1, y0],
                vec![x1, y1],
                vec![x0, y1],
                vec![x0, y0],
            ];
            let mut f = geojson::Feature::from(geojson::Geometry::new_polygon(vec![ring]));
            f.set_property(
                "p",
                if province_per_row {
                    j.to_string()
                } else {
                    "1".to_owned()
                },
            );
            f.set_property("pn", "P");
            f.set_property("c", code.to_string());
            f.set_property("cn", format!("C{code}"));
            features.push(f);
            rects.push((x0, x1, y0, y1));
        }
    }
    let b = Boundaries::from_features(
        Path::new("grid"),
        &features,
        "p=p:pn,c=c:cn".parse().unwrap(),
    )
    .unwrap();
    (xs, ys, rects, b)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20_251_129),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn median_and_quantiles_equal_a_naive_selection(
        mut v in proptest::collection::vec(0.0f64..2000.0, 1..60),
        p in 0.0f64..=1.0,
    ) {
        let naive = v.clone();
        sort_values(&mut v);
        let n = naive.len();
        let want_median = if n % 2 == 1 {
            kth(&naive, n / 2)
        } else {
            (kth(&naive, n / 2 - 1) + kth(&naive, n / 2)) / 2.0
        };
        prop_assert_eq!(median_sorted(&v), Some(want_median));
        // Type 7: h = (n − 1)p, interpolate between the floor(h)-th and the next.
        let h = (n - 1) as f64 * p;
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        let want = kth(&naive, lo) + (h - h.floor()) * (kth(&naive, hi) - kth(&naive, lo));
        let got = quantile_sorted(&v, p).unwrap();
        prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", got, want);
    }

    #[test]
    fn unit_assignment_equals_brute_force_containment(
        widths in proptest::collection::vec(0.01f64..0.2, 1..6),
        heights in proptest::collection::vec(0.01f64..0.2, 1..6),
        points in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..40),
    ) {
        let (xs, ys, rects, b) = grid(&widths, &heights);
        let loc = Locator::new(&b, 0.0);
        let (w, h) = (xs[xs.len() - 1] - 105.0, ys[ys.len() - 1] - 21.0);
        for (fx, fy) in points {
            let (x, y) = (105.0 + fx * w, 21.0 + fy * h);
            // Points within 1e-9° of an edge are ambiguous by design (lowest code wins); skip them.
            let near_edge = xs.iter().any(|e| (x - e).abs() < 1e-9) || ys.iter().any(|e| (y - e).abs() < 1e-9);
            if near_edge {
                continue;
            }
            let want = rects.iter().position(|&(x0, x1, y0, y1)| x > x0 && x < x1 && y > y0 && y < y1);
            let got = loc.locate(x, y).map(|p| b.finest()[p.unit() as usize].code.parse::<usize>().unwrap());
            prop_assert_eq!(got, want, "point ({}, {})", x, y);
        }
    }

    #[test]
    fn cell_cache_placement_equals_the_exact_test(
        widths in proptest::collection::vec(0.002f64..0.05, 1..7),
        heights in proptest::collection::vec(0.002f64..0.05, 1..7),
        points in proptest::collection::vec((-0.2f64..1.2, -0.2f64..1.2, 0u8..4), 1..200),
        res in 6u8..=11,
        snap_m in prop_oneof![Just(0.0), 0.0f64..800.0],
    ) {
        // Rectangles of 200 m to 5 km, so cells of every resolution fall
        // wholly inside units, across edges and outside; points anywhere,
        // on edges and vertices included (kind 1: on a vertical edge,
        // 2: on a horizontal one, 3: on a vertex).
        let (xs, ys, _, b) = grid(&widths, &heights);
        let mut loc = Locator::new(&b, snap_m);
        let (w, h) = (xs[xs.len() - 1] - 105.0, ys[ys.len() - 1] - 21.0);
        let resolution = h3o::Resolution::try_from(res).unwrap();
        let placed: Vec<(f64, f64, h3o::CellIndex)> = points
            .iter()
            .map(|&(fx, fy, kind)| {
                let mut x = 105.0 + fx * w;
                let mut y = 21.0 + fy * h;
                let nearest = |v: f64, edges: &[f64]| *edges.iter().min_by(|a, b| (v - **a).abs().total_cmp(&(v - **b).abs())).unwrap();
                if kind & 1 == 1 { x = nearest(x, &xs); }
                if kind & 2 == 2 { y = nearest(y, &ys); }
                let cell = h3o::LatLng::new(y, x).unwrap().to_cell(resolution);
                (x, y, cell)
            })
            .collect();
        // Learn in two rounds, as ingestion does chunk by chunk.
        let half = placed.len() / 2;
        loc.learn_cells(&placed[..half].iter().map(|p| p.2).collect::<Vec<_>>());
        for (i, &(x, y, cell)) in placed.iter().enumerate() {
            if i == half {
                loc.learn_cells(&placed[half..].iter().map(|p| p.2).collect::<Vec<_>>());
            }
            prop_assert_eq!(loc.locate_in(cell, x, y), loc.locate(x, y), "point ({}, {}) in {}", x, y, cell);
        }
    }

    #[test]
    fn unit_statistics_equal_a_naive_loop_at_every_level(
        rows in proptest::collection::vec(
            // (finest unit or none, month, carrier, device, download in 0.25 Mbps
            // steps so that ties occur, upload, latency, flagged, cell)
            (0usize..7, 0u32..2, 0u16..3, 0u32..40, 0u32..400, proptest::option::of(0u32..200),
             proptest::option::of(1u32..300), proptest::bool::weighted(0.1), 0u64..30),
            0..900,
        ),
        keep_flagged in proptest::bool::ANY,
    ) {
        // Two provinces (rows) of three communes; unit 6 stands for "no unit".
        let (_, _, _, b) = grid_in_provinces(&[0.1; 3], &[0.1; 2], true);
        let base = h3o::LatLng::new(21.05, 105.05).unwrap().to_cell(h3o::Resolution::Nine);
        let cells: Vec<h3o::CellIndex> = base.grid_disk::<Vec<_>>(3);
        let months = [Month::from_year_month(2025, 6).unwrap(), Month::from_year_month(2025, 7).unwrap()];
        let carriers = vec!["Viettel".to_owned(), "MobiFone".to_owned(), "VinaPhone".to_owned()];
        let samples: Vec<Sample> = rows
            .iter()
            .map(|r| stat_sample(months[r.1 as usize], r.2, r.3, f64::from(r.4) / 4.0,
                r.5.map(|u| f64::from(u) / 8.0), r.6.map(f64::from), u8::from(r.7),
                cells[r.8 as usize % cells.len()]))
            .collect();
        let units: Vec<u32> = rows.iter().map(|r| if r.0 == 6 { NO_UNIT } else { r.0 as u32 }).collect();
        let ing = Ingested {
            samples,
            // The unit statistics never read positions.
            positions: Vec::new(),
            carriers: carriers.clone(),
            devices: 40,
            counts: Default::default(),
            window: Some((months[0], months[1])),
            files: Vec::new(),
            warnings: Vec::new(),
            places: Vec::new(),
            timings: Vec::new(),
            store: None,
        };
        let include = move |s: &Sample| keep_flagged || s.flags == 0;
        let got = aggregate(&b, &ing, &units, &include);
        let anc = ancestor_table(&b);
        // Carriers by name: MobiFone (1), Viettel (0), VinaPhone (2).
        let by_name = [1u16, 0, 2];
        for (level, level_anc) in anc.iter().enumerate() {
            let mut expected = 0;
            for &month in &months {
                for unit in 0..b.units[level].len() as u32 {
                    let group: Vec<&Sample> = ing.samples.iter().zip(&units)
                        .filter(|(s, u)| **u != NO_UNIT && level_anc[**u as usize] == unit && s.month() == month && include(s))
                        .map(|(s, _)| s)
                        .collect();
                    let stats = got[level].get(&(month, unit));
                    if group.is_empty() {
                        prop_assert!(stats.is_none(), "level {} unit {} has no samples", level, unit);
                        continue;
                    }
                    expected += 1;
                    let stats = stats.unwrap();
                    prop_assert_eq!(&stats.all, &naive_stats(&group), "level {} unit {}", level, unit);
                    let want: Vec<(u16, GroupStats)> = by_name
                        .iter()
                        .filter_map(|&c| {
                            let g: Vec<&Sample> = group.iter().copied().filter(|s| s.carrier == c).collect();
                            (!g.is_empty()).then(|| (c, naive_stats(&g)))
                        })
                        .collect();
                    prop_assert_eq!(&stats.by_carrier, &want, "level {} unit {} by carrier", level, unit);
                }
            }
            prop_assert_eq!(got[level].len(), expected);
        }
    }

    #[test]
    fn the_haversine_bound_is_never_below_the_distance(
        a in (-90.0f64..=90.0, -180.0f64..=180.0),
        d in (0.0f64..=180.0, 0.0f64..=360.0),
        t in (0.0f64..=1.0, 0.0f64..=1.0),
    ) {
        // Two points of a box [lat, lat + dlat] × [lon, lon + dlon] (t picks
        // the second), near each other as often as across the globe.
        let scale = 10f64.powf(-6.0 * t.0);
        let (dlat, dlon) = (d.0 * scale, d.1 * scale);
        let (lat1, lon1) = (a.0.min(90.0 - dlat).max(-90.0), a.1);
        let (lat2, lon2) = (lat1 + dlat * t.1, lon1 + dlon * (1.0 - t.1));
        let bound = gapmap_core::geodesy::haversine_bound_m(dlat, dlon);
        prop_assert!(gapmap_core::geodesy::haversine_m(lon1, lat1, lon2, lat2) <= bound);
        prop_assert!(gapmap_core::geodesy::haversine_m(lon2, lat2, lon1, lat1) <= bound);
    }
}
