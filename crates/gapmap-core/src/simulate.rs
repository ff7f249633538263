//! A realistic, seeded generator of i-Speed-like samples with ground truth.
//!
//! The model, in order of what drives it:
//! - **Volume**: each finest unit gets a share of the month's tests that
//!   grows with population (exponent 0.8) times a log-normal "mobilisation"
//!   factor (σ = 1.2), so most communes fall far short of the quota and a few
//!   exceed it, as in MIC's 2024 figures.
//! - **Where**: a share of tests (default 35 %) is a campaign at the unit's
//!   interior point (σ 300 m); the rest are near villages of the unit, each
//!   village with its own log-normal activity (some get none), σ 400 m.
//! - **Who**: a pool of devices per unit (about 6 tests per device), each with
//!   a carrier drawn by market share and a platform (Android 75 %, with 3×
//!   the test rate of iOS: auto-tests vs manual tests).
//! - **Speed**: per carrier, synthetic sites at villages and unit centres;
//!   the median download falls with distance to the nearest site
//!   (`1 / (1 + (d / 2.5 km)²)`), and beyond the dead-zone distance
//!   (default 7 km) tests are failures (0 Mbps, 35 %) or very slow (median
//!   0.8 Mbps); villages in a terrain shadow (per carrier, 4 % for Viettel
//!   to 20 % for Gmobile) are dead zones too, for tests taken near them. Log-normal spread σ = 0.6 around the median; 2 % failed tests
//!   everywhere; 5G ×3 (towns), 3G ×0.15, 2G ×0.02. Speeds are scaled so the
//!   mean mobile download equals Ookla's national average for the year
//!   (`data/ookla_vietnam_mobile_by_year.csv`; later years use the last).
//! - **Dirt**: a share of rows (default 2 %) is corrupted: 0,0 or swapped
//!   coordinates, negative speeds, duplicated rows, missing device ids,
//!   unparsable timestamps.
//!
//! Ground truth per village and carrier: distance to the nearest site, the
//! true median download of the model at the village, and the dead-zone flag.

use std::collections::HashMap;
use std::path::Path;

use geo::InteriorPoint;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::boundaries::{Boundaries, Locator};
use crate::error::{Error, Result};
use crate::geodesy::{METRES_PER_DEGREE, haversine_m};
use crate::month::Month;
use crate::output::{fmt_decimal, write_csv};
use crate::villages::Village;

const OOKLA: &str = include_str!("../../../data/ookla_vietnam_mobile_by_year.csv");

/// A carrier of the simulation.
#[derive(Debug, Clone)]
pub struct SimCarrier {
    /// Name as written in samples (mixes aliases and MCC-MNC codes on purpose).
    pub spellings: Vec<&'static str>,
    /// Canonical name.
    pub name: &'static str,
    /// Market share (weights; need not sum to 1).
    pub share: f64,
    /// Probability that a village hosts one of its sites.
    pub village_site: f64,
    /// Probability that a unit centre hosts one of its sites.
    pub centre_site: f64,
    /// Relative speed of the network.
    pub speed: f64,
    /// Probability that a village is in a terrain shadow (a dead zone
    /// whatever the distance to a site), as in mountain valleys.
    pub shadow: f64,
}

/// Vietnam's carriers with approximate market shares (Viettel about 55 %).
#[must_use]
pub fn vietnam_carriers() -> Vec<SimCarrier> {
    vec![
        SimCarrier {
            spellings: vec!["Viettel", "viettel", "452-04"],
            name: "Viettel",
            share: 0.55,
            village_site: 0.55,
            centre_site: 0.97,
            speed: 1.1,
            shadow: 0.04,
        },
        SimCarrier {
            spellings: vec!["VinaPhone", "VNPT", "452-02"],
            name: "VinaPhone",
            share: 0.21,
            village_site: 0.35,
            centre_site: 0.9,
            speed: 1.0,
            shadow: 0.07,
        },
        SimCarrier {
            spellings: vec!["MobiFone", "mobifone", "452-01"],
            name: "MobiFone",
            share: 0.17,
            village_site: 0.3,
            centre_site: 0.88,
            speed: 1.0,
            shadow: 0.08,
        },
        SimCarrier {
            spellings: vec!["Vietnamobile", "452-05"],
            name: "Vietnamobile",
            share: 0.05,
            village_site: 0.08,
            centre_site: 0.45,
            speed: 0.6,
            shadow: 0.15,
        },
        SimCarrier {
            spellings: vec!["Gmobile", "452-07"],
            name: "Gmobile",
            share: 0.02,
            village_site: 0.03,
            centre_site: 0.25,
            speed: 0.4,
            shadow: 0.2,
        },
    ]
}

