//! The reform of 1 July 2025 as a reproducible data step: match the 2009
//! communes (which carry the census source's own codes) to the pre-reform GSO
//! codes, map them through the official old → new code tables to the 3 321
//! post-reform communes, and derive approximate polygons of the new communes.
//!
//! Matching, per province (provinces matched by name first):
//! 1. the commune's name without its type word (`Xã`, `Phường`, `Thị trấn`),
//!    with diacritics, then without; a name unique in the province matches;
//! 2. a name shared by several GSO communes: the one in the district of the
//!    same name, else the one whose centre is nearest the commune;
//! 3. no name match: a GSO commune of the province whose centre lies inside
//!    the 2009 polygon (nearest the polygon's interior point first, GSO
//!    communes not matched by name preferred);
//! 4. otherwise unmatched (reported).
//!
//! A GSO commune matched by no 2009 commune but whose centre lies inside one
//! (a commune created after 2009) is attached to it. A 2009 commune whose GSO
//! communes lead to several new communes is split between them by the nearest
//! new-commune centre (a Voronoi partition clipped to the polygon), the same
//! rule the crosswalk applies to samples.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use geo::{
    BooleanOps, BoundingRect, ChamberlainDuquetteArea, InteriorPoint, Intersects, MultiPolygon,
    Orient, Point, Polygon, orient::Direction,
};
use serde::Serialize;

use crate::boundaries::{Boundaries, Levels, distance_to_shape_m};
use crate::codes::cmp_codes;
use crate::error::{Error, Result};
use crate::geodesy::haversine_m;
use crate::geojson_out::{Prop, Shape, feature, write_collection};
use crate::output::{fmt_decimal, write_csv, write_json_pretty};
use crate::stats::{median_sorted, quantile_sorted, sort_values};

/// Type words that open Vietnamese unit names, longest first.
const TYPE_WORDS: [&str; 11] = [
    "thành phố",
    "thị trấn",
    "đặc khu",
    "thị xã",
    "phường",
    "huyện",
    "quận",
    "tỉnh",
    "tp.",
    "tp",
    "xã",
];

/// A unit name reduced for matching: lower case, type word removed,
/// punctuation to spaces, leading zeros of numbers dropped (`Phường 01` →
/// `1`); without diacritics (`đ` → `d`) when `ascii`.
#[must_use]
pub fn bare_name(name: &str, ascii: bool) -> String {
    let lower = name.trim().to_lowercase();
    let mut rest = lower.as_str();
    for w in TYPE_WORDS {
        if let Some(r) = rest.strip_prefix(w)
            && (r.is_empty() || r.starts_with([' ', '.']) || w.ends_with('.'))
        {
            rest = r;
            break;
        }
    }
    let folded = if ascii {
        deunicode::deunicode(rest).to_lowercase()
    } else {
        rest.to_owned()
    };
    let spaced: String = folded
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    spaced
        .split_whitespace()
        .map(|t| {
            if t.bytes().all(|b| b.is_ascii_digit()) {
                let z = t.trim_start_matches('0');
                if z.is_empty() { "0" } else { z }
            } else {
                t
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A pre-reform commune of the GSO list (`units_legacy.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyCommune {
    /// Province code (`06`).
    pub province_code: String,
    /// Province name (`Tỉnh Bắc Kạn`).
    pub province: String,
    /// District name.
    pub district: String,
    /// GSO commune code (`01834`).
    pub code: String,
    /// Commune name.
    pub name: String,
    /// Centre (lon, lat), if given.
    pub centre: Option<(f64, f64)>,
}

/// A post-reform commune (`units_2025.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCommune {
    /// Province code (`19`).
    pub province_code: String,
    /// Province name.
    pub province: String,
    /// Commune code.
    pub code: String,
    /// Commune name.
    pub name: String,
    /// `Xã`, `Phường` or `Đặc khu`.
    pub kind: String,
    /// Official centre (lon, lat).
    pub centre: (f64, f64),
    /// Official area in km².
    pub area_km2: Option<f64>,
}

fn read_csv_rows(path: &Path) -> Result<(csv::StringRecord, Vec<(u64, csv::StringRecord)>)> {
    let csv_err = |source| Error::Csv {
        path: path.to_owned(),
        source,
    };
    let mut r = csv::Reader::from_path(path).map_err(csv_err)?;
    let header = r.headers().map_err(csv_err)?.clone();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, csv::Position::line);
        rows.push((line, rec));
    }
    Ok((header, rows))
}

/// Column positions of `names` in a header, or an error naming the file and column.
fn columns<const N: usize>(
    path: &Path,
    header: &csv::StringRecord,
    names: [&str; N],
) -> Result<[usize; N]> {
    let mut out = [0; N];
    for (o, n) in out.iter_mut().zip(names) {
        *o = header
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| Error::Layer {
                path: path.to_owned(),
                message: format!(
                    "no column '{n}' (columns: {}); this file must have {}",
                    header.iter().collect::<Vec<_>>().join(", "),
                    names.join(", ")
                ),
            })?;
    }
    Ok(out)
}

fn number(path: &Path, line: u64, column: &str, s: &str) -> Result<Option<f64>> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(Some)
        .ok_or_else(|| Error::Layer {
            path: path.to_owned(),
            message: format!("line {line}: '{s}' in column '{column}' is not a number"),
        })
}

/// Reads `units_legacy.csv` (rows without a commune code are districts without communes and skipped).
///
/// # Errors
/// Unreadable file, a missing column or a bad number (naming the line).
pub fn read_legacy(path: &Path) -> Result<Vec<LegacyCommune>> {
    let (header, rows) = read_csv_rows(path)?;
    let [pc, pn, dn, cc, cn, la, lo] = columns(
        path,
        &header,
        [
            "province_code",
            "province",
            "district",
            "commune_code",
            "commune",
            "lat",
            "lon",
        ],
    )?;
    let mut out = Vec::new();
    for (line, r) in rows {
        if r[cc].trim().is_empty() {
            continue;
        }
        let lat = number(path, line, "lat", &r[la])?;
        let lon = number(path, line, "lon", &r[lo])?;
        out.push(LegacyCommune {
            province_code: r[pc].trim().to_owned(),
            province: r[pn].trim().to_owned(),
            district: r[dn].trim().to_owned(),
            code: r[cc].trim().to_owned(),
            name: r[cn].trim().to_owned(),
            centre: lon.zip(lat),
        });
    }
    Ok(out)
}

/// Reads `units_2025.csv`.
///
/// # Errors
/// Unreadable file, a missing column, or a row without a centre (naming the line).
pub fn read_new(path: &Path) -> Result<Vec<NewCommune>> {
    let (header, rows) = read_csv_rows(path)?;
    let [pc, pn, cc, cn, ct, la, lo, ar] = columns(
        path,
        &header,
        [
            "province_code",
            "province",
            "commune_code",
            "commune",
            "commune_type",
            "lat",
            "lon",
            "area_km2",
        ],
    )?;
    let mut out = Vec::new();
    for (line, r) in rows {
        let centre = number(path, line, "lon", &r[lo])?
            .zip(number(path, line, "lat", &r[la])?)
            .ok_or_else(|| Error::Layer {
                path: path.to_owned(),
                message: format!("line {line}: commune '{}' has no lat/lon centre", &r[cc]),
            })?;
        out.push(NewCommune {
            province_code: r[pc].trim().to_owned(),
            province: r[pn].trim().to_owned(),
            code: r[cc].trim().to_owned(),
            name: r[cn].trim().to_owned(),
            kind: r[ct].trim().to_owned(),
            centre,
            area_km2: number(path, line, "area_km2", &r[ar])?,
        });
    }
    Ok(out)
}

/// Old GSO commune code → new commune codes, from `splits.json` and
/// `merges.json` together (an edge in either file counts).
///
/// # Errors
/// Unreadable or malformed JSON.
pub fn read_mapping(splits: &Path, merges: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let load = |p: &Path| -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: p.to_owned(),
            source,
        })
    };
    let shape_err = |p: &Path, what: &str| Error::Layer {
        path: p.to_owned(),
        message: format!("unexpected structure: {what}"),
    };
    let arr = |v: &serde_json::Value, key: &str| -> Option<Vec<serde_json::Value>> {
        v.get(key).and_then(|x| x.as_array()).cloned()
    };
    let text = |v: &serde_json::Value, key: &str| -> Option<String> {
        v.get(key)
            .and_then(|x| x.as_str())
            .map(|s| s.trim().to_owned())
    };
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |old: String, new: String| {
        let e = edges.entry(old).or_default();
        if !e.contains(&new) {
            e.push(new);
        }
    };
    let s = load(splits)?;
    for prov in arr(&s, "data").ok_or_else(|| shape_err(splits, "no 'data' array"))? {
        for c in arr(&prov, "level3s")
            .ok_or_else(|| shape_err(splits, "a province without 'level3s'"))?
        {
            let old = text(&c, "level3_id")
                .ok_or_else(|| shape_err(splits, "a commune without 'level3_id'"))?;
            for n in arr(&c, "splits").unwrap_or_default() {
                let new = text(&n, "new_id")
                    .ok_or_else(|| shape_err(splits, "a split without 'new_id'"))?;
                add(old.clone(), new);
            }
        }
    }
    let m = load(merges)?;
    for prov in arr(&m, "data").ok_or_else(|| shape_err(merges, "no 'data' array"))? {
        for c in arr(&prov, "level2s")
            .ok_or_else(|| shape_err(merges, "a province without 'level2s'"))?
        {
            let new = text(&c, "level2_id")
                .ok_or_else(|| shape_err(merges, "a commune without 'level2_id'"))?;
            for o in arr(&c, "merges").unwrap_or_default() {
                let old = text(&o, "old_id")
                    .ok_or_else(|| shape_err(merges, "a merge without 'old_id'"))?;
                add(old, new.clone());
            }
        }
    }
    for v in edges.values_mut() {
        v.sort_by(|a, b| cmp_codes(a, b));
    }
    Ok(edges)
}

