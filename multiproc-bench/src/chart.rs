//! A horizontal bar chart (SVG) of each peer's time per operation relative to multiproc,
//! on a log scale: bars right of the 1x line are peers slower than multiproc; and a line
//! chart of the scaling rows: throughput against the number of processes.

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

/// The scaling families: rows whose scenario id is a prefix followed by the process count.
const SCALING: [(&str, &str); 2] = [
    ("queue_scale_", "queue, N producers x N consumers"),
    ("value_scale_", "Value += 1 under its lock, N processes"),
];

/// The sibling of the bar chart's `path` that holds the scaling chart: `x.svg` gives
/// `x-scaling.svg`.
pub(crate) fn scaling_path(path: &Path) -> std::path::PathBuf {
    let stem = path
        .file_stem()
        .map_or("chart".into(), |s| s.to_string_lossy());
    path.with_file_name(format!("{stem}-scaling.svg"))
}

/// One point of the scaling chart: the row, its process count N and operations per second.
type Point<'a> = (&'a RowResult, f64, f64);

/// The process count of a scaling row (`queue_scale_4x4` and `value_scale_4` give 4).
fn scaling_n(id: &str, prefix: &str) -> Option<f64> {
    let rest = id.strip_prefix(prefix)?;
    rest.split('x').next()?.parse().ok()
}

/// Draws throughput (operations per second, log scale) against the process count N for
/// each scaling family present, one panel each, one line per system. Writes nothing when
/// no scaling row was run.
pub(crate) fn write_scaling_svg(path: &Path, meta: &Meta, rows: &[RowResult]) -> Result<()> {
    let families: Vec<(&str, Vec<Point<'_>>)> = SCALING
        .iter()
        .map(|&(prefix, title)| {
            let points = rows
                .iter()
                .filter_map(|r| {
                    let n = scaling_n(&r.scenario_id, prefix)?;
                    let (median, _, _) = r.stats()?;
                    Some((r, n, 1.0 / median))
                })
                .collect::<Vec<_>>();
            (title, points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect();
    if families.is_empty() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (700 * families.len() as u32, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    for ((title, points), area) in families.iter().zip(root.split_evenly((1, families.len()))) {
        let mut systems: Vec<&str> = points.iter().map(|(r, _, _)| r.system).collect();
        systems.sort_unstable();
        systems.dedup();
        let max_n = points.iter().map(|p| p.1).fold(1.0, f64::max);
        let (lo, hi) = points
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), p| (lo.min(p.2), hi.max(p.2)));
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("{title}: operations/s"), ("sans-serif", 16))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0.8..max_n * 1.25).log_scale(),
                (lo / 2.0..hi * 2.0).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc(format!("N ({}, {})", meta.date, meta.machine))
            .y_label_formatter(&|y| report::number(*y))
            .draw()?;
        for (i, system) in systems.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut line: Vec<(f64, f64)> = points
                .iter()
                .filter(|(r, _, _)| r.system == *system)
                .map(|&(_, n, rate)| (n, rate))
                .collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(std::iter::once(PathElement::new(
                    line.clone(),
                    color.stroke_width(2),
                )))?
                .label(*system)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                line.iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
