#![no_main]
//! Any text as a boundary layer (two levels) and as a village layer; points
//! located in whatever loads. An error or a result, never a panic.
use std::path::Path;

use gapmap_core::boundaries::{Boundaries, Locator, parse_feature_collection};
use gapmap_core::villages::{VillageProperties, villages_from};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = Path::new("fuzz.geojson");
    let Ok(fc) = parse_feature_collection(text, origin) else { return };
    let _ = villages_from(origin, &fc, &VillageProperties::default());
    let Ok(levels) = "province=p:pn,commune=c:cn".parse() else { return };
    if let Ok(b) = Boundaries::from_features(origin, &fc.features, levels) {
        let mut loc = Locator::new(&b, 500.0);
        let points = [(105.0, 21.0), (0.5, 0.5), (-180.0, 90.0), (f64::NAN, 1.0)];
        for (x, y) in points {
            let _ = loc.locate(x, y);
        }
        // The cell cache: cells of the points and of the layer's first
        // vertices (near edges), then placement through it.
        let mut cells = Vec::new();
        let vertices = b.shapes.iter().flat_map(|s| s.0.iter()).flat_map(|p| p.exterior().0.iter().take(4));
        for (x, y) in points.into_iter().chain(vertices.map(|c| (c.x, c.y))).take(64) {
            if let Ok(ll) = h3o::LatLng::new(y, x) {
                cells.push((ll.to_cell(h3o::Resolution::Eight), x, y));
            }
        }
        loc.learn_cells(&cells.iter().map(|c| c.0).collect::<Vec<_>>());
        for (cell, x, y) in cells {
            let _ = loc.locate_in(cell, x, y);
        }
    }
});