/// How a 2009 commune was matched to a GSO code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    /// Name unique in the province (with or without diacritics).
    Name,
    /// Shared name, resolved by the district's name.
    NameDistrict,
    /// Shared name, resolved by the nearest centre.
    NameNearest,
    /// No name match: a GSO centre inside the polygon.
    CentreInPolygon,
    /// Not matched (usually merged into a neighbour between 2009 and 2024):
    /// assigned to the nearest GSO centre of the province, for the crosswalk
    /// and polygons only; not counted in the match rate.
    NearestCentre,
    /// Nothing found.
    Unmatched,
}

impl MatchMethod {
    /// Every method, in report order.
    pub const ALL: [Self; 6] = [
        Self::Name,
        Self::NameDistrict,
        Self::NameNearest,
        Self::CentreInPolygon,
        Self::NearestCentre,
        Self::Unmatched,
    ];

    /// A match by name or by a centre in the polygon (the match rate's numerator).
    #[must_use]
    pub const fn is_match(self) -> bool {
        !matches!(self, Self::NearestCentre | Self::Unmatched)
    }

    /// The name used in files.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::NameDistrict => "name_district",
            Self::NameNearest => "name_nearest",
            Self::CentreInPolygon => "centre_in_polygon",
            Self::NearestCentre => "nearest_centre",
            Self::Unmatched => "unmatched",
        }
    }
}

/// A 2009 commune (finest unit of the 2009 layer) with its hierarchy's names.
#[derive(Debug, Clone)]
pub struct OldCommune {
    /// 2009 province code.
    pub province_code: String,
    /// 2009 province name.
    pub province: String,
    /// 2009 district name.
    pub district: String,
    /// 2009 commune code.
    pub code: String,
    /// 2009 commune name.
    pub name: String,
    /// Its polygons.
    pub shape: MultiPolygon<f64>,
}

