#![no_main]
//! Placement through the cell cache (interior cells, near-edge grids, the
//! test) against the exact test: overlapping star-shaped polygons of 3 to
//! 300 vertices (banded rings from 48), holes, points on vertices, on edges
//! and anywhere, resolutions 5 to 11. Any difference is a crash.
use std::path::Path;

use gapmap_core::boundaries::{Boundaries, Locator, parse_feature_collection};

mod bytes;
use bytes::Bytes;

/// On a grid of 2^-12 degrees: vertices repeat across polygons and edge
/// midpoints are exact points of their edge.
fn snap(v: f64) -> f64 {
    (v * 4096.0).round() / 4096.0
}

fn star(b: &mut Bytes<'_>, n: usize, c: (f64, f64), r: (f64, f64)) -> Vec<(f64, f64)> {
    let mut ring: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            let radius = r.0 + (r.1 - r.0) * f64::from(b.byte()) / 255.0;
            (snap(c.0 + radius * a.cos()), snap(c.1 + radius * a.sin()))
        })
        .collect();
    ring.dedup();
    ring.push(ring[0]);
    ring
}

fn ring_json(ring: &[(f64, f64)]) -> String {
    let pts: Vec<String> = ring.iter().map(|(x, y)| format!("[{x},{y}]")).collect();
    format!("[{}]", pts.join(","))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let polygons = 1 + usize::from(b.byte() % 6);
    let mut rings_of = Vec::new();
    let mut features = Vec::new();
    for i in 0..polygons {
        let c = (105.0 + 0.05 * b.unit(), 21.0 + 0.05 * b.unit());
        let n = 3 + usize::from(b.byte()) + usize::from(b.byte() % 2) * 45;
        let mut rings = vec![star(&mut b, n, c, (0.004, 0.03))];
        if b.byte() % 3 == 0 {
            let m = 3 + usize::from(b.byte() % 60);
            rings.push(star(&mut b, m, c, (0.0005, 0.0035)));
        }
        let coords: Vec<String> = rings.iter().map(|r| ring_json(r)).collect();
        features.push(format!(
            r#"{{"type":"Feature","properties":{{"p":"1","pn":"P","c":"{}","cn":"C"}},"geometry":{{"type":"Polygon","coordinates":[{}]}}}}"#,
            10 + i,
            coords.join(",")
        ));
        rings_of.extend(rings);
    }
    let text = format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(","));
    let origin = Path::new("fuzz.geojson");
    let fc = parse_feature_collection(&text, origin).expect("the layer is valid GeoJSON");
    let levels = "province=p:pn,commune=c:cn".parse().expect("valid levels");
    let Ok(boundaries) = Boundaries::from_features(origin, &fc.features, levels) else { return };
    let resolution = h3o::Resolution::try_from(5 + b.byte() % 7).expect("5..=11");
    let snap_m = if b.byte() % 2 == 0 { 0.0 } else { 300.0 };
    let mut points = Vec::new();
    for _ in 0..(16 + usize::from(b.byte())) {
        let kind = b.byte() % 4;
        let ring = &rings_of[usize::from(b.byte()) % rings_of.len()];
        let k = usize::from(b.byte()) % (ring.len() - 1);
        let (p, q) = (ring[k], ring[k + 1]);
        points.push(match kind {
            0 => p,
            1 => ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0),
            2 => (104.97 + 0.11 * b.unit(), p.1),
            _ => (104.97 + 0.11 * b.unit(), 20.97 + 0.11 * b.unit()),
        });
    }
    let mut loc = Locator::new(&boundaries, snap_m);
    let cells: Vec<h3o::CellIndex> = points
        .iter()
        .map(|&(x, y)| h3o::LatLng::new(y, x).expect("finite").to_cell(resolution))
        .collect();
    loc.learn_cells(&cells);
    for (&(x, y), &cell) in points.iter().zip(&cells) {
        assert_eq!(loc.locate_in(cell, x, y), loc.locate(x, y), "({x}, {y}) in {cell}");
    }
});
