//! `report.xlsx`: the monthly table a provincial office sends to the
//! ministry. Headers in Vietnamese with English below; numbers are numbers.

use std::path::Path;

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use crate::error::{Error, Result};
use crate::output::write_atomic;
use crate::report::{GroupStats, QuotaSummary, ReportSet, UnitMonth, unit_rows};

/// A column: Vietnamese header, English header, width.
type Column = (&'static str, &'static str, f64);

fn headers(
    ws: &mut Worksheet,
    cols: &[Column],
    extra: &[(String, String)],
    bold: &Format,
) -> Result<(), XlsxError> {
    let names = cols.iter().map(|(vi, en, w)| (*vi, *en, *w)).chain(
        extra
            .iter()
            .map(|(vi, en)| (vi.as_str(), en.as_str(), 16.0)),
    );
    // Row by row: a sheet kept in a temporary file cannot go back a row.
    for (c, (_, _, width)) in (0u16..).zip(names.clone()) {
        ws.set_column_width(c, width)?;
    }
    for (c, (vi, _, _)) in (0u16..).zip(names.clone()) {
        ws.write_string_with_format(0, c, vi, bold)?;
    }
    for (c, (_, en, _)) in (0u16..).zip(names) {
        ws.write_string_with_format(1, c, en, bold)?;
    }
    ws.set_freeze_panes(2, 0)?;
    Ok(())
}

#[allow(clippy::cast_precision_loss, reason = "counts are far below 2^53")]
fn num(ws: &mut Worksheet, r: u32, c: u16, v: u64) -> Result<(), XlsxError> {
    ws.write_number(r, c, v as f64)?;
    Ok(())
}

/// Per finest unit of the report set: villages and villages with a sample.
pub type Reach<'a> = Option<(&'a str, &'a [(u64, u64)])>;

