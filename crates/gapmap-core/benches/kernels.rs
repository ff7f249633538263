//! The hot kernels of `analyze`, on national data (issue 6): row checks,
//! H3 cells, placement (exact test against the cell cache), order
//! statistics (selection against a full sort). The whole job is timed by
//! `notebooks/bench_national.sh`.
//!
//! `cargo bench -p gapmap-core --bench kernels` (reads `../shared/data/vn`,
//! or `GAPMAP_SHARED_DATA`).

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gapmap_core::boundaries::{Boundaries, DEFAULT_LEVELS, Locator};
use gapmap_core::schema::{Field, RawRow, check_row};
use rand::{RngExt, SeedableRng};

const POINTS: usize = 200_000;

fn shared() -> PathBuf {
    let p = std::env::var_os("GAPMAP_SHARED_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/vn"),
        PathBuf::from,
    );
    if p.join("boundaries_2009").is_dir() {
        p
    } else {
        p.join("vn")
    }
}

/// Points around the national villages (seeded; up to ~2 km away), where
/// tests are: most in cells wholly inside a commune, some near edges.
fn points() -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(shared().join("villages_wof.geojson")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let villages: Vec<(f64, f64)> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let c = &f["geometry"]["coordinates"];
            (c[0].as_f64().unwrap(), c[1].as_f64().unwrap())
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    (0..POINTS)
        .map(|_| {
            let (x, y) = villages[rng.random_range(0..villages.len())];
            (
                x + rng.random_range(-0.02..0.02),
                y + rng.random_range(-0.02..0.02),
            )
        })
        .collect()
}

fn rows(points: &[(f64, f64)]) -> Vec<RawRow> {
    points
        .iter()
        .enumerate()
        .map(|(i, (x, y))| {
            let mut r = RawRow::with_capacity(i as u64 + 2, 160);
            r.set(Field::TestId, &format!("T{i:012}"));
            r.set(Field::Timestamp, "2025-06-18T01:40:30+07:00");
            r.set(Field::Lat, &format!("{y:.6}"));
            r.set(Field::Lon, &format!("{x:.6}"));
            r.set(Field::Carrier, "Viettel");
            r.set(Field::Network, "LTE");
            r.set(Field::Download, "42.17");
            r.set(Field::Upload, "7.97");
            r.set(Field::Latency, "33");
            r.set(Field::DeviceId, &format!("dev-{}", i % 5000));
            r
        })
        .collect()
}

/// The rows of [`rows`] written as a Parquet file (text fields as text,
/// numbers as Float64) and read back as ingestion reads it.
fn parquet_chunks(points: &[(f64, f64)]) -> Vec<gapmap_core::columns::ColumnChunk> {
    use polars::prelude::{Column, DataFrame, ParquetWriter};
    let n = points.len();
    let text = |f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<String>>();
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("test_id".into(), text(&|i| format!("T{i:012}"))),
            Column::new("timestamp".into(), vec!["2025-06-18T01:40:30+07:00"; n]),
            Column::new(
                "lat".into(),
                points.iter().map(|p| p.1).collect::<Vec<f64>>(),
            ),
            Column::new(
                "lon".into(),
                points.iter().map(|p| p.0).collect::<Vec<f64>>(),
            ),
            Column::new("carrier".into(), vec!["Viettel"; n]),
            Column::new("network".into(), vec!["LTE"; n]),
            Column::new("download_mbps".into(), vec![42.17f64; n]),
            Column::new("upload_mbps".into(), vec![7.97f64; n]),
            Column::new("latency_ms".into(), vec![33.0f64; n]),
            Column::new("device_id".into(), text(&|i| format!("dev-{}", i % 5000))),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
    let mut chunks = Vec::new();
    gapmap_core::ingest::read_chunks(
        &path,
        &Default::default(),
        &mut Vec::new(),
        &mut Vec::new,
        &mut |chunk| {
            if let gapmap_core::ingest::Chunk::Columns(c) = chunk {
                chunks.push(*c);
            }
            Ok(())
        },
    )
    .unwrap();
    chunks
}

