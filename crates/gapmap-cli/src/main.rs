//! `gapmap`: mobile coverage analysis from crowdsourced speed tests.
//!
//! Results go to files and stdout; messages and progress to stderr.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary reports to the terminal"
)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use gapmap_core::analyze::{AnalyzeOptions, AnalyzeReport, analyze};
use gapmap_core::boundaries::{Boundaries, DEFAULT_LEVELS, Levels, parse_feature_collection};
use gapmap_core::carrier::CarrierTable;
use gapmap_core::gaps::GapOptions;
use gapmap_core::heatmap::HeatmapFormats;
use gapmap_core::ingest_run::{IngestOptions, StoreOptions};
use gapmap_core::manifest;
use gapmap_core::month::Month;
use gapmap_core::rule::{Rule, Status};
use gapmap_core::schema::{ColumnMap, Network};
use gapmap_core::simulate::{SimOptions, write_simulated, write_truth};
use gapmap_core::villages::{VillageProperties, load_villages, villages_from};
use gapmap_core::vintage::{View, Vintage, VintageSpec, Vintages};

/// mimalloc: tens of millions of small rows freed across two threads leave
/// glibc's per-thread arenas holding memory the run no longer uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod memory;

const DEMO_COMMUNES: &str = include_str!("../../../data/vn_default/communes.geojson");
const DEMO_VILLAGES: &str = include_str!("../../../data/vn_default/villages.geojson");
const DEMO_COMMUNES_2025: &str =
    include_str!("../../../data/vn_2025_default/communes_2025.geojson");
/// Levels of the derived 2025 communes: provinces and communes, no districts.
const DEMO_LEVELS_2025: &str = "province=province_code:province,commune=commune_code:commune";

/// Mobile coverage analysis: quota, gaps and heatmaps from speed-test samples.
#[derive(Debug, Parser)]
#[command(name = "gapmap", version, about, max_term_width = 100)]
struct Cli {
    /// No messages on stderr but errors (results still go to stdout and files).
    #[arg(long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Every warning, and each file written with its size.
    #[arg(long, global = true)]
    verbose: bool,
    /// Wall time of each stage of `analyze` on stderr (for benchmarks; even with --quiet).
    #[arg(long, global = true)]
    timings: bool,
    #[command(subcommand)]
    command: Command,
}

/// 0: quiet, 1: normal, 2: verbose.
static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// Whether `--timings` was given.
static TIMINGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints the wall time of each stage (`--timings`), its throughput, and the
/// total: rows read per second while ingesting (the stages up to the row
/// counts), accepted samples per second after.
fn print_timings(
    load: std::time::Duration,
    stages: &gapmap_core::stages::Stages,
    (rows_read, accepted): (u64, u64),
) {
    if !TIMINGS.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut total = load;
    eprintln!(
        "gapmap: timing {:<28} {:>8.3} s",
        "load boundaries",
        load.as_secs_f64()
    );
    // The CPU of a lap includes the parts listed just above it (ingestion's
    // reader thread overlaps them, so they have no CPU time of their own).
    let mut after_parts = false;
    let mut ingesting = true;
    for lap in &stages.laps {
        // A part that ran beside others is listed, indented, but its time
        // is theirs too.
        if !lap.beside {
            total += lap.wall;
        }
        let name = if lap.beside {
            format!("  {} (beside)", lap.stage)
        } else {
            lap.stage.to_owned()
        };
        let mut line = format!(
            "gapmap: timing {name:<28} {:>8.3} s",
            lap.wall.as_secs_f64()
        );
        let (count, unit) = if ingesting {
            (rows_read, "rows")
        } else {
            (accepted, "samples")
        };
        if lap.wall.as_secs_f64() >= 0.001 {
            #[allow(clippy::cast_precision_loss, reason = "a rate to two decimals")]
            let rate = count as f64 / lap.wall.as_secs_f64() / 1e6;
            line.push_str(&format!("  {rate:>8.2} M {unit}/s"));
        }
        if let Some(m) = lap.measured {
            ingesting = false;
            if let Some(cpu) = m.cpu {
                line.push_str(&format!("  CPU {:>7.2} s", cpu.as_secs_f64()));
                if after_parts {
                    line.push_str(" (with the parts above)");
                }
            }
            if let Some(kib) = m.rss_kib {
                line.push_str(&format!("  RSS {:>6} MiB", kib / 1024));
            }
            if let Some(kib) = m.peak_kib {
                line.push_str(&format!("  peak RSS so far {:>6} MiB", kib / 1024));
            }
        }
        after_parts = lap.measured.is_none();
        eprintln!("{line}");
    }
    eprintln!(
        "gapmap: timing {:<28} {:>8.3} s",
        "total",
        total.as_secs_f64()
    );
}

