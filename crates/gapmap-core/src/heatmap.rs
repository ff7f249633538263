//! Per-H3-cell heatmaps: one GeoJSON layer per carrier plus `ALL`.

use std::path::Path;

use crate::carrier::slug;
use crate::error::Result;
use crate::gaps::GapOptions;
use crate::geojson_out::{Prop, Shape};
use crate::ingest_run::Ingested;
use crate::layers::{Formats, Layer, LayerGeometry, write_layer};
use crate::report::{GroupStats, StatScratch};
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

/// The judged samples in (cell, carrier, input) order, sorted once for every
/// heatmap layer and the map report: each cell is a run, each carrier's part
/// of it a sub-run, and the cells under one coarser parent are a run too
/// (a cell's index holds its ancestors' digits first).
#[derive(Debug)]
pub struct CellOrder(Vec<(u64, u16, u32)>);

impl CellOrder {
    /// Sorts the samples [`GapOptions::judges`] accepts.
    #[must_use]
    pub fn new(ing: &Ingested, opts: &GapOptions) -> Self {
        use rayon::prelude::*;
        // Sequential, into one allocation: a parallel filtered collect would
        // hold its pieces and the whole at once.
        let mut keys = Vec::with_capacity(ing.samples.len());
        #[allow(clippy::cast_possible_truncation, reason = "sample counts fit u32")]
        keys.extend(
            ing.samples
                .iter()
                .enumerate()
                .filter(|(_, s)| opts.judges(s))
                .map(|(i, s)| (u64::from(s.cell), s.carrier, i as u32)),
        );
        keys.par_sort_unstable();
        Self(keys)
    }