/// Settings of the simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Random seed; the same seed and inputs give the same output.
    pub seed: u64,
    /// First month.
    pub from: Month,
    /// Last month.
    pub to: Month,
    /// Tests per month over all units.
    pub samples_per_month: u64,
    /// Share of tests that are campaigns at the unit centre.
    pub campaign_share: f64,
    /// Share of rows corrupted on purpose.
    pub dirty_rate: f64,
    /// Distance (m) from every site beyond which a place is a dead zone.
    pub dead_zone_m: f64,
    /// Carriers.
    pub carriers: Vec<SimCarrier>,
}

impl SimOptions {
    /// Defaults for one month.
    #[must_use]
    pub fn new(seed: u64, month: Month) -> Self {
        Self {
            seed,
            from: month,
            to: month,
            samples_per_month: 30_000,
            campaign_share: 0.35,
            dirty_rate: 0.02,
            dead_zone_m: 7_000.0,
            carriers: vietnam_carriers(),
        }
    }
}

/// One generated row, as text in canonical columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRow {
    /// The 11 canonical fields, in schema order.
    pub fields: [String; 11],
}

/// Ground truth for one village and carrier.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Village id.
    pub village_id: String,
    /// Finest unit code.
    pub unit_code: String,
    /// Canonical carrier.
    pub carrier: String,
    /// Metres to the carrier's nearest site.
    pub nearest_site_m: f64,
    /// The model's median download (Mbps) at the village on 4G.
    pub true_median_mbps: f64,
    /// Beyond the dead-zone distance from every site of the carrier.
    pub dead_zone: bool,
}

/// The simulation's output.
#[derive(Debug, Clone)]
pub struct SimOutput {
    /// Sample rows, including dirty ones.
    pub rows: Vec<SimRow>,
    /// Ground truth per village (inside a unit) and carrier.
    pub truth: Vec<Truth>,
    /// The speed scale applied to reach the national calibration mean.
    pub scale: f64,
}

/// Ookla's national mean download for a year (later years: the last year given).
#[must_use]
pub fn national_mean_mbps(year: i32) -> f64 {
    let table: Vec<(i32, f64)> = OOKLA
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut parts = line.split(',');
            Some((
                parts.next()?.trim().parse().ok()?,
                parts.next()?.trim().parse().ok()?,
            ))
        })
        .collect();
    // The latest year not after `year`; before the first year, the first.
    table
        .iter()
        .rev()
        .find(|(y, _)| *y <= year)
        .or_else(|| table.first())
        .map_or(50.0, |(_, v)| *v)
}

/// Standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A weighted choice; `weights` must have a positive sum.
fn pick(rng: &mut ChaCha8Rng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let x = rng.random::<f64>() * total;
    cumulative
        .partition_point(|c| *c <= x)
        .min(cumulative.len().saturating_sub(1))
}

fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .into_iter()
        .map(|w| {
            acc += w.max(0.0);
            acc
        })
        .collect()
}

/// A point `sigma_m` metres (Gaussian) around (lon, lat).
fn jitter(rng: &mut ChaCha8Rng, lon: f64, lat: f64, sigma_m: f64) -> (f64, f64) {
    let dy = normal(rng) * sigma_m / METRES_PER_DEGREE;
    let dx = normal(rng) * sigma_m / (METRES_PER_DEGREE * lat.to_radians().cos());
    (lon + dx, lat + dy)
}

/// erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

/// Median of the mixture "0 with probability q, else log-normal(median m, σ)".
fn mixture_median(m: f64, sigma: f64, q: f64) -> f64 {
    if q >= 0.5 {
        return 0.0;
    }
    // Solve q + (1 - q) Φ(ln(x / m) / σ) = 0.5 for z = ln(x / m) / σ by bisection.
    let target = (0.5 - q) / (1.0 - q);
    let (mut lo, mut hi) = (-8.0f64, 8.0f64);
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        let phi = 0.5 * (1.0 + erf(mid / std::f64::consts::SQRT_2));
        if phi < target { lo = mid } else { hi = mid }
    }
    m * (sigma * (lo + hi) / 2.0).exp()
}