fn verbosity() -> u8 {
    VERBOSITY.load(std::sync::atomic::Ordering::Relaxed)
}

/// A message on stderr, unless --quiet.
macro_rules! say {
    ($($arg:tt)*) => {
        if verbosity() > 0 {
            eprintln!($($arg)*);
        }
    };
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse samples: quota, unit statistics, villages, heatmaps, plan, reports.
    Analyze(Box<AnalyzeArgs>),
    /// Generate realistic i-Speed-like samples and their ground truth.
    Simulate(SimulateArgs),
    /// Simulate Aug 2024 – Jul 2025 over the embedded Bắc Kạn + Quảng Ninh data and analyse it.
    Demo(Box<DemoArgs>),
    /// Build the 2025 reform's crosswalk and derived commune polygons from the 2009 communes.
    Reform(ReformArgs),
}

#[derive(Debug, Args)]
struct ReformArgs {
    /// Folder laid out as shared/data/vn (boundaries_2009/, admin_2025/).
    #[arg(long)]
    source: PathBuf,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Only these 2009 province codes (comma-separated), e.g. 207,225; default: all.
    #[arg(long, value_delimiter = ',')]
    provinces: Vec<String>,
}

#[derive(Debug, Args)]
struct BoundaryArgs {
    /// GeoJSON of the finest units (Polygon/MultiPolygon) carrying the whole hierarchy.
    #[arg(long)]
    boundaries: PathBuf,
    /// Levels coarse to fine, as level=code_property:name_property,…
    #[arg(long, default_value = DEFAULT_LEVELS)]
    levels: String,
}

#[derive(Debug, Args)]
struct VintageArgs {
    /// GeoJSON of the finest units carrying the whole hierarchy. Repeat with a start
    /// date for later sets: --boundaries 2025-07-01=new.geojson (first of a month).
    #[arg(long, required = true, value_name = "[YYYY-MM-01=]PATH")]
    boundaries: Vec<String>,
    /// Levels coarse to fine, as level=code_property:name_property,… One per --boundaries,
    /// in the same order (`default` for the 2009 layout); omit for the default everywhere.
    #[arg(long)]
    levels: Vec<String>,
    /// A later set given as a crosswalk from the latest earlier polygon set
    /// (CSV as written by `gapmap reform`): --crosswalk 2025-07-01=crosswalk.csv
    #[arg(long, value_name = "YYYY-MM-01=PATH")]
    crosswalk: Vec<String>,
    /// Report quota and unit statistics on: dated (each month on the set in force), old
    /// (the first set), new (the last set) or both (first and last, the whole window each).
    #[arg(long, default_value = "dated")]
    view: String,
}

impl VintageArgs {
    fn load(&self) -> Result<Vintages> {
        let mut specs = Vec::new();
        for b in &self.boundaries {
            specs.push(
                b.parse::<VintageSpec>()
                    .with_context(|| format!("--boundaries {b}"))?,
            );
        }
        let n = specs.len();
        let levels: Vec<Levels> = match self.levels.len() {
            0 => vec![Levels::default(); n],
            k if k == n => self
                .levels
                .iter()
                .map(|l| {
                    if l.trim() == "default" {
                        Ok(Levels::default())
                    } else {
                        l.parse::<Levels>().with_context(|| format!("--levels {l}"))
                    }
                })
                .collect::<Result<_>>()?,
            k => anyhow::bail!(
                "{k} --levels for {n} --boundaries: give one --levels per --boundaries, in the same order \
                 (write `default` for the 2009 layout), or none"
            ),
        };
        for c in &self.crosswalk {
            let mut spec = c
                .parse::<VintageSpec>()
                .with_context(|| format!("--crosswalk {c}"))?;
            if spec.from.is_none() {
                anyhow::bail!(
                    "--crosswalk {c}: give its start, as --crosswalk 2025-07-01=crosswalk.csv"
                );
            }
            spec.crosswalk = true;
            specs.push(spec);
        }
        let mut all_levels = levels;
        all_levels.resize(specs.len(), Levels::default());
        let v = Vintages::load(&specs, &all_levels).context("cannot load boundaries")?;
        for set in &v.sets {
            warn_all(&set.boundaries.warnings);
        }
        Ok(v)
    }
}

