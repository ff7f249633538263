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

use std::path::Path;

use geo::InteriorPoint;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

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
    /// Tests drawn over the window (rows before the dirt's duplicates).
    #[must_use]
    pub fn tests(&self) -> u64 {
        self.from.through(self.to).count() as u64 * self.samples_per_month
    }

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

/// One carrier's sites in a grid of square cells, for the site nearest a
/// point by planar distance in degrees, as an R-tree of `[lon, lat]`
/// points finds it (the query runs twice per test: the R-tree's was a
/// fifth of the generator's time).
struct SiteGrid {
    x0: f64,
    y0: f64,
    nx: usize,
    ny: usize,
    /// Cell `i`'s sites are `points[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    points: Vec<[f64; 2]>,
}

impl SiteGrid {
    /// Cell side in degrees (about 11 km: a few sites a cell nationally).
    const CELL: f64 = 0.1;

    fn new(mut points: Vec<[f64; 2]>) -> Self {
        points.retain(|p| p[0].is_finite() && p[1].is_finite());
        let (x0, y0, x1, y1) = points.iter().fold(
            points
                .first()
                .map_or((0.0, 0.0, 0.0, 0.0), |p| (p[0], p[1], p[0], p[1])),
            |(x0, y0, x1, y1), p| (x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1])),
        );
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a country's extent"
        )]
        let (nx, ny) = (
            ((x1 - x0) / Self::CELL) as usize + 1,
            ((y1 - y0) / Self::CELL) as usize + 1,
        );
        let mut grid = Self {
            x0,
            y0,
            nx,
            ny,
            starts: vec![0; nx * ny + 1],
            points: Vec::new(),
        };
        let keyed: Vec<(usize, [f64; 2])> = points
            .into_iter()
            .map(|p| {
                let (cx, cy) = grid.cell_of(p);
                (cy * nx + cx, p)
            })
            .collect();
        for (k, _) in &keyed {
            grid.starts[k + 1] += 1;
        }
        for i in 0..nx * ny {
            grid.starts[i + 1] += grid.starts[i];
        }
        let mut next = grid.starts.clone();
        grid.points = vec![[0.0; 2]; keyed.len()];
        for (k, p) in keyed {
            grid.points[next[k]] = p;
            next[k] += 1;
        }
        grid
    }

    /// The cell holding `p`, or the nearest cell for a point outside the grid.
    fn cell_of(&self, p: [f64; 2]) -> (usize, usize) {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped"
        )]
        let at =
            |v: f64, v0: f64, n: usize| ((v - v0) / Self::CELL).clamp(0.0, (n - 1) as f64) as usize;
        (at(p[0], self.x0, self.nx), at(p[1], self.y0, self.ny))
    }

    /// The site nearest `p` (planar, in degrees), if there is any.
    fn nearest(&self, p: [f64; 2]) -> Option<[f64; 2]> {
        if self.points.is_empty() || !(p[0].is_finite() && p[1].is_finite()) {
            return None;
        }
        let (cx, cy) = self.cell_of(p);
        let mut best: Option<(f64, [f64; 2])> = None;
        let scan = |x: usize, y: usize, best: &mut Option<(f64, [f64; 2])>| {
            let i = y * self.nx + x;
            for q in &self.points[self.starts[i]..self.starts[i + 1]] {
                let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
                let d = dx * dx + dy * dy;
                if best.is_none_or(|(b, _)| d < b) {
                    *best = Some((d, *q));
                }
            }
        };
        // Ring r holds the cells r steps from p's (clamped) cell. Every cell
        // beyond ring r lies at least r cells from p (clamping p into the
        // grid brings it no farther from any cell), so the search stops
        // once the best distance is within that.
        for r in 0..=self.nx.max(self.ny) {
            let (xa, xb) = (cx.saturating_sub(r), (cx + r).min(self.nx - 1));
            let (ya, yb) = (cy.saturating_sub(r), (cy + r).min(self.ny - 1));
            for y in ya..=yb {
                if y + r == cy || y == cy + r {
                    (xa..=xb).for_each(|x| scan(x, y, &mut best));
                } else {
                    // Inside rows, the ring's two ends where they exist.
                    if let Some(x) = cx.checked_sub(r) {
                        scan(x, y, &mut best);
                    }
                    if r > 0 && cx + r < self.nx {
                        scan(cx + r, y, &mut best);
                    }
                }
            }
            let reach = r as f64 * Self::CELL;
            if best.is_some_and(|(b, _)| b <= reach * reach) {
                break;
            }
        }
        best.map(|(_, q)| q)
    }
}

