//! Properties checked on random inputs (proptest with a fixed seed, so CI
//! runs are repeatable): the library against naive oracles written here.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;

use gapmap_core::boundaries::{Boundaries, Locator};
use gapmap_core::stats::{median_sorted, quantile_sorted, sort_values};
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

/// Edges, rectangles (x0, x1, y0, y1) and boundaries of a grid of
/// rectangles with shared edges at 105°E, 21°N; unit code = its index.
#[allow(clippy::type_complexity, reason = "a test fixture's parts")]
fn grid(
    widths: &[f64],
    heights: &[f64],
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
            f.set_property("p", "1");
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
}