#[derive(Debug, Args)]
struct AnalyzeArgs {
    /// Sample files (.csv or .parquet); several after one flag, or repeat the flag.
    #[arg(long, num_args = 1.., required = true)]
    samples: Vec<PathBuf>,
    #[command(flatten)]
    boundary: VintageArgs,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// First month of the window (YYYY-MM, Vietnam local time); default: the data's first.
    #[arg(long)]
    from: Option<String>,
    /// Last month of the window (YYYY-MM); default: the data's last.
    #[arg(long)]
    to: Option<String>,
    /// Samples per unit per month required (MIC letters 2371 and 4459/BTTTT-CVT).
    #[arg(long, default_value_t = 300)]
    quota: u64,
    /// A sample outside every unit but this close (metres) to one takes the nearest.
    #[arg(long, default_value_t = 500.0)]
    snap_m: f64,
    /// H3 resolution of sample cells (0–15; 8 is the FCC's challenge hexagon, ~0.74 km²).
    #[arg(long, default_value_t = 8)]
    resolution: u8,
    /// Map a canonical column to the file's name for it: canonical=theirs (repeatable).
    #[arg(long = "column", value_name = "CANONICAL=THEIRS")]
    columns: Vec<String>,
    /// GIS layer formats, comma-separated: geojson (default), fgb (FlatGeobuf), gpkg (GeoPackage).
    #[arg(long, default_value = "geojson")]
    format: String,
    /// Run the exact polygon test for every sample, not only for samples in
    /// H3 cells near a unit edge, and compute every sample's H3 cell with
    /// h3o, without the memo of hexagons (same results, slower; for
    /// verification).
    #[arg(long)]
    exact_placement: bool,
    /// Working files on disk (--work-dir) instead of memory (same outputs):
    /// today the test ids that repeat are found there first, instead of
    /// remembering every id read (about 20 bytes a row). `auto`: when every
    /// sample file is Parquet, or the files hold over 20 million rows.
    #[arg(long, value_enum, default_value_t = memory::Spill::Auto)]
    spill: memory::Spill,
    /// Keep the accepted samples in working files (--work-dir) instead of
    /// memory (same outputs): memory then holds one part of them at a time
    /// (--part-samples), whatever their number, each part read from the
    /// blocks of the files that hold its samples. `auto`: past 40 million rows, or when this
    /// machine seems short of memory for them.
    #[arg(long, value_enum, default_value_t = memory::SamplesOnDisk::Auto)]
    samples_on_disk: memory::SamplesOnDisk,
    /// Folder of the working files of --spill and --samples-on-disk
    /// (default: --out): a local disk with room, about 73 bytes a sample
    /// on disk. The files have no name and vanish when the run ends.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// With samples on disk, about how many samples each stage holds at a
    /// time (about 100 bytes each at the peak). Smaller parts cost little
    /// time: each part reads only the blocks of the files that hold it.
    #[arg(long, default_value_t = 4 << 20, value_name = "N")]
    part_samples: usize,
    /// Heatmap formats (default: as --format): geojson, fgb, gpkg, and the
    /// H3-keyed tables csv and parquet (no geometry), comma-separated.
    #[arg(long, value_name = "FORMATS")]
    heatmap_format: Option<String>,
    /// Villages GeoJSON (points): enables villages, plan and unit_gaps outputs.
    #[arg(long)]
    villages: Option<PathBuf>,
    /// Village id property.
    #[arg(long, default_value = "village_id")]
    village_id: String,
    /// Village name property.
    #[arg(long, default_value = "name")]
    village_name: String,
    #[command(flatten)]
    gaps: GapArgs,
}