struct UnitPlan {
    centre: (f64, f64),
    villages: Vec<usize>,
    /// Cumulative activity of `villages`, to pick one.
    village_cum: Vec<f64>,
    town: bool,
    weight: f64,
}

/// A unit's devices (carrier, Android; the `k`th is named `dev-{unit code}-{k}`)
/// and their cumulative test rates.
type Pool = (Vec<(usize, bool)>, Vec<f64>);

/// Rows made, dirtied and handed on at a time (a Parquet row group each):
/// the generator holds two groups of a batch per core, whatever the
/// sample count.
const BATCH_ROWS: usize = 1 << 18;

/// The model's fixed parts, drawn first from the seed.
struct Model<'a> {
    opts: &'a SimOptions,
    finest: &'a [crate::boundaries::Unit],
    villages: &'a [Village],
    village_unit: Vec<Option<u32>>,
    units: Vec<UnitPlan>,
    sites: Vec<SiteGrid>,
    /// Per village and carrier: in a terrain shadow.
    shadow: Vec<bool>,
    share: Vec<f64>,
    unit_cum: Vec<f64>,
}

/// Per unit, its device pool and the index of the test that made it.
type Pools = Vec<Option<(u64, Pool)>>;

/// Where a draw finds its unit's device pool.
enum PoolsAt<'p> {
    /// First pass: a unit's pool is made at its first test.
    Make(&'p mut Pools),
    /// Second pass, from anywhere in the stream: the first pass's pools;
    /// the test that made one draws its making again, to stay in step.
    Replay(&'p Pools),
}

/// Everything a test's row is made from, drawn in the model's order.
struct Draw {
    unit: usize,
    device: usize,
    android: bool,
    lon: f64,
    lat: f64,
    network: &'static str,
    fail: bool,
    /// Before calibration.
    download: f64,
    mobile: bool,
    dead: bool,
    time: chrono::NaiveDateTime,
    utc: bool,
    test_no: u64,
    latency: f64,
    spelling: &'static str,
    upload_ratio: f64,
}

impl<'a> Model<'a> {
    fn new(
        b: &'a Boundaries,
        villages: &'a [Village],
        opts: &'a SimOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
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
                    village_cum: Vec::new(),
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
            u.weight = pop.powf(0.8) * (1.2 * normal(rng)).exp() * if u.town { 2.0 } else { 1.0 };
        }
        // Sites per carrier: at villages and unit centres, jittered 300 m.
        let mut sites: Vec<SiteGrid> = Vec::new();
        for c in &opts.carriers {
            let mut pts = Vec::new();
            for u in &units {
                if rng.random::<f64>() < c.centre_site {
                    let (x, y) = jitter(rng, u.centre.0, u.centre.1, 300.0);
                    pts.push([x, y]);
                }
            }
            for v in villages {
                if rng.random::<f64>() < c.village_site {
                    let (x, y) = jitter(rng, v.lon, v.lat, 300.0);
                    pts.push([x, y]);
                }
            }
            sites.push(SiteGrid::new(pts));
        }
        // Terrain shadows per village and carrier.
        let nc = opts.carriers.len();
        let shadow: Vec<bool> = (0..villages.len() * nc)
            .map(|i| rng.random::<f64>() < opts.carriers[i % nc].shadow)
            .collect();
        let share = cumulative(opts.carriers.iter().map(|c| c.share));
        let unit_cum = cumulative(units.iter().map(|u| u.weight));
        // Village activity: some villages see no tester at all.
        let activity: Vec<f64> = villages
            .iter()
            .map(|_| (1.5 * normal(rng) - 0.5).exp())
            .collect();
        for u in &mut units {
            u.village_cum = cumulative(u.villages.iter().map(|&v| activity[v]));
        }
        Ok(Self {
            opts,
            finest,
            villages,
            village_unit,
            units,
            sites,
            shadow,
            share,
            unit_cum,
        })
    }

    fn nearest_site(&self, ci: usize, lon: f64, lat: f64) -> f64 {
        self.sites[ci]
            .nearest([lon, lat])
            .map_or(f64::INFINITY, |s| haversine_m(lon, lat, s[0], s[1]))
    }

    /// A unit's device pool: about 6 tests per device.
    fn make_pool(&self, rng: &mut ChaCha8Rng, ui: usize) -> Pool {
        let expected = self.opts.samples_per_month as f64 * self.units[ui].weight
            / self.unit_cum.last().copied().unwrap_or(1.0);
        let n = ((expected / 6.0).ceil() as usize).clamp(1, 5_000);
        let devices = (0..n)
            .map(|_| {
                let carrier = pick(rng, &self.share);
                (carrier, rng.random::<f64>() < 0.75)
            })
            .collect::<Vec<_>>();
        // Android devices run auto-tests: three times the rate of iOS.
        let cum = cumulative(devices.iter().map(|d| if d.1 { 3.0 } else { 1.0 }));
        (devices, cum)
    }

    /// Test `index` (0-based over the window), drawn from `rng` where the
    /// test before left it, in a month that starts at local midnight
    /// `m_first` and has `days` days.
    fn draw(
        &self,
        rng: &mut ChaCha8Rng,
        pools: &mut PoolsAt<'_>,
        index: u64,
        (m_first, days): (chrono::NaiveDateTime, u32),
    ) -> Draw {
        let opts = self.opts;
        let ui = pick(rng, &self.unit_cum);
        let unit = &self.units[ui];
        let made_here;
        let pool = match pools {
            PoolsAt::Make(pools) => {
                &pools[ui]
                    .get_or_insert_with(|| (index, self.make_pool(rng, ui)))
                    .1
            }
            PoolsAt::Replay(pools) => match &pools[ui] {
                Some((made_at, pool)) => {
                    if *made_at == index {
                        self.make_pool(rng, ui);
                    }
                    pool
                }
                // Not met in the first pass, which drew the same units.
                None => {
                    made_here = self.make_pool(rng, ui);
                    &made_here
                }
            },
        };
        let device = pick(rng, &pool.1);
        let (ci, android) = pool.0[device];
        // Place.
        let (lon, lat) = if rng.random::<f64>() < opts.campaign_share || unit.villages.is_empty() {
            let sigma = if unit.villages.is_empty() {
                1_500.0
            } else {
                300.0
            };
            jitter(rng, unit.centre.0, unit.centre.1, sigma)
        } else {
            let v = &self.villages[unit.villages[pick(rng, &unit.village_cum)]];
            jitter(rng, v.lon, v.lat, 400.0)
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
        let d = self.nearest_site(ci, lon, lat);
        // A shadow covers a hamlet's area: the test's nearest village of its unit within 2 km.
        let area = unit
            .villages
            .iter()
            .map(|&vi| {
                let v = &self.villages[vi];
                (haversine_m(lon, lat, v.lon, v.lat), vi)
            })
            .filter(|(d, _)| *d <= 2_000.0)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let shadowed = area.is_some_and(|(_, vi)| self.shadow[vi * opts.carriers.len() + ci]);
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
            (if dead { median } else { median * tech }) * (SIGMA * normal(rng)).exp()
        } else {
            tech * (SIGMA * normal(rng)).exp()
        };
        // Time: 06:00–22:00 local, any day of the month; 30 % written in UTC.
        let day = rng.random_range(0..days);
        let secs = 6 * 3600 + rng.random_range(0..16 * 3600);
        let time = m_first
            + chrono::Duration::days(i64::from(day))
            + chrono::Duration::seconds(i64::from(secs));
        let utc = rng.random::<f64>() < 0.3;
        let latency = 18.0 + d / 400.0 + 10.0 * (0.5 * normal(rng)).exp();
        let spelling = carrier.spellings[rng.random_range(0..carrier.spellings.len())];
        Draw {
            unit: ui,
            device,
            android,
            lon,
            lat,
            network,
            fail,
            download,
            mobile,
            dead,
            time,
            utc,
            test_no: index + 1,
            latency,
            spelling,
            upload_ratio: 0.2 + 0.3 * rng.random::<f64>(),
        }
    }

    /// A drawn test's row, its speeds calibrated by `scale`.
    fn row(&self, d: &Draw, scale: f64) -> SimRow {
        let ts = if d.utc {
            (d.time - chrono::Duration::hours(7))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        } else {
            d.time.format("%Y-%m-%dT%H:%M:%S+07:00").to_string()
        };
        let dl = match (d.mobile, d.dead) {
            (true, false) => d.download * scale,
            (true, true) => d.download,
            (false, _) => d.download * 40.0,
        };
        // No radio carries more than its peak (EDGE, DC-HSPA+): stay 10 % under it.
        let dl = crate::ingest_run::network_peak_mbps(crate::schema::Network::parse(d.network))
            .map_or(dl, |p| dl.min(0.9 * p));
        SimRow {
            fields: [
                format!("T{:08x}{:04x}", self.opts.seed as u32, d.test_no),
                ts,
                format!("{:.6}", d.lat),
                format!("{:.6}", d.lon),
                d.spelling.to_owned(),
                d.network.to_owned(),
                fmt_decimal(Some(dl.min(9_999.0)), 2),
                fmt_decimal(Some(dl * d.upload_ratio), 2),
                if d.fail {
                    String::new()
                } else {
                    fmt_decimal(Some(d.latency), 1)
                },
                format!("dev-{}-{}", self.finest[d.unit].code, d.device),
                if d.android { "android" } else { "ios" }.to_owned(),
            ],
        }
    }

    /// Ground truth (4G, per village inside a unit, per carrier).
    fn truth(&self, scale: f64) -> Vec<Truth> {
        let mut truth = Vec::new();
        let nc = self.opts.carriers.len();
        for (vi, v) in self.villages.iter().enumerate() {
            let Some(u) = self.village_unit[vi] else {
                continue;
            };
            for (ci, c) in self.opts.carriers.iter().enumerate() {
                let d = self.nearest_site(ci, v.lon, v.lat);
                let shadowed = self.shadow[vi * nc + ci];
                let (m, dead) = model_median(
                    c.speed,
                    if shadowed { f64::INFINITY } else { d },
                    self.opts.dead_zone_m,
                );
                let true_median = if dead {
                    mixture_median(m, SIGMA, FAIL_DEAD)
                } else {
                    mixture_median(m * scale, SIGMA, FAIL_EVERYWHERE)
                };
                truth.push(Truth {
                    village_id: v.id.clone(),
                    unit_code: self.finest[u as usize].code.clone(),
                    carrier: c.name.to_owned(),
                    nearest_site_m: d,
                    true_median_mbps: true_median,
                    dead_zone: dead,
                });
            }
        }
        truth
    }
}

