//! Boundary vintages: several sets of units, each in force from a date, so a
//! window across a reform (1 July 2025 in Vietnam) is reported month by
//! month on the units of its time, or wholly on one set.
//!
//! A set is either polygons (a GeoJSON layer) or a crosswalk from the finest
//! units of the latest earlier polygon set: a sample is placed in its old
//! unit, then mapped to the new unit; an old unit split between several new
//! ones goes to the new unit whose centre is nearest the sample.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::boundaries::{Boundaries, LevelSpec, Levels, Locator, Placement, Unit};
use crate::codes::cmp_codes;
use crate::error::{Error, Result};
use crate::geodesy::haversine_m;
use crate::month::Month;

/// No unit in a vintage.
pub const NO_UNIT: u32 = u32::MAX;

/// How a sample was placed in a vintage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PlaceKind {
    /// Inside a polygon (or mapped through a crosswalk from one).
    Inside = 0,
    /// Snapped to the nearest polygon within the snap distance.
    Snapped = 1,
    /// An old unit split between several new ones: nearest new centre.
    NearestCentre = 2,
    /// In an old unit the crosswalk does not map (no unit in this vintage).
    Unmapped = 3,
    /// Outside every polygon.
    Outside = 4,
}

/// A sample's place in every boundary set, inline for up to two sets (a
/// run rarely has more): placing tens of millions of samples allocates nothing.
pub type Places = smallvec::SmallVec<[Place; 2]>;

/// A sample's place in one vintage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// Finest unit, or [`NO_UNIT`].
    pub unit: u32,
    /// How.
    pub kind: PlaceKind,
    /// Metres snapped (0 unless [`PlaceKind::Snapped`]).
    pub snapped_m: f64,
    /// The old finest unit (crosswalk sets; [`NO_UNIT`] otherwise).
    pub old_unit: u32,
}

impl Place {
    const OUTSIDE: Self = Self {
        unit: NO_UNIT,
        kind: PlaceKind::Outside,
        snapped_m: 0.0,
        old_unit: NO_UNIT,
    };

    /// Whether the point lies within the set's territory (inside, snapped, or in
    /// an old unit even if unmapped).
    #[must_use]
    pub const fn in_territory(self) -> bool {
        !matches!(self.kind, PlaceKind::Outside)
    }
}

/// A crosswalk from the finest units of a polygon set to new units.
#[derive(Debug, Clone)]
pub struct Crosswalk {
    /// Index of the polygon set whose finest codes are the old codes.
    pub base: usize,
    /// Old finest-unit index (in the base) → new finest units, sorted by code.
    pub targets: Vec<Vec<u32>>,
    /// Centre (lon, lat) of each new finest unit.
    pub centres: Vec<(f64, f64)>,
}

impl Crosswalk {
    /// The new unit of a point in old unit `old`.
    #[must_use]
    pub fn map(&self, old: u32, lon: f64, lat: f64) -> (u32, PlaceKind) {
        match self.targets[old as usize].as_slice() {
            [] => (NO_UNIT, PlaceKind::Unmapped),
            [one] => (*one, PlaceKind::Inside),
            many => {
                // Nearest centre; ties go to the lowest code (targets are sorted).
                let mut best = (f64::INFINITY, NO_UNIT);
                for &t in many {
                    let c = self.centres[t as usize];
                    let d = haversine_m(lon, lat, c.0, c.1);
                    if d < best.0 {
                        best = (d, t);
                    }
                }
                (best.1, PlaceKind::NearestCentre)
            }
        }
    }
}

/// One boundary set.
#[derive(Debug)]
pub struct Vintage {
    /// Label in outputs: the start date (`2025-07-01`), or `initial`.
    pub label: String,
    /// First month in force (`None`: from the beginning).
    pub from: Option<Month>,
    /// Units (the polygons stay empty for a crosswalk set).
    pub boundaries: Boundaries,
    /// The crosswalk, for a set without polygons.
    pub crosswalk: Option<Crosswalk>,
    /// The file it was read from.
    pub path: PathBuf,
}

/// Where a boundary set comes from, before loading.
#[derive(Debug, Clone, PartialEq)]
pub struct VintageSpec {
    /// First month in force, if given.
    pub from: Option<Month>,
    /// The file.
    pub path: PathBuf,
    /// A crosswalk CSV rather than polygons.
    pub crosswalk: bool,
}