#[derive(Debug, Args)]
struct GapArgs {
    /// Carriers judged in villages and heatmaps (names, aliases or MCC-MNC), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "Viettel,VinaPhone,MobiFone,Vietnamobile"
    )]
    carriers: Vec<String>,
    /// A sample goes to the nearest village of its unit within this many metres.
    #[arg(long, default_value_t = 2000.0)]
    village_radius_m: f64,
    /// T: a test below this download (Mbps) counts as weak (QCVN 81:2019 operator floor).
    #[arg(long, default_value_t = 5.0)]
    weak_below_mbps: f64,
    /// Fewer samples than this: insufficient.
    #[arg(long, default_value_t = 5)]
    min_samples: u64,
    /// Fewer distinct devices than this: insufficient.
    #[arg(long, default_value_t = 2)]
    min_devices: u64,
    /// Significance level of the one-sided sign test for weak.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// National target median download (Mbps) for below_target (Decision 36/QĐ-TTg, 4G 2025).
    #[arg(long, default_value_t = 40.0)]
    target_mbps: f64,
    /// Judge villages and heatmaps on these technologies only, e.g. 4G,5G (default: every mobile test).
    #[arg(long, value_delimiter = ',')]
    networks: Option<Vec<String>>,
    /// Villages and heatmaps keep at most this many tests per device, H3 cell and local day
    /// (M-Lab keeps one or two per client and day); 0 keeps all. The quota counts every test.
    #[arg(long, default_value_t = 2)]
    device_cap: u32,
    /// Tests whose location accuracy (column accuracy_m) is worse than this many metres are
    /// left out of the effective count and gap statistics (RTR: 2 km); 0 keeps all.
    #[arg(long, default_value_t = 2000.0)]
    max_accuracy_m: f64,
    /// A test reached from, and left for, the device's neighbouring tests faster than this
    /// (km/h) is a location jump, left out like the above; 0 keeps all.
    #[arg(long, default_value_t = 300.0)]
    max_movement_kmh: f64,
    /// Keep downloads above a network type's peak (2G 0.5, 3G 42, 4G 1 000 Mbps).
    #[arg(long)]
    no_network_speed_limits: bool,
    /// Heatmap cells with fewer distinct devices publish counts but no statistics
    /// (`suppressed: true`); 0 turns this off for internal use.
    #[arg(long, default_value_t = 3)]
    min_devices_public: u64,
}

impl GapArgs {
    fn options(&self, table: &CarrierTable) -> Result<GapOptions> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            anyhow::bail!("--alpha must be in (0, 1]; got {}", self.alpha);
        }
        for (flag, v) in [
            ("--max-accuracy-m", self.max_accuracy_m),
            ("--max-movement-kmh", self.max_movement_kmh),
            ("--village-radius-m", self.village_radius_m),
            ("--weak-below-mbps", self.weak_below_mbps),
            ("--target-mbps", self.target_mbps),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                anyhow::bail!("{flag} must be a number ≥ 0; got {v}");
            }
        }
        let mut carriers: Vec<String> = Vec::new();
        for c in self
            .carriers
            .iter()
            .map(|c| table.canonical(c))
            .filter(|c| !c.is_empty())
        {
            if !carriers.iter().any(|k| k == c) {
                carriers.push(c.to_owned());
            }
        }
        if carriers.is_empty() {
            anyhow::bail!("--carriers is empty; name at least one carrier");
        }
        let networks = match &self.networks {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for raw in list {
                    let n = Network::parse(raw);
                    let known = n != Network::Unknown || raw.trim().eq_ignore_ascii_case("unknown");
                    if n == Network::Wifi || !known {
                        anyhow::bail!(
                            "--networks: '{raw}' is not a mobile technology; use 2G, 3G, 4G, 5G or UNKNOWN"
                        );
                    }
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
                Some(out)
            }
        };
        Ok(GapOptions {
            networks,
            rule: Rule {
                weak_below_mbps: self.weak_below_mbps,
                min_samples: self.min_samples,
                min_devices: self.min_devices,
                alpha: self.alpha,
                target_mbps: self.target_mbps,
            },
            carriers,
            village_radius_m: self.village_radius_m,
            plausibility: gapmap_core::ingest_run::Plausibility {
                max_accuracy_m: self.max_accuracy_m,
                max_movement_kmh: self.max_movement_kmh,
                network_speed_limits: !self.no_network_speed_limits,
                device_cap: self.device_cap,
            },
            min_devices_public: self.min_devices_public,
        })
    }
}

