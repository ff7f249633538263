//! Administrative units: a GeoJSON layer of the finest units whose properties
//! carry the whole hierarchy, described by a level spec.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use geo::coordinate_position::CoordPos;
use geo::{BoundingRect, MultiPolygon};
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

use crate::codes::cmp_codes;
use crate::error::{Error, Result};
use crate::geodesy::{degree_margins, point_segment_m};
use crate::shape_check::{Repair, RepairKind, check_positions, repair_shape, unclosed_rings};

/// One level of the hierarchy: its name and the properties holding code and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelSpec {
    /// Level name (`province`).
    pub name: String,
    /// Property with the unit code (`province_id`).
    pub code_property: String,
    /// Property with the unit name (`province_vn`).
    pub name_property: String,
}

/// The hierarchy's levels, coarse to fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels(pub Vec<LevelSpec>);

/// The default levels, matching `boundaries_2009/communes.geojson`.
pub const DEFAULT_LEVELS: &str = "province=province_id:province_vn,district=district_id:district_vn,commune=commune_id:commune_vn";

impl Default for Levels {
    fn default() -> Self {
        #[allow(clippy::expect_used, reason = "constant spec, covered by tests")]
        DEFAULT_LEVELS.parse().expect("default levels parse")
    }
}

impl FromStr for Levels {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |part: &str| {
            Error::Config(format!(
                "--levels: '{part}' is not level=code_property:name_property \
                 (e.g. province=province_id:province_vn)"
            ))
        };
        let mut levels = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, props) = part.split_once('=').ok_or_else(|| bad(part))?;
            let (code, label) = props.split_once(':').ok_or_else(|| bad(part))?;
            let (name, code, label) = (name.trim(), code.trim(), label.trim());
            if name.is_empty() || code.is_empty() || label.is_empty() {
                return Err(bad(part));
            }
            if levels.iter().any(|l: &LevelSpec| l.name == name) {
                return Err(Error::Config(format!(
                    "--levels: level '{name}' is named twice"
                )));
            }
            levels.push(LevelSpec {
                name: name.to_owned(),
                code_property: code.to_owned(),
                name_property: label.to_owned(),
            });
        }
        if levels.is_empty() {
            return Err(Error::Config(
                "--levels is empty; give at least one level".to_owned(),
            ));
        }
        Ok(Self(levels))
    }
}

/// An administrative unit at some level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Code, verbatim (`"04051355"` stays zero-padded).
    pub code: String,
    /// Name.
    pub name: String,
    /// Index of the parent unit in the next-coarser level.
    pub parent: Option<u32>,
}

/// Every unit of every level, and the polygons of the finest units.
#[derive(Debug)]
pub struct Boundaries {
    /// Level specs, coarse to fine.
    pub levels: Levels,
    /// Units per level, each level sorted by code.
    pub units: Vec<Vec<Unit>>,
    /// Polygons of the finest units, by finest-unit index.
    pub shapes: Vec<MultiPolygon<f64>>,
    /// Non-fatal problems found while loading (e.g. a unit without a name).
    pub warnings: Vec<String>,
}

/// A property as a code or name string: strings verbatim, integers without
/// a fractional part, other numbers as JSON writes them.
fn property_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        serde_json::Value::Number(n) => Some(
            n.as_i64()
                .map(|i| i.to_string())
                .or_else(|| n.as_u64().map(|u| u.to_string()))
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| format!("{f:.0}"))
                })
                .unwrap_or_else(|| n.to_string()),
        ),
        _ => None,
    }
}

/// Parses a GeoJSON FeatureCollection (`origin` names it in messages).
///
/// # Errors
/// Not a FeatureCollection.
pub fn parse_feature_collection(text: &str, origin: &Path) -> Result<geojson::FeatureCollection> {
    serde_json::from_str(text).map_err(|source| Error::Json {
        path: origin.to_owned(),
        source,
    })
}

/// Reads a GeoJSON FeatureCollection from a file.
///
/// # Errors
/// The file cannot be read or is not a FeatureCollection.
pub fn read_feature_collection(path: &Path) -> Result<geojson::FeatureCollection> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_feature_collection(&text, path)
}

/// Converts a feature's geometry to a multipolygon, checked and repaired
/// ([`crate::shape_check`]): returns the shape and the repairs made.
fn feature_shape(
    path: &Path,
    index: usize,
    f: &geojson::Feature,
) -> Result<(MultiPolygon<f64>, Vec<Repair>)> {
    let err = |message: String| Error::Feature {
        path: path.to_owned(),
        index,
        message,
    };
    let Some(g) = &f.geometry else {
        return Err(err(
            "has no geometry; every unit needs a Polygon or MultiPolygon".to_owned(),
        ));
    };
    let polygons: Vec<Vec<&[geojson::Position]>> = match &g.value {
        geojson::GeometryValue::Polygon { coordinates } => {
            vec![coordinates.iter().map(Vec::as_slice).collect()]
        }
        geojson::GeometryValue::MultiPolygon { coordinates } => coordinates
            .iter()
            .map(|poly| poly.iter().map(Vec::as_slice).collect())
            .collect(),
        other => {
            return Err(err(format!(
                "is a {}, not a Polygon or MultiPolygon",
                other.type_name()
            )));
        }
    };
    if polygons
        .iter()
        .all(|rings| rings.iter().all(|r| r.is_empty()))
    {
        return Err(err(
            "has an empty geometry (no positions); give the unit its polygon or remove the feature"
                .to_owned(),
        ));
    }
    let multi = matches!(g.value, geojson::GeometryValue::MultiPolygon { .. });
    let mut repairs = Vec::new();
    for (k, rings) in polygons.iter().enumerate() {
        // The geojson crate's conversion indexes x and y without checking: a
        // position with fewer than two numbers must be an error here (found by fuzzing).
        let short = rings.iter().enumerate().find_map(|(ri, ring)| {
            ring.iter().position(|p| p.as_slice().len() < 2).map(|pi| {
                format!("ring {ri}, position {pi} has fewer than two coordinates; write [lon, lat]")
            })
        });
        if let Some(m) = short {
            return Err(err(if multi {
                format!("polygon {k}, {m}")
            } else {
                m
            }));
        }
        if rings.first().is_some_and(|r| r.is_empty()) {
            return Err(err(format!(
                "polygon {k} has an empty exterior ring; give it positions or remove it"
            )));
        }
        check_positions(rings, k).map_err(err)?;
        for ri in unclosed_rings(rings) {
            repairs.push(Repair {
                kind: RepairKind::UnclosedRing,
                detail: format!("polygon {k}, ring {ri}"),
            });
        }
    }
    let shape = match &g.value {
        geojson::GeometryValue::Polygon { .. } => geo::Polygon::try_from(&g.value)
            .map(|p| MultiPolygon(vec![p]))
            .map_err(|e| err(format!("bad Polygon: {e}")))?,
        _ => MultiPolygon::try_from(&g.value).map_err(|e| err(format!("bad MultiPolygon: {e}")))?,
    };
    let (shape, more) = repair_shape(shape).map_err(err)?;
    repairs.extend(more);
    Ok((shape, repairs))
}

/// Repair warnings of one kind named one by one per file; the rest are counted.
const MAX_REPAIR_WARNINGS: usize = 20;

