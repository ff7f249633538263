#![no_main]
//! Any text as a --levels spec, a --boundaries vintage spec, a --column
//! mapping, a --format list, a --heatmap-format list, a --view and a month.
use gapmap_core::boundaries::Levels;
use gapmap_core::layers::Formats;
use gapmap_core::month::Month;
use gapmap_core::schema::ColumnMap;
use gapmap_core::vintage::{View, VintageSpec};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = s.parse::<Levels>();
    let _ = s.parse::<VintageSpec>();
    let _ = s.parse::<Formats>();
    let _ = s.parse::<gapmap_core::heatmap::HeatmapFormats>();
    let _ = s.parse::<View>();
    let _ = s.parse::<Month>();
    let _ = ColumnMap::with_mappings(&[s]);
});
