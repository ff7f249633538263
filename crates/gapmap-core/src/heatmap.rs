//! Per-H3-cell heatmaps: one GeoJSON layer per carrier plus `ALL`.

use std::path::Path;

use crate::carrier::slug;
use crate::error::Result;
use crate::gaps::GapOptions;
use crate::geojson_out::{Prop, Shape};
use crate::ingest_run::{Ingested, Sample};
use crate::layers::{Formats, Layer, LayerGeometry, write_layer};
use crate::report::GroupStats;
use crate::styles::{SymbolKind, download_classes, qml};

/// The name of the layer of every carrier together.
pub const ALL: &str = "ALL";

/// Heatmap fields, in order.
pub const FIELDS: [&str; 12] = [
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
    "share_below",
    "below_target",
];

/// What [`write_heatmaps`] produced.
#[derive(Debug)]
pub struct Heatmaps {
    /// Cells per layer (carrier name, count), ALL last.
    pub cells: Vec<(String, usize)>,
    /// Files written.
    pub files: Vec<std::path::PathBuf>,
    /// The layers, for other outputs (the map report).
    pub layers: Vec<Layer>,
}

/// Writes `heatmap/<slug>.<ext>` for each carrier of `carriers` and for `ALL`,
/// in every format. Returns the number of cells per layer, in that order
/// (ALL last), and the files written.
///
/// # Errors
/// A file cannot be written.
pub fn write_heatmaps(
    out: &Path,
    ing: &Ingested,
    opts: &GapOptions,
    formats: &Formats,
) -> Result<Heatmaps> {
    let style = qml(SymbolKind::Fill, &download_classes());
    let mut files = Vec::new();
    let mut layers_out = Vec::new();
    let (carriers, rule) = (&opts.carriers, &opts.rule);
    let dir = out.join("heatmap");
    let mut counts = Vec::new();
    let layers = carriers
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(ALL));
    for layer in layers {
        let want: Option<u16> = if layer == ALL {
            None
        } else {
            match ing.carriers.iter().position(|c| c == layer) {
                #[allow(clippy::cast_possible_truncation, reason = "carrier counts fit u16")]
                Some(i) => Some(i as u16),
                None => Some(u16::MAX), // a carrier without samples: an empty layer
            }
        };
        let mut picked: Vec<(u64, u32)> = ing
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| want.is_none_or(|c| s.carrier == c) && opts.judges(s))
            .map(|(i, s)| (u64::from(s.cell), i as u32))
            .collect();
        picked.sort_unstable();
        let mut features = Vec::new();
        for group in picked.chunk_by(|a, b| a.0 == b.0) {
            let samples: Vec<&Sample> = group.iter().map(|g| &ing.samples[g.1 as usize]).collect();
            let cell = samples[0].cell;
            let stats = GroupStats::of(samples.iter().copied());
            let mut dl: Vec<f64> = samples.iter().map(|s| s.download).collect();
            let verdict = rule.judge(&mut dl, stats.devices);
            let ring: Vec<(f64, f64)> = cell
                .boundary()
                .iter()
                .map(|ll| (ll.lng(), ll.lat()))
                .collect();
            features.push((
                Shape::Ring(ring),
                vec![
                    Prop::Str(cell.to_string()),
                    Prop::Str(layer.to_owned()),
                    Prop::Int(stats.samples),
                    Prop::Int(stats.devices),
                    Prop::Num(stats.download_median, 3),
                    Prop::Num(stats.download_p10, 3),
                    Prop::Num(stats.upload_median, 3),
                    Prop::Num(stats.latency_median, 3),
                    Prop::Str(verdict.status.as_str().to_owned()),
                    Prop::Raw(crate::output::fmt_probability(verdict.weak_p)),
                    Prop::Num(verdict.share_below, 4),
                    Prop::Bool(verdict.below_target),
                ],
            ));
        }
        let name = slug(layer);
        counts.push((layer.to_owned(), features.len()));
        let l = Layer {
            name: name.clone(),
            geometry: LayerGeometry::Polygon,
            fields: FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            features,
            style: Some(style.clone()),
        };
        files.extend(write_layer(&dir, &name, &l, formats)?);
        layers_out.push(l);
    }
    Ok(Heatmaps {
        cells: counts,
        files,
        layers: layers_out,
    })
}