/// Turns the repairs of a file into warnings: per kind, the first
/// [`MAX_REPAIR_WARNINGS`] by feature, then a count.
fn repair_warnings(path: &Path, repairs: &[(usize, String, Repair)]) -> Vec<String> {
    let mut out = Vec::new();
    for kind in RepairKind::ALL {
        let of_kind: Vec<&(usize, String, Repair)> =
            repairs.iter().filter(|r| r.2.kind == kind).collect();
        for (index, code, r) in of_kind.iter().take(MAX_REPAIR_WARNINGS) {
            out.push(format!(
                "{}: feature {index} (unit '{code}'), {}: {}",
                path.display(),
                r.detail,
                kind.describe()
            ));
        }
        if of_kind.len() > MAX_REPAIR_WARNINGS {
            out.push(format!(
                "{}: {} more features where {}",
                path.display(),
                of_kind.len() - MAX_REPAIR_WARNINGS,
                kind.describe()
            ));
        }
    }
    out
}

impl Boundaries {
    /// Loads the finest units from a GeoJSON file.
    ///
    /// Features sharing a finest code are merged into one unit. A code must
    /// have one parent; a missing property is an error naming the feature.
    ///
    /// # Errors
    /// Unreadable file, a feature without a usable geometry or property, or an
    /// inconsistent hierarchy.
    pub fn load(path: &Path, levels: Levels) -> Result<Self> {
        let fc = read_feature_collection(path)?;
        Self::from_features(path, &fc.features, levels)
    }