const SIGMA: f64 = 0.6;
const FAIL_EVERYWHERE: f64 = 0.02;
const FAIL_DEAD: f64 = 0.35;
const DEAD_MEDIAN: f64 = 0.8;
const DECAY_M: f64 = 2_500.0;

/// The model's 4G median (before calibration) and dead flag at a distance from the nearest site.
fn model_median(base: f64, d: f64, dead_zone_m: f64) -> (f64, bool) {
    if d > dead_zone_m {
        (DEAD_MEDIAN, true)
    } else {
        (base / (1.0 + (d / DECAY_M).powi(2)), false)
    }
}

struct UnitPlan {
    centre: (f64, f64),
    villages: Vec<usize>,
    town: bool,
    weight: f64,
}

/// Runs the simulation.
///
/// # Errors
/// No usable units.
#[allow(clippy::too_many_lines, reason = "one model, read top to bottom")]
pub fn simulate(b: &Boundaries, villages: &[Village], opts: &SimOptions) -> Result<SimOutput> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let finest = b.finest();
    let locator = Locator::new(b, 0.0);
    // Villages by unit (no snapping, as in the analysis).
    let mut village_unit: Vec<Option<u32>> = Vec::with_capacity(villages.len());
    let mut units: Vec<UnitPlan> = b
        .shapes
        .iter()
        .zip(finest)
        .map(|(shape, u)| {
            let c = shape
                .interior_point()
                .map_or((0.0, 0.0), |p| (p.x(), p.y()));
            let lower = u.name.to_lowercase();
            let town = lower.starts_with("phường")
                || lower.starts_with("thị trấn")
                || lower.starts_with("phuong");
            UnitPlan {
                centre: c,
                villages: Vec::new(),
                town,
                weight: 0.0,
            }
        })
        .collect();
    for (i, v) in villages.iter().enumerate() {
        let u = locator.locate(v.lon, v.lat).map(|p| p.unit());
        if let Some(u) = u {
            units[u as usize].villages.push(i);
        }
        village_unit.push(u);
    }
    if units.is_empty() {
        return Err(Error::Config(
            "simulate: the boundaries have no units".to_owned(),
        ));
    }
    // Volume weights: population^0.8 × log-normal mobilisation. Population:
    // sum of known village populations, else a rural default.
    for u in &mut units {
        let pop: f64 = u
            .villages
            .iter()
            .filter_map(|&v| villages[v].population)
            .sum::<f64>()
            .max(3_000.0)
            + 1_000.0 * u.villages.len() as f64;
        u.weight = pop.powf(0.8) * (1.2 * normal(&mut rng)).exp() * if u.town { 2.0 } else { 1.0 };
    }
    // Sites per carrier: at villages and unit centres, jittered 300 m.
    let mut sites: Vec<rstar::RTree<[f64; 2]>> = Vec::new();
    for c in &opts.carriers {
        let mut pts = Vec::new();
        for u in &units {
            if rng.random::<f64>() < c.centre_site {
                let (x, y) = jitter(&mut rng, u.centre.0, u.centre.1, 300.0);
                pts.push([x, y]);
            }
        }
        for v in villages {
            if rng.random::<f64>() < c.village_site {
                let (x, y) = jitter(&mut rng, v.lon, v.lat, 300.0);
                pts.push([x, y]);
            }
        }
        sites.push(rstar::RTree::bulk_load(pts));
    }
    // Terrain shadows per village and carrier.
    let nc = opts.carriers.len();
    let shadow: Vec<bool> = (0..villages.len() * nc)
        .map(|i| rng.random::<f64>() < opts.carriers[i % nc].shadow)
        .collect();
    let nearest_site = |ci: usize, lon: f64, lat: f64| -> f64 {
        sites[ci]
            .nearest_neighbor([lon, lat])
            .map_or(f64::INFINITY, |s| haversine_m(lon, lat, s[0], s[1]))
    };
    let share = cumulative(opts.carriers.iter().map(|c| c.share));
    let unit_cum = cumulative(units.iter().map(|u| u.weight));
    // Village activity: some villages see no tester at all.
    let activity: Vec<f64> = villages
        .iter()
        .map(|_| (1.5 * normal(&mut rng) - 0.5).exp())
        .collect();

    struct Draft {
        fields: [String; 11],
        download: f64,
        upload_ratio: f64,
        mobile: bool,
        dead: bool,
    }
    let mut drafts: Vec<Draft> = Vec::new();
    type Pool = (Vec<(String, usize, bool)>, Vec<f64>);
    let mut device_pools: HashMap<usize, Pool> = HashMap::new();
    let mut test_no: u64 = 0;
    for month in opts.from.through(opts.to) {
        let (m_first, days) = month_bounds(month);
        for _ in 0..opts.samples_per_month {
            let ui = pick(&mut rng, &unit_cum);
            let unit = &units[ui];
            // Device pool of the unit, created on first use: about 6 tests per device.
            let pool = device_pools.entry(ui).or_insert_with(|| {
                let expected = opts.samples_per_month as f64 * unit.weight
                    / unit_cum.last().copied().unwrap_or(1.0);
                let n = ((expected / 6.0).ceil() as usize).clamp(1, 5_000);
                let devices = (0..n)
                    .map(|k| {
                        let carrier = pick(&mut rng, &share);
                        let android = rng.random::<f64>() < 0.75;
                        (format!("dev-{}-{k}", finest[ui].code), carrier, android)
                    })
                    .collect::<Vec<_>>();
                // Android devices run auto-tests: three times the rate of iOS.
                let cum = cumulative(devices.iter().map(|d| if d.2 { 3.0 } else { 1.0 }));
                (devices, cum)
            });
            let (device, ci, android) = pool.0[pick(&mut rng, &pool.1)].clone();
            // Place.
            let (lon, lat) =
                if rng.random::<f64>() < opts.campaign_share || unit.villages.is_empty() {
                    let sigma = if unit.villages.is_empty() {
                        1_500.0
                    } else {
                        300.0
                    };
                    jitter(&mut rng, unit.centre.0, unit.centre.1, sigma)
                } else {
                    let vc = cumulative(unit.villages.iter().map(|&v| activity[v]));
                    let v = &villages[unit.villages[pick(&mut rng, &vc)]];
                    jitter(&mut rng, v.lon, v.lat, 400.0)
                };
            // Network.
            let r: f64 = rng.random();
            let five_g = if unit.town { 0.25 } else { 0.03 };
            let (network, tech) = if r < 0.08 {
                ("WIFI", 2.0)
            } else if r < 0.08 + five_g {
                (["5G", "NR"][usize::from(rng.random::<bool>())], 3.0)
            } else if r < 0.14 + five_g {
                (["3G", "WCDMA", "HSPA"][rng.random_range(0..3)], 0.15)
            } else if r < 0.15 + five_g {
                ("2G", 0.02)
            } else {
                (["4G", "LTE", "lte"][rng.random_range(0..3)], 1.0)
            };
            let carrier = &opts.carriers[ci];
            let d = nearest_site(ci, lon, lat);
            // A shadow covers a hamlet's area: the test's nearest village of its unit within 2 km.
            let area = unit
                .villages
                .iter()
                .map(|&vi| {
                    (
                        haversine_m(lon, lat, villages[vi].lon, villages[vi].lat),
                        vi,
                    )
                })
                .filter(|(d, _)| *d <= 2_000.0)
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let shadowed = area.is_some_and(|(_, vi)| shadow[vi * nc + ci]);
            let (median, dead) = model_median(
                carrier.speed,
                if shadowed { f64::INFINITY } else { d },
                opts.dead_zone_m,
            );
            let mobile = network != "WIFI";
            let fail = rng.random::<f64>()
                < if dead && mobile {
                    FAIL_DEAD
                } else {
                    FAIL_EVERYWHERE
                };
            let download = if fail {
                0.0
            } else if mobile {
                (if dead { median } else { median * tech }) * (SIGMA * normal(&mut rng)).exp()
            } else {
                tech * (SIGMA * normal(&mut rng)).exp()
            };
            // Time: 06:00–22:00 local, any day of the month; 30 % written in UTC.
            let day = rng.random_range(0..days);
            let secs = 6 * 3600 + rng.random_range(0..16 * 3600);
            let t = m_first
                + chrono::Duration::days(i64::from(day))
                + chrono::Duration::seconds(i64::from(secs));
            let ts = if rng.random::<f64>() < 0.3 {
                (t - chrono::Duration::hours(7))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            } else {
                t.format("%Y-%m-%dT%H:%M:%S+07:00").to_string()
            };
            test_no += 1;
            let latency = 18.0 + d / 400.0 + 10.0 * (0.5 * normal(&mut rng)).exp();
            let spelling = carrier.spellings[rng.random_range(0..carrier.spellings.len())];
            drafts.push(Draft {
                fields: [
                    format!("T{:08x}{:04x}", opts.seed as u32, test_no),
                    ts,
                    format!("{lat:.6}"),
                    format!("{lon:.6}"),
                    spelling.to_owned(),
                    network.to_owned(),
                    String::new(),
                    String::new(),
                    if fail {
                        String::new()
                    } else {
                        fmt_decimal(Some(latency), 1)
                    },
                    device,
                    if android { "android" } else { "ios" }.to_owned(),
                ],
                download,
                upload_ratio: 0.2 + 0.3 * rng.random::<f64>(),
                mobile,
                dead,
            });
        }
    }
    // Calibrate: the mean mobile download equals the national figure. Dead-zone
    // tests are a physical floor and are not scaled; live tests are scaled so
    // that (scale × Σ live + Σ dead) / n = target.
    let target = national_mean_mbps(opts.to.year());
    let (mut live_sum, mut dead_sum, mut n) = (0.0, 0.0, 0usize);
    for d in drafts.iter().filter(|d| d.mobile) {
        n += 1;
        if d.dead {
            dead_sum += d.download
        } else {
            live_sum += d.download
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "sample counts")]
    let scale = if live_sum > 0.0 {
        ((target * n as f64 - dead_sum) / live_sum).max(0.0)
    } else {
        1.0
    };
    let mut rows: Vec<SimRow> = drafts
        .into_iter()
        .map(|mut d| {
            let dl = match (d.mobile, d.dead) {
                (true, false) => d.download * scale,
                (true, true) => d.download,
                (false, _) => d.download * 40.0,
            };
            // No radio carries more than its peak (EDGE, DC-HSPA+): stay 10 % under it.
            let dl =
                crate::ingest_run::network_peak_mbps(crate::schema::Network::parse(&d.fields[5]))
                    .map_or(dl, |p| dl.min(0.9 * p));
            d.fields[6] = fmt_decimal(Some(dl.min(9_999.0)), 2);
            d.fields[7] = fmt_decimal(Some(dl * d.upload_ratio), 2);
            SimRow { fields: d.fields }
        })
        .collect();
    dirty(&mut rng, &mut rows, opts.dirty_rate);
    // Ground truth (4G, per village inside a unit, per carrier).
    let mut truth = Vec::new();
    for (vi, v) in villages.iter().enumerate() {
        let Some(u) = village_unit[vi] else { continue };
        for (ci, c) in opts.carriers.iter().enumerate() {
            let d = nearest_site(ci, v.lon, v.lat);
            let shadowed = shadow[vi * nc + ci];
            let (m, dead) = model_median(
                c.speed,
                if shadowed { f64::INFINITY } else { d },
                opts.dead_zone_m,
            );
            let true_median = if dead {
                mixture_median(m, SIGMA, FAIL_DEAD)
            } else {
                mixture_median(m * scale, SIGMA, FAIL_EVERYWHERE)
            };
            truth.push(Truth {
                village_id: v.id.clone(),
                unit_code: finest[u as usize].code.clone(),
                carrier: c.name.to_owned(),
                nearest_site_m: d,
                true_median_mbps: true_median,
                dead_zone: dead,
            });
        }
    }
    Ok(SimOutput { rows, truth, scale })
}