/// The 2009 communes of a three-level layer (province, district, commune).
#[must_use]
pub fn old_communes(b: &Boundaries) -> Vec<OldCommune> {
    #[allow(clippy::cast_possible_truncation, reason = "unit counts fit u32")]
    (0..b.finest().len())
        .map(|i| {
            let anc = b.ancestors(i as u32);
            let unit = |li: usize| &b.units[li][anc[li] as usize];
            let depth = b.units.len();
            OldCommune {
                province_code: unit(0).code.clone(),
                province: unit(0).name.clone(),
                district: if depth >= 3 {
                    unit(depth - 2).name.clone()
                } else {
                    String::new()
                },
                code: unit(depth - 1).code.clone(),
                name: unit(depth - 1).name.clone(),
                shape: b.shapes[i].clone(),
            }
        })
        .collect()
}

/// The match of one 2009 commune.
#[derive(Debug, Clone)]
pub struct CommuneMatch {
    /// Index into the legacy list, if matched.
    pub legacy: Option<usize>,
    /// How.
    pub method: MatchMethod,
    /// Legacy communes attached by their centre (created after 2009).
    pub attached: Vec<usize>,
}

/// Provinces of the 2009 layer matched to GSO province codes by name.
fn match_provinces(old: &[OldCommune], legacy: &[LegacyCommune]) -> HashMap<String, String> {
    let mut gso: Vec<(String, String)> = legacy
        .iter()
        .map(|l| (bare_name(&l.province, true), l.province_code.clone()))
        .collect();
    gso.sort();
    gso.dedup();
    let mut out = HashMap::new();
    for o in old {
        if out.contains_key(&o.province_code) {
            continue;
        }
        let name = bare_name(&o.province, true);
        let exact: Vec<&String> = gso.iter().filter(|g| g.0 == name).map(|g| &g.1).collect();
        // "Thừa Thiên Huế" became "Thành phố Huế": one name ends the other.
        let suffix: Vec<&String> = gso
            .iter()
            .filter(|g| name.ends_with(&format!(" {}", g.0)) || g.0.ends_with(&format!(" {name}")))
            .map(|g| &g.1)
            .collect();
        let pick = if exact.len() == 1 { exact } else { suffix };
        if let [code] = pick.as_slice() {
            out.insert(o.province_code.clone(), (*code).clone());
        }
    }
    out
}

fn contains(shape: &MultiPolygon<f64>, (x, y): (f64, f64)) -> bool {
    shape.intersects(&Point::new(x, y))
}

fn interior(shape: &MultiPolygon<f64>) -> (f64, f64) {
    shape
        .interior_point()
        .map_or((f64::NAN, f64::NAN), |p| (p.x(), p.y()))
}

/// Matches every 2009 commune to a GSO code (see the module docs).
#[must_use]
pub fn match_communes(old: &[OldCommune], legacy: &[LegacyCommune]) -> Vec<CommuneMatch> {
    let provinces = match_provinces(old, legacy);
    // Per GSO province: (bare name → legacy indices), with and without diacritics.
    let mut by_vn: HashMap<(&str, String), Vec<usize>> = HashMap::new();
    let mut by_ascii: HashMap<(&str, String), Vec<usize>> = HashMap::new();
    let mut in_province: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in legacy.iter().enumerate() {
        by_vn
            .entry((&l.province_code, bare_name(&l.name, false)))
            .or_default()
            .push(i);
        by_ascii
            .entry((&l.province_code, bare_name(&l.name, true)))
            .or_default()
            .push(i);
        in_province.entry(&l.province_code).or_default().push(i);
    }
    let nearest = |cands: &[usize], o: &OldCommune| -> usize {
        let p = interior(&o.shape);
        let key = |&i: &usize| {
            let inside = legacy[i].centre.is_some_and(|c| contains(&o.shape, c));
            let d = legacy[i]
                .centre
                .map_or(f64::INFINITY, |c| haversine_m(c.0, c.1, p.0, p.1));
            (!inside, d)
        };
        let mut best = cands[0];
        for &c in &cands[1..] {
            if key(&c).partial_cmp(&key(&best)) == Some(std::cmp::Ordering::Less) {
                best = c;
            }
        }
        best
    };
    let mut out: Vec<CommuneMatch> = old
        .iter()
        .map(|o| {
            let none = CommuneMatch {
                legacy: None,
                method: MatchMethod::Unmatched,
                attached: Vec::new(),
            };
            let Some(pc) = provinces.get(&o.province_code) else {
                return none;
            };
            let vn = by_vn.get(&(pc.as_str(), bare_name(&o.name, false)));
            let cands = vn.or_else(|| by_ascii.get(&(pc.as_str(), bare_name(&o.name, true))));
            let Some(cands) = cands else { return none };
            if let [one] = cands.as_slice() {
                return CommuneMatch {
                    legacy: Some(*one),
                    method: MatchMethod::Name,
                    attached: Vec::new(),
                };
            }
            let district = bare_name(&o.district, true);
            let same: Vec<usize> = cands
                .iter()
                .copied()
                .filter(|&i| bare_name(&legacy[i].district, true) == district)
                .collect();
            if let [one] = same.as_slice() {
                return CommuneMatch {
                    legacy: Some(*one),
                    method: MatchMethod::NameDistrict,
                    attached: Vec::new(),
                };
            }
            let pool = if same.is_empty() {
                cands.as_slice()
            } else {
                same.as_slice()
            };
            CommuneMatch {
                legacy: Some(nearest(pool, o)),
                method: MatchMethod::NameNearest,
                attached: Vec::new(),
            }
        })
        .collect();
    // Second pass: centre in polygon, for communes no name matched.
    let claimed: HashSet<usize> = out.iter().filter_map(|m| m.legacy).collect();
    for (o, m) in old.iter().zip(out.iter_mut()) {
        if m.legacy.is_some() {
            continue;
        }
        let Some(pc) = provinces.get(&o.province_code) else {
            continue;
        };
        let inside: Vec<usize> = in_province
            .get(pc.as_str())
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&i| legacy[i].centre.is_some_and(|c| contains(&o.shape, c)))
                    .collect()
            })
            .unwrap_or_default();
        if inside.is_empty() {
            continue;
        }
        let free: Vec<usize> = inside
            .iter()
            .copied()
            .filter(|i| !claimed.contains(i))
            .collect();
        let pool = if free.is_empty() { &inside } else { &free };
        m.legacy = Some(nearest(pool, o));
        m.method = MatchMethod::CentreInPolygon;
    }
    // Attach GSO communes nobody matched to the 2009 commune holding their centre.
    let claimed: HashSet<usize> = out.iter().filter_map(|m| m.legacy).collect();
    // The rest go to the nearest GSO centre of their province.
    for (o, m) in old.iter().zip(out.iter_mut()) {
        if m.legacy.is_some() {
            continue;
        }
        let Some(pool) = provinces
            .get(&o.province_code)
            .and_then(|pc| in_province.get(pc.as_str()))
        else {
            continue;
        };
        let with_centre: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&i| legacy[i].centre.is_some())
            .collect();
        if !with_centre.is_empty() {
            m.legacy = Some(nearest(&with_centre, o));
            m.method = MatchMethod::NearestCentre;
        }
    }
    let mut by_old_province: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, o) in old.iter().enumerate() {
        if let Some(pc) = provinces.get(&o.province_code) {
            by_old_province.entry(pc.as_str()).or_default().push(i);
        }
    }
    for (i, l) in legacy.iter().enumerate() {
        let Some(c) = l.centre.filter(|_| !claimed.contains(&i)) else {
            continue;
        };
        let Some(olds) = by_old_province.get(l.province_code.as_str()) else {
            continue;
        };
        if let Some(&o) = olds.iter().find(|&&o| contains(&old[o].shape, c)) {
            out[o].attached.push(i);
        }
    }
    out
}