    /// Builds from already-parsed features (`path` is used in messages).
    ///
    /// # Errors
    /// As [`Boundaries::load`].
    pub fn from_features(
        path: &Path,
        features: &[geojson::Feature],
        levels: Levels,
    ) -> Result<Self> {
        let depth = levels.0.len();
        if features.is_empty() {
            return Err(Error::Layer {
                path: path.to_owned(),
                message: "has no features".to_owned(),
            });
        }
        // Per level: code -> (name, parent code), in first-seen order.
        let mut seen: Vec<HashMap<String, (String, Option<String>)>> = vec![HashMap::new(); depth];
        let mut warnings = Vec::new();
        let mut finest_shapes: HashMap<String, Vec<geo::Polygon<f64>>> = HashMap::new();
        let mut repairs: Vec<(usize, String, Repair)> = Vec::new();
        // Finest code -> features carrying it (a unit split over features is
        // legal, but often a copy-paste mistake: say so).
        let mut features_of: HashMap<String, Vec<usize>> = HashMap::new();
        // Geometry checks and repairs in parallel; errors still surface in
        // feature order, as the loop below meets them.
        let checked: Vec<Result<(MultiPolygon<f64>, Vec<Repair>)>> = {
            use rayon::prelude::*;
            features
                .par_iter()
                .enumerate()
                .map(|(index, f)| feature_shape(path, index, f))
                .collect()
        };
        for ((index, f), checked) in features.iter().enumerate().zip(checked) {
            let (shape, fixed) = checked?;
            let mut parent: Option<String> = None;
            for (li, level) in levels.0.iter().enumerate() {
                let get = |prop: &str| {
                    f.property(prop).and_then(property_text).ok_or_else(|| {
                        let mut have: Vec<&str> =
                            f.properties.iter().flat_map(|p| p.keys().map(String::as_str)).collect();
                        have.sort_unstable();
                        Error::Feature {
                            path: path.to_owned(),
                            index,
                            message: format!(
                                "no usable property '{prop}' for level '{}' (properties: {}); fix --levels",
                                level.name,
                                have.join(", ")
                            ),
                        }
                    })
                };
                let code = get(&level.code_property)?;
                // A unit without a name is kept (its code identifies it), with a warning.
                let name = get(&level.name_property).unwrap_or_else(|_| {
                    warnings.push(format!(
                        "{}: feature {index}: {} '{code}' has no name in '{}'; kept with an empty name",
                        path.display(),
                        level.name,
                        level.name_property
                    ));
                    String::new()
                });
                match seen[li].get(&code) {
                    Some((_, p)) if *p != parent => {
                        return Err(Error::Layer {
                            path: path.to_owned(),
                            message: format!(
                                "{} code '{code}' appears under two parents ('{}' and '{}'); \
                                 codes must be unique within a level",
                                level.name,
                                p.as_deref().unwrap_or(""),
                                parent.as_deref().unwrap_or("")
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        seen[li].insert(code.clone(), (name, parent.clone()));
                    }
                }
                if li == depth - 1 {
                    repairs.extend(fixed.iter().map(|r| (index, code.clone(), r.clone())));
                    features_of.entry(code.clone()).or_default().push(index);
                    finest_shapes
                        .entry(code.clone())
                        .or_default()
                        .extend(shape.0.iter().cloned());
                }
                parent = Some(code);
            }
        }
        warnings.extend(repair_warnings(path, &repairs));
        let mut shared: Vec<(&String, &Vec<usize>)> =
            features_of.iter().filter(|(_, f)| f.len() > 1).collect();
        shared.sort_by(|a, b| a.1.cmp(b.1));
        for (code, fs) in shared.iter().take(MAX_REPAIR_WARNINGS) {
            let list: Vec<String> = fs.iter().map(ToString::to_string).collect();
            warnings.push(format!(
                "{}: features {} share the code '{code}'; their polygons were merged into one unit \
                 (if they are different units, give each its own code)",
                path.display(),
                list.join(", ")
            ));
        }
        if shared.len() > MAX_REPAIR_WARNINGS {
            warnings.push(format!(
                "{}: {} more codes shared by several features, each merged into one unit",
                path.display(),
                shared.len() - MAX_REPAIR_WARNINGS
            ));
        }
        // Sort each level by code, then resolve parents to indices.
        let mut units: Vec<Vec<Unit>> = Vec::with_capacity(depth);
        let mut index_of: Vec<HashMap<String, u32>> = Vec::with_capacity(depth);
        for (li, level_seen) in seen.into_iter().enumerate() {
            let mut codes: Vec<(String, (String, Option<String>))> =
                level_seen.into_iter().collect();
            codes.sort_by(|a, b| cmp_codes(&a.0, &b.0));
            let mut level_units = Vec::with_capacity(codes.len());
            let mut idx = HashMap::with_capacity(codes.len());
            for (i, (code, (name, parent))) in codes.into_iter().enumerate() {
                let parent = parent.map(|p| index_of[li - 1][&p]);
                #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
                idx.insert(code.clone(), i as u32);
                level_units.push(Unit { code, name, parent });
            }
            units.push(level_units);
            index_of.push(idx);
        }
        let shapes = units[depth - 1]
            .iter()
            .map(|u| MultiPolygon(finest_shapes.remove(&u.code).unwrap_or_default()))
            .collect();
        Ok(Self {
            levels,
            units,
            shapes,
            warnings,
        })
    }

    /// The finest level's units.
    #[must_use]
    pub fn finest(&self) -> &[Unit] {
        self.units.last().map_or(&[], Vec::as_slice)
    }

    /// The index, at every level, of the unit containing finest unit `finest`.
    #[must_use]
    pub fn ancestors(&self, finest: u32) -> Vec<u32> {
        let depth = self.units.len();
        let mut out = vec![0; depth];
        let mut cur = finest;
        for li in (0..depth).rev() {
            out[li] = cur;
            if let Some(p) = self.units[li][cur as usize].parent {
                cur = p;
            }
        }
        out
    }
}

/// A polygon part's bounding box, with (finest unit, part index).
type Envelope = GeomWithData<Rectangle<[f64; 2]>, (u32, u32)>;

/// Finds the finest unit of a point: containment first (overlaps: lowest
/// code), then the nearest unit within the snap distance.
#[derive(Debug)]
pub struct Locator<'a> {
    boundaries: &'a Boundaries,
    tree: RTree<Envelope>,
    snap_m: f64,
    /// H3 cell → what its points need, in one lookup: the unit of every
    /// point of an interior cell; for a cell near an edge, [`NEAR_EDGE`] and
    /// the index of its candidate parts in `edge_parts`; [`NOT_INTERIOR`]
    /// for a cell whose points take the exact test.
    cells: crate::cell_table::CellTable,
    /// Cells near an edge → the polygon parts (unit, part) whose box meets
    /// the cell's disk, sorted: a point there needs no R-tree search.
    edge_parts: Vec<Box<[(u32, u32)]>>,
    /// Cells near an edge → their window in squares, most with an answer
    /// (same index as `edge_parts`).
    edge_grids: Vec<EdgeGrid>,
    /// Bounding box of each part: (min x, min y, max x, max y), per unit.
    part_boxes: Vec<Vec<[f64; 4]>>,
    /// Each part's rings with their edges listed by band of latitude.
    banded: Vec<Vec<BandedPolygon>>,
}

/// Rings of fewer vertices are tested edge by edge (geo's own test).
const BANDED_MIN_VERTICES: usize = 48;

/// A ring's edges listed by horizontal band, so that a point test reads only
/// the edges whose latitude range can hold the point's latitude. geo's
/// winding-number test skips every other edge and its answer does not depend
/// on the order of the edges it reads, so the same tests on this subset,
/// in the same arithmetic, give its answer exactly.
#[derive(Debug)]
struct BandedRing {
    y0: f64,
    /// Bands per degree of latitude.
    scale: f64,
    bands: usize,
    /// Per band, `edges[starts[b]..starts[b + 1]]`: indices of edge starts.
    starts: Vec<u32>,
    edges: Vec<u32>,
}

impl BandedRing {
    /// `None` for a small or flat ring (tested edge by edge).
    fn new(ring: &geo::LineString<f64>) -> Option<Self> {
        let n = ring.0.len();
        if n < BANDED_MIN_VERTICES || u32::try_from(n).is_err() {
            return None;
        }
        let (lo, hi) = ring
            .0
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| {
                (lo.min(c.y), hi.max(c.y))
            });
        if hi <= lo || !(hi - lo).is_finite() {
            return None;
        }
        let bands = (n / 8).clamp(1, 256);
        #[allow(clippy::cast_precision_loss, reason = "at most 256 bands")]
        let mut banded = Self {
            y0: lo,
            scale: bands as f64 / (hi - lo),
            bands,
            starts: vec![0; bands + 1],
            edges: Vec::new(),
        };
        let span = |i: usize| {
            let (a, b) = (ring.0[i].y, ring.0[i + 1].y);
            banded.band(a.min(b))..=banded.band(a.max(b))
        };
        let spans: Vec<_> = (0..n - 1).map(span).collect();
        for r in &spans {
            for b in r.clone() {
                banded.starts[b + 1] += 1;
            }
        }
        for b in 1..=bands {
            banded.starts[b] += banded.starts[b - 1];
        }
        let mut next = banded.starts.clone();
        banded.edges = vec![0; banded.starts[bands] as usize];
        for (i, r) in spans.into_iter().enumerate() {
            for b in r {
                #[allow(clippy::cast_possible_truncation, reason = "n fits u32")]
                {
                    banded.edges[next[b] as usize] = i as u32;
                }
                next[b] += 1;
            }
        }
        Some(banded)
    }

    /// The band of a latitude: monotonic in `y` (a subtraction, a product by
    /// a positive number and a floor each keep order), so an edge whose
    /// range holds `y` is listed in the band of `y`.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "saturating floor, then clamped"
    )]
    fn band(&self, y: f64) -> usize {
        (((y - self.y0) * self.scale) as usize).min(self.bands - 1)
    }

    /// Indices of the edges whose latitude range meets [lo, hi], among
    /// others (an edge over several bands is listed once per band): an
    /// edge whose range holds some y in [lo, hi] is in the band of that y,
    /// which lies between the bands of lo and hi.
    fn edges_meeting(&self, lo: f64, hi: f64) -> &[u32] {
        let (first, last) = (self.band(lo), self.band(hi));
        if first > last {
            return &[];
        }
        &self.edges[self.starts[first] as usize..self.starts[last + 1] as usize]
    }

    /// geo's `coord_pos_relative_to_ring` over the edges of `c`'s band.
    fn position(&self, ring: &geo::LineString<f64>, c: geo::Coord<f64>) -> CoordPos {
        use geo::kernels::{Kernel, Orientation};
        type Ker = <f64 as geo::GeoNum>::Ker;
        let between = |x: f64, a: f64, b: f64| {
            if a < b {
                x >= a && x <= b
            } else {
                x >= b && x <= a
            }
        };
        let band = self.band(c.y);
        let mut winding = 0i64;
        for &i in &self.edges[self.starts[band] as usize..self.starts[band + 1] as usize] {
            let (start, end) = (ring.0[i as usize], ring.0[i as usize + 1]);
            if start.y <= c.y {
                if end.y >= c.y {
                    let o = Ker::orient2d(start, end, c);
                    if o == Orientation::CounterClockwise && end.y != c.y {
                        winding += 1;
                    } else if o == Orientation::Collinear && between(c.x, start.x, end.x) {
                        return CoordPos::OnBoundary;
                    }
                }
            } else if end.y <= c.y {
                let o = Ker::orient2d(start, end, c);
                if o == Orientation::Clockwise {
                    winding -= 1;
                } else if o == Orientation::Collinear && between(c.x, start.x, end.x) {
                    return CoordPos::OnBoundary;
                }
            }
        }
        if winding == 0 {
            CoordPos::Outside
        } else {
            CoordPos::Inside
        }
    }
}

/// A polygon part's rings, banded when large.
#[derive(Debug)]
struct BandedPolygon {
    exterior: Option<BandedRing>,
    holes: Vec<Option<BandedRing>>,
}