/// What a simulation wrote.
#[derive(Debug, Clone)]
pub struct SimSummary {
    /// Sample rows, dirty ones included.
    pub rows: u64,
    /// Ground truth per village (inside a unit) and carrier.
    pub truth: Vec<Truth>,
    /// The speed scale applied to reach the national calibration mean.
    pub scale: f64,
}

/// Runs the simulation, handing its rows to `emit` in order, a batch at a
/// time: memory holds two batches per core (and the model), whatever the
/// sample count.
///
/// The speeds are calibrated on the whole window's mean, so the tests are
/// drawn twice from the same stream: once in order, to sum their speeds
/// and note where in the stream each batch starts; then each batch from
/// its start, on every core, to write them. `progress` is told the draws
/// so far, of twice [`SimOptions::tests`], now and then.
///
/// # Errors
/// No usable units, or an error of `emit`.
pub fn simulate_batches(
    b: &Boundaries,
    villages: &[Village],
    opts: &SimOptions,
    emit: &mut dyn FnMut(&[SimRow]) -> Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<SimSummary> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let model = Model::new(b, villages, opts, &mut rng)?;
    let stream = rng.clone();
    let months: Vec<(chrono::NaiveDateTime, u32)> =
        opts.from.through(opts.to).map(month_bounds).collect();
    let per_month = opts.samples_per_month.max(1);
    let month_of = |g: u64| months[usize::try_from(g / per_month).unwrap_or(usize::MAX)];
    let tests = opts.tests();
    let batch = BATCH_ROWS as u64;
    // Calibrate: the mean mobile download equals the national figure. Dead-zone
    // tests are a physical floor and are not scaled; live tests are scaled so
    // that (scale × Σ live + Σ dead) / n = target.
    let (mut live_sum, mut dead_sum, mut n) = (0.0, 0.0, 0usize);
    let mut pools: Pools = vec![None; model.units.len()];
    let mut starts: Vec<u128> = Vec::new();
    {
        let mut making = PoolsAt::Make(&mut pools);
        for g in 0..tests {
            if g % batch == 0 {
                starts.push(rng.get_word_pos());
                progress(g);
            }
            let d = model.draw(&mut rng, &mut making, g, month_of(g));
            if d.mobile {
                n += 1;
                if d.dead {
                    dead_sum += d.download;
                } else {
                    live_sum += d.download;
                }
            }
        }
    }
    let target = national_mean_mbps(opts.to.year());
    #[allow(clippy::cast_precision_loss, reason = "sample counts")]
    let scale = if live_sum > 0.0 {
        ((target * n as f64 - dead_sum) / live_sum).max(0.0)
    } else {
        1.0
    };
    // The dirt's draws follow the tests' in the stream.
    let drawn = usize::try_from(tests).map_err(|_| {
        Error::Config("simulate: more samples than this machine can count".to_owned())
    })?;
    let mut dirt = Dirt::new(rng, opts.dirty_rate, drawn);
    let mut rows = 0u64;
    let mut out = Vec::new();
    let at_once = rayon::current_num_threads().max(1);
    // A group of batches, one a core, drawn and made into rows.
    let make_group = |first: usize| -> Vec<Vec<SimRow>> {
        starts[first..(first + at_once).min(starts.len())]
            .par_iter()
            .enumerate()
            .map(|(k, &start)| {
                let mut rng = stream.clone();
                rng.set_word_pos(start);
                let mut replay = PoolsAt::Replay(&pools);
                let g0 = (first + k) as u64 * batch;
                (g0..(g0 + batch).min(tests))
                    .map(|g| model.row(&model.draw(&mut rng, &mut replay, g, month_of(g)), scale))
                    .collect()
            })
            .collect()
    };
    // Each group is dirtied and written on this thread while the next is
    // made on the cores (writing builds the frame and compresses it).
    let mut made = make_group(0);
    let mut first = 0;
    while !made.is_empty() {
        let next_first = first + at_once;
        let (next, written) = std::thread::scope(|scope| {
            let next = scope.spawn(|| {
                if next_first < starts.len() {
                    make_group(next_first)
                } else {
                    Vec::new()
                }
            });
            let written = made
                .drain(..)
                .enumerate()
                .try_for_each(|(k, rows_of_batch)| {
                    // The dirt is drawn in row order.
                    for row in rows_of_batch {
                        dirt.pass(row, &mut out);
                    }
                    rows += out.len() as u64;
                    emit(&out)?;
                    out.clear();
                    progress(tests + ((first + k + 1) as u64 * batch).min(tests));
                    Ok::<(), Error>(())
                });
            (next.join(), written)
        });
        written?;
        made = next.map_err(|_| Error::Config("simulate: a batch failed".to_owned()))?;
        first = next_first;
    }
    dirt.finish(&mut out);
    if !out.is_empty() {
        rows += out.len() as u64;
        emit(&out)?;
    }
    Ok(SimSummary {
        rows,
        truth: model.truth(scale),
        scale,
    })
}