/// A crosswalk row: an old (2009) commune and one new commune it maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct CrosswalkRow {
    /// Old finest-unit code.
    pub old_code: String,
    /// New commune code.
    pub new_code: String,
    /// New commune name.
    pub new_name: String,
    /// New province code.
    pub new_parent_code: String,
    /// New province name.
    pub new_parent_name: String,
    /// New commune centre (lon, lat).
    pub new_centre: (f64, f64),
}

/// Everything the data step produces.
#[derive(Debug)]
pub struct Reform {
    /// The 2009 communes.
    pub old: Vec<OldCommune>,
    /// Their matches.
    pub matches: Vec<CommuneMatch>,
    /// Per 2009 commune, its new communes (indices into `new`), sorted by code.
    pub targets: Vec<Vec<usize>>,
    /// The new communes.
    pub new: Vec<NewCommune>,
    /// Derived polygon of each new commune (empty when nothing maps to it).
    pub derived: Vec<MultiPolygon<f64>>,
    /// 2009 communes contributing to each new commune.
    pub contributors: Vec<u32>,
    /// Whether every GSO commune mapped into the new one was reached by a 2009 commune.
    pub complete: Vec<bool>,
    /// Problems with the source tables (code mismatches), for the report.
    pub notes: Vec<String>,
}

/// Input files of the data step.
#[derive(Debug, Clone)]
pub struct ReformSources {
    /// `boundaries_2009/communes.geojson`.
    pub communes_2009: PathBuf,
    /// `admin_2025/units_legacy.csv`.
    pub legacy: PathBuf,
    /// `admin_2025/units_2025.csv`.
    pub units_2025: PathBuf,
    /// `admin_2025/splits.json`.
    pub splits: PathBuf,
    /// `admin_2025/merges.json`.
    pub merges: PathBuf,
}

impl ReformSources {
    /// The files' places in `shared/data/vn`.
    #[must_use]
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            communes_2009: dir.join("boundaries_2009/communes.geojson"),
            legacy: dir.join("admin_2025/units_legacy.csv"),
            units_2025: dir.join("admin_2025/units_2025.csv"),
            splits: dir.join("admin_2025/splits.json"),
            merges: dir.join("admin_2025/merges.json"),
        }
    }
}

/// Runs the data step on the sources, for the 2009 provinces listed (all when empty).
///
/// # Errors
/// Unreadable or malformed sources.
pub fn build(src: &ReformSources, provinces: &[String]) -> Result<Reform> {
    let b = Boundaries::load(&src.communes_2009, Levels::default())?;
    let mut old = old_communes(&b);
    let legacy = read_legacy(&src.legacy)?;
    let mut new = read_new(&src.units_2025)?;
    let mapping = read_mapping(&src.splits, &src.merges)?;
    let mut notes = Vec::new();
    // Codes of the mapping are the authority; a mapping code missing from
    // units_2025.csv takes the centre of the unmapped unit of the same name and province.
    let mapped_new: HashSet<&String> = mapping.values().flatten().collect();
    let known: HashSet<String> = new.iter().map(|n| n.code.clone()).collect();
    let mut missing: Vec<&String> = mapped_new
        .iter()
        .copied()
        .filter(|c| !known.contains(*c))
        .collect();
    missing.sort_by(|a, b| cmp_codes(a, b));
    for code in missing {
        let olds: Vec<&String> = mapping
            .iter()
            .filter(|(_, v)| v.contains(code))
            .map(|(k, _)| k)
            .collect();
        let names: HashSet<String> = legacy
            .iter()
            .filter(|l| olds.contains(&&l.code))
            .map(|l| bare_name(&l.name, true))
            .collect();
        let twin = new.iter().position(|n| {
            !mapped_new.contains(&n.code) && names.contains(&bare_name(&n.name, true))
        });
        match twin {
            Some(t) => {
                notes.push(format!(
                    "new code {code} of the mapping is {} '{}' in units_2025.csv (same name; mapping code kept)",
                    new[t].code, new[t].name
                ));
                new[t].code = code.clone();
            }
            None => notes.push(format!(
                "new code {code} of the mapping is not in units_2025.csv (old codes {}); it gets no polygon",
                olds.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
            )),
        }
    }
    new.sort_by(|a, b| cmp_codes(&a.code, &b.code));
    let new_ix: HashMap<&str, usize> = new
        .iter()
        .enumerate()
        .map(|(i, n)| (n.code.as_str(), i))
        .collect();
    let matches = match_communes(&old, &legacy);
    let reached: HashSet<usize> = matches
        .iter()
        .flat_map(|m| m.legacy.iter().chain(&m.attached).copied())
        .collect();
    let targets_of = |m: &CommuneMatch| -> Vec<usize> {
        let mut t: Vec<usize> = m
            .legacy
            .iter()
            .chain(&m.attached)
            .filter_map(|&l| mapping.get(&legacy[l].code))
            .flatten()
            .filter_map(|c| new_ix.get(c.as_str()).copied())
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let keep: Vec<bool> = old
        .iter()
        .map(|o| provinces.is_empty() || provinces.contains(&o.province_code))
        .collect();
    let mut targets: Vec<Vec<usize>> = matches.iter().map(targets_of).collect();
    // Completeness: every legacy commune mapped into a new one was reached.
    let mut complete = vec![true; new.len()];
    let mut any = vec![false; new.len()];
    for (li, l) in legacy.iter().enumerate() {
        for c in mapping.get(&l.code).into_iter().flatten() {
            if let Some(&n) = new_ix.get(c.as_str()) {
                any[n] = true;
                if !reached.contains(&li) {
                    complete[n] = false;
                }
            }
        }
    }
    // Restrict to the selected provinces.
    let mut selected = Vec::new();
    let mut sel_matches = Vec::new();
    let mut sel_targets = Vec::new();
    for ((o, m), (t, k)) in old.drain(..).zip(matches).zip(targets.drain(..).zip(keep)) {
        if k {
            selected.push(o);
            sel_matches.push(m);
            sel_targets.push(t);
        }
    }
    let (derived, contributors) = derive_polygons(&selected, &sel_targets, &new);
    for (i, c) in complete.iter_mut().enumerate() {
        *c = *c && any[i];
    }
    Ok(Reform {
        old: selected,
        matches: sel_matches,
        targets: sel_targets,
        new,
        derived,
        contributors,
        complete,
        notes,
    })
}

/// A convex polygon clipped by the half-plane `a·x + b·y ≤ c` (Sutherland–Hodgman).
fn clip_half_plane(poly: &[(f64, f64)], a: f64, b: f64, c: f64) -> Vec<(f64, f64)> {
    let inside = |p: (f64, f64)| a * p.0 + b * p.1 <= c;
    let mut out = Vec::with_capacity(poly.len() + 1);
    for i in 0..poly.len() {
        let (p, q) = (poly[i], poly[(i + 1) % poly.len()]);
        let (pi, qi) = (inside(p), inside(q));
        if pi {
            out.push(p);
        }
        if pi != qi {
            let (fp, fq) = (a * p.0 + b * p.1 - c, a * q.0 + b * q.1 - c);
            let t = fp / (fp - fq);
            out.push((p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1)));
        }
    }
    out
}