/// Writes `report.xlsx` with a summary sheet (share of units meeting the
/// quota per month, set and level) and a units sheet (per unit and month:
/// samples, devices, quota met, deficit, villages reached, per-carrier
/// median download).
///
/// # Errors
/// The file cannot be written.
pub fn write_report_xlsx(
    out: &Path,
    sets: &[ReportSet<'_>],
    summary: &[QuotaSummary],
    carriers: &[String],
    carrier_names: &[String],
    quota: u64,
    reach: Reach<'_>,
) -> Result<()> {
    let path = out.join("report.xlsx");
    let fail = |e: XlsxError| Error::Layer {
        path: path.clone(),
        message: format!("cannot write the spreadsheet: {e}"),
    };
    let mut wb = Workbook::new();
    // A fixed creation time keeps the file byte-identical between runs.
    let fixed = ExcelDateTime::from_ymd(2000, 1, 1).map_err(fail)?;
    wb.set_properties(
        &DocProperties::new()
            .set_title("Báo cáo đo kiểm tốc độ / Speed-test report")
            .set_creation_datetime(&fixed),
    );
    let bold = Format::new().set_bold().set_text_wrap();
    let pct = Format::new().set_num_format("0.00%");
    let mbps = Format::new().set_num_format("0.000");

    let ws = wb.add_worksheet();
    ws.set_name("Tổng hợp").map_err(fail)?;
    let cols: [Column; 7] = [
        ("Tháng", "Month", 9.0),
        ("Bộ ranh giới", "Boundary set", 12.0),
        ("Cấp", "Level", 10.0),
        ("Số đơn vị", "Units", 9.0),
        ("Số đơn vị đạt", "Units meeting the quota", 12.0),
        ("Tỷ lệ đạt", "Share meeting the quota", 11.0),
        ("Số mẫu", "Samples", 10.0),
    ];
    headers(ws, &cols, &[], &bold).map_err(fail)?;
    for (i, q) in summary.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation, reason = "rows fit u32")]
        let r = i as u32 + 2;
        ws.write_string(r, 0, &q.month).map_err(fail)?;
        ws.write_string(r, 1, &q.vintage).map_err(fail)?;
        ws.write_string(r, 2, &q.level).map_err(fail)?;
        num(ws, r, 3, q.units).map_err(fail)?;
        num(ws, r, 4, q.units_met).map_err(fail)?;
        ws.write_number_with_format(r, 5, q.share_met, &pct)
            .map_err(fail)?;
        num(ws, r, 6, q.samples).map_err(fail)?;
    }

    // The units sheet (a year of national months: 140 000 rows) goes to a
    // temporary file in the output directory row by row, not to memory
    // (400 MiB); its strings stay shared, as in a sheet Excel saves.
    wb.set_tempdir(out).map_err(fail)?;
    let ws = wb.add_worksheet_with_low_memory().map_err(fail)?;
    ws.set_name("Đơn vị").map_err(fail)?;
    let cols: [Column; 14] = [
        ("Tháng", "Month", 9.0),
        ("Bộ ranh giới", "Boundary set", 12.0),
        ("Cấp", "Level", 10.0),
        ("Mã đơn vị", "Code", 10.0),
        ("Tên đơn vị", "Name", 24.0),
        ("Mã đơn vị cấp trên", "Parent code", 10.0),
        ("Số mẫu", "Samples", 9.0),
        ("Số thiết bị", "Devices", 9.0),
        ("Chỉ tiêu", "Quota", 8.0),
        ("Đạt chỉ tiêu", "Quota met", 8.0),
        ("Còn thiếu", "Deficit", 9.0),
        ("Số thôn, bản", "Villages", 9.0),
        ("Số thôn, bản có mẫu", "Villages reached", 11.0),
        ("Khó khăn, ghi chú", "Difficulties, notes", 24.0),
    ];
    let extra: Vec<(String, String)> = carriers
        .iter()
        .map(|c| {
            (
                format!("Trung vị tải xuống {c} (Mbps)"),
                format!("Median download {c} (Mbps)"),
            )
        })
        .collect();
    headers(ws, &cols, &extra, &bold).map_err(fail)?;
    let empty = UnitMonth::default();
    let months: Vec<_> = {
        let mut m: Vec<_> = sets.iter().flat_map(|s| s.months.iter().copied()).collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    let mut r: u32 = 2;
    for row in unit_rows(&months, sets, &empty) {
        let (set, unit, li, um) = (row.set, row.unit, row.li, row.stats);
        let b = set.boundaries;
        let n = um.all.samples;
        ws.write_string(r, 0, row.month.to_string()).map_err(fail)?;
        ws.write_string(r, 1, set.label).map_err(fail)?;
        ws.write_string(r, 2, &row.level.name).map_err(fail)?;
        ws.write_string(r, 3, &unit.code).map_err(fail)?;
        ws.write_string(r, 4, &unit.name).map_err(fail)?;
        if let Some(p) = unit.parent {
            ws.write_string(r, 5, &b.units[li - 1][p as usize].code)
                .map_err(fail)?;
        }
        num(ws, r, 6, n).map_err(fail)?;
        num(ws, r, 7, um.all.devices).map_err(fail)?;
        num(ws, r, 8, quota).map_err(fail)?;
        ws.write_boolean(r, 9, n >= quota).map_err(fail)?;
        num(ws, r, 10, quota.saturating_sub(n)).map_err(fail)?;
        if let Some((label, per_unit)) = reach
            && li == b.units.len() - 1
            && label == set.label
        {
            let (v, hit) = per_unit[row.ui];
            num(ws, r, 11, v).map_err(fail)?;
            num(ws, r, 12, hit).map_err(fail)?;
        }
        for (k, c) in carriers.iter().enumerate() {
            let g: Option<&GroupStats> = um
                .by_carrier
                .iter()
                .find(|(ci, _)| carrier_names.get(*ci as usize) == Some(c))
                .map(|(_, g)| g);
            if let Some(m) = g.and_then(|g| g.download_median) {
                #[allow(clippy::cast_possible_truncation, reason = "few carriers")]
                ws.write_number_with_format(r, 14 + k as u16, m, &mbps)
                    .map_err(fail)?;
            }
        }
        r += 1;
    }
    if r > 2 {
        #[allow(clippy::cast_possible_truncation, reason = "few carriers")]
        let last_col = 13 + carriers.len() as u16;
        ws.autofilter(1, 0, r - 1, last_col).map_err(fail)?;
    }
    let bytes = wb.save_to_buffer().map_err(fail)?;
    write_atomic(&path, |w| w.write_all(&bytes))
}
