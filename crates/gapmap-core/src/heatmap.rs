//! Per-H3-cell heatmaps: one GeoJSON layer per carrier plus `ALL`.

use std::path::Path;

use crate::carrier::slug;
use crate::error::Result;
use crate::gaps::GapOptions;
use crate::geojson_out::{Prop, Shape, feature, write_collection};
use crate::ingest_run::{Ingested, Sample};
use crate::report::GroupStats;

/// The name of the layer of every carrier together.
pub const ALL: &str = "ALL";

/// Writes `heatmap/<slug>.geojson` for each carrier of `carriers` and for `ALL`.
/// Returns the number of cells per layer, in that order (ALL last).
///
/// # Errors
/// A file cannot be written.
pub fn write_heatmaps(
    out: &Path,
    ing: &Ingested,
    opts: &GapOptions,
) -> Result<Vec<(String, usize)>> {
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
            features.push(feature(
                &Shape::Ring(ring),
                &[
                    ("h3", Prop::Str(cell.to_string())),
                    ("carrier", Prop::Str(layer.to_owned())),
                    ("samples", Prop::Int(stats.samples)),
                    ("devices", Prop::Int(stats.devices)),
                    ("download_median_mbps", Prop::Num(stats.download_median, 3)),
                    ("download_p10_mbps", Prop::Num(stats.download_p10, 3)),
                    ("upload_median_mbps", Prop::Num(stats.upload_median, 3)),
                    ("latency_median_ms", Prop::Num(stats.latency_median, 3)),
                    ("status", Prop::Str(verdict.status.as_str().to_owned())),
                    (
                        "weak_p",
                        Prop::Raw(crate::output::fmt_probability(verdict.weak_p)),
                    ),
                    ("share_below", Prop::Num(verdict.share_below, 4)),
                    ("below_target", Prop::Bool(verdict.below_target)),
                ],
            ));
        }
        let name = slug(layer);
        write_collection(&dir.join(format!("{name}.geojson")), &name, &features)?;
        counts.push((layer.to_owned(), features.len()));
    }
    Ok(counts)
}
