//! Villages and hamlets (thôn, bản, xóm, ấp) as GeoJSON points.

use std::path::Path;

use crate::boundaries::read_feature_collection;
use crate::error::{Error, Result};

/// A village point.
#[derive(Debug, Clone, PartialEq)]
pub struct Village {
    /// Id, verbatim.
    pub id: String,
    /// Name.
    pub name: String,
    /// Population, when known.
    pub population: Option<f64>,
    /// Longitude.
    pub lon: f64,
    /// Latitude.
    pub lat: f64,
}

/// Property names of the villages layer.
#[derive(Debug, Clone)]
pub struct VillageProperties {
    /// Id property (default `village_id`).
    pub id: String,
    /// Name property (default `name`).
    pub name: String,
}

impl Default for VillageProperties {
    fn default() -> Self {
        Self {
            id: "village_id".to_owned(),
            name: "name".to_owned(),
        }
    }
}

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        serde_json::Value::Number(n) => {
            Some(n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()))
        }
        _ => None,
    }
}

/// Loads village points. A feature without an id, or whose geometry is not a
/// Point with valid coordinates, is an error naming the feature; a missing
/// name is empty; ids must be unique.
///
/// # Errors
/// As above, or an unreadable file.
pub fn load_villages(path: &Path, props: &VillageProperties) -> Result<Vec<Village>> {
    villages_from(path, &read_feature_collection(path)?, props)
}

/// Villages from a parsed collection (`path` names it in messages).
///
/// # Errors
/// As [`load_villages`].
pub fn villages_from(
    path: &Path,
    fc: &geojson::FeatureCollection,
    props: &VillageProperties,
) -> Result<Vec<Village>> {
    let mut out = Vec::with_capacity(fc.features.len());
    let mut ids = std::collections::HashSet::new();
    for (index, f) in fc.features.iter().enumerate() {
        let err = |message: String| Error::Feature {
            path: path.to_owned(),
            index,
            message,
        };
        let id = f.property(&props.id).and_then(text).ok_or_else(|| {
            err(format!(
                "no village id in property '{}'; set --village-id to the id property",
                props.id
            ))
        })?;
        if !ids.insert(id.clone()) {
            return Err(err(format!(
                "village id '{id}' is used twice; ids must be unique"
            )));
        }
        let name = f.property(&props.name).and_then(text).unwrap_or_default();
        let population = f
            .property("population")
            .and_then(serde_json::Value::as_f64)
            .filter(|p| p.is_finite() && *p >= 0.0);
        let (lon, lat) = match f.geometry.as_ref().map(|g| &g.value) {
            Some(geojson::GeometryValue::Point { coordinates }) if coordinates.len() >= 2 => {
                (coordinates.as_slice()[0], coordinates.as_slice()[1])
            }
            _ => {
                return Err(err(format!(
                    "village '{id}' is not a Point; villages must be points"
                )));
            }
        };
        if !(lon.is_finite()
            && lat.is_finite()
            && (-180.0..=180.0).contains(&lon)
            && (-90.0..=90.0).contains(&lat))
        {
            return Err(err(format!(
                "village '{id}' has coordinates out of range ({lon}, {lat})"
            )));
        }
        out.push(Village {
            id,
            name,
            population,
            lon,
            lat,
        });
    }
    Ok(out)
}