#[derive(Debug, Args)]
struct SimulateArgs {
    #[command(flatten)]
    boundary: BoundaryArgs,
    /// Villages GeoJSON (points).
    #[arg(long)]
    villages: PathBuf,
    /// Village id property.
    #[arg(long, default_value = "village_id")]
    village_id: String,
    /// Village name property.
    #[arg(long, default_value = "name")]
    village_name: String,
    /// Samples file to write (.csv or .parquet).
    #[arg(long)]
    out: PathBuf,
    /// Ground-truth CSV to write (per village and carrier).
    #[arg(long)]
    truth: Option<PathBuf>,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First month to simulate (YYYY-MM; default 2025-06, for the demo 2024-08).
    #[arg(long)]
    from: Option<String>,
    /// Last month to simulate (default: --from; for the demo 2025-07).
    #[arg(long)]
    to: Option<String>,
    /// Tests per month over all units.
    #[arg(long, default_value_t = 30_000)]
    samples: u64,
    /// Share of rows corrupted on purpose (0–1).
    #[arg(long, default_value_t = 0.02)]
    dirty_rate: f64,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// GIS layer formats, comma-separated: geojson, fgb (FlatGeobuf), gpkg (GeoPackage).
    #[arg(long, default_value = "geojson,fgb,gpkg")]
    format: String,
    #[command(flatten)]
    sim: SimArgs,
    #[command(flatten)]
    gaps: GapArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.quiet {
        0
    } else if cli.verbose {
        2
    } else {
        1
    };
    VERBOSITY.store(level, std::sync::atomic::Ordering::Relaxed);
    TIMINGS.store(cli.timings, std::sync::atomic::Ordering::Relaxed);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed stdout (e.g. `| head`) is not an error.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("gapmap: error: {}", error_message(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each said once: the library's errors end
/// with the message of the error they wrap, which the chain repeats.
fn error_message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Analyze(args) => run_analyze(&args),
        Command::Simulate(args) => run_simulate(&args),
        Command::Demo(args) => run_demo(&args),
        Command::Reform(args) => run_reform(&args),
    }
}

fn month(flag: &str, s: &str) -> Result<Month> {
    s.parse().with_context(|| format!("--{flag}"))
}

fn load_boundaries(args: &BoundaryArgs) -> Result<Boundaries> {
    let levels: Levels = args.levels.parse()?;
    let b = Boundaries::load(&args.boundaries, levels)
        .with_context(|| format!("cannot load boundaries from {}", args.boundaries.display()))?;
    warn_all(&b.warnings);
    Ok(b)
}

/// Prints non-fatal warnings to stderr (the first 10 and a count; all with
/// --verbose; none with --quiet, they are in summary.json).
fn warn_all(warnings: &[String]) {
    let shown = if verbosity() >= 2 { warnings.len() } else { 10 };
    for w in warnings.iter().take(shown) {
        say!("gapmap: warning: {w}");
    }
    if warnings.len() > shown {
        say!(
            "gapmap: warning: … and {} more (all in summary.json; --verbose shows them)",
            warnings.len() - shown
        );
    }
}

/// `bar` drawn with `template`, on a terminal only (and not with --quiet),
/// so logs stay clean.
fn on_terminal(
    bar: impl FnOnce() -> indicatif::ProgressBar,
    template: &str,
) -> Option<indicatif::ProgressBar> {
    (verbosity() > 0 && std::io::stderr().is_terminal()).then(|| {
        let b = bar();
        b.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    })
}

/// A progress spinner with the rows read so far.
fn progress_reporter() -> impl FnMut(u64) {
    let bar = on_terminal(
        indicatif::ProgressBar::new_spinner,
        "{spinner} {elapsed} reading samples: {human_pos} rows",
    );
    move |n| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    }
}

fn resolution(r: u8) -> Result<h3o::Resolution> {
    h3o::Resolution::try_from(r)
        .map_err(|_| anyhow::anyhow!("--resolution {r}: H3 resolutions are 0 to 15"))
}

/// Makes the folder of the working files (`--work-dir`, else `--out`) and
/// checks that files can be made in it.
fn prepare_work_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| tempfile::tempfile_in(dir).map(drop))
        .with_context(|| {
            format!(
                "cannot make working files in {}: choose a folder you can write to with \
                 --work-dir, or hold everything in memory with --spill never and \
                 --samples-on-disk never",
                dir.display()
            )
        })
}

/// Makes sure `--out` can be written before any work, and on Ctrl-C removes
/// the temporary files of outputs being written (finished outputs are
/// complete: each is renamed into place only when whole) and exits with 130.
fn prepare_out(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .and_then(|()| {
            tempfile::Builder::new()
                .prefix(".gapmap-")
                .suffix(".tmp")
                .tempfile_in(out)
                .map(drop)
        })
        .with_context(|| {
            format!(
                "cannot write to --out {}: choose a folder you can write to",
                out.display()
            )
        })?;
    let dir = out.to_owned();
    // A second handler cannot be set in the same process (the demo then analyze): ignore that.
    let _ = ctrlc::set_handler(move || {
        for d in [dir.clone(), dir.join("heatmap")] {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".gapmap-") && name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        eprintln!("gapmap: interrupted; outputs already written are complete, none is partial");
        std::process::exit(130);
    });
    Ok(())
}

