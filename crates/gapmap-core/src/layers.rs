//! GIS layers in several formats: GeoJSON (hand-written, byte-stable),
//! FlatGeobuf (with its packed R-tree) and GeoPackage (with an R-tree spatial
//! index and the QGIS style stored in `layer_styles`), each with a QGIS
//! style (`.qml` beside GeoJSON and FlatGeobuf files).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::geojson_out::{Prop, Shape, feature, write_collection};
use crate::output::write_atomic;

/// An output format of GIS layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    /// RFC 7946 GeoJSON (`.geojson`).
    GeoJson,
    /// FlatGeobuf (`.fgb`).
    FlatGeobuf,
    /// OGC GeoPackage (`.gpkg`).
    GeoPackage,
}

impl Format {
    /// File extension.
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            Self::GeoJson => "geojson",
            Self::FlatGeobuf => "fgb",
            Self::GeoPackage => "gpkg",
        }
    }
}

/// The formats of a run (`--format geojson,fgb,gpkg`), sorted, no repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats(pub Vec<Format>);

impl Default for Formats {
    fn default() -> Self {
        Self(vec![Format::GeoJson])
    }
}

impl FromStr for Formats {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let f = match part.to_ascii_lowercase().as_str() {
                "geojson" | "json" => Format::GeoJson,
                "fgb" | "flatgeobuf" => Format::FlatGeobuf,
                "gpkg" | "geopackage" => Format::GeoPackage,
                other => {
                    return Err(Error::Config(format!(
                        "--format '{other}': use geojson, fgb or gpkg (comma-separated)"
                    )));
                }
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if out.is_empty() {
            return Err(Error::Config(
                "--format is empty; use geojson, fgb or gpkg".to_owned(),
            ));
        }
        out.sort();
        Ok(Self(out))
    }
}

/// Geometry type of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerGeometry {
    /// Points.
    Point,
    /// Polygons (one exterior ring each).
    Polygon,
    /// Multipolygons with holes.
    MultiPolygon,
}

impl LayerGeometry {
    const fn gpkg_name(self) -> &'static str {
        match self {
            Self::Point => "POINT",
            Self::Polygon => "POLYGON",
            Self::MultiPolygon => "MULTIPOLYGON",
        }
    }
}

/// A layer: its name, geometry type, field names, features and style.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Layer name (what QGIS shows).
    pub name: String,
    /// Geometry type.
    pub geometry: LayerGeometry,
    /// Field names, in order.
    pub fields: Vec<String>,
    /// Features: a shape and one value per field.
    pub features: Vec<(Shape, Vec<Prop>)>,
    /// QGIS style (QML), if any.
    pub style: Option<String>,
}

/// The storage type of a field: that of its first non-null value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Text,
    Integer,
    Real,
    Boolean,
}

impl Layer {
    fn field_types(&self) -> Vec<FieldType> {
        (0..self.fields.len())
            .map(|i| {
                self.features
                    .iter()
                    .find_map(|(_, p)| match &p[i] {
                        Prop::Str(_) => Some(FieldType::Text),
                        Prop::Int(_) => Some(FieldType::Integer),
                        Prop::Num(Some(_), _) => Some(FieldType::Real),
                        Prop::Raw(r) if !r.is_empty() => Some(FieldType::Real),
                        Prop::Bool(Some(_)) => Some(FieldType::Boolean),
                        _ => None,
                    })
                    .unwrap_or(FieldType::Text)
            })
            .collect()
    }
}

/// Writes a layer as `<dir>/<stem>.<ext>` in every format (and `<stem>.qml`
/// beside GeoJSON and FlatGeobuf when it has a style); returns the files written.
///
/// # Errors
/// A file cannot be written.
pub fn write_layer(
    dir: &Path,
    stem: &str,
    layer: &Layer,
    formats: &Formats,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for &f in &formats.0 {
        let path = dir.join(format!("{stem}.{}", f.extension()));
        match f {
            Format::GeoJson => write_geojson(&path, layer)?,
            Format::FlatGeobuf => write_fgb(&path, layer)?,
            Format::GeoPackage => write_gpkg(&path, layer)?,
        }
        written.push(path);
    }
    let sidecar = formats
        .0
        .iter()
        .any(|f| matches!(f, Format::GeoJson | Format::FlatGeobuf));
    if let (Some(style), true) = (&layer.style, sidecar) {
        let path = dir.join(format!("{stem}.qml"));
        write_atomic(&path, |w| w.write_all(style.as_bytes()))?;
        written.push(path);
    }
    Ok(written)
}

