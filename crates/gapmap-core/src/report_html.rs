//! `report.html`: one self-contained page (Leaflet compiled in, the data
//! inline, nothing fetched at view time) with the unit polygons by quota
//! status, the heatmap per carrier behind a carrier switch, the villages by
//! status, and a legend in Vietnamese and English.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::Result;
use crate::geojson_out::{Prop, Shape};
use crate::heatmap::MapLayer;
use crate::layers::Layer;
use crate::output::{fmt_decimal, write_atomic};
use crate::styles::{
    Class, download_class_index, download_classes, quota_classes, village_classes,
};

const LEAFLET_JS: &str = include_str!("../assets/leaflet/leaflet.js");
const LEAFLET_CSS: &str = include_str!("../assets/leaflet/leaflet.css");

fn field(layer: &Layer, name: &str) -> Option<usize> {
    layer.fields.iter().position(|f| f == name)
}

fn text(p: Option<&Prop>) -> String {
    match p {
        Some(Prop::Str(s) | Prop::Raw(s)) => s.clone(),
        Some(Prop::Int(n)) => n.to_string(),
        Some(Prop::Num(Some(v), _)) => v.to_string(),
        Some(Prop::Bool(Some(b))) => b.to_string(),
        _ => String::new(),
    }
}

fn number(p: Option<&Prop>) -> Option<f64> {
    match p {
        #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^53")]
        Some(Prop::Int(n)) => Some(*n as f64),
        Some(Prop::Num(v, _)) => *v,
        _ => None,
    }
}

/// A coordinate with 5 decimals (about a metre), trailing zeros trimmed.
fn c5(out: &mut String, v: f64) {
    out.push_str(&fmt_decimal(Some(v), 5));
}

fn legend(classes: &[Class]) -> Value {
    classes
        .iter()
        .map(|c| {
            let (r, g, b) = c.rgb;
            json!({"label": c.label, "color": format!("#{r:02x}{g:02x}{b:02x}")})
        })
        .collect()
}

fn ring(out: &mut String, ring: &geo::LineString<f64>) {
    out.push('[');
    for (i, c) in ring.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        c5(out, c.x);
        out.push(',');
        c5(out, c.y);
        out.push(']');
    }
    out.push(']');
}

fn string(out: &mut String, s: &str) {
    out.push_str(&Value::from(s).to_string());
}

/// Douglas–Peucker tolerance of unit outlines on the page (about 20 m).
const MAP_SIMPLIFY_DEGREES: f64 = 0.000_2;

/// The page's data as JSON text: legends, units, heatmap cells per carrier, villages.
fn page_data(
    title: &str,
    resolution: u8,
    units: Option<&Layer>,
    heat: &[MapLayer],
    villages: Option<&Layer>,
) -> String {
    let mut out = String::with_capacity(1 << 20);
    out.push_str("{\"title\":");
    string(&mut out, title);
    out.push_str(&format!(",\"resolution\":{resolution}"));
    out.push_str(",\"legend\":");
    out.push_str(
        &json!({
            "download": legend(&download_classes()),
            "quota": legend(&quota_classes()),
            "villages": legend(&village_classes()),
        })
        .to_string(),
    );
    out.push_str(",\"units\":");
    match units {
        None => out.push_str("null"),
        Some(l) => {
            let (code, name, samples, met, month) = (
                field(l, "code"),
                field(l, "name"),
                field(l, "samples"),
                field(l, "met"),
                field(l, "month"),
            );
            out.push_str("{\"type\":\"FeatureCollection\",\"features\":[");
            let mut first = true;
            for (shape, p) in &l.features {
                let Shape::Multi(mp) = shape else { continue };
                // A preview map: outlines simplified to ~20 m keep the page
                // light with detailed boundaries (the GIS layers keep every vertex).
                let mp = &geo::Simplify::simplify(mp, MAP_SIMPLIFY_DEGREES);
                if !first {
                    out.push(',');
                }
                first = false;
                let n = number(samples.and_then(|i| p.get(i))).unwrap_or(0.0);
                let is_met = matches!(met.and_then(|i| p.get(i)), Some(Prop::Bool(Some(true))));
                let k = if is_met {
                    0
                } else if n == 0.0 {
                    1
                } else {
                    2
                };
                out.push_str("{\"type\":\"Feature\",\"geometry\":{\"type\":\"MultiPolygon\",\"coordinates\":[");
                for (pi, poly) in mp.0.iter().enumerate() {
                    if pi > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    ring(&mut out, poly.exterior());
                    for h in poly.interiors() {
                        out.push(',');
                        ring(&mut out, h);
                    }
                    out.push(']');
                }
                out.push_str("]},\"properties\":");
                out.push_str(
                    &json!({
                        "code": text(code.and_then(|i| p.get(i))),
                        "name": text(name.and_then(|i| p.get(i))),
                        "month": text(month.and_then(|i| p.get(i))),
                        "samples": n,
                        "k": k,
                    })
                    .to_string(),
                );
                out.push('}');
            }
            out.push_str("]}");
        }
    }
    out.push_str(",\"heat\":[");
    for (li, l) in heat.iter().enumerate() {
        if li > 0 {
            out.push(',');
        }
        out.push_str("{\"carrier\":");
        string(&mut out, &l.carrier);
        out.push_str(&format!(",\"resolution\":{},\"cells\":[", l.resolution));
        for (ci, (status, median, n, cell_ring)) in l.cells.iter().enumerate() {
            if ci > 0 {
                out.push(',');
            }
            let k = download_class_index(status.as_str(), *median);
            let m = median.map_or_else(|| "null".to_owned(), |v| fmt_decimal(Some(v), 1));
            out.push_str(&format!("[{k},{n},{m},["));
            for (i, (x, y)) in cell_ring.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                c5(&mut out, *x);
                out.push(',');
                c5(&mut out, *y);
            }
            out.push_str("]]");
        }
        out.push_str("]}");
    }
    out.push_str("],\"villages\":[");
    if let Some(l) = villages {
        let (name, worst) = (field(l, "name"), field(l, "worst_status"));
        let mut first = true;
        for (shape, p) in &l.features {
            let Shape::Point(x, y) = shape else { continue };
            if !first {
                out.push(',');
            }
            first = false;
            let k = match text(worst.and_then(|i| p.get(i))).as_str() {
                "weak" => 0,
                "no_data" => 1,
                "insufficient" => 2,
                _ => 3,
            };
            out.push('[');
            c5(&mut out, *x);
            out.push(',');
            c5(&mut out, *y);
            out.push_str(&format!(",{k},"));
            string(&mut out, &text(name.and_then(|i| p.get(i))));
            out.push(']');
        }
    }
    out.push_str("]}");
    out
}

