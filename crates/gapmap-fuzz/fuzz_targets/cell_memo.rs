#![no_main]
//! The memo of hexagons against h3o: points anywhere on the globe and
//! points next to the edges and vertices of their cells (offsets from
//! 1e-15 to 1 of the way to the centre), at resolutions 0 to 15, learned in
//! a first pass and asked in a second. Any cell other than h3o's is a crash.
use gapmap_core::cell_memo::CellMemo;

mod bytes;
use bytes::Bytes;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let Ok(resolution) = h3o::Resolution::try_from(b.byte() % 16) else { return };
    let mut memo = CellMemo::new(resolution);
    let mut points = Vec::new();
    while !b.0.is_empty() && points.len() < 4000 {
        let lat = -90.0 + 180.0 * b.fine_unit();
        let lon = -180.0 + 360.0 * b.fine_unit();
        let Ok(ll) = h3o::LatLng::new(lat, lon) else { continue };
        let cell = ll.to_cell(resolution);
        let ring: Vec<(f64, f64)> = cell.boundary().iter().map(|v| (v.lat(), v.lng())).collect();
        let centre = h3o::LatLng::from(cell);
        for _ in 0..b.byte() % 8 {
            let k = usize::from(b.byte()) % ring.len();
            let (a, z) = (ring[k], ring[(k + 1) % ring.len()]);
            let t = b.fine_unit();
            let on = (a.0 + t * (z.0 - a.0), a.1 + t * (z.1 - a.1));
            let d = 10f64.powi(-i32::from(b.byte() % 16));
            let s = if b.byte() % 2 == 0 { 1.0 } else { -1.0 };
            points.push((on.0 + s * d * (centre.lat() - on.0), on.1 + s * d * (centre.lng() - on.1)));
        }
        points.push((lat, lon));
    }
    let cells: Vec<Option<h3o::CellIndex>> = points
        .iter()
        .map(|&(lat, lon)| h3o::LatLng::new(lat, lon).ok().map(|ll| ll.to_cell(resolution)))
        .collect();
    for pass in 0..2 {
        let mut met = Vec::new();
        for (&(lat, lon), want) in points.iter().zip(&cells) {
            let Some(want) = *want else { continue };
            let square = memo.square(lat, lon);
            match memo.cell(square, lat, lon) {
                Some(got) => assert_eq!(got, want, "({lat}, {lon}) at {resolution:?}, pass {pass}"),
                None => met.push((square, want)),
            }
        }
        memo.learn(&met);
    }
});