/// Local midnight of the month's first day, and its number of days.
fn month_bounds(m: Month) -> (chrono::NaiveDateTime, u32) {
    let (y, mo) = (m.year(), m.month());
    let first = chrono::NaiveDate::from_ymd_opt(y, mo, 1).unwrap_or_default();
    let next = if mo == 12 {
        chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(y, mo + 1, 1)
    }
    .unwrap_or_default();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "28..31"
    )]
    let days = (next - first).num_days() as u32;
    (first.and_hms_opt(0, 0, 0).unwrap_or_default(), days)
}

/// Corrupts a share of rows the way real exports are dirty.
fn dirty(rng: &mut ChaCha8Rng, rows: &mut Vec<SimRow>, rate: f64) {
    if rate <= 0.0 || rows.is_empty() {
        return;
    }
    let n = rows.len();
    let mut extra = Vec::new();
    for (i, row) in rows.iter_mut().enumerate() {
        if rng.random::<f64>() >= rate {
            continue;
        }
        let f = &mut row.fields;
        match rng.random_range(0..6) {
            0 => {
                f[2] = "0".to_owned();
                f[3] = "0".to_owned();
            }
            1 => f.swap(2, 3),
            2 => f[6] = format!("-{}", f[6]),
            3 => extra.push((i, SimRow { fields: f.clone() })),
            4 => f[9] = String::new(),
            _ => f[1] = f[1].replace('T', " at "),
        }
    }
    // Duplicates are re-sent copies that arrive later in the export: each goes
    // a few thousand rows after its original (one pass, no repeated inserts).
    if extra.is_empty() {
        return;
    }
    let mut later: Vec<(usize, SimRow)> = extra
        .into_iter()
        .enumerate()
        .map(|(k, (i, row))| ((i + 1 + (k * 7919) % 5_000).min(n), row))
        .collect();
    later.sort_by_key(|(at, _)| *at);
    let mut merged = Vec::with_capacity(n + later.len());
    let mut pending = later.into_iter().peekable();
    for (i, row) in std::mem::take(rows).into_iter().enumerate() {
        while let Some((_, dup)) = pending.next_if(|(at, _)| *at == i) {
            merged.push(dup);
        }
        merged.push(row);
    }
    merged.extend(pending.map(|(_, dup)| dup));
    *rows = merged;
}

