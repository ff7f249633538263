//! QGIS styles (QML) for gapmap's layers: rule-based renderers with fixed
//! colours and bilingual (Vietnamese / English) legend labels, so a layer
//! looks right the moment it is loaded.

/// A legend class: label, QGIS filter expression and fill colour (RGB).
#[derive(Debug, Clone)]
pub struct Class {
    /// Legend label.
    pub label: String,
    /// QGIS expression selecting the class.
    pub filter: String,
    /// RGB colour.
    pub rgb: (u8, u8, u8),
}

fn class(label: &str, filter: &str, rgb: (u8, u8, u8)) -> Class {
    Class {
        label: label.to_owned(),
        filter: filter.to_owned(),
        rgb,
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Symbol kind of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    /// Filled polygons.
    Fill,
    /// Point markers.
    Marker,
}

/// A QML document with a rule-based renderer of the given classes.
#[must_use]
pub fn qml(kind: SymbolKind, classes: &[Class]) -> String {
    let mut rules = String::new();
    let mut symbols = String::new();
    for (i, c) in classes.iter().enumerate() {
        rules.push_str(&format!(
            "      <rule key=\"{{gapmap-{i}}}\" symbol=\"{i}\" label=\"{}\" filter=\"{}\"/>\n",
            xml_escape(&c.label),
            xml_escape(&c.filter)
        ));
        let (r, g, b) = c.rgb;
        let layer = match kind {
            SymbolKind::Fill => format!(
                "        <layer class=\"SimpleFill\" enabled=\"1\" locked=\"0\" pass=\"0\">\n\
                 \x20         <Option type=\"Map\">\n\
                 \x20           <Option name=\"color\" type=\"QString\" value=\"{r},{g},{b},210\"/>\n\
                 \x20           <Option name=\"outline_color\" type=\"QString\" value=\"90,90,90,160\"/>\n\
                 \x20           <Option name=\"outline_style\" type=\"QString\" value=\"solid\"/>\n\
                 \x20           <Option name=\"outline_width\" type=\"QString\" value=\"0.1\"/>\n\
                 \x20           <Option name=\"style\" type=\"QString\" value=\"solid\"/>\n\
                 \x20         </Option>\n\
                 \x20       </layer>\n"
            ),
            SymbolKind::Marker => format!(
                "        <layer class=\"SimpleMarker\" enabled=\"1\" locked=\"0\" pass=\"0\">\n\
                 \x20         <Option type=\"Map\">\n\
                 \x20           <Option name=\"color\" type=\"QString\" value=\"{r},{g},{b},255\"/>\n\
                 \x20           <Option name=\"name\" type=\"QString\" value=\"circle\"/>\n\
                 \x20           <Option name=\"outline_color\" type=\"QString\" value=\"35,35,35,255\"/>\n\
                 \x20           <Option name=\"outline_width\" type=\"QString\" value=\"0.2\"/>\n\
                 \x20           <Option name=\"size\" type=\"QString\" value=\"2.4\"/>\n\
                 \x20         </Option>\n\
                 \x20       </layer>\n"
            ),
        };
        let t = match kind {
            SymbolKind::Fill => "fill",
            SymbolKind::Marker => "marker",
        };
        symbols.push_str(&format!(
            "      <symbol type=\"{t}\" name=\"{i}\" alpha=\"1\" clip_to_extent=\"1\" force_rhr=\"0\">\n{layer}      </symbol>\n"
        ));
    }
    format!(
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n\
         <qgis version=\"3.34.0\" styleCategories=\"Symbology\">\n\
         \x20 <renderer-v2 type=\"RuleRenderer\" symbollevels=\"0\" enableorderby=\"0\" forceraster=\"0\">\n\
         \x20   <rules key=\"{{gapmap-root}}\">\n{rules}    </rules>\n\
         \x20   <symbols>\n{symbols}    </symbols>\n\
         \x20 </renderer-v2>\n\
         </qgis>\n"
    )
}

/// Breaks of the download classes (Mbps): 5 (QCVN 81:2019 operator floor),
/// 40 (2025 national target, Decision 36/QĐ-TTg), 100 (5G, QCVN 126:2021).
pub const DOWNLOAD_BREAKS: [f64; 5] = [5.0, 10.0, 25.0, 40.0, 100.0];

/// Colours of the download classes: insufficient data, then low to high.
const DOWNLOAD_RGB: [(u8, u8, u8); 7] = [
    (189, 189, 189),
    (178, 24, 43),
    (239, 138, 98),
    (253, 219, 199),
    (209, 229, 240),
    (103, 169, 207),
    (33, 102, 172),
];

/// The download classes of heatmap cells, with "insufficient data" first.
#[must_use]
pub fn download_classes() -> Vec<Class> {
    let f = "\"download_median_mbps\"";
    let fmt = |v: f64| format!("{v}");
    let mut out = vec![class(
        "Chưa đủ dữ liệu / Insufficient data",
        "\"status\" IN ('insufficient', 'no_data', 'suppressed') OR \"download_median_mbps\" IS NULL",
        DOWNLOAD_RGB[0],
    )];
    for i in 0..=DOWNLOAD_BREAKS.len() {
        let lower = i.checked_sub(1).map(|j| DOWNLOAD_BREAKS[j]);
        let upper = DOWNLOAD_BREAKS.get(i).copied();
        let (label, filter) = match (lower, upper) {
            (None, Some(u)) => (format!("< {} Mbps", fmt(u)), format!("{f} < {}", fmt(u))),
            (Some(l), Some(u)) => (
                format!("{}–{} Mbps", fmt(l), fmt(u)),
                format!("{f} >= {} AND {f} < {}", fmt(l), fmt(u)),
            ),
            (Some(l), None) => (format!("≥ {} Mbps", fmt(l)), format!("{f} >= {}", fmt(l))),
            (None, None) => unreachable!("at least one break"),
        };
        let label = if lower == Some(40.0) {
            format!("{label} (đạt mục tiêu / target met)")
        } else {
            label
        };
        out.push(class(&label, &filter, DOWNLOAD_RGB[i + 1]));
    }
    out
}

/// The class of a heatmap cell, as an index into [`download_classes`]:
/// the same rule as the QML filters.
#[must_use]
pub fn download_class_index(status: &str, median: Option<f64>) -> usize {
    match median {
        Some(m) if !matches!(status, "insufficient" | "no_data" | "suppressed") => {
            1 + DOWNLOAD_BREAKS.iter().filter(|b| m >= **b).count()
        }
        _ => 0,
    }
}

/// Village status colours (`worst_status`).
#[must_use]
pub fn village_classes() -> Vec<Class> {
    let f = "\"worst_status\"";
    vec![
        class("Yếu / Weak", &format!("{f} = 'weak'"), (215, 25, 28)),
        class(
            "Chưa có mẫu / No data",
            &format!("{f} = 'no_data'"),
            (64, 64, 64),
        ),
        class(
            "Chưa đủ mẫu / Too few samples",
            &format!("{f} = 'insufficient'"),
            (253, 174, 97),
        ),
        class("Đạt / OK", &format!("{f} = 'ok'"), (26, 150, 65)),
    ]
}

/// Plan points by the number of carriers lacking data.
#[must_use]
pub fn plan_classes() -> Vec<Class> {
    let f = "\"carriers_lacking\"";
    vec![
        class(
            "Thiếu 1 nhà mạng / 1 carrier lacking",
            &format!("{f} = 1"),
            (158, 202, 225),
        ),
        class(
            "Thiếu 2 nhà mạng / 2 carriers lacking",
            &format!("{f} = 2"),
            (66, 146, 198),
        ),
        class(
            "Thiếu ≥ 3 nhà mạng / 3 or more carriers lacking",
            &format!("{f} >= 3"),
            (8, 69, 148),
        ),
    ]
}

/// Unit polygons by quota status.
#[must_use]
pub fn quota_classes() -> Vec<Class> {
    vec![
        class(
            "Đạt chỉ tiêu / Quota met",
            "\"met\" = 1 OR \"met\" = 'true'",
            (26, 150, 65),
        ),
        class(
            "Chưa có mẫu / No samples",
            "\"samples\" = 0",
            (189, 189, 189),
        ),
        class(
            "Chưa đạt chỉ tiêu / Quota not met",
            "(\"met\" = 0 OR \"met\" = 'false') AND \"samples\" > 0",
            (215, 25, 28),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qml_is_well_formed_with_escaped_filters() {
        let q = qml(SymbolKind::Fill, &download_classes());
        assert!(q.starts_with("<!DOCTYPE qgis"));
        assert_eq!(q.matches("<rule ").count(), 7);
        assert_eq!(q.matches("<symbol ").count(), 7);
        assert!(q.contains("&quot;download_median_mbps&quot; &lt; 5"), "{q}");
        assert!(q.contains("Chưa đủ dữ liệu / Insufficient data"));
        // Every opened element is closed.
        for tag in ["qgis", "renderer-v2", "rules", "symbols", "symbol", "layer"] {
            assert_eq!(
                q.matches(&format!("<{tag} ")).count() + q.matches(&format!("<{tag}>")).count(),
                q.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }

    #[test]
    fn class_index_agrees_with_the_filters() {
        let c = download_classes();
        let idx = |m: f64| download_class_index("ok", Some(m));
        assert_eq!(c[idx(4.999)].label, "< 5 Mbps");
        assert_eq!(c[idx(5.0)].label, "5–10 Mbps");
        assert_eq!(c[idx(39.9)].label, "25–40 Mbps");
        assert!(c[idx(40.0)].label.starts_with("40–100 Mbps"));
        assert_eq!(c[idx(100.0)].label, "≥ 100 Mbps");
        assert_eq!(download_class_index("insufficient", Some(80.0)), 0);
        assert_eq!(download_class_index("weak", None), 0);
    }

    #[test]
    fn download_classes_chain_without_gaps() {
        // Each numeric class's lower bound (after ">=") is the previous upper
        // bound (after "<"): every speed falls in exactly one class.
        let num = |f: &str, op: &str| -> Option<f64> {
            let i = f.find(op)? + op.len();
            f[i..].split_whitespace().next()?.parse().ok()
        };
        let classes = download_classes();
        let mut prev_upper = None;
        for c in &classes[1..] {
            let lower = num(&c.filter, ">= ");
            assert_eq!(lower, prev_upper, "{}", c.filter);
            prev_upper = num(&c.filter, "< ");
        }
        assert_eq!(prev_upper, None, "the last class is open-ended");
    }
}
