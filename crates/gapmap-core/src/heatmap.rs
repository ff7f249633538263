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

/// The heatmap layers: each listed carrier, then `ALL`.
fn layer_names(opts: &GapOptions) -> impl Iterator<Item = &str> {
    opts.carriers
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(ALL))
}

/// The carrier index a layer keeps (`None`: every carrier; a carrier
/// without samples gets an index no sample has, so an empty layer).
fn carrier_filter(ing: &Ingested, layer: &str) -> Option<u16> {
    if layer == ALL {
        return None;
    }
    match ing.carriers.iter().position(|c| c == layer) {
        #[allow(clippy::cast_possible_truncation, reason = "carrier counts fit u16")]
        Some(i) => Some(i as u16),
        None => Some(u16::MAX),
    }
}

/// A map-report cell: status, median download, samples, boundary ring (lon, lat).
pub type MapCell = (crate::rule::Status, Option<f64>, u64, Vec<(f64, f64)>);

/// A heatmap layer for the map report: cells, perhaps coarser than the
/// analysis resolution so that the page stays small.
#[derive(Debug, Clone)]
pub struct MapLayer {
    /// Carrier name or `ALL`.
    pub carrier: String,
    /// H3 resolution of the cells.
    pub resolution: u8,
    /// The cells.
    pub cells: Vec<MapCell>,
}

/// The heatmap layers for the map report, each at the finest resolution
/// (from the analysis resolution down) with at most `max_cells` cells; the
/// statistics of a coarser cell are recomputed from its samples.
#[must_use]
pub fn map_layers(ing: &Ingested, opts: &GapOptions, max_cells: usize) -> Vec<MapLayer> {
    layer_names(opts)
        .map(|layer| {
            let want = carrier_filter(ing, layer);
            let picked: Vec<&Sample> = ing
                .samples
                .iter()
                .filter(|s| want.is_none_or(|c| s.carrier == c) && opts.judges(s))
                .collect();
            let mut res = picked
                .first()
                .map_or(h3o::Resolution::Zero, |s| s.cell.resolution());
            let mut keys: Vec<u64>;
            loop {
                keys = picked
                    .iter()
                    .map(|s| s.cell.parent(res).map_or(0, u64::from))
                    .collect();
                let mut distinct = keys.clone();
                distinct.sort_unstable();
                distinct.dedup();
                match res.pred() {
                    Some(coarser) if distinct.len() > max_cells => res = coarser,
                    _ => break,
                }
            }
            let mut order: Vec<(u64, usize)> = keys.into_iter().zip(0..).collect();
            order.sort_unstable();
            let cells = order
                .chunk_by(|a, b| a.0 == b.0)
                .filter_map(|g| {
                    let cell = h3o::CellIndex::try_from(g[0].0).ok()?;
                    let mut dl: Vec<f64> = g.iter().map(|(_, i)| picked[*i].download).collect();
                    let mut dev: Vec<u32> = g.iter().map(|(_, i)| picked[*i].device).collect();
                    dev.sort_unstable();
                    dev.dedup();
                    let v = opts.rule.judge(&mut dl, dev.len() as u64);
                    let ring = cell
                        .boundary()
                        .iter()
                        .map(|ll| (ll.lng(), ll.lat()))
                        .collect();
                    Some((v.status, v.median, v.samples, ring))
                })
                .collect();
            MapLayer {
                carrier: layer.to_owned(),
                resolution: u8::from(res),
                cells,
            }
        })
        .collect()
}

/// Heatmap fields, in order.
pub const FIELDS: [&str; 13] = [
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
    "suppressed",
];

/// What [`write_heatmaps`] produced.
#[derive(Debug)]
pub struct Heatmaps {
    /// Cells per layer (carrier name, count), ALL last.
    pub cells: Vec<(String, usize)>,
    /// Files written.
    pub files: Vec<std::path::PathBuf>,
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
    let rule = &opts.rule;
    let dir = out.join("heatmap");
    let mut counts = Vec::new();
    for layer in layer_names(opts) {
        let want = carrier_filter(ing, layer);
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
            // Privacy: too few devices publish counts only, no statistics.
            let suppressed = stats.devices < opts.min_devices_public;
            let mut props = vec![
                Prop::Str(cell.to_string()),
                Prop::Str(layer.to_owned()),
                Prop::Int(stats.samples),
                Prop::Int(stats.devices),
            ];
            if suppressed {
                props.extend([
                    Prop::Num(None, 3),
                    Prop::Num(None, 3),
                    Prop::Num(None, 3),
                    Prop::Num(None, 3),
                    Prop::Str("suppressed".to_owned()),
                    Prop::Raw(String::new()),
                    Prop::Num(None, 4),
                    Prop::Bool(None),
                ]);
            } else {
                props.extend([
                    Prop::Num(stats.download_median, 3),
                    Prop::Num(stats.download_p10, 3),
                    Prop::Num(stats.upload_median, 3),
                    Prop::Num(stats.latency_median, 3),
                    Prop::Str(verdict.status.as_str().to_owned()),
                    Prop::Raw(crate::output::fmt_probability(verdict.weak_p)),
                    Prop::Num(verdict.share_below, 4),
                    Prop::Bool(verdict.below_target),
                ]);
            }
            props.push(Prop::Bool(Some(suppressed)));
            features.push((Shape::Ring(ring), props));
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
    }
    Ok(Heatmaps {
        cells: counts,
        files,
    })
}