/// The part of `shape` nearer to `centres[i]` than to any other centre, in a
/// local equirectangular plane (identical centres: the first one wins).
#[must_use]
pub fn voronoi_piece(
    shape: &MultiPolygon<f64>,
    centres: &[(f64, f64)],
    i: usize,
) -> MultiPolygon<f64> {
    let Some(r) = shape.bounding_rect() else {
        return MultiPolygon(Vec::new());
    };
    if centres[..i].contains(&centres[i]) {
        return MultiPolygon(Vec::new());
    }
    let lat0 = centres.iter().map(|c| c.1).sum::<f64>() / centres.len() as f64;
    let k = lat0.to_radians().cos();
    let proj = |(x, y): (f64, f64)| (x * k, y);
    let pad = 1.0;
    let (x0, y0) = proj((r.min().x - pad, r.min().y - pad));
    let (x1, y1) = proj((r.max().x + pad, r.max().y + pad));
    let mut cell = vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1)];
    let ci = proj(centres[i]);
    for (j, &cj) in centres.iter().enumerate() {
        let cj = proj(cj);
        if j == i || cj == ci {
            continue;
        }
        // |p − ci|² ≤ |p − cj|²  ⇔  2(cj − ci)·p ≤ |cj|² − |ci|²
        let (a, b) = (2.0 * (cj.0 - ci.0), 2.0 * (cj.1 - ci.1));
        let c = cj.0 * cj.0 + cj.1 * cj.1 - ci.0 * ci.0 - ci.1 * ci.1;
        cell = clip_half_plane(&cell, a, b, c);
        if cell.is_empty() {
            return MultiPolygon(Vec::new());
        }
    }
    let ring: Vec<(f64, f64)> = cell.into_iter().map(|(x, y)| (x / k, y)).collect();
    let poly = Polygon::new(ring.into(), Vec::new());
    shape.intersection(&MultiPolygon(vec![poly]))
}

/// Dissolves old communes (split by nearest centre where they map to several)
/// into new ones; returns each new commune's polygon and contributor count.
fn derive_polygons(
    old: &[OldCommune],
    targets: &[Vec<usize>],
    new: &[NewCommune],
) -> (Vec<MultiPolygon<f64>>, Vec<u32>) {
    use rayon::prelude::*;
    let pieces: Vec<Vec<(usize, MultiPolygon<f64>)>> = old
        .par_iter()
        .zip(targets)
        .map(|(o, t)| {
            let shape = o.shape.orient(Direction::Default);
            match t.as_slice() {
                [] => Vec::new(),
                [one] => vec![(*one, shape)],
                many => {
                    let centres: Vec<(f64, f64)> = many.iter().map(|&n| new[n].centre).collect();
                    many.iter()
                        .enumerate()
                        .map(|(k, &n)| (n, voronoi_piece(&shape, &centres, k)))
                        .filter(|(_, p)| !p.0.is_empty())
                        .collect()
                }
            }
        })
        .collect();
    let mut per_new: Vec<Vec<Polygon<f64>>> = vec![Vec::new(); new.len()];
    let mut contributors = vec![0u32; new.len()];
    for (n, p) in pieces.into_iter().flatten() {
        contributors[n] += 1;
        per_new[n].extend(p.0);
    }
    let derived = per_new
        .into_par_iter()
        .map(|polys| {
            if polys.is_empty() {
                MultiPolygon(Vec::new())
            } else {
                geo::unary_union(&polys).orient(Direction::Default)
            }
        })
        .collect();
    (derived, contributors)
}

/// Area in km² on the sphere (Chamberlain–Duquette): exteriors minus holes,
/// whatever the rings' orientation.
#[must_use]
pub fn area_km2(shape: &MultiPolygon<f64>) -> f64 {
    let ring = |r: &geo::LineString<f64>| {
        Polygon::new(r.clone(), Vec::new()).chamberlain_duquette_unsigned_area()
    };
    shape
        .0
        .iter()
        .map(|p| ring(p.exterior()) - p.interiors().iter().map(ring).sum::<f64>())
        .sum::<f64>()
        / 1e6
}