impl FromStr for VintageSpec {
    type Err = Error;
    /// `[YYYY-MM-01=]path` (or `YYYY-MM=path`); a set starts on the first of a month.
    fn from_str(s: &str) -> Result<Self> {
        if let Some((date, path)) = s.split_once('=') {
            let d = date.trim();
            // ASCII only: the slicing below is by bytes (found by fuzzing).
            let looks_dated = d.len() >= 7
                && d.is_ascii()
                && d.as_bytes()[4] == b'-'
                && d[..4].bytes().all(|b| b.is_ascii_digit());
            if looks_dated {
                let month_part = if d.len() == 10 {
                    if &d[7..] != "-01" {
                        return Err(Error::Config(format!(
                            "'{d}': a boundary set starts on the first of a month (quota months are whole months); write {}-01",
                            &d[..7]
                        )));
                    }
                    &d[..7]
                } else {
                    d
                };
                let from: Month = month_part.parse().map_err(|_| {
                    Error::Config(format!(
                        "'{d}' is not a date; write YYYY-MM-01=path, e.g. 2025-07-01=new.geojson"
                    ))
                })?;
                return Ok(Self {
                    from: Some(from),
                    path: PathBuf::from(path),
                    crosswalk: false,
                });
            }
        }
        Ok(Self {
            from: None,
            path: PathBuf::from(s),
            crosswalk: false,
        })
    }
}

/// The boundary sets of a run, sorted by start.
#[derive(Debug)]
pub struct Vintages {
    /// The sets; the first is in force before any other starts.
    pub sets: Vec<Vintage>,
}

/// Which sets a report uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Each month on the set in force that month.
    #[default]
    Dated,
    /// The whole window on the first set.
    Old,
    /// The whole window on the last set.
    New,
    /// The whole window on the first and on the last set.
    Both,
}

impl FromStr for View {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dated" => Ok(Self::Dated),
            "old" => Ok(Self::Old),
            "new" => Ok(Self::New),
            "both" => Ok(Self::Both),
            other => Err(Error::Config(format!(
                "--view '{other}': use dated (each month on its own boundaries), old, new or both"
            ))),
        }
    }
}

impl View {
    /// Its name in `summary.json`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dated => "dated",
            Self::Old => "old",
            Self::New => "new",
            Self::Both => "both",
        }
    }
}

