//! The latency plot: cumulative distributions of the warm start and of its baselines
//! on a logarithmic time axis (they span four orders of magnitude), as SVG and PNG.
//!
//! Text needs a font: plotters is built with `ab_glyph` (pure Rust, no fontconfig), fed
//! a TrueType file found at run time — `$BRINE_BENCH_FONT`, else DejaVu Sans from
//! Debian's `fonts-dejavu-core` (which `make bench` installs). Without one the plot is
//! still drawn, with no text at all (curves and grid only), and a warning says why.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::SeriesReport;

/// Where a DejaVu Sans may be, most likely first.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

/// The series drawn, in legend order, with their colours.
const DRAWN: &[(&str, RGBColor)] = &[
    ("floor.to_entry", RGBColor(120, 120, 120)),
    ("floor.run", RGBColor(60, 60, 60)),
    ("warm.decoded_to_entry", RGBColor(31, 119, 180)),
    ("warm.launch_to_entry", RGBColor(44, 160, 44)),
    ("warm.launch_to_terminal", RGBColor(23, 190, 207)),
    ("native.to_entry", RGBColor(214, 39, 40)),
    ("native.to_result", RGBColor(255, 127, 14)),
    ("e2e.local:1.latency", RGBColor(148, 103, 189)),
];

/// Registers a font for plotters; returns whether text can be drawn.
pub fn load_font() -> bool {
    let env = std::env::var_os("BRINE_BENCH_FONT").map(PathBuf::from);
    let candidates = env
        .into_iter()
        .chain(FONT_CANDIDATES.iter().map(PathBuf::from));
    for path in candidates {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        // plotters keeps fonts for the life of the process: one leaked file, once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
            tracing::debug!(font = %path.display(), "plot font loaded");
            return true;
        }
    }
    tracing::warn!(
        "no font found (install fonts-dejavu-core or set BRINE_BENCH_FONT to a .ttf): \
         the plot is drawn without text"
    );
    false
}

/// Draws the plot to `<stem>.svg` and `<stem>.png`.
pub fn draw(stem: &Path, series: &[SeriesReport], text: bool) -> anyhow::Result<()> {
    let curves: Vec<(&SeriesReport, RGBColor)> = DRAWN
        .iter()
        .filter_map(|(key, color)| {
            series
                .iter()
                .find(|s| s.key == *key && s.summary_ns.count > 0)
                .map(|s| (s, *color))
        })
        .collect();
    if curves.is_empty() {
        return Ok(());
    }
    let size = (1200, 700);
    let svg = stem.with_extension("svg");
    chart(
        SVGBackend::new(&svg, size).into_drawing_area(),
        &curves,
        text,
    )?;
    let png = stem.with_extension("png");
    chart(
        BitMapBackend::new(&png, size).into_drawing_area(),
        &curves,
        text,
    )?;
    Ok(())
}

fn chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    curves: &[(&SeriesReport, RGBColor)],
    text: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw the plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    // Round the axis out to whole decades of microseconds.
    let (lo, hi) = curves.iter().fold((f64::MAX, 0f64), |(lo, hi), (s, _)| {
        let min = s.summary_ns.min as f64 / 1e3;
        let max = s.summary_ns.max as f64 / 1e3;
        (lo.min(min), hi.max(max))
    });
    let lo = 10f64.powf(lo.max(0.01).log10().floor());
    let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(
                "Task start latency: cumulative distribution (log time axis)",
                ("sans-serif", 26),
            )
            .x_label_area_size(50)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("latency (µs)")
            .x_label_formatter(&|v| format!("{v}"))
            .y_desc("fraction of tasks at or below")
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(err)?;
    for (s, color) in curves {
        let mut samples: Vec<u64> = s.samples_ns.iter().flatten().copied().collect();
        samples.sort_unstable();
        let n = samples.len();
        // At most ~600 points per curve, always keeping the last (the max).
        let step = (n / 600).max(1);
        let points: Vec<(f64, f64)> = (0..n)
            .step_by(step)
            .chain(std::iter::once(n - 1))
            .map(|i| (samples[i] as f64 / 1e3, (i + 1) as f64 / n as f64))
            .collect();
        let color = *color;
        let drawn = chart
            .draw_series(LineSeries::new(points, color.stroke_width(3)))
            .map_err(err)?;
        if text {
            drawn.label(s.label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