/// Runs the simulation into a sample file (CSV, or Parquet when the path
/// ends in `.parquet`), written as the rows are made; `progress` as in
/// [`simulate_batches`].
///
/// # Errors
/// No usable units, or the file cannot be written.
pub fn write_simulated(
    path: &Path,
    b: &Boundaries,
    villages: &[Village],
    opts: &SimOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<SimSummary> {
    let numeric = std::array::from_fn(|i| crate::schema::Field::ALL[i].numeric());
    write_rows(path, numeric, |emit| {
        simulate_batches(b, villages, opts, emit, progress)
    })
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

/// Corrupts a share of rows the way real exports are dirty, row by row as
/// they are made: `rows` rows in all, the draws in row order.
struct Dirt {
    rng: ChaCha8Rng,
    rate: f64,
    rows: usize,
    /// The next row's index.
    next: usize,
    /// Duplicates made so far.
    copies: usize,
    /// Duplicates waiting for the row they go before (`rows`: the end).
    later: std::collections::BTreeMap<usize, Vec<SimRow>>,
}

impl Dirt {
    fn new(rng: ChaCha8Rng, rate: f64, rows: usize) -> Self {
        Self {
            rng,
            rate,
            rows,
            next: 0,
            copies: 0,
            later: std::collections::BTreeMap::new(),
        }
    }

    /// Dirties the next row and appends it to `out`, after the duplicates
    /// of earlier rows that arrive just before it.
    fn pass(&mut self, mut row: SimRow, out: &mut Vec<SimRow>) {
        let i = self.next;
        self.next += 1;
        if let Some(copies) = self.later.remove(&i) {
            out.extend(copies);
        }
        if self.rate > 0.0 && self.rng.random::<f64>() < self.rate {
            let f = &mut row.fields;
            match self.rng.random_range(0..6) {
                0 => {
                    f[2] = "0".to_owned();
                    f[3] = "0".to_owned();
                }
                1 => f.swap(2, 3),
                2 => f[6] = format!("-{}", f[6]),
                // Duplicates are re-sent copies that arrive later in the
                // export: each a few thousand rows after its original.
                3 => {
                    let at = (i + 1 + (self.copies * 7919) % 5_000).min(self.rows);
                    self.copies += 1;
                    self.later.entry(at).or_default().push(row.clone());
                }
                4 => f[9] = String::new(),
                _ => f[1] = f[1].replace('T', " at "),
            }
        }
        out.push(row);
    }

    /// The duplicates that arrive after the last row.
    fn finish(self, out: &mut Vec<SimRow>) {
        out.extend(self.later.into_values().flatten());
    }
}

/// Writes sample rows to CSV, or Parquet when the path ends in `.parquet`.
///
/// # Errors
/// The file cannot be written.
pub fn write_samples(path: &Path, rows: &[SimRow]) -> Result<()> {
    // Numbers as Float64 columns, as an exporter writes them (a column
    // with any text that is not a number stays text); the rest as text.
    let numeric = std::array::from_fn(|i| {
        crate::schema::Field::ALL[i].numeric()
            && rows
                .iter()
                .all(|r| r.fields[i].is_empty() || r.fields[i].parse::<f64>().is_ok())
    });
    write_rows(path, numeric, |emit| {
        rows.chunks(BATCH_ROWS).try_for_each(emit)
    })
}

/// Writes the rows `fill` hands over, a batch at a time, atomically: CSV,
/// or Parquet (a row group per batch) when the path ends in `.parquet`,
/// with the `numeric` columns as Float64.
fn write_rows<T>(
    path: &Path,
    numeric: [bool; 11],
    fill: impl FnOnce(&mut dyn FnMut(&[SimRow]) -> Result<()>) -> Result<T>,
) -> Result<T> {
    use polars::prelude::ParquetWriter;
    // Every field but the optional location accuracy, which the simulator does not model.
    let header: [&str; 11] = std::array::from_fn(|i| crate::schema::Field::ALL[i].name());
    let perr = |e: polars::prelude::PolarsError| Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut file = crate::output::AtomicFile::create(path)?;
    let done = if crate::ingest::Format::of(path).ok() == Some(crate::ingest::Format::Parquet) {
        let schema = frame(path, &header, &numeric, &[], 0)?.schema().clone();
        let mut parquet = ParquetWriter::new(file.writer())
            .batched(&schema)
            .map_err(perr)?;
        let mut written = 0u64;
        let done = fill(&mut |batch| {
            let df = frame(path, &header, &numeric, batch, written)?;
            written += batch.len() as u64;
            parquet.write_batch(&df).map_err(perr)
        })?;
        parquet.finish().map_err(perr)?;
        done
    } else {
        let mut csv = csv::Writer::from_writer(file.writer());
        let ioerr = |e: csv::Error| Error::io(path, e.into());
        csv.write_record(header).map_err(ioerr)?;
        let done = fill(&mut |batch| {
            batch
                .iter()
                .try_for_each(|row| csv.write_record(&row.fields))
                .map_err(ioerr)
        })?;
        csv.flush().map_err(|e| Error::io(path, e))?;
        done
    };
    file.commit()?;
    Ok(done)
}

/// A batch of rows as a frame; `first` is its first row's index in the file.
fn frame(
    path: &Path,
    header: &[&str; 11],
    numeric: &[bool; 11],
    rows: &[SimRow],
    first: u64,
) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let columns = header
        .iter()
        .zip(numeric)
        .enumerate()
        .map(|(i, (name, numeric))| {
            let text = rows
                .iter()
                .map(|r| Some(r.fields[i].as_str()).filter(|s| !s.is_empty()));
            if !numeric {
                return Ok(Column::new((*name).into(), text.collect::<Vec<_>>()));
            }
            let numbers = text
                .enumerate()
                .map(|(k, v)| {
                    v.map(|t| {
                        t.parse::<f64>().map_err(|_| {
                            Error::Config(format!(
                                "{}: row {}: {name} {t:?} is not a number in a number column",
                                path.display(),
                                first + k as u64 + 1
                            ))
                        })
                    })
                    .transpose()
                })
                .collect::<Result<Vec<Option<f64>>>>()?;
            Ok(Column::new((*name).into(), numbers))
        })
        .collect::<Result<Vec<Column>>>()?;
    DataFrame::new(rows.len(), columns).map_err(|e| Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
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
    fn site_grid_finds_what_the_r_tree_finds() {
        // Oracle: rstar's nearest neighbour on the same points. Sites
        // clustered, sparse and on cell edges; queries inside, on the
        // edges of and far outside the grid. Equal distances are enough
        // (two sites may be equally near).
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (count, spread) in [(0usize, 1.0), (1, 1.0), (2, 0.05), (50, 3.0), (5_000, 8.0)] {
            let mut pts: Vec<[f64; 2]> = (0..count)
                .map(|_| {
                    [
                        102.0 + spread * rng.random::<f64>(),
                        8.0 + spread * 2.0 * rng.random::<f64>(),
                    ]
                })
                .collect();
            // Points exactly on cell boundaries, and a duplicate.
            if count > 2 {
                pts.push([pts[0][0] + SiteGrid::CELL, pts[0][1]]);
                pts.push([pts[0][0], pts[0][1] + 2.0 * SiteGrid::CELL]);
                pts.push(pts[1]);
            }
            let tree = rstar::RTree::bulk_load(pts.clone());
            let grid = SiteGrid::new(pts);
            let d2 = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
            for i in 0..4_000 {
                let q = match i % 4 {
                    0 | 1 => [
                        101.0 + (spread + 2.0) * rng.random::<f64>(),
                        7.0 + (2.0 * spread + 2.0) * rng.random::<f64>(),
                    ],
                    2 => [
                        90.0 + 40.0 * rng.random::<f64>(),
                        -10.0 + 50.0 * rng.random::<f64>(),
                    ],
                    _ => [102.0 + SiteGrid::CELL * f64::from(i % 7), 8.0],
                };
                let want = tree.nearest_neighbor(q).map(|s| d2(*s, q));
                let got = grid.nearest(q).map(|s| d2(s, q));
                assert_eq!(got, want, "{count} sites, query {q:?}");
            }
        }
    }

    #[test]
    fn dirt_row_by_row_equals_dirt_on_the_whole_file() {
        // Oracle: the in-memory dirt the generator used before it streamed.
        // Every rate from none to all, files shorter and longer than the
        // 5 000 rows a duplicate may travel, one batch or many.
        for (n, rate, seed) in [
            (0, 0.5, 1),
            (1, 1.0, 2),
            (7, 0.0, 3),
            (300, 0.3, 4),
            (12_000, 0.02, 5),
            (12_000, 0.6, 6),
            (20_000, 1.0, 7),
        ] {
            let rows: Vec<SimRow> = (0..n)
                .map(|i| SimRow {
                    fields: std::array::from_fn(|f| format!("{f}T{i}")),
                })
                .collect();
            let mut want = rows.clone();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            oracle_dirty(&mut rng, &mut want, rate);
            let mut dirt = Dirt::new(ChaCha8Rng::seed_from_u64(seed), rate, n);
            let mut got = Vec::new();
            for batch in rows.chunks(997) {
                let mut out = Vec::new();
                for row in batch {
                    dirt.pass(row.clone(), &mut out);
                }
                got.extend(out);
            }
            dirt.finish(&mut got);
            assert_eq!(got, want, "{n} rows at rate {rate}");
            // The two leave the stream in the same place.
            assert_eq!(dirt_rng_after(seed, rate, n), rng.random::<u64>());
        }
    }

    /// The dirt's stream after `n` rows, drawn again row by row.
    fn dirt_rng_after(seed: u64, rate: f64, n: usize) -> u64 {
        let mut dirt = Dirt::new(ChaCha8Rng::seed_from_u64(seed), rate, n);
        let mut out = Vec::new();
        for i in 0..n {
            dirt.pass(
                SimRow {
                    fields: std::array::from_fn(|f| format!("{f}T{i}")),
                },
                &mut out,
            );
        }
        dirt.rng.random::<u64>()
    }

    /// The dirt as first written, on rows held in memory: the oracle of
    /// [`Dirt`], which dirties rows as they are made.
    fn oracle_dirty(rng: &mut ChaCha8Rng, rows: &mut Vec<SimRow>, rate: f64) {
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