/// Quality of the derived polygons against the official areas and centres.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Quality {
    /// New communes considered.
    pub communes: u64,
    /// Those with a derived polygon.
    pub with_polygon: u64,
    /// Those all of whose pre-reform communes were reached by a 2009 commune.
    pub complete: u64,
    /// Median of derived area / official area (complete communes).
    pub area_ratio_median: Option<f64>,
    /// 10th percentile of the ratio.
    pub area_ratio_p10: Option<f64>,
    /// 90th percentile of the ratio.
    pub area_ratio_p90: Option<f64>,
    /// Share of complete communes with a ratio in [0.9, 1.1].
    pub share_within_10pct: Option<f64>,
    /// Share of communes with a polygon whose official centre lies inside it.
    pub share_centre_inside: Option<f64>,
    /// Median distance (m) from the official centre to the polygon (0 inside).
    pub centre_distance_median_m: Option<f64>,
}

/// Quality figures over the new communes selected by `keep`.
#[must_use]
pub fn quality(r: &Reform, keep: impl Fn(usize) -> bool) -> Quality {
    let mut ratios = Vec::new();
    let mut dists = Vec::new();
    let (mut n, mut with, mut complete, mut inside) = (0u64, 0u64, 0u64, 0u64);
    for (i, c) in r.new.iter().enumerate() {
        if !keep(i) {
            continue;
        }
        n += 1;
        let shape = &r.derived[i];
        if shape.0.is_empty() {
            continue;
        }
        with += 1;
        let d = if contains(shape, c.centre) {
            inside += 1;
            0.0
        } else {
            distance_to_shape_m(shape, [c.centre.0, c.centre.1])
        };
        dists.push(d);
        if r.complete[i] {
            complete += 1;
            if let Some(a) = c.area_km2.filter(|a| *a > 0.0) {
                ratios.push(area_km2(shape) / a);
            }
        }
    }
    sort_values(&mut ratios);
    sort_values(&mut dists);
    #[allow(clippy::cast_precision_loss, reason = "counts are small")]
    let share = |k: u64, of: u64| (of > 0).then(|| k as f64 / of as f64);
    let within = ratios.iter().filter(|r| (0.9..=1.1).contains(*r)).count() as u64;
    Quality {
        communes: n,
        with_polygon: with,
        complete,
        area_ratio_median: median_sorted(&ratios),
        area_ratio_p10: quantile_sorted(&ratios, 0.1),
        area_ratio_p90: quantile_sorted(&ratios, 0.9),
        share_within_10pct: share(within, ratios.len() as u64),
        share_centre_inside: share(inside, with),
        centre_distance_median_m: median_sorted(&dists),
    }
}

/// Match counts of one 2009 province.
#[derive(Debug, Clone, Serialize)]
pub struct ProvinceMatch {
    /// 2009 province code.
    pub province_id: String,
    /// Its name.
    pub province: String,
    /// 2009 communes.
    pub communes: u64,
    /// Per method, in [`MatchMethod::ALL`] order.
    pub by_method: [u64; 6],
}

impl ProvinceMatch {
    /// Matched communes / communes.
    #[must_use]
    #[allow(clippy::cast_precision_loss, reason = "counts are small")]
    pub fn rate(&self) -> f64 {
        self.matched() as f64 / self.communes.max(1) as f64
    }

    /// Communes matched by name or by a centre in the polygon.
    #[must_use]
    pub fn matched(&self) -> u64 {
        MatchMethod::ALL
            .iter()
            .zip(self.by_method)
            .filter(|(m, _)| m.is_match())
            .map(|(_, n)| n)
            .sum()
    }
}

/// Match counts per 2009 province, sorted by code, and the national total.
#[must_use]
pub fn match_rates(r: &Reform) -> (Vec<ProvinceMatch>, ProvinceMatch) {
    let mut per: BTreeMap<(u64, String), ProvinceMatch> = BTreeMap::new();
    let mut total = ProvinceMatch {
        province_id: "ALL".to_owned(),
        province: "Việt Nam".to_owned(),
        communes: 0,
        by_method: [0; 6],
    };
    for (o, m) in r.old.iter().zip(&r.matches) {
        let key = (
            o.province_code.parse().unwrap_or(u64::MAX),
            o.province_code.clone(),
        );
        let p = per.entry(key).or_insert_with(|| ProvinceMatch {
            province_id: o.province_code.clone(),
            province: o.province.clone(),
            communes: 0,
            by_method: [0; 6],
        });
        let k = MatchMethod::ALL
            .iter()
            .position(|x| *x == m.method)
            .unwrap_or(5);
        p.communes += 1;
        p.by_method[k] += 1;
        total.communes += 1;
        total.by_method[k] += 1;
    }
    (per.into_values().collect(), total)
}

/// The crosswalk rows of the selected 2009 communes.
#[must_use]
pub fn crosswalk_rows(r: &Reform) -> Vec<CrosswalkRow> {
    let mut rows = Vec::new();
    for (o, t) in r.old.iter().zip(&r.targets) {
        for &n in t {
            let c = &r.new[n];
            rows.push(CrosswalkRow {
                old_code: o.code.clone(),
                new_code: c.code.clone(),
                new_name: c.name.clone(),
                new_parent_code: c.province_code.clone(),
                new_parent_name: c.province.clone(),
                new_centre: c.centre,
            });
        }
    }
    rows
}

/// The crosswalk CSV's header.
pub const CROSSWALK_HEADER: [&str; 7] = [
    "old_code",
    "new_code",
    "new_name",
    "new_parent_code",
    "new_parent_name",
    "new_lon",
    "new_lat",
];