    /// Per cell, the keys of one carrier's samples (`None`: all); cells
    /// without any are skipped. Keys sort by (cell, carrier), so a
    /// carrier's keys are one stretch of its cell's run.
    fn cells(
        &self,
        want: Option<u16>,
    ) -> impl rayon::iter::ParallelIterator<Item = &[(u64, u16, u32)]> {
        use rayon::prelude::*;
        self.0
            .par_chunk_by(|a, b| a.0 == b.0)
            .filter_map(move |run| match want {
                None => Some(run),
                Some(c) => {
                    let from = run.partition_point(|k| k.1 < c);
                    let to = run.partition_point(|k| k.1 <= c);
                    (from < to).then(|| &run[from..to])
                }
            })
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
///
/// One pass over the samples serves every layer: they are read group by
/// group of the coarsest resolution any layer needs, and each layer judges
/// its cells within the group (a finer cell's samples are one stretch of
/// its coarser parent's, as cell indices hold their ancestors' digits
/// first). A pass per layer read each of 10 M samples five times, each read
/// a cache miss.
#[must_use]
pub fn map_layers(
    ing: &Ingested,
    opts: &GapOptions,
    order: &CellOrder,
    max_cells: usize,
) -> Vec<MapLayer> {
    use rayon::prelude::*;
    let names: Vec<&str> = layer_names(opts).collect();
    let wants: Vec<Option<u16>> = names.iter().map(|l| carrier_filter(ing, l)).collect();
    // One run of keys per analysis cell, sorted by carrier within it.
    let runs: Vec<&[(u64, u16, u32)]> = order.0.par_chunk_by(|a, b| a.0 == b.0).collect();
    let resolutions: Vec<Option<h3o::Resolution>> = wants
        .par_iter()
        .map(|&want| {
            let distinct: Vec<h3o::CellIndex> = runs
                .iter()
                .filter(|run| {
                    want.is_none_or(|c| {
                        let at = run.partition_point(|k| k.1 < c);
                        run.get(at).is_some_and(|k| k.1 == c)
                    })
                })
                .filter_map(|run| h3o::CellIndex::try_from(run[0].0).ok())
                .collect();
            map_resolution(distinct, max_cells)
        })
        .collect();
    let cells = map_cells(ing, opts, order, &resolutions);
    names
        .iter()
        .zip(resolutions)
        .zip(cells)
        .map(|((layer, res), cells)| MapLayer {
            carrier: (*layer).to_owned(),
            resolution: res.map_or(0, u8::from),
            cells: cells.into_iter().map(|(_, c)| c).collect(),
        })
        .collect()
}

/// The shift of a cell index that leaves its digits down to `res`.
fn shift_of(res: h3o::Resolution) -> u32 {
    3 * (15 - u32::from(u8::from(res)))
}

/// The coarsest of the map resolutions (`Zero` when no layer has cells).
fn coarsest(resolutions: &[Option<h3o::Resolution>]) -> h3o::Resolution {
    resolutions
        .iter()
        .flatten()
        .min()
        .copied()
        .unwrap_or(h3o::Resolution::Zero)
}

/// Each layer's map cells at its resolution (`None`: no cells), sorted by
/// their index (the key given with each).
fn map_cells(
    ing: &Ingested,
    opts: &GapOptions,
    order: &CellOrder,
    resolutions: &[Option<h3o::Resolution>],
) -> Vec<Vec<(u64, MapCell)>> {
    use rayon::prelude::*;
    let wants: Vec<Option<u16>> = layer_names(opts).map(|l| carrier_filter(ing, l)).collect();
    // Groups at the coarsest resolution a layer with cells has (no layer
    // has any only when there are no samples, and then no groups).
    let coarse_shift = shift_of(coarsest(resolutions));
    let per_group: Vec<Vec<Vec<(u64, MapCell)>>> = order
        .0
        .par_chunk_by(|a, b| a.0 >> coarse_shift == b.0 >> coarse_shift)
        .map_init(
            || {
                (
                    Vec::<(u64, u16, f64, u32)>::new(),
                    Vec::<f64>::new(),
                    Vec::<u32>::new(),
                )
            },
            |(group, dl, dev), g| {
                // Each sample read once (key, carrier, download, device),
                // then every layer's cells judged from this copy in cache.
                group.clear();
                group.extend(g.iter().map(|k| {
                    let s = &ing.samples[k.2 as usize];
                    (k.0, k.1, s.download, s.device)
                }));
                wants
                    .iter()
                    .zip(resolutions)
                    .map(|(&want, res)| {
                        let Some(res) = *res else { return Vec::new() };
                        let shift = shift_of(res);
                        group
                            .chunk_by(|a, b| a.0 >> shift == b.0 >> shift)
                            .filter_map(|cell_group| {
                                let cell = h3o::CellIndex::try_from(cell_group[0].0)
                                    .ok()?
                                    .parent(res)?;
                                dl.clear();
                                dev.clear();
                                for s in cell_group.iter().filter(|s| want.is_none_or(|c| s.1 == c))
                                {
                                    dl.push(s.2);
                                    dev.push(s.3);
                                }
                                judge_map_cell(opts, cell, dl, dev).map(|m| (u64::from(cell), m))
                            })
                            .collect()
                    })
                    .collect()
            },
        )
        .collect();
    (0..wants.len())
        .map(|li| {
            per_group
                .iter()
                .flat_map(|g| g[li].iter().cloned())
                .collect()
        })
        .collect()
}

/// The heatmaps and the map report's layers gathered part by part of the
/// samples, for samples kept on disk ([`crate::store`]): each part holds
/// whole cells of the map's coarsest resolution ([`HeatmapParts::part_of`]),
/// so that every heatmap cell and every map cell is judged on all its
/// samples, within one part.
#[derive(Debug)]
pub struct HeatmapParts {
    resolutions: Vec<Option<h3o::Resolution>>,
    results: Vec<Vec<CellResult>>,
    map: Vec<Vec<(u64, MapCell)>>,
}

impl HeatmapParts {
    /// Ready for parts, given the distinct (cell, carrier) pairs of the
    /// judged samples (sorted, without repeats), which fix each map
    /// layer's resolution as [`map_layers`] does.
    #[must_use]
    pub fn new(
        ing: &Ingested,
        opts: &GapOptions,
        distinct: &[(u64, u16)],
        max_cells: usize,
    ) -> Self {
        let resolutions: Vec<Option<h3o::Resolution>> = layer_names(opts)
            .map(|layer| {
                let want = carrier_filter(ing, layer);
                let mut cells: Vec<h3o::CellIndex> = distinct
                    .iter()
                    .filter(|p| want.is_none_or(|c| p.1 == c))
                    .filter_map(|p| h3o::CellIndex::try_from(p.0).ok())
                    .collect();
                cells.dedup();
                map_resolution(cells, max_cells)
            })
            .collect();
        let layers = resolutions.len();
        Self {
            resolutions,
            results: vec![Vec::new(); layers],
            map: vec![Vec::new(); layers],
        }
    }

    /// The part, of `parts`, of each block of a store ([`crate::store::block_of`]),
    /// given every block's samples in block order: parts of whole cells of
    /// the map's coarsest resolution (or of whole blocks, when those are
    /// coarser), so that every heatmap and map cell has all its samples in
    /// one part and a part reads only its own blocks; the largest groups
    /// first, each into the part with the fewest samples so far.
    #[must_use]
    pub fn block_parts(
        &self,
        blocks: &[(u64, u64)],
        parts: u64,
    ) -> std::collections::HashMap<u64, u64, foldhash::fast::FixedState> {
        let block_res = u32::from(u8::from(crate::store::BLOCK_RES));
        let coarse = u32::from(u8::from(coarsest(&self.resolutions))).min(block_res);
        // Blocks under one coarse cell agree but in their last digits, and
        // come one after the other in block order.
        let shift = 3 * (block_res - coarse);
        let mut groups: Vec<(u64, u64)> = Vec::new();
        for &(block, n) in blocks {
            match groups.last_mut() {
                Some((g, total)) if *g == block >> shift => *total += n,
                _ => groups.push((block >> shift, n)),
            }
        }
        let sizes: Vec<u64> = groups.iter().map(|&(_, n)| n).collect();
        let part_of_group = crate::analyze::fill_parts(&sizes, parts);
        let mut parts_of = std::collections::HashMap::default();
        let mut group = 0;
        for &(block, _) in blocks {
            while groups[group].0 != block >> shift {
                group += 1;
            }
            parts_of.insert(block, part_of_group[group]);
        }
        parts_of
    }

    /// Adds a part's cells.
    pub fn add(&mut self, ing: &Ingested, opts: &GapOptions) {
        let order = CellOrder::new(ing, opts);
        for (li, layer) in layer_names(opts).enumerate() {
            self.results[li].extend(cell_results(ing, opts, &order, layer));
        }
        for (li, cells) in map_cells(ing, opts, &order, &self.resolutions)
            .into_iter()
            .enumerate()
        {
            self.map[li].extend(cells);
        }
    }

    /// Every layer's cell results, and the map layers, in cell order.
    #[must_use]
    pub fn finish(mut self, opts: &GapOptions) -> (Vec<Vec<CellResult>>, Vec<MapLayer>) {
        for r in &mut self.results {
            r.sort_unstable_by_key(|c| u64::from(c.cell));
        }
        let map = layer_names(opts)
            .zip(self.resolutions)
            .zip(self.map)
            .map(|((layer, res), mut cells)| {
                cells.sort_unstable_by_key(|c| c.0);
                MapLayer {
                    carrier: layer.to_owned(),
                    resolution: res.map_or(0, u8::from),
                    cells: cells.into_iter().map(|(_, c)| c).collect(),
                }
            })
            .collect();
        (self.results, map)
    }
}

/// The finest resolution, from that of `distinct` (sorted analysis cells)
/// down, at which they have at most `max_cells` parents; `None` for no cells.
fn map_resolution(mut distinct: Vec<h3o::CellIndex>, max_cells: usize) -> Option<h3o::Resolution> {
    let mut res = distinct.first()?.resolution();
    while distinct.len() > max_cells {
        let Some(coarser) = res.pred() else { break };
        res = coarser;
        for c in &mut distinct {
            *c = c.parent(res).unwrap_or(*c);
        }
        distinct.dedup(); // parents of sorted cells are sorted
    }
    Some(res)
}

/// A map cell's verdict from its downloads and devices (`None`: no samples).
fn judge_map_cell(
    opts: &GapOptions,
    cell: h3o::CellIndex,
    dl: &mut [f64],
    dev: &mut Vec<u32>,
) -> Option<MapCell> {
    if dl.is_empty() {
        return None;
    }
    dev.sort_unstable();
    dev.dedup();
    let v = opts.rule.judge(dl, dev.len() as u64);
    let ring = cell
        .boundary()
        .iter()
        .map(|ll| (ll.lng(), ll.lat()))
        .collect();
    Some((v.status, v.median, v.samples, ring))
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

/// Attribute tables of the heatmaps keyed by H3 index, without geometry:
/// what a peer tool's job writes, and what a database loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TableFormat {
    /// `heatmap/<slug>.csv`.
    Csv,
    /// `heatmap/<slug>.parquet` (Snappy; typed columns).
    Parquet,
}

/// The formats of the heatmaps: GIS layers and H3-keyed tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeatmapFormats {
    /// GIS layers (may be empty when only tables are wanted).
    pub layers: Vec<crate::layers::Format>,
    /// Tables keyed by H3 index.
    pub tables: Vec<TableFormat>,
}

impl HeatmapFormats {
    /// The heatmaps in the formats of the other layers, and no tables.
    #[must_use]
    pub fn like(formats: &Formats) -> Self {
        Self {
            layers: formats.0.clone(),
            tables: Vec::new(),
        }
    }
}

impl std::str::FromStr for HeatmapFormats {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut layers = Vec::new();
        let mut tables = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "csv" => tables.push(TableFormat::Csv),
                "parquet" => tables.push(TableFormat::Parquet),
                other => layers.extend(other.parse::<Formats>().map_err(|_| {
                    crate::error::Error::Config(format!(
                        "--heatmap-format '{other}': use geojson, fgb, gpkg, csv or parquet (comma-separated)"
                    ))
                })?.0),
            }
        }
        if layers.is_empty() && tables.is_empty() {
            return Err(crate::error::Error::Config(
                "--heatmap-format is empty; use geojson, fgb, gpkg, csv or parquet".to_owned(),
            ));
        }
        layers.sort();
        layers.dedup();
        tables.sort();
        tables.dedup();
        Ok(Self { layers, tables })
    }
}