fn run_analyze(args: &AnalyzeArgs) -> Result<()> {
    prepare_out(&args.out)?;
    let rows = memory::rows_hint(&args.samples);
    let spill = args.spill.wanted(&args.samples, rows);
    let window = args.from.is_some() || args.to.is_some();
    let on_disk = args.samples_on_disk.wanted(rows, spill);
    if !on_disk && let Some(w) = memory::check(rows, window, spill) {
        say!("gapmap: warning: {w}");
    }
    if args.part_samples == 0 {
        anyhow::bail!("--part-samples must be at least 1");
    }
    let work_dir = args.work_dir.as_ref().unwrap_or(&args.out);
    if spill || on_disk {
        prepare_work_dir(work_dir)?;
    }
    let started = std::time::Instant::now();
    let vintages = args.boundary.load()?;
    let load = started.elapsed();
    if on_disk {
        say!(
            "gapmap: the accepted samples are kept on disk in {}, {} bytes each",
            work_dir.display(),
            memory::stored_sample_bytes(vintages.sets.len())
        );
        if let Ok(free) = fs4::available_space(work_dir)
            && let Some(w) = memory::disk_warning(work_dir, rows, vintages.sets.len(), free)
        {
            say!("gapmap: warning: {w}");
        }
    }
    let opts = AnalyzeOptions {
        ingest: IngestOptions {
            files: args.samples.clone(),
            columns: ColumnMap::with_mappings(&args.columns)?,
            from: args.from.as_deref().map(|s| month("from", s)).transpose()?,
            to: args.to.as_deref().map(|s| month("to", s)).transpose()?,
            snap_m: args.snap_m,
            resolution: resolution(args.resolution)?,
            carriers: CarrierTable::vietnam(),
            fast_placement: !args.exact_placement,
            spill_dir: spill.then(|| work_dir.clone()),
            sample_store: on_disk.then(|| StoreOptions {
                dir: work_dir.clone(),
                part_samples: args.part_samples,
            }),
        },
        out: args.out.clone(),
        quota: args.quota,
        gaps: args.gaps.options(&CarrierTable::vietnam())?,
        villages: match &args.villages {
            Some(p) => {
                let props = VillageProperties {
                    id: args.village_id.clone(),
                    name: args.village_name.clone(),
                };
                Some(load_villages(p, &props)?)
            }
            None => None,
        },
        view: args.boundary.view.parse()?,
        formats: args.format.parse()?,
        heatmap_formats: match &args.heatmap_format {
            Some(f) => f.parse()?,
            None => HeatmapFormats::like(&args.format.parse()?),
        },
        command: std::env::args().collect(),
        other_inputs: match &args.villages {
            Some(p) => vec![manifest::hash_file(p, &p.display().to_string())?],
            None => Vec::new(),
        },
    };
    if opts.ingest.snap_m.is_nan() || opts.ingest.snap_m < 0.0 {
        anyhow::bail!("--snap-m must be a distance in metres ≥ 0");
    }
    let report = analyze(vintages, &opts, &mut progress_reporter())?;
    print_report(&report, &args.out);
    let counts = &report.ingested.counts;
    print_timings(load, &report.stages, (counts.read, counts.accepted));
    Ok(())
}

/// `default` is the (from, to) used when `--from` is not given.
fn sim_options(sim: &SimArgs, default: (&str, &str)) -> Result<SimOptions> {
    let from = month("from", sim.from.as_deref().unwrap_or(default.0))?;
    let to = match (&sim.to, &sim.from) {
        (Some(t), _) => month("to", t)?,
        (None, Some(_)) => from,
        (None, None) => month("to", default.1)?,
    };
    if from > to {
        anyhow::bail!("--from {from} is after --to {to}");
    }
    if !(0.0..=1.0).contains(&sim.dirty_rate) {
        anyhow::bail!("--dirty-rate must be between 0 and 1");
    }
    let mut o = SimOptions::new(sim.seed, from);
    o.to = to;
    o.samples_per_month = sim.samples;
    o.dirty_rate = sim.dirty_rate;
    Ok(o)
}