const PAGE_SCRIPT: &str = r#"
(function () {
  var D = JSON.parse(document.getElementById('gapmap-data').textContent);
  document.getElementById('title').textContent = D.title;
  var map = L.map('map', {preferCanvas: true, zoomSnap: 0.25});
  var canvas = L.canvas({padding: 0.2});
  var drawn = {units: 0, cells: 0, villages: 0};
  var bounds = L.latLngBounds([]);
  var overlays = {};
  var base = {};
  var LD = D.legend.download, LQ = D.legend.quota, LV = D.legend.villages;
  if (D.units) {
    var units = L.geoJSON(D.units, {
      renderer: canvas,
      style: function (f) {
        return {color: '#333', weight: 0.8, fillColor: LQ[f.properties.k].color, fillOpacity: 0.35};
      },
      onEachFeature: function (f, layer) {
        drawn.units += 1;
        layer.bindTooltip(f.properties.name + ' (' + f.properties.code + '): ' + f.properties.samples +
          ' mẫu / samples, ' + f.properties.month);
      }
    });
    bounds.extend(units.getBounds());
    overlays['Đơn vị theo chỉ tiêu / Units by quota'] = units;
    units.addTo(map);
  }
  D.heat.forEach(function (h, i) {
    var g = L.layerGroup();
    h.cells.forEach(function (c) {
      var pts = [];
      for (var j = 0; j + 1 < c[3].length; j += 2) { pts.push([c[3][j + 1], c[3][j]]); }
      var p = L.polygon(pts, {renderer: canvas, stroke: false, fillColor: LD[c[0]].color, fillOpacity: 0.8});
      p.bindTooltip(h.carrier + ': ' + (c[2] === null ? '–' : c[2] + ' Mbps') + ', ' + c[1] + ' mẫu / samples');
      g.addLayer(p);
      bounds.extend(pts);
    });
    g.gapmapCells = h.cells.length;
    var name = 'Bản đồ nhiệt / Heatmap: ' + h.carrier;
    if (h.resolution !== D.resolution) { name += ' (H3 ' + h.resolution + ')'; }
    base[name] = g;
    if (i === D.heat.length - 1) { g.addTo(map); drawn.cells = h.cells.length; }
  });
  map.on('baselayerchange', function (e) { drawn.cells = e.layer.gapmapCells || 0; publish(); });
  if (D.villages.length) {
    var v = L.layerGroup();
    D.villages.forEach(function (p) {
      v.addLayer(L.circleMarker([p[1], p[0]], {renderer: canvas, radius: 3.5, weight: 0.8, color: '#222',
        fillColor: LV[p[2]].color, fillOpacity: 1}).bindTooltip(p[3]));
    });
    drawn.villages = D.villages.length;
    overlays['Thôn, bản / Villages'] = v;
    v.addTo(map);
  }
  L.control.layers(base, overlays, {collapsed: false}).addTo(map);
  var legend = L.control({position: 'bottomright'});
  legend.onAdd = function () {
    var div = L.DomUtil.create('div', 'legend');
    function block(title, items, round) {
      var h = '<b>' + title + '</b>';
      items.forEach(function (it) {
        h += '<div><i style="background:' + it.color + (round ? ';border-radius:50%' : '') + '"></i>' + it.label + '</div>';
      });
      return h;
    }
    div.innerHTML = block('Tốc độ tải xuống (trung vị) / Median download', LD) +
      block('Chỉ tiêu 300 mẫu/tháng / Monthly quota', LQ) + block('Thôn, bản / Villages', LV, true);
    return div;
  };
  legend.addTo(map);
  if (bounds.isValid()) { map.fitBounds(bounds); } else { map.setView([16, 106], 5); }
  function publish() {
    var n = 0;
    map.eachLayer(function (l) { if (l instanceof L.Path) { n += 1; } });
    document.body.setAttribute('data-drawn', JSON.stringify({units: drawn.units, cells: drawn.cells,
      villages: drawn.villages, paths: n}));
  }
  publish();
})();
"#;