fn write_geojson(path: &Path, layer: &Layer) -> Result<()> {
    let features: Vec<String> = layer
        .features
        .iter()
        .map(|(shape, props)| {
            let named: Vec<(&str, Prop)> = layer
                .fields
                .iter()
                .map(String::as_str)
                .zip(props.iter().cloned())
                .collect();
            feature(shape, &named)
        })
        .collect();
    write_collection(path, &layer.name, &features)
}

/// A shape as a geo geometry, rounded to 6 decimals like the GeoJSON.
fn geo_geometry(shape: &Shape) -> geo::Geometry<f64> {
    let r = |v: f64| (v * 1e6).round() / 1e6;
    match shape {
        Shape::Point(x, y) => geo::Geometry::Point(geo::Point::new(r(*x), r(*y))),
        Shape::Ring(ring) => {
            let mut pts: Vec<(f64, f64)> = ring.iter().map(|&(x, y)| (r(x), r(y))).collect();
            if pts.first() != pts.last()
                && let Some(&f) = pts.first()
            {
                pts.push(f);
            }
            let mut p = geo::Polygon::new(pts.into(), Vec::new());
            use geo::Orient;
            p = p.orient(geo::orient::Direction::Default);
            geo::Geometry::Polygon(p)
        }
        Shape::Multi(mp) => {
            use geo::{MapCoords, Orient};
            geo::Geometry::MultiPolygon(
                mp.map_coords(|c| geo::coord! { x: r(c.x), y: r(c.y) })
                    .orient(geo::orient::Direction::Default),
            )
        }
    }
}

