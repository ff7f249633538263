//! The floor of issue 6's job on this machine: the job done by a bare loop
//! with none of gapmap's checks, to measure how far `gapmap analyze` is
//! from the least any tool must do, on the same file, the same hour.
//!
//! The job: read the columns it needs from a Parquet file of samples, drop
//! Wi-Fi, point in polygon to commune (an R-tree of the communes' boxes and
//! a crossing-number test, points visited in H3 order), the H3 cell at
//! resolution 8, then per (month, commune, carrier) the count, distinct
//! devices and median download, and per (cell, carrier) the count and
//! median, written as two CSV files. Both cores, by rayon. Times are
//! parsed and medians taken by gapmap's own functions
//! (`schema::local_month`, `stats::median`); a time the parser cannot read
//! leaves its row out of the per-month table (0.3 % of the bench's rows).
//!
//! Left out, on purpose (what makes it a floor, not an analysis): no row is
//! checked (a missing or impossible value is skipped or taken as it is),
//! no duplicate test id is dropped, no carrier alias is resolved, nothing is
//! snapped to a near commune, no plausibility rule, no quota, no report.
//!
//! ```sh
//! cargo bench -p gapmap-core --bench bare_job -- SAMPLES.parquet COMMUNES.geojson OUT_DIR
//! ```
//! Prints each step's wall time and the rows it handled to stderr, as
//! `bare: STEP SECONDS s ROWS rows` (`notebooks/bench_national.sh` runs it
//! as its `bare` run).

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "counts and indices of one national file fit"
)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use gapmap_core::boundaries::{Boundaries, DEFAULT_LEVELS};
use gapmap_core::month::Month;
use gapmap_core::stats::median;
use polars::prelude::{ParquetReader, SerReader};
use rayon::prelude::*;
use rstar::primitives::{GeomWithData, Rectangle};

/// Rows of one job: the columns it reads.
struct Columns {
    timestamp: polars_arrow::array::Utf8ViewArray,
    network: polars_arrow::array::Utf8ViewArray,
    carrier: polars_arrow::array::Utf8ViewArray,
    device: polars_arrow::array::Utf8ViewArray,
    lat: Vec<f64>,
    lon: Vec<f64>,
    download: Vec<f64>,
}

fn read(path: &std::path::Path) -> Columns {
    let names = [
        "timestamp",
        "lat",
        "lon",
        "carrier",
        "network",
        "download_mbps",
        "device_id",
    ];
    let df = ParquetReader::new(std::fs::File::open(path).unwrap())
        .with_columns(Some(names.iter().map(|s| (*s).to_owned()).collect()))
        .finish()
        .unwrap();
    let text = |name: &str| {
        df.column(name)
            .unwrap()
            .str()
            .unwrap()
            .rechunk()
            .downcast_as_array()
            .clone()
    };
    let numbers = |name: &str| {
        let c = df.column(name).unwrap().f64().unwrap().rechunk();
        c.iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect::<Vec<f64>>()
    };
    Columns {
        timestamp: text("timestamp"),
        network: text("network"),
        carrier: text("carrier"),
        device: text("device_id"),
        lat: numbers("lat"),
        lon: numbers("lon"),
        download: numbers("download_mbps"),
    }
}

/// Whether (x, y) lies inside the multipolygon, by crossing number over
/// every ring (holes cross too).
fn crossing_inside(shape: &geo::MultiPolygon<f64>, x: f64, y: f64) -> bool {
    let mut inside = false;
    for poly in shape {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for line in ring.lines() {
                let (a, b) = (line.start, line.end);
                if (a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x {
                    inside = !inside;
                }
            }
        }
    }
    inside
}