/// Most heatmap cells drawn per carrier; beyond, a coarser H3 resolution is shown.
pub const MAX_MAP_CELLS: usize = 20_000;

/// Writes `report.html` into `out`.
///
/// # Errors
/// The file cannot be written.
pub fn write_report_html(
    out: &Path,
    title: &str,
    resolution: u8,
    units: Option<&Layer>,
    heat: &[MapLayer],
    villages: Option<&Layer>,
) -> Result<()> {
    let data = page_data(title, resolution, units, heat, villages)
        .to_string()
        .replace("</", "<\\/");
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>gapmap</title>\n<style>\n{LEAFLET_CSS}\n\
         html, body {{ margin: 0; height: 100%; font: 13px/1.3 sans-serif; }}\n\
         #title {{ position: absolute; z-index: 1000; left: 50px; top: 8px; background: #fff; padding: 4px 8px; border-radius: 4px; box-shadow: 0 1px 4px #0004; }}\n\
         #map {{ height: 100%; background: #e8eef2; }}\n\
         .legend {{ background: #fff; padding: 6px 8px; border-radius: 4px; box-shadow: 0 1px 4px #0004; max-width: 280px; }}\n\
         .legend i {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: middle; border: 1px solid #0003; }}\n\
         </style>\n</head>\n<body>\n<div id=\"title\"></div>\n<div id=\"map\"></div>\n\
         <script type=\"application/json\" id=\"gapmap-data\">{data}</script>\n\
         <script>\n{LEAFLET_JS}\n</script>\n<script>{PAGE_SCRIPT}</script>\n</body>\n</html>\n"
    );
    write_atomic(&out.join("report.html"), |w| w.write_all(html.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Status;

    #[test]
    fn page_data_is_valid_json_with_nulls_and_quotes() {
        let ring = vec![(105.0, 21.0), (105.1, 21.0), (105.1, 21.1)];
        let heat = [MapLayer {
            carrier: "Viettel".into(),
            resolution: 7,
            cells: vec![
                (Status::Ok, Some(42.26), 9, ring.clone()),
                (Status::Insufficient, None, 1, ring),
            ],
        }];
        let villages = Layer {
            name: "villages".into(),
            geometry: crate::layers::LayerGeometry::Point,
            fields: vec!["name".into(), "worst_status".into()],
            features: vec![(
                Shape::Point(105.123_456_7, 21.0),
                vec![
                    Prop::Str("Bản \"Nà\" </script>".into()),
                    Prop::Str("weak".into()),
                ],
            )],
            style: None,
        };
        let text = page_data("t", 8, None, &heat, Some(&villages));
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["resolution"], 8);
        assert_eq!(v["units"], Value::Null);
        let cells = &v["heat"][0]["cells"];
        // 42.26 → class 40–100 (index 5), median rounded to 0.1.
        assert_eq!(cells[0][0], 5);
        assert_eq!(cells[0][2].as_f64(), Some(42.3));
        assert_eq!(cells[1][0], 0);
        assert_eq!(cells[1][2], Value::Null);
        assert_eq!(cells[0][3].as_array().map(Vec::len), Some(6));
        assert_eq!(v["villages"][0][0].as_f64(), Some(105.12346));
        assert_eq!(v["villages"][0][2], 0);
        assert_eq!(v["villages"][0][3], "Bản \"Nà\" </script>");
    }
}