impl BandedPolygon {
    /// Calls `f` with every edge of the polygon's rings whose latitude range
    /// meets [lo, hi], and with some others (banded rings read only their
    /// bands; small rings read every edge).
    fn for_edges_meeting(
        &self,
        poly: &geo::Polygon<f64>,
        lo: f64,
        hi: f64,
        mut f: impl FnMut(geo::Line<f64>) -> std::ops::ControlFlow<()>,
    ) -> std::ops::ControlFlow<()> {
        let rings = std::iter::once((&self.exterior, poly.exterior()))
            .chain(self.holes.iter().zip(poly.interiors()));
        for (banded, ring) in rings {
            match banded {
                Some(b) => {
                    for &i in b.edges_meeting(lo, hi) {
                        let i = i as usize;
                        f(geo::Line::new(ring.0[i], ring.0[i + 1]))?;
                    }
                }
                None => {
                    for seg in ring.lines() {
                        f(seg)?;
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn new(poly: &geo::Polygon<f64>) -> Self {
        Self {
            exterior: BandedRing::new(poly.exterior()),
            holes: poly.interiors().iter().map(BandedRing::new).collect(),
        }
    }

    /// `poly.intersects(&c)` (inside or on the boundary), as geo decides it.
    fn intersects(&self, poly: &geo::Polygon<f64>, c: geo::Coord<f64>) -> bool {
        let ring_position = |banded: &Option<BandedRing>, ring: &geo::LineString<f64>| match banded
        {
            Some(b) => b.position(ring, c),
            None => geo::coordinate_position::coord_pos_relative_to_ring(c, ring),
        };
        match ring_position(&self.exterior, poly.exterior()) {
            CoordPos::Outside => false,
            CoordPos::OnBoundary => true,
            CoordPos::Inside => {
                for (banded, hole) in self.holes.iter().zip(poly.interiors()) {
                    match ring_position(banded, hole) {
                        CoordPos::Outside => {}
                        CoordPos::OnBoundary => return true,
                        CoordPos::Inside => return false,
                    }
                }
                true
            }
        }
    }
}

/// Cells classified by [`Locator::classify_new`], to be remembered by
/// [`Locator::insert_classified`].
#[derive(Debug)]
pub struct ClassifiedCells(Vec<(h3o::CellIndex, CellClass)>);

impl ClassifiedCells {
    /// The cells classified.
    #[must_use]
    pub fn cells(&self) -> Vec<h3o::CellIndex> {
        self.0.iter().map(|c| c.0).collect()
    }
}

/// A cell's unit (or [`NOT_INTERIOR`]) and, near an edge, the polygon parts
/// (unit, part) a point in it may lie in, with its grid of squares.
type CellClass = (u32, Option<(Vec<(u32, u32)>, EdgeGrid)>);

/// Squares per side of a near-edge cell's grid.
const GRID: usize = 16;

/// Distinct answers one grid holds; squares of further units take the test.
const GRID_UNITS: usize = 8;

/// A grid square without an answer of its own (an edge comes near it, or
/// its points lie in no part: snapping), and a point outside the grid.
const SLOW_SQUARE: u8 = u8::MAX;

/// A near-edge cell's window cut into [`GRID`] × [`GRID`] squares. A square
/// that no polygon edge comes near lies on one side of every boundary, so
/// all its points are inside the same parts (geo's test is exact), and the
/// answer of its centre (the lowest unit holding it) is theirs. A
/// boundary crosses few squares: most points near an edge need no polygon
/// test either. 64-byte aligned: a lookup reads the first cache line and
/// the one of its square.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct EdgeGrid {
    x0: f64,
    y0: f64,
    /// Squares per degree.
    scale: f64,
    /// A square's answer is `units[square]` ([`SLOW_SQUARE`]: none).
    units: [u32; GRID_UNITS],
    squares: [u8; GRID * GRID],
}

/// Squares are widened by this (degrees) before asking whether an edge
/// meets them: far above the rounding of any test here (1e-14 degrees),
/// far below a square (tens of metres at resolution 8).
const SQUARE_MARGIN: f64 = 1e-9;

/// Points this close to the grid's rim (in squares) take the test: the
/// grid does not answer for what lies beyond it.
const GRID_RIM: f64 = 1e-3;

impl EdgeGrid {
    /// The answer of the square of (x, y), if it has one.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "both are in 0..GRID, checked before"
    )]
    fn answer(&self, x: f64, y: f64) -> Option<u32> {
        let fx = (x - self.x0) * self.scale;
        let fy = (y - self.y0) * self.scale;
        #[allow(clippy::cast_precision_loss, reason = "GRID is small")]
        let far = GRID as f64 - GRID_RIM;
        // NaN fails every comparison, so it takes the test too.
        if !(fx >= GRID_RIM && fx < far && fy >= GRID_RIM && fy < far) {
            return None;
        }
        let square = self.squares[fy as usize * GRID + fx as usize];
        self.units.get(usize::from(square)).copied()
    }
}

/// Whether segment a–b meets the box [x0, x1] × [y0, y1]: their boxes
/// overlap and the box's corners are not all on one side of the line
/// (separating axes of a segment and a box).
fn segment_meets_box(a: geo::Coord<f64>, b: geo::Coord<f64>, bx: [f64; 4]) -> bool {
    let [x0, y0, x1, y1] = bx;
    if a.x.max(b.x) < x0 || a.x.min(b.x) > x1 || a.y.max(b.y) < y0 || a.y.min(b.y) > y1 {
        return false;
    }
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let side = |x: f64, y: f64| dx * (y - a.y) - dy * (x - a.x);
    let s = [side(x0, y0), side(x1, y0), side(x0, y1), side(x1, y1)];
    !(s.iter().all(|&v| v > 0.0) || s.iter().all(|&v| v < 0.0))
}

/// A cell that is not wholly inside one unit and has no list of parts
/// (too coarse, or across the antimeridian).
const NOT_INTERIOR: u32 = u32::MAX;

/// Flag of a cache value that indexes `edge_parts` (unit indices stay below it).
const NEAR_EDGE: u32 = 1 << 31;

/// How a point was placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// Inside (or on the edge of) the unit's polygon.
    Inside(u32),
    /// Outside every polygon; this unit's edge is the nearest, at this distance.
    Snapped(u32, f64),
}

impl Placement {
    /// The finest unit.
    #[must_use]
    pub const fn unit(self) -> u32 {
        match self {
            Self::Inside(u) | Self::Snapped(u, _) => u,
        }
    }
}

impl<'a> Locator<'a> {
    /// Indexes the polygons' bounding boxes.
    #[must_use]
    pub fn new(boundaries: &'a Boundaries, snap_m: f64) -> Self {
        let mut items = Vec::new();
        for (i, shape) in boundaries.shapes.iter().enumerate() {
            for (k, poly) in shape.0.iter().enumerate() {
                if let Some(r) = poly.bounding_rect() {
                    #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
                    items.push(GeomWithData::new(
                        Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                        (i as u32, k as u32),
                    ));
                }
            }
        }
        Self {
            boundaries,
            tree: RTree::bulk_load(items),
            snap_m: snap_m.max(0.0),
            cells: crate::cell_table::CellTable::new(),
            edge_parts: Vec::new(),
            edge_grids: Vec::new(),
            banded: {
                use rayon::prelude::*;
                boundaries
                    .shapes
                    .par_iter()
                    .map(|shape| shape.0.iter().map(BandedPolygon::new).collect())
                    .collect()
            },
            part_boxes: boundaries
                .shapes
                .iter()
                .map(|shape| {
                    shape
                        .0
                        .iter()
                        .map(|p| {
                            p.bounding_rect().map_or([f64::NAN; 4], |r| {
                                [r.min().x, r.min().y, r.max().x, r.max().y]
                            })
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// Classifies the cells not seen before (in parallel), so that
    /// [`Locator::locate_in`] can place their points without a polygon test.
    ///
    /// A cell is interior to unit U when its centre lies in U and no edge of
    /// any polygon comes within 1.1 times the cell's largest centre–vertex
    /// distance (planar, in degrees, as the polygon test is): the disk of
    /// that radius then holds the whole cell, and no boundary crosses it, so
    /// every point in it gets the answer of the centre (overlaps included).
    pub fn learn_cells(&mut self, cells: &[h3o::CellIndex]) {
        let classified = self.classify_new(cells);
        self.insert_classified(classified);
    }

    /// The first half of [`Locator::learn_cells`], which only reads the
    /// locator: the cells not learned yet, classified (in parallel).
    #[must_use]
    pub fn classify_new(&self, cells: &[h3o::CellIndex]) -> ClassifiedCells {
        use rayon::prelude::*;
        let mut new: Vec<h3o::CellIndex> = cells
            .iter()
            .copied()
            .filter(|&c| self.cells.get(c).is_none())
            .collect();
        new.sort_unstable();
        new.dedup();
        ClassifiedCells(new.par_iter().map(|&c| (c, self.classify(c))).collect())
    }

    /// The second half of [`Locator::learn_cells`]: remembers classified
    /// cells (those learned meanwhile are kept as they are).
    pub fn insert_classified(&mut self, classified: ClassifiedCells) {
        let mut values = Vec::with_capacity(classified.0.len());
        for (cell, (unit, parts)) in classified.0 {
            if self.cells.get(cell).is_some() {
                continue;
            }
            let value = match parts {
                // Unit indices and part lists stay below the flag (2^31 of
                // either would not fit in memory anyway).
                #[allow(clippy::cast_possible_truncation, reason = "see above")]
                Some((parts, grid))
                    if self.edge_parts.len()
                        < (crate::cell_table::RESERVED & !NEAR_EDGE) as usize =>
                {
                    self.edge_parts.push(parts.into_boxed_slice());
                    self.edge_grids.push(grid);
                    NEAR_EDGE | (self.edge_parts.len() - 1) as u32
                }
                _ => unit,
            };
            values.push((cell, value));
        }
        self.cells.insert_new(&mut values);
    }

    /// A cell's unit when it is interior; else [`NOT_INTERIOR`] and, when
    /// the cell is small enough, the parts a point in it may lie in.
    fn classify(&self, cell: h3o::CellIndex) -> CellClass {
        let (unit, window) = self.interior_unit(cell);
        if unit != NOT_INTERIOR {
            return (unit, None);
        }
        let parts = window.map(|w| {
            let mut parts: Vec<(u32, u32)> = self
                .tree
                .locate_in_envelope_intersecting(w)
                .map(|e| e.data)
                .collect();
            parts.sort_unstable();
            let grid = self.edge_grid(&w, &parts);
            (parts, grid)
        });
        (NOT_INTERIOR, parts)
    }

    /// The grid of a near-edge cell's (square) window: squares that an edge
    /// of a candidate part meets are left without an answer; the others,
    /// in connected regions, each take the answer of one of their centres
    /// (every square of a region is on the same side of every boundary).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "square indices are clamped to 0..GRID"
    )]
    fn edge_grid(&self, window: &AABB<[f64; 2]>, parts: &[(u32, u32)]) -> EdgeGrid {
        let [x0, y0] = window.lower();
        let side = (window.upper()[0] - x0).max(window.upper()[1] - y0);
        let step = side / GRID as f64;
        let m = SQUARE_MARGIN;
        let square_of = |v: f64, origin: f64| {
            ((v - origin) / step).floor().clamp(0.0, (GRID - 1) as f64) as usize
        };
        let mut near_edge = [false; GRID * GRID];
        let reach = [x0 - m, y0 - m, x0 + side + m, y0 + side + m];
        for &(u, k) in parts {
            let (u, k) = (u as usize, k as usize);
            let poly = &self.boundaries.shapes[u].0[k];
            // Edges outside the window's latitudes miss it (the box test
            // below would skip them): only the bands of the window are read.
            let marked = self.banded[u][k].for_edges_meeting(poly, reach[1], reach[3], |seg| {
                let (a, b) = (seg.start, seg.end);
                if !segment_meets_box(a, b, reach) {
                    return std::ops::ControlFlow::Continue(());
                }
                let (i0, i1) = (
                    square_of(a.x.min(b.x) - m, x0),
                    square_of(a.x.max(b.x) + m, x0),
                );
                let (j0, j1) = (
                    square_of(a.y.min(b.y) - m, y0),
                    square_of(a.y.max(b.y) + m, y0),
                );
                for j in j0..=j1 {
                    for i in i0..=i1 {
                        let sx = x0 + i as f64 * step;
                        let sy = y0 + j as f64 * step;
                        if !near_edge[j * GRID + i]
                            && segment_meets_box(
                                a,
                                b,
                                [sx - m, sy - m, sx + step + m, sy + step + m],
                            )
                        {
                            near_edge[j * GRID + i] = true;
                        }
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
            debug_assert!(marked.is_continue(), "marking reads every edge");
        }
        let mut grid = EdgeGrid {
            x0,
            y0,
            scale: GRID as f64 / side,
            units: [NOT_INTERIOR; GRID_UNITS],
            squares: [SLOW_SQUARE; GRID * GRID],
        };
        let mut answers = 0;
        let mut seen = near_edge;
        let mut stack = Vec::new();
        for start in 0..GRID * GRID {
            if seen[start] {
                continue;
            }
            // The region's answer, at the centre of its first square.
            let (cx, cy) = (
                x0 + ((start % GRID) as f64 + 0.5) * step,
                y0 + ((start / GRID) as f64 + 0.5) * step,
            );
            let unit = self.first_part_holding(parts, cx, cy);
            let slot =
                unit.and_then(
                    |u| match grid.units[..answers].iter().position(|&v| v == u) {
                        Some(s) => Some(s),
                        None if answers < GRID_UNITS => {
                            grid.units[answers] = u;
                            answers += 1;
                            Some(answers - 1)
                        }
                        None => None,
                    },
                );
            let mark = slot.map_or(SLOW_SQUARE, |s| s as u8);
            seen[start] = true;
            stack.push(start);
            while let Some(q) = stack.pop() {
                grid.squares[q] = mark;
                let (i, j) = (q % GRID, q / GRID);
                let mut visit = |n: usize| {
                    if !seen[n] {
                        seen[n] = true;
                        stack.push(n);
                    }
                };
                if i > 0 {
                    visit(q - 1);
                }
                if i + 1 < GRID {
                    visit(q + 1);
                }
                if j > 0 {
                    visit(q - GRID);
                }
                if j + 1 < GRID {
                    visit(q + GRID);
                }
            }
        }
        grid
    }

    /// The lowest unit among `parts` (sorted) whose part holds the point.
    fn first_part_holding(&self, parts: &[(u32, u32)], lon: f64, lat: f64) -> Option<u32> {
        let p = geo::coord! { x: lon, y: lat };
        parts.iter().find_map(|&(u, k)| {
            let b = self.part_boxes[u as usize][k as usize];
            (lon >= b[0] && lon <= b[2] && lat >= b[1] && lat <= b[3] && self.part_holds(u, k, p))
                .then_some(u)
        })
    }

    /// The cell's unit when interior, else [`NOT_INTERIOR`]; with the
    /// square window holding the cell's disk, when the cell is small.
    fn interior_unit(&self, cell: h3o::CellIndex) -> (u32, Option<AABB<[f64; 2]>>) {
        let centre = h3o::LatLng::from(cell);
        let (cx, cy) = (centre.lng(), centre.lat());
        let reach = cell
            .boundary()
            .iter()
            .map(|v| (v.lng() - cx).hypot(v.lat() - cy))
            .fold(0.0_f64, f64::max);
        // The cell's true edges bow from the chords between its vertices by
        // well under a metre at resolution 8; 10 % (tens of metres) covers it.
        let r = reach * 1.1;
        if !r.is_finite() || r > 1.0 {
            return (NOT_INTERIOR, None); // across the antimeridian, or very coarse cells
        }
        let window = AABB::from_corners([cx - r, cy - r], [cx + r, cy + r]);
        let Some(Placement::Inside(unit)) = self.locate_exact(cx, cy) else {
            return (NOT_INTERIOR, Some(window));
        };
        // An edge within r of the centre has latitudes within r of it; the
        // bands read are widened far beyond the rounding of the distance, so
        // no edge the full scan would find is skipped.
        let widened = r * (1.0 + 1e-6) + 1e-12;
        for e in self.tree.locate_in_envelope_intersecting(window) {
            let (u, k) = (e.data.0 as usize, e.data.1 as usize);
            let poly = &self.boundaries.shapes[u].0[k];
            let near =
                self.banded[u][k].for_edges_meeting(poly, cy - widened, cy + widened, |seg| {
                    if planar_segment_distance2([cx, cy], seg) <= r * r {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                });
            if near.is_break() {
                return (NOT_INTERIOR, Some(window));
            }
        }
        (unit, None)
    }

    /// As [`Locator::locate`], for a point in `cell`: a cell
    /// [`Locator::learn_cells`] found interior needs no polygon test.
    #[must_use]
    pub fn locate_in(&self, cell: h3o::CellIndex, lon: f64, lat: f64) -> Option<Placement> {
        self.locate_cached(cell, lon, lat).0
    }

    /// As [`Locator::locate_in`], and whether the cell was learned: one
    /// lookup of the cell (a cache miss at national scale) serves both.
    #[must_use]
    pub fn locate_cached(
        &self,
        cell: h3o::CellIndex,
        lon: f64,
        lat: f64,
    ) -> (Option<Placement>, bool) {
        self.locate_by_value(self.cell_value(cell), lon, lat)
    }

    /// What the cell table holds for a cell: [`crate::cell_table::RESERVED`]
    /// when it has not learned it; for callers that keep it beside other
    /// data of the cell ([`Locator::locate_by_value`]).
    #[must_use]
    pub fn cell_value(&self, cell: h3o::CellIndex) -> u32 {
        self.cells.get(cell).unwrap_or(crate::cell_table::RESERVED)
    }

    /// As [`Locator::locate_cached`], with the cell's [`Locator::cell_value`]
    /// already looked up.
    #[must_use]
    pub fn locate_by_value(&self, value: u32, lon: f64, lat: f64) -> (Option<Placement>, bool) {
        let value = match value {
            crate::cell_table::RESERVED => return (self.locate(lon, lat), false),
            NOT_INTERIOR => return (self.locate(lon, lat), true),
            v if v & NEAR_EDGE == 0 => return (Some(Placement::Inside(v)), true),
            v => (v & !NEAR_EDGE) as usize,
        };
        if let Some(u) = self.edge_grids[value].answer(lon, lat) {
            return (Some(Placement::Inside(u)), true);
        }
        // The parts whose box holds the point are those the R-tree would
        // return (the point is in the cell's disk, inside the window); sorted
        // by unit, so the first hit is the lowest code.
        match self.first_part_holding(&self.edge_parts[value], lon, lat) {
            Some(u) => (Some(Placement::Inside(u)), true),
            None => (self.locate(lon, lat), true), // outside every polygon: snapping
        }
    }

    /// Whether part `k` of unit `u` holds the point (inside or on its edge).
    fn part_holds(&self, u: u32, k: u32, p: geo::Coord<f64>) -> bool {
        let (u, k) = (u as usize, k as usize);
        self.banded[u][k].intersects(&self.boundaries.shapes[u].0[k], p)
    }

    /// The unit whose polygon contains the point (lowest code), no snapping.
    fn locate_exact(&self, lon: f64, lat: f64) -> Option<Placement> {
        let p = geo::coord! { x: lon, y: lat };
        let mut best: Option<u32> = None;
        for e in self.tree.locate_all_at_point([lon, lat]) {
            let (u, k) = e.data;
            if best.is_some_and(|b| b <= u) {
                continue;
            }
            // The part itself: a unit is hit when any of its parts holds the point.
            if self.part_holds(u, k, p) {
                best = Some(u);
            }
        }
        best.map(Placement::Inside)
    }

    /// Places a (lon, lat) point, or `None` when it is outside every unit and
    /// farther than the snap distance from all of them.
    #[must_use]
    pub fn locate(&self, lon: f64, lat: f64) -> Option<Placement> {
        // Units are sorted by code, so the lowest index containing the point wins.
        if let Some(inside) = self.locate_exact(lon, lat) {
            return Some(inside);
        }
        if self.snap_m <= 0.0 {
            return None;
        }
        let (dlon, dlat) = degree_margins(lat, self.snap_m);
        let window = AABB::from_corners([lon - dlon, lat - dlat], [lon + dlon, lat + dlat]);
        let mut nearest: Option<(f64, u32)> = None;
        let bounds = [lon - dlon, lat - dlat, lon + dlon, lat + dlat];
        for e in self.tree.locate_in_envelope_intersecting(window) {
            let u = e.data.0;
            let d = distance_within_m(&self.boundaries.shapes[u as usize], [lon, lat], bounds);
            if d <= self.snap_m && nearest.is_none_or(|(bd, bu)| d < bd || (d == bd && u < bu)) {
                nearest = Some((d, u));
            }
        }
        nearest.map(|(d, u)| Placement::Snapped(u, d))
    }
}

/// Squared planar distance (degrees²) from a point to a segment.
fn planar_segment_distance2(p: [f64; 2], seg: geo::Line<f64>) -> f64 {
    let (ax, ay, bx, by) = (seg.start.x, seg.start.y, seg.end.x, seg.end.y);
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - ax) * dx + (p[1] - ay) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (ax + t * dx - p[0], ay + t * dy - p[1]);
    qx * qx + qy * qy
}

/// Great-circle distance in metres from a point to the nearest edge of a shape.
#[must_use]
pub fn distance_to_shape_m(shape: &MultiPolygon<f64>, p: [f64; 2]) -> f64 {
    let mut best = f64::INFINITY;
    for poly in &shape.0 {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for seg in ring.lines() {
                let d = point_segment_m(p, [seg.start.x, seg.start.y], [seg.end.x, seg.end.y]);
                best = best.min(d);
            }
        }
    }
    best
}

/// As [`distance_to_shape_m`], where only distances up to the snap distance
/// matter: edges wholly outside `window` (a box holding every point within
/// that distance, [`degree_margins`]) are farther, and are skipped before
/// any trigonometry. Equal to [`distance_to_shape_m`] whenever that is
/// within the distance; above it otherwise. With detailed boundaries (500
/// vertices a commune) this was most of the cost of snapping.
fn distance_within_m(shape: &MultiPolygon<f64>, p: [f64; 2], window: [f64; 4]) -> f64 {
    let [x0, y0, x1, y1] = window;
    let mut best = f64::INFINITY;
    for poly in &shape.0 {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for seg in ring.lines() {
                let (a, b) = (seg.start, seg.end);
                if a.x.max(b.x) < x0 || a.x.min(b.x) > x1 || a.y.max(b.y) < y0 || a.y.min(b.y) > y1
                {
                    continue;
                }
                best = best.min(point_segment_m(p, [a.x, a.y], [b.x, b.y]));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_within_the_snap_window_is_the_full_distance() {
        // A comb of 400 teeth, points around it: whenever the full distance
        // is within the snap distance, the windowed one equals it; beyond,
        // the windowed one is beyond too.
        let mut ring: Vec<(f64, f64)> = Vec::new();
        for i in 0..400 {
            let x = 105.0 + f64::from(i) * 0.0005;
            ring.push((x, 21.0));
            ring.push((x + 0.00025, 21.0 + if i % 2 == 0 { 0.003 } else { 0.0001 }));
        }
        ring.push((105.2, 21.0));
        ring.push((105.2, 20.99));
        ring.push((105.0, 20.99));
        ring.push((105.0, 21.0));
        let shape = MultiPolygon::new(vec![geo::Polygon::new(ring.into(), vec![])]);
        let snap_m = 150.0;
        let mut checked = 0;
        for i in 0..2_000 {
            let lon = 104.99 + f64::from(i % 50) * 0.0045;
            let lat = 20.985 + f64::from(i / 50) * 0.0005;
            let (dlon, dlat) = degree_margins(lat, snap_m);
            let window = [lon - dlon, lat - dlat, lon + dlon, lat + dlat];
            let full = distance_to_shape_m(&shape, [lon, lat]);
            let within = distance_within_m(&shape, [lon, lat], window);
            if full <= snap_m {
                assert_eq!(within.to_bits(), full.to_bits(), "({lon}, {lat})");
                checked += 1;
            } else {
                assert!(within > snap_m, "({lon}, {lat}): {within} for {full}");
            }
        }
        assert!(checked > 200, "{checked} points within the snap distance");
    }

    fn square(code: &str, parent: &str, x0: f64, y0: f64, size: f64) -> geojson::Feature {
        let ring = vec![
            vec![x0, y0],
            vec![x0 + size, y0],
            vec![x0 + size, y0 + size],
            vec![x0, y0 + size],
            vec![x0, y0],
        ];
        let mut f = geojson::Feature::from(geojson::Geometry::new_polygon(vec![ring]));
        f.set_property("p", parent);
        f.set_property("pn", format!("P {parent}"));
        f.set_property("c", code);
        f.set_property("cn", format!("C {code}"));
        f
    }

    fn levels() -> Levels {
        "prov=p:pn,comm=c:cn".parse().expect("valid")
    }

    #[test]
    fn level_spec_parsing() {
        let l = Levels::default();
        assert_eq!(l.0.len(), 3);
        assert_eq!(l.0[2].code_property, "commune_id");
        assert!("a=b".parse::<Levels>().is_err());
        assert!("a=b:c,a=d:e".parse::<Levels>().is_err());
        assert!("".parse::<Levels>().is_err());
    }

    #[test]
    fn hierarchy_sorted_with_parents() {
        let fs = vec![
            square("10", "2", 0.0, 0.0, 1.0),
            square("9", "1", 1.0, 0.0, 1.0),
        ];
        let b = Boundaries::from_features(Path::new("t"), &fs, levels()).expect("valid");
        assert_eq!(
            b.units[0]
                .iter()
                .map(|u| u.code.as_str())
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(
            b.units[1]
                .iter()
                .map(|u| u.code.as_str())
                .collect::<Vec<_>>(),
            ["9", "10"]
        );
        assert_eq!(b.units[1][0].parent, Some(0));
        assert_eq!(b.ancestors(1), vec![1, 1]);
    }

    #[test]
    fn two_parents_is_an_error() {
        let fs = vec![
            square("10", "2", 0.0, 0.0, 1.0),
            square("10", "1", 1.0, 0.0, 1.0),
        ];
        let e = Boundaries::from_features(Path::new("t"), &fs, levels()).expect_err("invalid");
        assert!(e.to_string().contains("two parents"), "{e}");
    }

    #[test]
    fn missing_code_names_the_feature_and_fix() {
        let mut f = square("10", "2", 0.0, 0.0, 1.0);
        f.remove_property("c");
        let e =
            Boundaries::from_features(Path::new("b.geojson"), &[f], levels()).expect_err("invalid");
        let msg = e.to_string();
        assert!(
            msg.contains("feature 0") && msg.contains("'c'") && msg.contains("--levels"),
            "{msg}"
        );
    }

    #[test]
    fn a_short_position_is_an_error_not_a_panic() {
        // Found by the geojson_layers fuzz target.
        let text = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"p":"1","pn":"P","c":"2","cn":"C"},
            "geometry":{"type":"MultiPolygon","coordinates":[[[[105.1],[105.1,21.1],[105.2,21.1],[105.1]]]]}}]}"#;
        let fc = parse_feature_collection(text, Path::new("b.geojson")).expect("valid JSON");
        let e = Boundaries::from_features(Path::new("b.geojson"), &fc.features, levels())
            .expect_err("invalid");
        let msg = e.to_string();
        assert!(
            msg.contains("feature 0") && msg.contains("position 0") && msg.contains("[lon, lat]"),
            "{msg}"
        );
    }

    #[test]
    fn missing_name_keeps_the_unit_with_a_warning() {
        // As in the 2009 communes (features 2272 and 11162 have null names).
        let mut f = square("10", "2", 0.0, 0.0, 1.0);
        f.set_property("cn", serde_json::Value::Null);
        let b = Boundaries::from_features(Path::new("b.geojson"), &[f], levels()).expect("kept");
        assert_eq!(b.finest()[0].name, "");
        assert_eq!(b.warnings.len(), 1);
        assert!(
            b.warnings[0].contains("'10'") && b.warnings[0].contains("'cn'"),
            "{}",
            b.warnings[0]
        );
    }

    #[test]
    fn locate_inside_overlap_and_snap() {
        // Two overlapping squares: "20" covers x 0..2, "3" covers x 1..3.
        let fs = vec![
            square("20", "1", 0.0, 0.0, 2.0),
            square("3", "1", 1.0, 0.0, 2.0),
        ];
        let b = Boundaries::from_features(Path::new("t"), &fs, levels()).expect("valid");
        let loc = Locator::new(&b, 500.0);
        let code = |p: Option<Placement>| p.map(|p| b.finest()[p.unit() as usize].code.clone());
        assert_eq!(code(loc.locate(0.5, 0.5)).as_deref(), Some("20"));
        assert_eq!(
            code(loc.locate(1.5, 0.5)).as_deref(),
            Some("3"),
            "overlap: lowest code"
        );
        // 0.003° east of x = 3 at the equator ≈ 333.6 m: snapped.
        let p = loc.locate(3.003, 1.0).expect("snapped");
        assert!(
            matches!(p, Placement::Snapped(_, d) if (d - 333.6).abs() < 1.0),
            "{p:?}"
        );
        // 0.005° ≈ 556 m: outside.
        assert_eq!(loc.locate(3.005, 1.0), None);
    }
}

#[cfg(test)]
mod banded_tests {
    use super::*;
    use geo::Intersects;
    use rand::{RngExt, SeedableRng};

    /// A closed star-shaped ring of `n` vertices around (cx, cy) on a grid of
    /// 1/8 (so that points on edges, on vertices and at vertex latitudes
    /// occur), radii 2–10.
    fn star(
        rng: &mut rand_chacha::ChaCha8Rng,
        n: usize,
        cx: f64,
        cy: f64,
        r: (f64, f64),
    ) -> geo::LineString<f64> {
        let mut pts: Vec<geo::Coord<f64>> = (0..n)
            .map(|i| {
                #[allow(clippy::cast_precision_loss, reason = "small counts")]
                let a = std::f64::consts::TAU * i as f64 / n as f64;
                let radius = rng.random_range(r.0..r.1);
                let snap = |v: f64| (v * 8.0).round() / 8.0;
                geo::coord! { x: snap(cx + radius * a.cos()), y: snap(cy + radius * a.sin()) }
            })
            .collect();
        pts.push(pts[0]);
        geo::LineString(pts)
    }

    #[test]
    fn banded_rings_answer_as_geos_winding_test() {
        // Oracle: geo's own Polygon::intersects. Polygons of 48–600 vertices
        // (banded) with holes; points at random, on vertices, at edge
        // midpoints (on the edge: the grid is exact) and at vertex latitudes.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut checked = 0;
        let mut on_boundary = 0;
        for _ in 0..300 {
            let n = rng.random_range(BANDED_MIN_VERTICES..600);
            let exterior = star(&mut rng, n, 0.0, 0.0, (6.0, 10.0));
            let holes: Vec<_> = (0..rng.random_range(0..3))
                .map(|h| {
                    let m = rng.random_range(3..200);
                    #[allow(clippy::cast_precision_loss, reason = "small counts")]
                    let dx = h as f64 * 2.5 - 1.0;
                    star(&mut rng, m, dx, 0.5, (0.5, 2.0))
                })
                .collect();
            let poly = geo::Polygon::new(exterior.clone(), holes.clone());
            let banded = BandedPolygon::new(&poly);
            assert!(banded.exterior.is_some(), "{n} vertices are banded");
            let mut points: Vec<geo::Coord<f64>> = (0..200)
                .map(|_| geo::coord! { x: rng.random_range(-11.0..11.0), y: rng.random_range(-11.0..11.0) })
                .collect();
            for ring in std::iter::once(&exterior).chain(&holes) {
                for w in ring.0.windows(2).step_by(3) {
                    points.push(w[0]);
                    points.push(
                        geo::coord! { x: (w[0].x + w[1].x) / 2.0, y: (w[0].y + w[1].y) / 2.0 },
                    );
                    points.push(geo::coord! { x: rng.random_range(-11.0..11.0), y: w[0].y });
                }
            }
            for p in points {
                let want = poly.intersects(&p);
                assert_eq!(banded.intersects(&poly, p), want, "{p:?} in a ring of {n}");
                checked += 1;
                on_boundary += usize::from(
                    geo::coordinate_position::CoordinatePosition::coordinate_position(&poly, &p)
                        == CoordPos::OnBoundary,
                );
            }
        }
        assert!(
            checked > 100_000 && on_boundary > 10_000,
            "{checked} points, {on_boundary} on edges"
        );
    }
}

#[cfg(test)]
mod edge_grid_tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// A star-shaped ring around (cx, cy) with coordinates on a grid of
    /// 2^-12 degrees, so that edge midpoints are exact points of the edge.
    fn star(
        rng: &mut rand_chacha::ChaCha8Rng,
        n: usize,
        c: (f64, f64),
        r: (f64, f64),
    ) -> Vec<Vec<f64>> {
        let snap = |v: f64| (v * 4096.0).round() / 4096.0;
        let mut ring: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                #[allow(clippy::cast_precision_loss, reason = "small counts")]
                let a = std::f64::consts::TAU * i as f64 / n as f64;
                let radius = rng.random_range(r.0..r.1);
                vec![snap(c.0 + radius * a.cos()), snap(c.1 + radius * a.sin())]
            })
            .collect();
        ring.dedup();
        ring.push(ring[0].clone());
        ring
    }

    #[test]
    fn near_edge_grids_answer_as_the_exact_test() {
        // Oracle: Locator::locate (R-tree and geo's polygon test). Overlapping
        // communes of 5–80 and 200–400 vertices, some with a hole; points at random, on
        // vertices, at edge midpoints and at vertex latitudes, in cells of
        // three resolutions.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let features: Vec<geojson::Feature> = (0..40)
            .map(|i| {
                let c = (rng.random_range(105.0..105.1), rng.random_range(21.0..21.1));
                // Some rings long enough for many bands (a detailed
                // boundary): cells then read only their bands' edges.
                let n = if i % 4 == 1 {
                    rng.random_range(200..400)
                } else {
                    rng.random_range(5..80)
                };
                let mut rings = vec![star(&mut rng, n, c, (0.006, 0.03))];
                if i % 3 == 0 {
                    let n = rng.random_range(3..12);
                    rings.push(star(&mut rng, n, c, (0.001, 0.004)));
                }
                let mut f = geojson::Feature::from(geojson::Geometry::new_polygon(rings));
                f.set_property("p", "1");
                f.set_property("c", format!("{:02}", i + 10));
                f
            })
            .collect();
        let b = Boundaries::from_features(
            Path::new("t"),
            &features,
            "p=p:p,c=c:c".parse().expect("valid"),
        )
        .expect("valid");
        let mut points: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                (
                    rng.random_range(104.96..105.14),
                    rng.random_range(20.96..21.14),
                )
            })
            .collect();
        for shape in &b.shapes {
            for poly in &shape.0 {
                for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                    for w in ring.0.windows(2) {
                        points.push((w[0].x, w[0].y));
                        points.push(((w[0].x + w[1].x) / 2.0, (w[0].y + w[1].y) / 2.0));
                        points.push((rng.random_range(104.96..105.14), w[0].y));
                    }
                }
            }
        }
        for (res, snap_m) in [
            (h3o::Resolution::Seven, 0.0),
            (h3o::Resolution::Eight, 300.0),
            (h3o::Resolution::Nine, 300.0),
        ] {
            let mut loc = Locator::new(&b, snap_m);
            let cells: Vec<h3o::CellIndex> = points
                .iter()
                .map(|&(x, y)| h3o::LatLng::new(y, x).expect("valid").to_cell(res))
                .collect();
            loc.learn_cells(&cells);
            let mut by_grid = 0;
            let mut on_edge = 0;
            for (&(x, y), &cell) in points.iter().zip(&cells) {
                let want = loc.locate(x, y);
                assert_eq!(loc.locate_in(cell, x, y), want, "({x}, {y}) in {cell}");
                if let Some(v) = loc.cells.get(cell)
                    && v != NOT_INTERIOR
                    && v & NEAR_EDGE != 0
                    && loc.edge_grids[(v & !NEAR_EDGE) as usize]
                        .answer(x, y)
                        .is_some()
                {
                    by_grid += 1;
                }
                let p = geo::coord! { x: x, y: y };
                on_edge += usize::from(b.shapes.iter().any(|s| {
                    geo::coordinate_position::CoordinatePosition::coordinate_position(s, &p)
                        == CoordPos::OnBoundary
                }));
            }
            // Coarse cells over detailed rings leave the fewest squares
            // without an edge: 479 points of resolution 7 take the grid.
            assert!(
                by_grid > 300 && on_edge > 3_000,
                "{res}: {by_grid} by grid, {on_edge} on edges of {}",
                points.len()
            );
        }
    }
}
