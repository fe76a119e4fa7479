//! A horizontal bar chart (SVG) of each peer's time per operation relative to multiproc,
//! on a log scale: bars right of the 1x line are peers slower than multiproc.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::harness::{Result, RowResult, MULTIPROC};
use crate::report::{self, Meta};

const BAR_HEIGHT: u32 = 22;
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x81, 0x72, 0xb3),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xda, 0x8b, 0xc3),
    RGBColor(0x8c, 0x8c, 0x8c),
];

/// Draws every peer row that has a ratio; scenarios where multiproc has no figure yet are
/// left out (the title says how many).
pub(crate) fn write_svg(path: &Path, meta: &Meta, rows: &[RowResult]) -> Result<()> {
    let bars: Vec<(&RowResult, f64)> = rows
        .iter()
        .filter(|r| r.system != MULTIPROC)
        .filter_map(|r| Some((r, r.ratio?)))
        .collect();
    let mut systems: Vec<&str> = bars.iter().map(|(r, _)| r.system).collect();
    systems.sort_unstable();
    systems.dedup();
    let color = |system: &str| {
        PALETTE[systems.iter().position(|&s| s == system).unwrap_or(0) % PALETTE.len()]
    };

    let (lo, hi) = bars
        .iter()
        .fold((0.5f64, 2.0f64), |(lo, hi), &(_, r)| (lo.min(r), hi.max(r)));
    let (lo, hi) = (lo / 1.5, hi * 3.0);
    let height = 140 + BAR_HEIGHT * bars.len().max(1) as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let waiting = rows
        .iter()
        .filter(|r| r.system == MULTIPROC && r.ratio.is_none())
        .count();
    let caption = format!(
        "time per operation relative to multiproc: right of 1x the peer is slower (log scale; \
         {waiting} scenarios without a multiproc figure yet)"
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(&caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(430)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..bars.len().max(1) as f64)?;
    let labels: Vec<String> = bars
        .iter()
        .map(|(r, _)| format!("{} / {}", r.scenario, r.system))
        .collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(format!("{}, {}", meta.date, meta.machine))
        .draw()?;
    for (i, ((row, ratio), label)) in bars.iter().zip(&labels).enumerate() {
        // Row 0 at the top, in table order.
        let top = (bars.len() - i) as f64 - 0.1;
        let bottom = top - 0.8;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(1.0, bottom), (*ratio, top)],
            color(row.system).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{}x", report::number(*ratio)),
            (ratio.max(1.0) * 1.05, top - 0.15),
            ("sans-serif", 12),
        )))?;
        let (x, y) = chart.backend_coord(&(lo, top - 0.15));
        root.draw(&Text::new(
            label.clone(),
            (x - 8, y),
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Right, VPos::Top)),
        ))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, bars.len().max(1) as f64)],
        BLACK.stroke_width(2),
    )))?;
    root.present()?;
    Ok(())
}