fn run_simulate(args: &SimulateArgs) -> Result<()> {
    let boundaries = load_boundaries(&args.boundary)?;
    let props = VillageProperties {
        id: args.village_id.clone(),
        name: args.village_name.clone(),
    };
    let villages = load_villages(&args.villages, &props)?;
    if args.out.is_dir() {
        anyhow::bail!(
            "--out {} is a folder: give the samples file to write, e.g. {}",
            args.out.display(),
            args.out.join("samples.parquet").display()
        );
    }
    // Its folder writable before any work; Ctrl-C leaves no partial file.
    prepare_out(
        args.out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    let opts = sim_options(&args.sim, ("2025-06", "2025-06"))?;
    let bar = on_terminal(
        || indicatif::ProgressBar::new(2 * opts.tests()),
        "{bar:30} {percent} % {elapsed} (about {eta} left) simulating (drawn twice: to calibrate, to write)",
    );
    let out = write_simulated(&args.out, &boundaries, &villages, &opts, &mut |n| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(t) = &args.truth {
        write_truth(t, &out.truth)?;
    }
    say!("gapmap: wrote {} rows to {}", out.rows, args.out.display());
    Ok(())
}

fn run_reform(args: &ReformArgs) -> Result<()> {
    use gapmap_core::reform;
    let src = reform::ReformSources::in_dir(&args.source);
    let r = reform::build(&src, &args.provinces)?;
    let legacy = reform::read_legacy(&src.legacy)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    reform::write_reform(&args.out, &r, &legacy)?;
    warn_all(&r.notes);
    let (_, total) = reform::match_rates(&r);
    let covered: std::collections::HashSet<usize> = r.targets.iter().flatten().copied().collect();
    let q = reform::quality(&r, |i| covered.contains(&i));
    println!(
        "2009 communes {}: matched {} ({:.2}%); name {}, name+district {}, name+nearest {}, centre in polygon {}; \
         assigned to the nearest centre {}, unmatched {}",
        total.communes,
        total.matched(),
        total.rate() * 100.0,
        total.by_method[0],
        total.by_method[1],
        total.by_method[2],
        total.by_method[3],
        total.by_method[4],
        total.by_method[5]
    );
    println!(
        "new communes reached {} with polygon {} complete {}; area ratio median {} (p10 {}, p90 {}), within ±10% {}, official centre inside {}",
        q.communes,
        q.with_polygon,
        q.complete,
        q.area_ratio_median
            .map_or("-".into(), |v| format!("{v:.3}")),
        q.area_ratio_p10.map_or("-".into(), |v| format!("{v:.3}")),
        q.area_ratio_p90.map_or("-".into(), |v| format!("{v:.3}")),
        q.share_within_10pct
            .map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
        q.share_centre_inside
            .map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
    );
    println!("outputs in {}", args.out.display());
    Ok(())
}

fn run_demo(args: &DemoArgs) -> Result<()> {
    prepare_out(&args.out)?;
    let origin = Path::new("embedded:data/vn_default/communes.geojson");
    let fc = parse_feature_collection(DEMO_COMMUNES, origin)?;
    let boundaries = Boundaries::from_features(origin, &fc.features, Levels::default())?;
    let vorigin = Path::new("embedded:data/vn_default/villages.geojson");
    let villages = villages_from(
        vorigin,
        &parse_feature_collection(DEMO_VILLAGES, vorigin)?,
        &VillageProperties::default(),
    )?;
    // Twelve months across the reform of 1 July 2025.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let samples = args.out.join("samples.csv");
    let sim = write_simulated(
        &samples,
        &boundaries,
        &villages,
        &sim_options(&args.sim, ("2024-08", "2025-07"))?,
        &mut |_| {},
    )?;
    write_truth(&args.out.join("truth.csv"), &sim.truth)?;
    say!(
        "gapmap: simulated {} rows over {} communes and {} villages (Bắc Kạn, Quảng Ninh) → {}",
        sim.rows,
        boundaries.finest().len(),
        villages.len(),
        samples.display()
    );
    let opts = AnalyzeOptions {
        ingest: IngestOptions {
            files: vec![samples],
            columns: ColumnMap::default(),
            from: None,
            to: None,
            snap_m: 500.0,
            resolution: h3o::Resolution::Eight,
            carriers: CarrierTable::vietnam(),
            fast_placement: true,
            spill_dir: None,
            sample_store: None,
        },
        out: args.out.clone(),
        quota: 300,
        gaps: args.gaps.options(&CarrierTable::vietnam())?,
        villages: Some(villages),
        view: View::Dated,
        formats: args.format.parse()?,
        heatmap_formats: HeatmapFormats::like(&args.format.parse()?),
        command: std::env::args().collect(),
        other_inputs: vec![
            manifest::hash_bytes(&origin.display().to_string(), DEMO_COMMUNES.as_bytes()),
            manifest::hash_bytes(&vorigin.display().to_string(), DEMO_VILLAGES.as_bytes()),
            manifest::hash_bytes(
                "embedded:data/vn_2025_default/communes_2025.geojson",
                DEMO_COMMUNES_2025.as_bytes(),
            ),
        ],
    };
    let origin_2025 = Path::new("embedded:data/vn_2025_default/communes_2025.geojson");
    let fc_2025 = parse_feature_collection(DEMO_COMMUNES_2025, origin_2025)?;
    let levels_2025: Levels = DEMO_LEVELS_2025.parse()?;
    let boundaries_2025 = Boundaries::from_features(origin_2025, &fc_2025.features, levels_2025)?;
    let vintages = Vintages {
        sets: vec![
            Vintage {
                label: "2009-04-01".to_owned(),
                from: Some(month("from", "2009-04")?),
                boundaries,
                crosswalk: None,
                path: origin.to_owned(),
            },
            Vintage {
                label: "2025-07-01".to_owned(),
                from: Some(month("from", "2025-07")?),
                boundaries: boundaries_2025,
                crosswalk: None,
                path: origin_2025.to_owned(),
            },
        ],
    };
    let report = analyze(vintages, &opts, &mut progress_reporter())?;
    print_report(&report, &args.out);
    Ok(())
}

fn print_report(r: &AnalyzeReport, out: &Path) {
    warn_all(&r.ingested.warnings);
    let c = &r.ingested.counts;
    println!(
        "rows read {} = accepted {} + excluded {} (wifi {}, outside window {}) + rejected {}",
        c.read,
        c.accepted,
        c.excluded.wifi + c.excluded.outside_window,
        c.excluded.wifi,
        c.excluded.outside_window,
        c.rejected.total()
    );
    let rj = &c.rejected;
    println!(
        "rejected: missing_field {}, bad_timestamp {}, bad_coordinates {}, bad_speed {}, duplicate_test_id {}, outside_boundaries {}",
        rj.missing_field,
        rj.bad_timestamp,
        rj.bad_coordinates,
        rj.bad_speed,
        rj.duplicate_test_id,
        rj.outside_boundaries
    );
    println!(
        "{:<8} {:<11} {:<10} {:>7} {:>7} {:>8} {:>10}",
        "month", "vintage", "level", "units", "met", "share", "samples"
    );
    for q in &r.quota {
        println!(
            "{:<8} {:<11} {:<10} {:>7} {:>7} {:>7.2}% {:>10}",
            q.month,
            q.vintage,
            q.level,
            q.units,
            q.units_met,
            q.share_met * 100.0,
            q.samples
        );
    }
    if let Some(sets) = r.summary.extra.get("vintages").and_then(|v| v.as_array()) {
        for v in sets
            .iter()
            .filter(|v| v["months"].as_array().is_some_and(|m| !m.is_empty()))
        {
            let months = v["months"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let span = match (months.first(), months.last()) {
                (Some(a), Some(b)) if a == b => a.as_str().unwrap_or("").to_owned(),
                (Some(a), Some(b)) => {
                    format!("{}..{}", a.as_str().unwrap_or(""), b.as_str().unwrap_or(""))
                }
                _ => String::new(),
            };
            println!(
                "boundaries {} ({}) for {span}: {} samples placed, {} snapped, {} by nearest new centre, {} unmapped, {} outside (see unplaced.csv)",
                v["vintage"].as_str().unwrap_or(""),
                v["kind"].as_str().unwrap_or(""),
                v["samples"],
                v["snapped"],
                v["nearest_centre"],
                v["unmapped"],
                v["outside"]
            );
        }
    }
    if let Some(totals) = &r.village_status {
        let v = &r.summary.extra["villages"];
        println!(
            "villages: {} inside units ({} outside), {} samples matched to a village; status over the window:",
            v["inside"], v["outside"], v["samples_with_village"]
        );
        println!(
            "{:<14} {:>8} {:>13} {:>6} {:>6} {:>13}",
            "carrier", "no_data", "insufficient", "weak", "ok", "below_target"
        );
        let carriers: Vec<&str> = r
            .heatmap_cells
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| *c != "ALL")
            .collect();
        for (c, t) in carriers.iter().zip(totals) {
            let n = |s: Status| t.by_status[Status::ALL.iter().position(|x| *x == s).unwrap_or(0)];
            println!(
                "{:<14} {:>8} {:>13} {:>6} {:>6} {:>13}",
                c,
                n(Status::NoData),
                n(Status::Insufficient),
                n(Status::Weak),
                n(Status::Ok),
                t.below_target
            );
        }
        if let Some(p) = r.plan_items {
            println!(
                "plan: {p} villages to visit in units under quota ({} tests)",
                v["plan_tests"]
            );
        }
    }
    let cells: Vec<String> = r
        .heatmap_cells
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!("heatmap cells: {}", cells.join(", "));
    println!("outputs in {}", out.display());
    say!(
        "gapmap: wrote {} files in {}:",
        r.files.len(),
        out.display()
    );
    for f in &r.files {
        let name = f.strip_prefix(out).unwrap_or(f).display();
        if verbosity() >= 2 {
            let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            say!("  {name} ({bytes} bytes)");
        } else {
            say!("  {name}");
        }
    }
}