/// Reads a crosswalk CSV (`old_code,new_code,new_name,new_parent_code,
/// new_parent_name,new_lon,new_lat`) against the base set's finest units.
///
/// # Errors
/// Unreadable file, a missing column, a bad number or a new code with two
/// names, parents or centres, each naming the line.
pub fn load_crosswalk(
    path: &Path,
    base: usize,
    base_b: &Boundaries,
) -> Result<(Boundaries, Crosswalk)> {
    let csv_err = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    let layer = |message: String| Error::Layer {
        path: path.to_owned(),
        message,
    };
    let mut r = csv::Reader::from_path(path).map_err(csv_err)?;
    let header = r.headers().map_err(csv_err)?.clone();
    let want = crate::reform::CROSSWALK_HEADER;
    let mut ix = [0usize; 7];
    for (slot, name) in ix.iter_mut().zip(want) {
        *slot = header.iter().position(|h| h == name).ok_or_else(|| {
            layer(format!(
                "no column '{name}'; a crosswalk has the columns {} (as written by `gapmap reform`)",
                want.join(",")
            ))
        })?;
    }
    // new code → (name, parent code, parent name, centre)
    let mut new_units: HashMap<String, (String, String, String, (f64, f64))> = HashMap::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, csv::Position::line);
        let f = |k: usize| rec.get(ix[k]).unwrap_or("").trim().to_owned();
        let num = |k: usize| -> Result<f64> {
            f(k).parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    layer(format!(
                        "line {line}: '{}' in {} is not a number",
                        f(k),
                        want[k]
                    ))
                })
        };
        let (old, new) = (f(0), f(1));
        if old.is_empty() || new.is_empty() {
            return Err(layer(format!(
                "line {line}: old_code and new_code must not be empty"
            )));
        }
        let entry = (f(2), f(3), f(4), (num(5)?, num(6)?));
        if let Some(prev) = new_units.get(&new) {
            if *prev != entry {
                return Err(layer(format!(
                    "line {line}: new unit '{new}' has a different name, parent or centre than on an earlier line; \
                     each new code must be described the same way on every line"
                )));
            }
        } else {
            new_units.insert(new.clone(), entry);
        }
        edges.push((old, new));
    }
    if new_units.is_empty() {
        return Err(layer("has no rows".to_owned()));
    }
    // Only the new units reached from the base set's territory (a national
    // crosswalk over one province's boundaries reports that province).
    let base_codes: std::collections::HashSet<&str> =
        base_b.finest().iter().map(|u| u.code.as_str()).collect();
    let reached: std::collections::HashSet<&str> = edges
        .iter()
        .filter(|(o, _)| base_codes.contains(o.as_str()))
        .map(|(_, n)| n.as_str())
        .collect();
    if reached.is_empty() {
        return Err(layer(format!(
            "no old_code is a finest unit of the base boundaries (e.g. '{}'); the crosswalk's old codes \
             must be the codes of the earlier --boundaries' finest --levels property",
            edges[0].0
        )));
    }
    let new_units: HashMap<String, (String, String, String, (f64, f64))> = new_units
        .into_iter()
        .filter(|(k, _)| reached.contains(k.as_str()))
        .collect();
    let edges: Vec<(String, String)> = edges
        .iter()
        .filter(|(_, n)| new_units.contains_key(n))
        .cloned()
        .collect();
    // Units sorted by code at both levels.
    let mut parents: Vec<(String, String)> = new_units
        .values()
        .map(|(_, pc, pn, _)| (pc.clone(), pn.clone()))
        .collect();
    parents.sort_by(|a, b| cmp_codes(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
    parents.dedup_by(|a, b| a.0 == b.0);
    let parent_ix: HashMap<&str, u32> = parents
        .iter()
        .enumerate()
        .map(|(i, p)| (p.0.as_str(), u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let mut codes: Vec<&String> = new_units.keys().collect();
    codes.sort_by(|a, b| cmp_codes(a, b));
    let finest: Vec<Unit> = codes
        .iter()
        .map(|c| {
            let (name, pc, _, _) = &new_units[*c];
            Unit {
                code: (*c).clone(),
                name: name.clone(),
                parent: parent_ix.get(pc.as_str()).copied(),
            }
        })
        .collect();
    let centres: Vec<(f64, f64)> = codes.iter().map(|c| new_units[*c].3).collect();
    let new_ix: HashMap<&str, u32> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let old_ix: HashMap<&str, usize> = base_b
        .finest()
        .iter()
        .enumerate()
        .map(|(i, u)| (u.code.as_str(), i))
        .collect();
    let mut targets: Vec<Vec<u32>> = vec![Vec::new(); base_b.finest().len()];
    let mut unknown = Vec::new();
    for (old, new) in &edges {
        match old_ix.get(old.as_str()) {
            Some(&o) => {
                let t = new_ix[new.as_str()];
                if !targets[o].contains(&t) {
                    targets[o].push(t);
                }
            }
            None => unknown.push(old.clone()),
        }
    }
    for t in &mut targets {
        t.sort_unstable();
    }
    unknown.sort_by(|a, b| cmp_codes(a, b));
    unknown.dedup();
    let levels = Levels(vec![
        LevelSpec {
            name: "province".to_owned(),
            code_property: "new_parent_code".to_owned(),
            name_property: "new_parent_name".to_owned(),
        },
        LevelSpec {
            name: "commune".to_owned(),
            code_property: "new_code".to_owned(),
            name_property: "new_name".to_owned(),
        },
    ]);
    let province_units = parents
        .into_iter()
        .map(|(code, name)| Unit {
            code,
            name,
            parent: None,
        })
        .collect();
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        warnings.push(format!(
            "{}: {} old codes map into new units reported here but are not finest units of the base boundaries (e.g. {}); those new units are only partly covered",
            path.display(),
            unknown.len(),
            unknown.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let n = finest.len();
    let b = Boundaries {
        levels,
        units: vec![province_units, finest],
        shapes: vec![geo::MultiPolygon(Vec::new()); n],
        warnings,
    };
    Ok((
        b,
        Crosswalk {
            base,
            targets,
            centres,
        },
    ))
}

impl Vintages {
    /// One polygon set in force throughout.
    #[must_use]
    pub fn single(boundaries: Boundaries, path: PathBuf) -> Self {
        Self {
            sets: vec![Vintage {
                label: "initial".to_owned(),
                from: None,
                boundaries,
                crosswalk: None,
                path,
            }],
        }
    }

    /// Loads the sets; `levels[i]` describes polygon set `specs[i]` (crosswalks ignore it).
    ///
    /// # Errors
    /// Two sets with the same start, more than one undated set, a crosswalk
    /// with no earlier polygon set, or a set that fails to load.
    pub fn load(specs: &[VintageSpec], levels: &[Levels]) -> Result<Self> {
        let mut order: Vec<usize> = (0..specs.len()).collect();
        order.sort_by_key(|&i| specs[i].from);
        let undated = specs.iter().filter(|s| s.from.is_none()).count();
        if undated > 1 {
            return Err(Error::Config(
                "several boundary sets have no start date; give every set but the first one, as --boundaries YYYY-MM-01=path"
                    .to_owned(),
            ));
        }
        for w in order.windows(2) {
            if specs[w[0]].from == specs[w[1]].from {
                return Err(Error::Config(format!(
                    "two boundary sets start in {}; each set needs its own start",
                    specs[w[0]].from.map(|m| m.to_string()).unwrap_or_default()
                )));
            }
        }
        let mut sets: Vec<Vintage> = Vec::with_capacity(specs.len());
        for &i in &order {
            let spec = &specs[i];
            let label = spec
                .from
                .map_or_else(|| "initial".to_owned(), |m| format!("{m}-01"));
            if spec.crosswalk {
                let base = sets
                    .iter()
                    .rposition(|v| v.crosswalk.is_none())
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "crosswalk {} maps old units, but no polygon boundary set starts before it",
                            spec.path.display()
                        ))
                    })?;
                let (b, c) = load_crosswalk(&spec.path, base, &sets[base].boundaries)?;
                sets.push(Vintage {
                    label,
                    from: spec.from,
                    boundaries: b,
                    crosswalk: Some(c),
                    path: spec.path.clone(),
                });
            } else {
                let b = Boundaries::load(&spec.path, levels[i].clone())?;
                sets.push(Vintage {
                    label,
                    from: spec.from,
                    boundaries: b,
                    crosswalk: None,
                    path: spec.path.clone(),
                });
            }
        }
        if sets.first().is_some_and(|v| v.crosswalk.is_some()) {
            return Err(Error::Config(
                "the earliest boundary set must be polygons; a crosswalk maps from it".to_owned(),
            ));
        }
        Ok(Self { sets })
    }

    /// The set in force in a month (the first one before any other starts).
    #[must_use]
    pub fn in_force(&self, month: Month) -> usize {
        self.sets
            .iter()
            .rposition(|v| v.from.is_some_and(|f| f <= month))
            .unwrap_or(0)
    }

    /// The sets a view reports, in output order.
    #[must_use]
    pub fn view_sets(&self, view: View, last_month: Option<Month>) -> Vec<usize> {
        let last = self.sets.len() - 1;
        match view {
            View::Dated => {
                let mut v: Vec<usize> = (0..=last).collect();
                if let Some(m) = last_month {
                    v.retain(|&i| i <= self.in_force(m));
                }
                v
            }
            View::Old => vec![0],
            View::New => vec![last],
            View::Both if last == 0 => vec![0],
            View::Both => vec![0, last],
        }
    }

    /// The set whose units villages, gaps and the plan use: the one in force
    /// in the window's last month (dated), else the view's last.
    #[must_use]
    pub fn report_set(&self, view: View, last_month: Option<Month>) -> usize {
        match view {
            View::Dated => last_month.map_or(self.sets.len() - 1, |m| self.in_force(m)),
            View::Old => 0,
            View::New | View::Both => self.sets.len() - 1,
        }
    }

    /// Polygon locators, one per set (`None` for crosswalk sets).
    #[must_use]
    pub fn locators(&self, snap_m: f64) -> Vec<Option<Locator<'_>>> {
        self.sets
            .iter()
            .map(|v| {
                v.crosswalk
                    .is_none()
                    .then(|| Locator::new(&v.boundaries, snap_m))
            })
            .collect()
    }

    /// Places a point in every set.
    #[must_use]
    pub fn place_all(&self, locators: &[Option<Locator<'_>>], lon: f64, lat: f64) -> Places {
        self.place_all_in(locators, None, lon, lat)
    }

    /// Places a point of H3 cell `cell` in every set: the locators use the
    /// cells they learned ([`Locator::learn_cells`]); the result is the same
    /// as [`Vintages::place_all`].
    #[must_use]
    pub fn place_all_in(
        &self,
        locators: &[Option<Locator<'_>>],
        cell: Option<h3o::CellIndex>,
        lon: f64,
        lat: f64,
    ) -> Places {
        self.place_all_cached(locators, cell, lon, lat).0
    }

    /// As [`Vintages::place_all_in`], and whether every locator had learned
    /// the cell (when not, the caller teaches it for the points to come).
    #[must_use]
    pub fn place_all_cached(
        &self,
        locators: &[Option<Locator<'_>>],
        cell: Option<h3o::CellIndex>,
        lon: f64,
        lat: f64,
    ) -> (Places, bool) {
        self.place_all_with(locators, lon, lat, |_, loc| match cell {
            Some(c) => loc.locate_cached(c, lon, lat),
            None => (loc.locate(lon, lat), true),
        })
    }

    /// As [`Vintages::place_all_cached`] for a point of `cell`, with the
    /// first sets' cell-table values for the cell already looked up
    /// ([`Locator::cell_value`]), as the memo of hexagons keeps them beside
    /// the cell; sets beyond `values` look the cell up.
    #[must_use]
    pub fn place_all_valued(
        &self,
        locators: &[Option<Locator<'_>>],
        cell: h3o::CellIndex,
        values: &[u32],
        lon: f64,
        lat: f64,
    ) -> (Places, bool) {
        self.place_all_with(locators, lon, lat, |v, loc| match values.get(v) {
            Some(&value) => loc.locate_by_value(value, lon, lat),
            None => loc.locate_cached(cell, lon, lat),
        })
    }

    /// Places a point in every set, each polygon set's locator asked by
    /// `locate` (set index, locator → placement, whether the cell was learned).
    fn place_all_with(
        &self,
        locators: &[Option<Locator<'_>>],
        lon: f64,
        lat: f64,
        locate: impl Fn(usize, &Locator<'_>) -> (Option<Placement>, bool),
    ) -> (Places, bool) {
        let mut known = true;
        let mut out = Places::new();
        for (i, (v, loc)) in self.sets.iter().zip(locators).enumerate() {
            let located = loc.as_ref().map(|loc| {
                let (placed, learned) = locate(i, loc);
                known &= learned;
                placed
            });
            let p = match (located, &v.crosswalk) {
                (Some(located), _) => match located {
                    Some(Placement::Inside(u)) => Place {
                        unit: u,
                        kind: PlaceKind::Inside,
                        snapped_m: 0.0,
                        old_unit: NO_UNIT,
                    },
                    Some(Placement::Snapped(u, d)) => Place {
                        unit: u,
                        kind: PlaceKind::Snapped,
                        snapped_m: d,
                        old_unit: NO_UNIT,
                    },
                    None => Place::OUTSIDE,
                },
                (None, Some(c)) => {
                    let base = out[c.base];
                    if base.unit == NO_UNIT {
                        Place::OUTSIDE
                    } else {
                        let (unit, kind) = c.map(base.unit, lon, lat);
                        Place {
                            unit,
                            kind: if kind == PlaceKind::Inside {
                                base.kind
                            } else {
                                kind
                            },
                            snapped_m: base.snapped_m,
                            old_unit: base.unit,
                        }
                    }
                }
                (None, None) => Place::OUTSIDE,
            };
            out.push(p);
        }
        (out, known)
    }

    /// A finest unit's reference point: its polygon's interior point, or the
    /// crosswalk's centre.
    #[must_use]
    pub fn unit_centre(&self, v: usize, unit: u32) -> Option<(f64, f64)> {
        use geo::InteriorPoint;
        let set = &self.sets[v];
        match &set.crosswalk {
            Some(c) => c.centres.get(unit as usize).copied(),
            None => set.boundaries.shapes[unit as usize]
                .interior_point()
                .map(|p| (p.x(), p.y())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let s: VintageSpec = "2025-07-01=new.geojson".parse().expect("valid");
        assert_eq!(s.from, Some("2025-07".parse().expect("month")));
        assert_eq!(s.path, PathBuf::from("new.geojson"));
        let s: VintageSpec = "2025-07=new.geojson".parse().expect("valid");
        assert_eq!(s.from, Some("2025-07".parse().expect("month")));
        let s: VintageSpec = "communes.geojson".parse().expect("valid");
        assert_eq!((s.from, s.path), (None, PathBuf::from("communes.geojson")));
        // A path with '=' that is not a date stays a path.
        let s: VintageSpec = "a=b.geojson".parse().expect("valid");
        assert_eq!((s.from, s.path), (None, PathBuf::from("a=b.geojson")));
        let e = "2025-07-15=new.geojson"
            .parse::<VintageSpec>()
            .expect_err("mid-month");
        assert!(e.to_string().contains("2025-07-01"), "{e}");
        assert!("2025-13-01=x".parse::<VintageSpec>().is_err());
        // Not a date: a path with '=' (this one crashed the parser before; found by fuzzing).
        let s: VintageSpec = "2125-ᛛgn=".parse().expect("a path");
        assert_eq!(s.from, None);
    }

    #[test]
    fn views() {
        assert_eq!("BOTH".parse::<View>().expect("valid"), View::Both);
        assert!("current".parse::<View>().is_err());
    }
}