fn main() {
    // `cargo bench` passes `--bench` first; the job's paths follow.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [samples, communes, out] = args.as_slice() else {
        println!(
            "usage: cargo bench -p gapmap-core --bench bare_job -- SAMPLES.parquet COMMUNES.geojson OUT_DIR"
        );
        return;
    };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).unwrap();
    let lap = |name: &str, started: &mut Instant, rows: usize| {
        let s = started.elapsed().as_secs_f64();
        eprintln!("bare: {name:<28} {s:7.3} s  {rows:>10} rows");
        *started = Instant::now();
    };
    let total = Instant::now();
    let mut t = Instant::now();
    let b = Boundaries::load(
        std::path::Path::new(communes),
        DEFAULT_LEVELS.parse().unwrap(),
    )
    .unwrap();
    let tree = rstar::RTree::bulk_load(
        b.shapes
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                use geo::BoundingRect;
                let r = s.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i as u32,
                ))
            })
            .collect(),
    );
    lap("load communes, R-tree", &mut t, b.shapes.len());

    let c = read(std::path::Path::new(samples));
    let n = c.lat.len();
    lap("read Parquet", &mut t, n);

    // Mobile rows with a position: (cell, row).
    let res = h3o::Resolution::Eight;
    let mut by_cell: Vec<(u64, u32)> = (0..n)
        .into_par_iter()
        .filter_map(|i| {
            let net = c.network.value(i);
            if net.eq_ignore_ascii_case("wifi") || net.eq_ignore_ascii_case("wi-fi") {
                return None;
            }
            let cell = h3o::LatLng::new(c.lat[i], c.lon[i]).ok()?.to_cell(res);
            Some((u64::from(cell), i as u32))
        })
        .collect();
    lap("drop Wi-Fi, H3 cell", &mut t, by_cell.len());
    by_cell.par_sort_unstable();
    lap("sort by cell", &mut t, by_cell.len());

    // Commune of each row, in H3 order (neighbours share cache lines).
    let commune: Vec<Option<u32>> = by_cell
        .par_iter()
        .map(|&(_, i)| {
            let (x, y) = (c.lon[i as usize], c.lat[i as usize]);
            tree.locate_all_at_point([x, y])
                .find(|g| crossing_inside(&b.shapes[g.data as usize], x, y))
                .map(|g| g.data)
        })
        .collect();
    lap("point in polygon", &mut t, commune.iter().flatten().count());

    // Carriers and devices by number, months parsed.
    let mut carriers: Vec<&str> = Vec::new();
    let mut carrier_of: std::collections::HashMap<&str, u8> = std::collections::HashMap::new();
    let carrier_ix: Vec<u8> = (0..n)
        .map(|i| {
            let name = c.carrier.value(i);
            *carrier_of.entry(name).or_insert_with(|| {
                carriers.push(name);
                (carriers.len() - 1) as u8
            })
        })
        .collect();
    let month: Vec<Option<Month>> = (0..n)
        .into_par_iter()
        .map(|i| gapmap_core::schema::local_month(c.timestamp.value(i)))
        .collect();
    let months: Vec<Month> = {
        let mut m: Vec<Month> = month.iter().flatten().copied().collect();
        m.par_sort_unstable();
        m.dedup();
        m
    };
    let month_ix = |m: Month| months.binary_search(&m).unwrap() as u64;
    lap("carriers, months", &mut t, n);

    // Per (month, commune, carrier): rows sorted by key and device digest.
    let mut unit_rows: Vec<(u64, u64, f64)> = by_cell
        .par_iter()
        .zip(&commune)
        .filter_map(|(&(_, i), &u)| {
            let i = i as usize;
            let key = (month_ix(month[i]?) << 40) | (u64::from(u?) << 8) | u64::from(carrier_ix[i]);
            let device = xxhash_rust::xxh3::xxh3_64(c.device.value(i).as_bytes());
            Some((key, device, c.download[i]))
        })
        .collect();
    unit_rows.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let units: Vec<(u64, usize, usize, f64)> = unit_rows
        .par_chunk_by(|a, b| a.0 == b.0)
        .map(|g| {
            let devices = 1 + g.windows(2).filter(|w| w[0].1 != w[1].1).count();
            let mut dl: Vec<f64> = g.iter().map(|r| r.2).collect();
            (
                g[0].0,
                g.len(),
                devices,
                median(&mut dl).unwrap_or(f64::NAN),
            )
        })
        .collect();
    lap("per (month, commune, carrier)", &mut t, unit_rows.len());

    // Per (cell, carrier): rows already in cell order; carriers within.
    let mut cell_rows: Vec<(u64, u8, f64)> = by_cell
        .par_iter()
        .map(|&(cell, i)| (cell, carrier_ix[i as usize], c.download[i as usize]))
        .collect();
    cell_rows.par_chunk_by_mut(|a, b| a.0 == b.0).for_each(|g| {
        g.sort_unstable_by_key(|r| r.1);
    });
    let cells: Vec<(u64, u8, usize, f64)> = cell_rows
        .par_chunk_by(|a, b| a.0 == b.0 && a.1 == b.1)
        .map(|g| {
            let mut dl: Vec<f64> = g.iter().map(|r| r.2).collect();
            (g[0].0, g[0].1, g.len(), median(&mut dl).unwrap_or(f64::NAN))
        })
        .collect();
    lap("per (cell, carrier)", &mut t, cell_rows.len());

    let mut w = std::io::BufWriter::new(std::fs::File::create(out.join("units.csv")).unwrap());
    writeln!(
        w,
        "month,commune,carrier,samples,devices,median_download_mbps"
    )
    .unwrap();
    for (key, count, devices, med) in &units {
        let m = months[(key >> 40) as usize];
        let u = &b.finest()[((key >> 8) & 0xffff_ffff) as usize].code;
        let carrier = carriers[(key & 0xff) as usize];
        writeln!(w, "{m},{u},{carrier},{count},{devices},{med:.2}").unwrap();
    }
    w.flush().unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out.join("cells.csv")).unwrap());
    writeln!(w, "h3,carrier,samples,median_download_mbps").unwrap();
    for (cell, carrier, count, med) in &cells {
        let carrier = carriers[*carrier as usize];
        writeln!(w, "{cell:x},{carrier},{count},{med:.2}").unwrap();
    }
    w.flush().unwrap();
    lap("write two CSV files", &mut t, units.len() + cells.len());
    eprintln!(
        "bare: {:<28} {:7.3} s  (with loading the communes)",
        "total",
        total.elapsed().as_secs_f64()
    );
}