/// What [`write_heatmaps`] produced.
#[derive(Debug)]
pub struct Heatmaps {
    /// Cells per layer (carrier name, count), ALL last.
    pub cells: Vec<(String, usize)>,
    /// Files written.
    pub files: Vec<std::path::PathBuf>,
}

/// A heatmap layer's features: hexagon (or none) and fields.
type Features = Vec<(Shape, Vec<Prop>)>;

/// One heatmap cell's statistics and verdict.
#[derive(Debug, Clone)]
pub struct CellResult {
    cell: h3o::CellIndex,
    stats: GroupStats,
    verdict: crate::rule::Verdict,
}

/// The statistics of one heatmap layer's cells, sorted by cell.
fn cell_results(
    ing: &Ingested,
    opts: &GapOptions,
    order: &CellOrder,
    layer: &str,
) -> Vec<CellResult> {
    use rayon::prelude::*;
    let rule = &opts.rule;
    // Cells are independent; rayon's collect keeps them in cell order.
    order
        .cells(carrier_filter(ing, layer))
        .map_init(StatScratch::default, |scratch, keys| {
            let cell = ing.samples[keys[0].2 as usize].cell;
            let samples = keys.iter().map(|k| &ing.samples[k.2 as usize]);
            let stats = GroupStats::of_in(samples, scratch);
            // The verdict reads the same downloads (in any order).
            let verdict = rule.judge(scratch.downloads(), stats.devices);
            CellResult {
                cell,
                stats,
                verdict,
            }
        })
        .collect()
}