fn raw_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn write_fgb(path: &Path, layer: &Layer) -> Result<()> {
    use flatgeobuf::{ColumnType, FgbCrs, FgbWriter, FgbWriterOptions, GeometryType};
    use geozero::{ColumnValue, PropertyProcessor};
    let fail = |e: &dyn std::fmt::Display| Error::Layer {
        path: path.to_owned(),
        message: format!("cannot write FlatGeobuf: {e}"),
    };
    let gtype = match layer.geometry {
        LayerGeometry::Point => GeometryType::Point,
        LayerGeometry::Polygon => GeometryType::Polygon,
        LayerGeometry::MultiPolygon => GeometryType::MultiPolygon,
    };
    let options = FgbWriterOptions {
        // GDAL rejects a packed R-tree of zero items: an empty layer has none.
        write_index: !layer.features.is_empty(),
        detect_type: false,
        promote_to_multi: false,
        crs: FgbCrs {
            code: 4326,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut fgb =
        FgbWriter::create_with_options(&layer.name, gtype, options).map_err(|e| fail(&e))?;
    let types = layer.field_types();
    for (name, t) in layer.fields.iter().zip(&types) {
        let ct = match t {
            FieldType::Text => ColumnType::String,
            FieldType::Integer => ColumnType::Long,
            FieldType::Real => ColumnType::Double,
            FieldType::Boolean => ColumnType::Bool,
        };
        fgb.add_column(name, ct, |_, col| col.nullable = true);
    }
    for (shape, props) in &layer.features {
        let geom = geo_geometry(shape);
        let mut err = None;
        fgb.add_feature_geom(geom, |feat| {
            for (i, (p, name)) in props.iter().zip(&layer.fields).enumerate() {
                let v = match p {
                    Prop::Str(s) => Some(ColumnValue::String(s)),
                    #[allow(clippy::cast_possible_wrap, reason = "counts fit i64")]
                    Prop::Int(n) => Some(ColumnValue::Long(*n as i64)),
                    Prop::Num(Some(x), _) => Some(ColumnValue::Double(*x)),
                    Prop::Raw(r) => raw_number(r).map(ColumnValue::Double),
                    Prop::Bool(Some(b)) => Some(ColumnValue::Bool(*b)),
                    Prop::Num(None, _) | Prop::Bool(None) => None,
                };
                if let Some(v) = v
                    && let Err(e) = feat.property(i, name, &v)
                {
                    err = Some(e.to_string());
                }
            }
        })
        .map_err(|e| fail(&e))?;
        if let Some(e) = err {
            return Err(fail(&e));
        }
    }
    let mut buf = Vec::new();
    fgb.write(&mut buf).map_err(|e| fail(&e))?;
    write_atomic(path, |w| w.write_all(&buf))
}

/// Well-known text of WGS 84 (EPSG:4326), as GDAL writes it.
const WGS84_WKT: &str = r#"GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]"#;

/// A fixed timestamp, so that the same inputs give the same bytes.
const FIXED_TIME: &str = "2000-01-01T00:00:00.000Z";

fn wkb(g: &geo::Geometry<f64>, out: &mut Vec<u8>) {
    fn ring(r: &geo::LineString<f64>, out: &mut Vec<u8>) {
        #[allow(clippy::cast_possible_truncation, reason = "rings are small")]
        out.extend((r.0.len() as u32).to_le_bytes());
        for c in &r.0 {
            out.extend(c.x.to_le_bytes());
            out.extend(c.y.to_le_bytes());
        }
    }
    fn polygon(p: &geo::Polygon<f64>, out: &mut Vec<u8>) {
        out.push(1);
        out.extend(3u32.to_le_bytes());
        #[allow(clippy::cast_possible_truncation, reason = "rings are few")]
        out.extend(((1 + p.interiors().len()) as u32).to_le_bytes());
        ring(p.exterior(), out);
        for h in p.interiors() {
            ring(h, out);
        }
    }
    match g {
        geo::Geometry::Point(p) => {
            out.push(1);
            out.extend(1u32.to_le_bytes());
            out.extend(p.x().to_le_bytes());
            out.extend(p.y().to_le_bytes());
        }
        geo::Geometry::Polygon(p) => polygon(p, out),
        geo::Geometry::MultiPolygon(mp) => {
            out.push(1);
            out.extend(6u32.to_le_bytes());
            #[allow(clippy::cast_possible_truncation, reason = "parts are few")]
            out.extend((mp.0.len() as u32).to_le_bytes());
            for p in &mp.0 {
                polygon(p, out);
            }
        }
        _ => {}
    }
}

/// A GeoPackage geometry blob: header with envelope, then WKB.
fn gpkg_blob(g: &geo::Geometry<f64>) -> (Vec<u8>, [f64; 4]) {
    use geo::BoundingRect;
    let b = g
        .bounding_rect()
        .map_or([0.0; 4], |r| [r.min().x, r.max().x, r.min().y, r.max().y]);
    let mut out = vec![b'G', b'P', 0, 0b0000_0011];
    out.extend(4326i32.to_le_bytes());
    for v in b {
        out.extend(v.to_le_bytes());
    }
    wkb(g, &mut out);
    (out, b)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn write_gpkg(path: &Path, layer: &Layer) -> Result<()> {
    let tmp = crate::output::temp_beside(path, ".gpkg.tmp")?;
    let fail = |e: rusqlite::Error| Error::Layer {
        path: path.to_owned(),
        message: format!("cannot write GeoPackage: {e}"),
    };
    {
        let conn = rusqlite::Connection::open(tmp.path()).map_err(fail)?;
        let t = &layer.name;
        let types = layer.field_types();
        let mut columns = String::new();
        for (name, ty) in layer.fields.iter().zip(&types) {
            columns.push_str(&format!(
                ", {} {}",
                quote(name),
                match ty {
                    FieldType::Text => "TEXT",
                    FieldType::Integer => "INTEGER",
                    FieldType::Real => "REAL",
                    FieldType::Boolean => "BOOLEAN",
                }
            ));
        }
        conn.execute_batch(&format!(
            "PRAGMA application_id = 1196444487;
             PRAGMA user_version = 10300;
             BEGIN;
             CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY,
               organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
               description TEXT);
             CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
               identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL,
               min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
               CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
             CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
               geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
               CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
               CONSTRAINT uk_gc_table_name UNIQUE (table_name),
               CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
               CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
             CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
               definition TEXT NOT NULL, scope TEXT NOT NULL,
               CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
             CREATE TABLE {tq} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom {gt}{columns});
             CREATE VIRTUAL TABLE {rq} USING rtree(id, minx, maxx, miny, maxy);
             CREATE TABLE layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256),
               f_table_schema TEXT(256), f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30),
               styleQML TEXT, styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
               update_time DATETIME);",
            tq = quote(t),
            gt = layer.geometry.gpkg_name(),
            rq = quote(&format!("rtree_{t}_geom")),
        ))
        .map_err(fail)?;
        conn.execute(
            "INSERT INTO gpkg_spatial_ref_sys VALUES
               ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
               ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system'),
               ('WGS 84 geodetic', 4326, 'EPSG', 4326, ?1, 'longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid')",
            [WGS84_WKT],
        )
        .map_err(fail)?;
        let placeholders: String = (0..layer.fields.len())
            .map(|i| format!(", ?{}", i + 2))
            .collect();
        let mut insert = conn
            .prepare(&format!(
                "INSERT INTO {} (geom{}) VALUES (?1{placeholders})",
                quote(t),
                layer
                    .fields
                    .iter()
                    .map(|f| format!(", {}", quote(f)))
                    .collect::<String>()
            ))
            .map_err(fail)?;
        let mut rtree = conn
            .prepare(&format!(
                "INSERT INTO {} VALUES (?1, ?2, ?3, ?4, ?5)",
                quote(&format!("rtree_{t}_geom"))
            ))
            .map_err(fail)?;
        let mut extent = [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for (shape, props) in &layer.features {
            let (blob, b) = gpkg_blob(&geo_geometry(shape));
            extent = [
                extent[0].min(b[0]),
                extent[1].max(b[1]),
                extent[2].min(b[2]),
                extent[3].max(b[3]),
            ];
            let mut values: Vec<rusqlite::types::Value> = vec![rusqlite::types::Value::Blob(blob)];
            for p in props {
                values.push(match p {
                    Prop::Str(s) => rusqlite::types::Value::Text(s.clone()),
                    #[allow(clippy::cast_possible_wrap, reason = "counts fit i64")]
                    Prop::Int(n) => rusqlite::types::Value::Integer(*n as i64),
                    Prop::Num(Some(x), _) => rusqlite::types::Value::Real(*x),
                    Prop::Raw(r) => raw_number(r)
                        .map_or(rusqlite::types::Value::Null, rusqlite::types::Value::Real),
                    Prop::Bool(Some(b)) => rusqlite::types::Value::Integer(i64::from(*b)),
                    Prop::Num(None, _) | Prop::Bool(None) => rusqlite::types::Value::Null,
                });
            }
            insert
                .execute(rusqlite::params_from_iter(values))
                .map_err(fail)?;
            let fid = conn.last_insert_rowid();
            rtree
                .execute(rusqlite::params![fid, b[0], b[1], b[2], b[3]])
                .map_err(fail)?;
        }
        drop(insert);
        drop(rtree);
        let ext: [Option<f64>; 4] = if layer.features.is_empty() {
            [None; 4]
        } else {
            [
                Some(extent[0]),
                Some(extent[2]),
                Some(extent[1]),
                Some(extent[3]),
            ]
        };
        conn.execute(
            "INSERT INTO gpkg_contents VALUES (?1, 'features', ?1, '', ?2, ?3, ?4, ?5, ?6, 4326)",
            rusqlite::params![t, FIXED_TIME, ext[0], ext[1], ext[2], ext[3]],
        )
        .map_err(fail)?;
        conn.execute(
            "INSERT INTO gpkg_contents VALUES ('layer_styles', 'attributes', 'layer_styles', '', ?1, NULL, NULL, NULL, NULL, NULL)",
            [FIXED_TIME],
        )
        .map_err(fail)?;
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?1, 'geom', ?2, 4326, 0, 0)",
            rusqlite::params![t, layer.geometry.gpkg_name()],
        )
        .map_err(fail)?;
        conn.execute(
            "INSERT INTO gpkg_extensions VALUES (?1, 'geom', 'gpkg_rtree_index',
               'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
            [t],
        )
        .map_err(fail)?;
        if let Some(style) = &layer.style {
            conn.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,
                   styleName, styleQML, styleSLD, useAsDefault, description, owner, ui, update_time)
                 VALUES ('', '', ?1, 'geom', ?1, ?2, '', 1, 'gapmap', '', NULL, ?3)",
                rusqlite::params![t, style, FIXED_TIME],
            )
            .map_err(fail)?;
        }
        conn.execute_batch("COMMIT;").map_err(fail)?;
        conn.close().map_err(|(_, e)| fail(e))?;
    }
    crate::output::put_in_place(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        let f: Formats = "gpkg, GeoJSON,fgb,gpkg".parse().expect("valid");
        assert_eq!(
            f.0,
            [Format::GeoJson, Format::FlatGeobuf, Format::GeoPackage]
        );
        let e = "shp".parse::<Formats>().expect_err("unknown");
        assert!(e.to_string().contains("geojson, fgb or gpkg"), "{e}");
        assert!("".parse::<Formats>().is_err());
    }

    #[test]
    fn wkb_of_a_point_and_a_square() {
        // Hand-encoded: little endian, type 1, x = 1.0, y = 2.0.
        let mut out = Vec::new();
        wkb(&geo::Geometry::Point(geo::Point::new(1.0, 2.0)), &mut out);
        let mut want = vec![1u8, 1, 0, 0, 0];
        want.extend(1.0f64.to_le_bytes());
        want.extend(2.0f64.to_le_bytes());
        assert_eq!(out, want);
        let sq = geo_geometry(&Shape::Ring(vec![
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 1.0),
        ]));
        let (blob, env) = gpkg_blob(&sq);
        assert_eq!(&blob[..4], b"GP\x00\x03");
        assert_eq!(env, [0.0, 1.0, 0.0, 1.0]);
        // header 8 + envelope 32, then byte order, type 3, 1 ring of 5 points.
        assert_eq!(blob[40], 1);
        assert_eq!(u32::from_le_bytes(blob[41..45].try_into().expect("4")), 3);
        assert_eq!(u32::from_le_bytes(blob[45..49].try_into().expect("4")), 1);
        assert_eq!(u32::from_le_bytes(blob[49..53].try_into().expect("4")), 5);
        assert_eq!(blob.len(), 53 + 5 * 16);
    }
}
