//! `curves.png`: validation loss against training tokens, one panel per validation set, one
//! line per candidate (the mean over seeds) with a band from the lowest to the highest seed.
//! Drawn with plotters' bitmap backend; the labels use the DejaVu Sans built into the binary
//! (assets/fonts), so no system font or Python is needed.

use std::path::Path;

use plotters::prelude::*;

use super::EvalReport;
use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// Pixels of one panel.
pub const PANEL: (u32, u32) = (720, 480);

fn perr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: drawing the plot: {e}", path.display()))
}

/// The image's size for `panels` validation sets: up to three panels a row.
pub fn size(panels: usize) -> (u32, u32) {
    let cols = panels.clamp(1, 3) as u32;
    let rows = panels.max(1).div_ceil(3) as u32;
    (PANEL.0 * cols, PANEL.1 * rows)
}

pub fn draw(path: &Path, report: &EvalReport) -> Result<()> {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // The font is the one built in: it parses, or the build is broken.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let n = report.valid.len();
    let (w, h) = size(n);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(path, e))?;
    let cols = n.clamp(1, 3);
    let panels = root.split_evenly((n.max(1).div_ceil(3), cols));
    for (v, (panel, name)) in panels.iter().zip(&report.valid).enumerate() {
        // The untrained point (loss ≈ ln V) is left out of the view: it would flatten the rest.
        // A diverged run's NaN or infinite losses are left out too (summary.csv shows them).
        let shown = |c: usize| {
            report.curves[c][v].iter().filter(|p| p.0 > 0 && p.1.is_finite() && p.2.is_finite() && p.3.is_finite())
        };
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for c in 0..report.candidates.len() {
            for &(_, _, a, b) in shown(c) {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.05).max(1e-3);
        let x_max = report.settings.tokens as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("validation set: {name}"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, (lo - pad)..(hi + pad))
            .map_err(|e| perr(path, e))?;
        chart
            .configure_mesh()
            .x_desc("training tokens")
            .y_desc("mean token loss (nats)")
            .x_label_formatter(&|x| human(*x))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| perr(path, e))?;
        for (c, cand) in report.candidates.iter().enumerate() {
            let color = Palette99::pick(c).to_rgba();
            let points: Vec<_> = shown(c).copied().collect();
            if points.len() > 1 && points.iter().any(|p| p.3 > p.2) {
                let band: Vec<(f64, f64)> = points
                    .iter()
                    .map(|p| (p.0 as f64, p.3))
                    .chain(points.iter().rev().map(|p| (p.0 as f64, p.2)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(band, color.mix(0.18).filled())))
                    .map_err(|e| perr(path, e))?;
            }
            chart
                .draw_series(LineSeries::new(points.iter().map(|p| (p.0 as f64, p.1)), color.stroke_width(2)))
                .map_err(|e| perr(path, e))?
                .label(cand.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| perr(path, e))?;
    }
    root.present().map_err(|e| perr(path, e))?;
    Ok(())
}

/// 1.5k, 20k, 1.2M.
fn human(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}