/// The features of one heatmap layer from its cells' results.
fn features_of(results: &[CellResult], opts: &GapOptions, layer: &str, geometry: bool) -> Features {
    use rayon::prelude::*;
    results
        .par_iter()
        .map(|r| {
            let CellResult {
                cell,
                stats,
                verdict,
            } = r;
            let ring: Vec<(f64, f64)> = if geometry {
                cell.boundary()
                    .iter()
                    .map(|ll| (ll.lng(), ll.lat()))
                    .collect()
            } else {
                Vec::new() // tables only: no hexagon is written
            };
            // Privacy: too few devices publish counts only, no statistics.
            let suppressed = stats.devices < opts.min_devices_public;
            let mut props = Vec::with_capacity(FIELDS.len());
            props.extend([
                Prop::Str(cell.to_string()),
                Prop::Str(layer.to_owned()),
                Prop::Int(stats.samples),
                Prop::Int(stats.devices),
            ]);
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
            (Shape::Ring(ring), props)
        })
        .collect()
}

/// The features of one heatmap layer, sorted by cell.
fn layer_features(
    ing: &Ingested,
    opts: &GapOptions,
    order: &CellOrder,
    layer: &str,
    geometry: bool,
) -> Features {
    features_of(
        &cell_results(ing, opts, order, layer),
        opts,
        layer,
        geometry,
    )
}