/// Writes sample rows to CSV, or Parquet when the path ends in `.parquet`.
///
/// # Errors
/// The file cannot be written.
pub fn write_samples(path: &Path, rows: &[SimRow]) -> Result<()> {
    // Every field but the optional location accuracy, which the simulator does not model.
    let header: [&str; 11] = std::array::from_fn(|i| crate::schema::Field::ALL[i].name());
    if crate::ingest::Format::of(path).ok() == Some(crate::ingest::Format::Parquet) {
        return write_parquet(path, &header, rows);
    }
    write_csv(path, &header, rows.iter().map(|r| r.fields.clone()))
}

fn write_parquet(path: &Path, header: &[&str; 11], rows: &[SimRow]) -> Result<()> {
    use polars::prelude::{Column, DataFrame, ParquetWriter};
    let perr = |e: polars::prelude::PolarsError| Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    // Numbers as Float64 columns, as an exporter writes them (a column
    // with any text that is not a number stays text); the rest as text.
    let columns: Vec<Column> = header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values: Vec<Option<&str>> = rows
                .iter()
                .map(|r| Some(r.fields[i].as_str()).filter(|s| !s.is_empty()))
                .collect();
            if crate::schema::Field::ALL[i].numeric() {
                let numbers: Option<Vec<Option<f64>>> = values
                    .iter()
                    .map(|v| v.map_or(Some(None), |t| t.parse::<f64>().ok().map(Some)))
                    .collect();
                if let Some(numbers) = numbers {
                    return Column::new((*name).into(), numbers);
                }
            }
            Column::new((*name).into(), values)
        })
        .collect();
    let mut df = DataFrame::new(rows.len(), columns).map_err(perr)?;
    crate::output::write_atomic(path, |w| {
        ParquetWriter::new(w)
            .finish(&mut df)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
}

/// Writes the ground truth CSV.
///
/// # Errors
/// The file cannot be written.
pub fn write_truth(path: &Path, truth: &[Truth]) -> Result<()> {
    write_csv(
        path,
        &[
            "village_id",
            "unit_code",
            "carrier",
            "nearest_site_m",
            "true_median_mbps",
            "dead_zone",
        ],
        truth.iter().map(|t| {
            [
                t.village_id.clone(),
                t.unit_code.clone(),
                t.carrier.clone(),
                fmt_decimal(Some(t.nearest_site_m), 0),
                fmt_decimal(Some(t.true_median_mbps), 3),
                t.dead_zone.to_string(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_years() {
        assert_eq!(national_mean_mbps(2019), 25.0);
        assert_eq!(national_mean_mbps(2024), 53.7);
        assert_eq!(national_mean_mbps(2026), 53.7);
        assert_eq!(national_mean_mbps(2010), 25.0);
    }

    #[test]
    fn mixture_median_matches_closed_forms() {
        assert!((mixture_median(10.0, 0.6, 0.0) - 10.0).abs() < 1e-6);
        // q = 0.35: Φ(z) = 0.15/0.65 = 0.230769 → z = -0.7363 (tables).
        let want = 0.8 * (0.6f64 * -0.7363).exp();
        assert!((mixture_median(0.8, 0.6, 0.35) - want).abs() < 1e-3);
        assert_eq!(mixture_median(5.0, 0.6, 0.6), 0.0);
    }
}