/// Writes the data step's files into `out`:
/// `match_2009_gso.csv`, `match_rate_by_province.csv`,
/// `crosswalk_2009_2025.csv`, `communes_2025_derived.geojson`,
/// `quality.json`.
///
/// # Errors
/// A file cannot be written.
pub fn write_reform(out: &Path, r: &Reform, legacy: &[LegacyCommune]) -> Result<()> {
    write_csv(
        &out.join("match_2009_gso.csv"),
        &[
            "commune_id",
            "province_id",
            "district_vn",
            "commune_vn",
            "gso_code",
            "gso_name",
            "gso_district",
            "method",
            "attached_gso_codes",
            "new_codes",
        ],
        r.old
            .iter()
            .zip(&r.matches)
            .zip(&r.targets)
            .map(|((o, m), t)| {
                let l = m.legacy.map(|i| &legacy[i]);
                [
                    o.code.clone(),
                    o.province_code.clone(),
                    o.district.clone(),
                    o.name.clone(),
                    l.map(|l| l.code.clone()).unwrap_or_default(),
                    l.map(|l| l.name.clone()).unwrap_or_default(),
                    l.map(|l| l.district.clone()).unwrap_or_default(),
                    m.method.as_str().to_owned(),
                    m.attached
                        .iter()
                        .map(|&i| legacy[i].code.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    t.iter()
                        .map(|&n| r.new[n].code.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            }),
    )?;
    let (per, total) = match_rates(r);
    let mut header = vec![
        "province_id",
        "province",
        "communes",
        "matched",
        "match_rate",
    ];
    header.extend(MatchMethod::ALL.iter().map(|m| m.as_str()));
    write_csv(
        &out.join("match_rate_by_province.csv"),
        &header,
        per.iter().chain(std::iter::once(&total)).map(|p| {
            let mut row = vec![
                p.province_id.clone(),
                p.province.clone(),
                p.communes.to_string(),
                p.matched().to_string(),
                fmt_decimal(Some(p.rate()), 4),
            ];
            row.extend(p.by_method.iter().map(u64::to_string));
            row
        }),
    )?;
    write_csv(
        &out.join("crosswalk_2009_2025.csv"),
        &CROSSWALK_HEADER,
        crosswalk_rows(r).into_iter().map(|c| {
            [
                c.old_code,
                c.new_code,
                c.new_name,
                c.new_parent_code,
                c.new_parent_name,
                fmt_decimal(Some(c.new_centre.0), 6),
                fmt_decimal(Some(c.new_centre.1), 6),
            ]
        }),
    )?;
    let features: Vec<String> = r
        .new
        .iter()
        .enumerate()
        .filter(|(i, _)| !r.derived[*i].0.is_empty())
        .map(|(i, c)| {
            feature(
                &Shape::Multi(r.derived[i].clone()),
                &[
                    ("province_code", Prop::Str(c.province_code.clone())),
                    ("province", Prop::Str(c.province.clone())),
                    ("commune_code", Prop::Str(c.code.clone())),
                    ("commune", Prop::Str(c.name.clone())),
                    ("commune_type", Prop::Str(c.kind.clone())),
                    ("communes_2009", Prop::Int(u64::from(r.contributors[i]))),
                    ("complete", Prop::Bool(Some(r.complete[i]))),
                    (
                        "area_km2_derived",
                        Prop::Num(Some(area_km2(&r.derived[i])), 2),
                    ),
                    ("area_km2_official", Prop::Num(c.area_km2, 2)),
                ],
            )
        })
        .collect();
    write_collection(
        &out.join("communes_2025_derived.geojson"),
        "communes_2025_derived",
        &features,
    )?;
    let covered: HashSet<usize> = r.targets.iter().flatten().copied().collect();
    let q_all = quality(r, |i| covered.contains(&i));
    let mut per_province = serde_json::Map::new();
    let mut codes: Vec<&str> = r.new.iter().map(|n| n.province_code.as_str()).collect();
    codes.sort_by(|a, b| cmp_codes(a, b));
    codes.dedup();
    for pc in codes {
        let q = quality(r, |i| r.new[i].province_code == pc && covered.contains(&i));
        if q.communes > 0 {
            per_province.insert(pc.to_owned(), serde_json::to_value(q).unwrap_or_default());
        }
    }
    let json = serde_json::json!({
        "match_2009_to_gso": total,
        "match_rate": total.rate(),
        "new_communes_total": r.new.len(),
        "quality": q_all,
        "quality_by_province_2025": per_province,
        "notes": r.notes,
    });
    write_json_pretty(&out.join("quality.json"), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names() {
        assert_eq!(
            bare_name("Phường Nguyễn Thị Minh Khai", false),
            "nguyễn thị minh khai"
        );
        assert_eq!(bare_name("Xã Huyền Tụng", true), "huyen tung");
        assert_eq!(bare_name("Phường Huyền Tụng", true), "huyen tung");
        assert_eq!(bare_name("Thị trấn Đồng Đăng", true), "dong dang");
        assert_eq!(bare_name("Phường 01", true), "1");
        assert_eq!(bare_name("Tỉnh Bà Rịa - Vũng Tàu", true), "ba ria vung tau");
        assert_eq!(bare_name("Bà Rịa-Vũng Tàu", true), "ba ria vung tau");
        // "Xã" alone is not stripped from a name that merely starts with it.
        assert_eq!(bare_name("Xãm Khánh", true), "xam khanh");
        // Old and new tone placement differ with diacritics, agree without.
        assert_ne!(bare_name("Yên Hoà", false), bare_name("Yên Hòa", false));
        assert_eq!(bare_name("Yên Hoà", true), bare_name("Yên Hòa", true));
    }

    fn square(x0: f64, y0: f64, s: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![Polygon::new(
            vec![
                (x0, y0),
                (x0 + s, y0),
                (x0 + s, y0 + s),
                (x0, y0 + s),
                (x0, y0),
            ]
            .into(),
            Vec::new(),
        )])
    }

    fn old(code: &str, district: &str, name: &str, x0: f64) -> OldCommune {
        OldCommune {
            province_code: "207".into(),
            province: "Bắc Kạn".into(),
            district: district.into(),
            code: code.into(),
            name: name.into(),
            shape: square(x0, 0.0, 1.0),
        }
    }

    fn gso(code: &str, district: &str, name: &str, centre: (f64, f64)) -> LegacyCommune {
        LegacyCommune {
            province_code: "06".into(),
            province: "Tỉnh Bắc Kạn".into(),
            district: district.into(),
            code: code.into(),
            name: name.into(),
            centre: Some(centre),
        }
    }

    #[test]
    fn matching_rules_in_order() {
        let olds = vec![
            old("1", "Huyện Ba Bể", "Xã Cao Thượng", 0.0), // unique name
            old("2", "Huyện Ba Bể", "Xã Nam Mẫu", 1.0),    // shared name, district decides
            old("3", "Thị xã Bắc Kạn", "Xã Đôn Phong", 2.0), // shared, no district: nearest
            old("4", "Huyện Ba Bể", "Xã Gone", 3.0),       // renamed: centre in polygon
            old("5", "Huyện Ba Bể", "Xã Nowhere", 9.0),    // merged away: nearest centre
        ];
        let legacy = vec![
            gso("10", "Huyện Ba Bể", "Xã Cao Thượng", (0.5, 0.5)),
            gso("20", "Huyện Ba Bể", "Xã Nam Mẫu", (1.5, 0.5)),
            gso("21", "Huyện Pác Nặm", "Xã Nam Mẫu", (7.5, 0.5)),
            gso("30", "Huyện Bạch Thông", "Xã Đôn Phong", (2.5, 0.5)),
            gso("31", "Huyện Na Rì", "Xã Đôn Phong", (8.5, 0.5)),
            gso("40", "Huyện Ba Bể", "Xã Renamed", (3.5, 0.5)),
            gso("41", "Huyện Ba Bể", "Xã New Since 2009", (3.2, 0.2)),
        ];
        let m = match_communes(&olds, &legacy);
        let got: Vec<(Option<&str>, MatchMethod)> = m
            .iter()
            .map(|m| (m.legacy.map(|i| legacy[i].code.as_str()), m.method))
            .collect();
        assert_eq!(
            got,
            [
                (Some("10"), MatchMethod::Name),
                (Some("20"), MatchMethod::NameDistrict),
                (Some("30"), MatchMethod::NameNearest),
                // 40 is nearer the interior point (3.5, 0.5) than 41.
                (Some("40"), MatchMethod::CentreInPolygon),
                (Some("31"), MatchMethod::NearestCentre),
            ]
        );
        // 41 was matched by nobody; its centre is in commune 4: attached there.
        assert_eq!(m[3].attached, vec![6]);
        // 21 and 31 are matched by name by nobody and their centres fall in no 2009 commune.
        assert!(
            m.iter()
                .all(|x| !x.attached.contains(&2) && !x.attached.contains(&4))
        );
        // A province with no GSO counterpart: unmatched.
        let mut stray = old("6", "", "Xã Cao Thượng", 0.0);
        stray.province = "Atlantis".into();
        let m = match_communes(&[stray], &legacy);
        assert_eq!((m[0].legacy, m[0].method), (None, MatchMethod::Unmatched));
    }

    #[test]
    fn voronoi_pieces_partition_the_polygon() {
        let shape = square(0.0, 0.0, 1.0);
        let centres = [(0.25, 0.5), (0.75, 0.5), (0.5, 0.9)];
        let pieces: Vec<MultiPolygon<f64>> =
            (0..3).map(|i| voronoi_piece(&shape, &centres, i)).collect();
        let total: f64 = pieces.iter().map(area_km2).sum();
        assert!((total / area_km2(&shape) - 1.0).abs() < 1e-6, "{total}");
        // Each test point lies in the piece of its nearest centre (brute force).
        let k = 0.5f64.to_radians().cos();
        for (x, y) in [(0.1, 0.1), (0.9, 0.2), (0.5, 0.95), (0.3, 0.6), (0.7, 0.6)] {
            let d = |c: &(f64, f64)| ((x - c.0) * k).powi(2) + (y - c.1).powi(2);
            let best = (0..3)
                .min_by(|&a, &b| d(&centres[a]).total_cmp(&d(&centres[b])))
                .unwrap();
            for (i, p) in pieces.iter().enumerate() {
                assert_eq!(contains(p, (x, y)), i == best, "point ({x}, {y}) piece {i}");
            }
        }
        // Identical centres: the first keeps the piece, the second gets nothing.
        let twins = [(0.5, 0.5), (0.5, 0.5)];
        assert!(
            (area_km2(&voronoi_piece(&shape, &twins, 0)) / area_km2(&shape) - 1.0).abs() < 1e-6
        );
        assert!(voronoi_piece(&shape, &twins, 1).0.is_empty());
    }

    #[test]
    fn dissolve_conserves_area() {
        let olds = vec![
            old("1", "", "A", 0.0),
            old("2", "", "B", 1.0),
            old("3", "", "C", 2.0),
        ];
        let new = vec![
            NewCommune {
                province_code: "19".into(),
                province: "P".into(),
                code: "100".into(),
                name: "X".into(),
                kind: "Xã".into(),
                centre: (2.2, 0.5),
                area_km2: None,
            },
            NewCommune {
                province_code: "19".into(),
                province: "P".into(),
                code: "200".into(),
                name: "Y".into(),
                kind: "Xã".into(),
                centre: (2.8, 0.5),
                area_km2: None,
            },
        ];
        // 1 and 2 go wholly to X; 3 is split between X and Y (bisector x = 2.5).
        let targets = vec![vec![0], vec![0], vec![0, 1]];
        let (d, n) = derive_polygons(&olds, &targets, &new);
        assert_eq!(n, vec![3, 1]);
        let a = |x: &MultiPolygon<f64>| area_km2(x);
        let whole: f64 = olds.iter().map(|o| a(&o.shape)).sum();
        assert!(
            ((a(&d[0]) + a(&d[1])) / whole - 1.0).abs() < 1e-6,
            "{} + {} vs {whole}: {:?}",
            a(&d[0]),
            a(&d[1]),
            d
        );
        // X = [0, 2.5] × [0, 1], shared edges dissolved into one polygon; Y = [2.5, 3] × [0, 1].
        assert_eq!(d[0].0.len(), 1);
        assert!(
            (a(&d[1]) / a(&square(0.0, 0.0, 1.0)) - 0.5).abs() < 1e-3,
            "{}",
            a(&d[1])
        );
    }
}