/// A property as CSV text, as the GeoJSON writes it (null as empty).
fn prop_text(p: &Prop) -> String {
    match p {
        Prop::Str(s) | Prop::Raw(s) => s.clone(),
        Prop::Num(v, d) => crate::output::fmt_decimal(*v, *d),
        Prop::Int(i) => i.to_string(),
        Prop::Bool(b) => b.map(|b| b.to_string()).unwrap_or_default(),
    }
}

/// Writes one heatmap as a Parquet table: the fields of [`FIELDS`] with
/// their types (numbers as written in the CSV, so both agree).
fn write_parquet_table(path: &Path, features: &[(Shape, Vec<Prop>)]) -> Result<()> {
    use polars::prelude::{Column, DataFrame, ParquetCompression, ParquetWriter};
    let perr = |e: polars::prelude::PolarsError| crate::error::Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    use rayon::prelude::*;
    let mut columns = Vec::with_capacity(FIELDS.len());
    for (i, name) in FIELDS.iter().enumerate() {
        // In parallel: a number is the value of its CSV text (so that both
        // tables agree), a few hundred thousand per column.
        let values = features.par_iter().map(|(_, p)| &p[i]);
        let column = match features.first().map(|(_, p)| &p[i]) {
            Some(Prop::Int(_)) => Column::new(
                (*name).into(),
                values
                    .map(|p| if let Prop::Int(v) = p { Some(*v) } else { None })
                    .collect::<Vec<Option<u64>>>(),
            ),
            Some(Prop::Bool(_)) => Column::new(
                (*name).into(),
                values
                    .map(|p| if let Prop::Bool(v) = p { *v } else { None })
                    .collect::<Vec<Option<bool>>>(),
            ),
            Some(Prop::Num(..) | Prop::Raw(_)) => Column::new(
                (*name).into(),
                values
                    .map(|p| match p {
                        Prop::Num(v, d) => crate::output::decimal_value(*v, *d),
                        _ => prop_text(p).parse::<f64>().ok(),
                    })
                    .collect::<Vec<Option<f64>>>(),
            ),
            _ if *name == "h3" || *name == "carrier" || *name == "status" => Column::new(
                (*name).into(),
                values.map(prop_text).collect::<Vec<String>>(),
            ),
            // An empty layer: the column's type from the first-layer kinds.
            _ => match *name {
                "samples" | "devices" => Column::new((*name).into(), Vec::<u64>::new()),
                "below_target" | "suppressed" => Column::new((*name).into(), Vec::<bool>::new()),
                _ => Column::new((*name).into(), Vec::<f64>::new()),
            },
        };
        columns.push(column);
    }
    let mut df = DataFrame::new(features.len(), columns).map_err(perr)?;
    crate::output::write_atomic(path, |w| {
        ParquetWriter::new(w)
            // Snappy: every reader has it, and it costs a fraction of zstd's time.
            .with_compression(ParquetCompression::Snappy)
            .finish(&mut df)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
}

/// Writes `heatmap/<slug>.<ext>` for each carrier of `carriers` and for `ALL`,
/// in every format (each layer built in parallel, and written while the next
/// is built). Returns the number of cells per layer, in that order (ALL
/// last), and the files written; the first layer that failed gives the error.
///
/// # Errors
/// A file cannot be written.
pub fn write_heatmaps(
    out: &Path,
    ing: &Ingested,
    opts: &GapOptions,
    order: &CellOrder,
    formats: &HeatmapFormats,
) -> Result<Heatmaps> {
    write_layers(out, opts, formats, &|_, layer, geometry| {
        layer_features(ing, opts, order, layer, geometry)
    })
}

/// [`write_heatmaps`] from results gathered part by part ([`HeatmapParts`]).
///
/// # Errors
/// A file cannot be written.
pub fn write_heatmap_results(
    out: &Path,
    opts: &GapOptions,
    results: &[Vec<CellResult>],
    formats: &HeatmapFormats,
) -> Result<Heatmaps> {
    write_layers(out, opts, formats, &|li, layer, geometry| {
        features_of(&results[li], opts, layer, geometry)
    })
}

/// Writes every heatmap layer, each layer's features made by `features`
/// (layer number, name, with hexagons or not).
fn write_layers(
    out: &Path,
    opts: &GapOptions,
    formats: &HeatmapFormats,
    features_of_layer: &(dyn Fn(usize, &str, bool) -> Features + Sync),
) -> Result<Heatmaps> {
    let style = qml(SymbolKind::Fill, &download_classes());
    let dir = out.join("heatmap");
    let layers: Vec<&str> = layer_names(opts).collect();
    let gis = Formats(formats.layers.clone());
    let write = |layer: &str, features: Features| {
        let name = slug(layer);
        let mut files = Vec::new();
        for t in &formats.tables {
            match t {
                TableFormat::Csv => {
                    let path = dir.join(format!("{name}.csv"));
                    crate::output::write_csv(
                        &path,
                        &FIELDS,
                        features
                            .iter()
                            .map(|(_, p)| p.iter().map(prop_text).collect::<Vec<_>>()),
                    )?;
                    files.push(path);
                }
                TableFormat::Parquet => {
                    let path = dir.join(format!("{name}.parquet"));
                    write_parquet_table(&path, &features)?;
                    files.push(path);
                }
            }
        }
        let cells = features.len();
        if !gis.0.is_empty() {
            let l = Layer {
                name: name.clone(),
                geometry: LayerGeometry::Polygon,
                fields: FIELDS.iter().map(|f| (*f).to_owned()).collect(),
                features,
                style: Some(style.clone()),
            };
            files.extend(write_layer(&dir, &name, &l, &gis)?);
        }
        Ok((layer.to_owned(), cells, files))
    };
    // One layer's features at a time (each parallel over its cells), the
    // previous layer written meanwhile: two layers in memory, not five
    // (five at once held 200 MiB more at 10 M samples).
    let mut written: Vec<Result<(String, usize, Vec<std::path::PathBuf>)>> = Vec::new();
    let mut previous: Option<(&str, Features)> = None;
    for (li, next) in layers.iter().copied().map(Some).chain([None]).enumerate() {
        let (features, done) = rayon::join(
            || next.map(|layer| features_of_layer(li, layer, !gis.0.is_empty())),
            || {
                previous
                    .take()
                    .map(|(layer, features)| write(layer, features))
            },
        );
        written.extend(done);
        previous = next.zip(features);
    }
    let mut counts = Vec::new();
    let mut files = Vec::new();
    for w in written {
        let (layer, cells, f) = w?;
        counts.push((layer, cells));
        files.extend(f);
    }
    Ok(Heatmaps {
        cells: counts,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest_run::{Maybe, Sample};
    use rand::{RngExt, SeedableRng};

    /// The oracle of [`map_layers`]: its code before it served every layer
    /// in one pass, a pass over the samples per layer.
    fn map_layers_per_layer(
        ing: &Ingested,
        opts: &GapOptions,
        order: &CellOrder,
        max_cells: usize,
    ) -> Vec<MapLayer> {
        use rayon::prelude::*;
        let names: Vec<&str> = layer_names(opts).collect();
        names
            .par_iter()
            .map(|&layer| {
                let want = carrier_filter(ing, layer);
                let keep = |k: &&(u64, u16, u32)| want.is_none_or(|c| k.1 == c);
                // The finest resolution with at most `max_cells` cells, found on
                // the distinct cells (parents of distinct cells are the distinct
                // parents), then one pass over the samples at that resolution.
                let mut distinct: Vec<h3o::CellIndex> = order
                    .0
                    .par_chunk_by(|a, b| a.0 == b.0)
                    .filter_map(|run| run.iter().find(keep))
                    .filter_map(|k| h3o::CellIndex::try_from(k.0).ok())
                    .collect();
                let mut res = distinct
                    .first()
                    .map_or(h3o::Resolution::Zero, |c| c.resolution());
                while distinct.len() > max_cells {
                    let Some(coarser) = res.pred() else { break };
                    res = coarser;
                    for c in &mut distinct {
                        *c = c.parent(res).unwrap_or(*c);
                    }
                    distinct.dedup(); // parents of sorted cells are sorted
                }
                // Cells of one resolution share a parent at `res` exactly when
                // their bits above digit res + 1 agree (mode, resolution, base
                // cell, first `res` digits): a shift, not two parent lookups per
                // neighbouring pair of 10 M keys.
                let shift = 3 * (15 - u32::from(u8::from(res)));
                let cells = order
                    .0
                    .par_chunk_by(|a, b| a.0 >> shift == b.0 >> shift)
                    .map_init(
                        || (Vec::<f64>::new(), Vec::<u32>::new()),
                        |(dl, dev), g| {
                            let cell = h3o::CellIndex::try_from(g[0].0).ok()?.parent(res)?;
                            // Buffers reused from group to group (tens of thousands).
                            dl.clear();
                            dev.clear();
                            for s in g.iter().filter(keep).map(|k| &ing.samples[k.2 as usize]) {
                                dl.push(s.download);
                                dev.push(s.device);
                            }
                            // The verdict is not what this oracle checks.
                            judge_map_cell(opts, cell, dl, dev)
                        },
                    )
                    .flatten()
                    .collect();
                MapLayer {
                    carrier: layer.to_owned(),
                    resolution: u8::from(res),
                    cells,
                }
            })
            .collect()
    }

    /// Samples around a few towns of the North and the South, in three
    /// carriers, some flagged (left out of the map).
    fn ingested(n: usize, seed: u64) -> Ingested {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let towns = [
            (21.03, 105.85),
            (20.86, 106.68),
            (10.78, 106.70),
            (16.05, 108.20),
        ];
        let samples = (0..n)
            .map(|_| {
                let (lat0, lon0) = towns[rng.random_range(0..towns.len())];
                let lat = lat0 + rng.random_range(-0.6..0.6);
                let lon = lon0 + rng.random_range(-0.6..0.6);
                Sample {
                    time: 1_750_000_000,
                    download: f64::from(rng.random_range(0u32..60)) / 2.0,
                    upload: Maybe::NONE,
                    latency: Maybe::NONE,
                    cell: h3o::LatLng::new(lat, lon)
                        .expect("valid")
                        .to_cell(h3o::Resolution::Eight),
                    device: rng.random_range(0..400),
                    // Unequal shares: layers of unequal cell counts.
                    carrier: [0, 0, 0, 0, 0, 0, 1, 1, 1, 2][rng.random_range(0..10)],
                    network: crate::schema::Network::G4,
                    flags: u8::from(rng.random_range(0..20) == 0),
                }
            })
            .collect();
        // The heatmaps never read positions.
        Ingested::of_samples(samples, &["Viettel", "MobiFone", "VinaPhone"], 400)
    }

    fn gap_options() -> GapOptions {
        GapOptions {
            rule: crate::rule::Rule::default(),
            // Vietnamobile has no sample: an empty layer.
            carriers: ["Viettel", "Vietnamobile", "VinaPhone", "MobiFone"]
                .map(str::to_owned)
                .to_vec(),
            village_radius_m: 1_000.0,
            networks: None,
            plausibility: crate::ingest_run::Plausibility::default(),
            min_devices_public: 0,
        }
    }

    #[test]
    fn map_layers_in_one_pass_equal_a_pass_per_layer() {
        // Oracle: each layer on its own pass, as before. Cell limits that
        // put the layers at one, two or three resolutions, and none.
        let opts = gap_options();
        let mut mixed = 0;
        for (seed, n) in [(1, 20_000), (2, 3_000), (3, 1)] {
            let ing = ingested(n, seed);
            let order = CellOrder::new(&ing, &opts);
            for max_cells in [0, 3, 40, 300, 2_000, 1_000_000] {
                let fast = map_layers(&ing, &opts, &order, max_cells);
                let slow = map_layers_per_layer(&ing, &opts, &order, max_cells);
                assert_eq!(fast.len(), slow.len());
                for (a, b) in fast.iter().zip(&slow) {
                    let what = format!("seed {seed}, max {max_cells}, {}", a.carrier);
                    assert_eq!(
                        (&a.carrier, a.resolution),
                        (&b.carrier, b.resolution),
                        "{what}"
                    );
                    assert_eq!(format!("{:?}", a.cells), format!("{:?}", b.cells), "{what}");
                }
                let resolutions: std::collections::BTreeSet<u8> = fast
                    .iter()
                    .filter(|l| !l.cells.is_empty())
                    .map(|l| l.resolution)
                    .collect();
                mixed += usize::from(resolutions.len() > 1);
            }
        }
        assert!(mixed > 0, "no case had layers at several resolutions");
    }

    #[test]
    fn block_parts_keep_whole_coarse_cells_together_and_balance_the_parts() {
        let ing = ingested(40_000, 9);
        let mut counts = std::collections::BTreeMap::new();
        // A cell of each block, to find its ancestors by h3o.
        let mut cell_of = std::collections::HashMap::new();
        for s in &ing.samples {
            let block = crate::store::block_of(u64::from(s.cell));
            *counts.entry(block).or_insert(0u64) += 1;
            cell_of.insert(block, s.cell);
        }
        let blocks: Vec<(u64, u64)> = counts.into_iter().collect();
        assert!(blocks.len() > 20);
        for coarse in [0u8, 2, 3, 4, 6, 8] {
            let res = h3o::Resolution::try_from(coarse).expect("resolution");
            let gathered = HeatmapParts {
                resolutions: vec![Some(h3o::Resolution::Eight), Some(res), None],
                results: Vec::new(),
                map: Vec::new(),
            };
            for parts in [1u64, 3, 7] {
                let part_of = gathered.block_parts(&blocks, parts);
                assert_eq!(part_of.len(), blocks.len());
                // Whole cells of the coarsest resolution (or whole blocks)
                // in one part: oracle by h3o's parents.
                let whole = res.min(crate::store::BLOCK_RES);
                let mut part_of_ancestor = std::collections::HashMap::new();
                for (block, part) in &part_of {
                    assert!(*part < parts, "coarse {coarse}, parts {parts}");
                    let ancestor = cell_of[block].parent(whole).expect("coarser");
                    let first = *part_of_ancestor.entry(ancestor).or_insert(*part);
                    assert_eq!(first, *part, "coarse {coarse}, parts {parts}");
                }
                // Greedy balance, largest groups first: no part holds more
                // than the lightest one plus the largest group.
                let mut group_size = std::collections::HashMap::new();
                let mut load = vec![0u64; parts as usize];
                for &(block, n) in &blocks {
                    load[part_of[&block] as usize] += n;
                    *group_size
                        .entry(cell_of[&block].parent(whole).expect("coarser"))
                        .or_insert(0u64) += n;
                }
                let largest = group_size.values().copied().max().unwrap_or(0);
                let (lo, hi) = (load.iter().min().unwrap(), load.iter().max().unwrap());
                assert!(
                    hi - lo <= largest,
                    "coarse {coarse}, parts {parts}: {load:?}"
                );
                if group_size.len() as u64 >= parts {
                    assert!(*lo > 0, "coarse {coarse}, parts {parts}: an empty part");
                }
            }
        }
    }
}