fn kernels(c: &mut Criterion) {
    let points = points();
    let b = Boundaries::load(
        &shared().join("boundaries_2009/communes.geojson"),
        DEFAULT_LEVELS.parse().unwrap(),
    )
    .unwrap();
    let res = h3o::Resolution::Eight;
    let cells: Vec<h3o::CellIndex> = points
        .iter()
        .map(|&(x, y)| h3o::LatLng::new(y, x).unwrap().to_cell(res))
        .collect();
    let mut g = c.benchmark_group("national 200k points");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.sample_size(10);

    let raw = rows(&points);
    g.bench_function("check_row", |bench| {
        bench.iter(|| raw.iter().filter(|r| check_row(r).is_ok()).count());
    });
    // The same rows as ingestion reads a Parquet file: in place, in the
    // decoded columns (numbers typed, as exporters write them).
    let chunks = parquet_chunks(&points);
    let in_place: Vec<_> = chunks.iter().flat_map(|c| c.rows()).collect();
    assert_eq!(in_place.len(), raw.len());
    g.bench_function("check_row, Parquet rows in place", |bench| {
        bench.iter(|| in_place.iter().filter(|r| check_row(*r).is_ok()).count());
    });
    g.bench_function("h3 cell, resolution 8", |bench| {
        bench.iter(|| {
            points
                .iter()
                .map(|&(x, y)| u64::from(h3o::LatLng::new(y, x).unwrap().to_cell(res)))
                .fold(0u64, u64::wrapping_add)
        });
    });
    // The memo of hexagons, learned on these points' cells, asked in the
    // order ingestion uses (by square); a point it does not answer takes h3o.
    let mut memo = gapmap_core::cell_memo::CellMemo::new(res);
    let squares: Vec<u64> = points.iter().map(|&(x, y)| memo.square(y, x)).collect();
    let met: Vec<(u64, h3o::CellIndex)> =
        squares.iter().copied().zip(cells.iter().copied()).collect();
    memo.learn(&met);
    let mut by_square: Vec<usize> = (0..points.len()).collect();
    by_square.sort_by_key(|&i| squares[i]);
    g.bench_function(
        "h3 cell, resolution 8, memo (learned, square order)",
        |bench| {
            bench.iter(|| {
                by_square
                    .iter()
                    .map(|&i| {
                        let (x, y) = points[i];
                        let cell = memo
                            .cell(squares[i], y, x)
                            .unwrap_or_else(|| h3o::LatLng::new(y, x).unwrap().to_cell(res));
                        u64::from(cell)
                    })
                    .fold(0u64, u64::wrapping_add)
            });
        },
    );
    let exact = Locator::new(&b, 500.0);
    g.bench_function("place, exact test", |bench| {
        bench.iter(|| {
            points
                .iter()
                .filter(|&&(x, y)| exact.locate(x, y).is_some())
                .count()
        });
    });
    let mut cached = Locator::new(&b, 500.0);
    cached.learn_cells(&cells);
    g.bench_function("place, cell cache", |bench| {
        bench.iter(|| {
            points
                .iter()
                .zip(&cells)
                .filter(|&(&(x, y), &cell)| cached.locate_in(cell, x, y).is_some())
                .count()
        });
    });
    g.bench_function("learn cells (cache cold)", |bench| {
        bench.iter_batched(
            || Locator::new(&b, 500.0),
            |mut loc| {
                loc.learn_cells(&cells);
                loc
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();

    // Order statistics of one large group (a province in a month).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let values: Vec<f64> = (0..1_000_000)
        .map(|_| (rng.random_range(0.0f64..8.0)).exp().round() / 4.0)
        .collect();
    let mut g = c.benchmark_group("1M downloads");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.sample_size(10);
    g.bench_function("median, p10, p90 by full sort", |bench| {
        bench.iter_batched(
            || values.clone(),
            |mut v| {
                gapmap_core::stats::sort_values(&mut v);
                black_box((
                    gapmap_core::stats::median_sorted(&v),
                    gapmap_core::stats::quantile_sorted(&v, 0.1),
                    gapmap_core::stats::quantile_sorted(&v, 0.9),
                ))
            },
            BatchSize::LargeInput,
        );
    });
    g.bench_function("median, p10, p90 by selection", |bench| {
        bench.iter_batched(
            || values.clone(),
            |mut v| black_box(gapmap_core::stats::median_p10_p90(&mut v)),
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
