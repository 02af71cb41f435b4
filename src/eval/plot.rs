//! `curves.png`: validation loss against training tokens, one panel per validation set, one
//! line per candidate (the mean over seeds) with a band from the lowest to the highest seed.
//! Drawn with plotters' bitmap backend; the labels use the DejaVu Sans built into the binary
//! (assets/fonts), so no system font or Python is needed.
//!
//! The legend sits in a strip beside the data, so it never covers a curve. The colours are
//! Okabe and Ito's colour-blind-safe palette without its yellow and with its orange darkened,
//! each at least 3:1 against white ([`PALETTE`]); from the eighth candidate on, lines are
//! dashed. The untrained point (0 tokens, loss near ln V) is left out of the view, which
//! would otherwise flatten every difference that matters, and the x axis starts at the first
//! point drawn; the strip says what the untrained loss was.

use std::path::Path;

use plotters::prelude::*;

use super::EvalReport;
use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// Pixels of one panel.
pub const PANEL: (u32, u32) = (720, 480);
/// Pixels of the legend strip at the right of each panel.
const LEGEND: u32 = 170;

/// Line colours, in candidate order (RGB).
pub const PALETTE: [(u8, u8, u8); 7] = [
    (0x00, 0x72, 0xB2), // blue
    (0xD5, 0x5E, 0x00), // vermillion
    (0x00, 0x9E, 0x73), // bluish green
    (0xCC, 0x79, 0xA7), // reddish purple
    (0x00, 0x00, 0x00), // black
    (0x99, 0x61, 0x00), // orange, darkened
    (0x6E, 0x6E, 0x6E), // grey
];

fn color(c: usize) -> RGBAColor {
    let (r, g, b) = PALETTE[c % PALETTE.len()];
    RGBColor(r, g, b).to_rgba()
}

/// WCAG's contrast ratio of an sRGB colour against white.
pub fn contrast_on_white((r, g, b): (u8, u8, u8)) -> f64 {
    let lin = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    1.05 / (l + 0.05)
}

/// `name`, cut to at most `max` characters with an ellipsis.
fn fit(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        format!("{}…", name.chars().take(max - 1).collect::<String>())
    }
}

fn perr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: drawing the plot: {e}", path.display()))
}

/// The image's size for `panels` validation sets: up to three panels a row.
pub fn size(panels: usize) -> (u32, u32) {
    let cols = panels.clamp(1, 3) as u32;
    let rows = panels.max(1).div_ceil(3) as u32;
    (PANEL.0 * cols, PANEL.1 * rows)
}

/// Make the built-in font plotters' "sans-serif" (once per process).
pub fn register_font() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // The font is the one built in: it parses, or the build is broken.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

pub fn draw(path: &Path, report: &EvalReport) -> Result<()> {
    register_font();
    let n = report.valid.len();
    let (w, h) = size(n);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(path, e))?;
    let cols = n.clamp(1, 3);
    let panels = root.split_evenly((n.max(1).div_ceil(3), cols));
    for (v, (panel, name)) in panels.iter().zip(&report.valid).enumerate() {
        let (area, legend) = panel.split_horizontally(PANEL.0 - LEGEND);
        // A diverged run's NaN or infinite losses are left out (summary.csv shows them).
        let shown = |c: usize| {
            report.curves[c][v].iter().filter(|p| p.0 > 0 && p.1.is_finite() && p.2.is_finite() && p.3.is_finite())
        };
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut x_min = f64::INFINITY;
        for c in 0..report.candidates.len() {
            for &(t, _, a, b) in shown(c) {
                lo = lo.min(a);
                hi = hi.max(b);
                x_min = x_min.min(t as f64);
            }
        }
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = (0.0, 1.0);
        }
        let x_max = report.settings.tokens as f64;
        if !(x_min.is_finite() && x_min < x_max) {
            x_min = 0.0;
        }
        let pad = ((hi - lo) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("validation set: {name}"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_min..x_max, (lo - pad)..(hi + pad))
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
        let text = ("sans-serif", 14).into_font();
        for (c, cand) in report.candidates.iter().enumerate() {
            let color = color(c);
            let dashed = c >= PALETTE.len();
            let points: Vec<_> = shown(c).copied().collect();
            if points.len() > 1 && points.iter().any(|p| p.3 > p.2) {
                let band: Vec<(f64, f64)> = points
                    .iter()
                    .map(|p| (p.0 as f64, p.3))
                    .chain(points.iter().rev().map(|p| (p.0 as f64, p.2)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(band, color.mix(0.15).filled())))
                    .map_err(|e| perr(path, e))?;
            }
            let line = points.iter().map(|p| (p.0 as f64, p.1));
            if dashed {
                chart
                    .draw_series(DashedLineSeries::new(line, 8, 5, color.stroke_width(3)))
                    .map_err(|e| perr(path, e))?;
            } else {
                chart.draw_series(LineSeries::new(line, color.stroke_width(3))).map_err(|e| perr(path, e))?;
            }
            // The legend entry, in the strip beside the data.
            let y = 48 + 24 * c as i32;
            let sample = if dashed {
                vec![
                    PathElement::new(vec![(8, y), (16, y)], color.stroke_width(3)),
                    PathElement::new(vec![(22, y), (30, y)], color.stroke_width(3)),
                ]
            } else {
                vec![PathElement::new(vec![(8, y), (30, y)], color.stroke_width(3))]
            };
            for e in sample {
                legend.draw(&e).map_err(|e| perr(path, e))?;
            }
            legend.draw(&Text::new(fit(cand, 18), (36, y - 8), text.clone())).map_err(|e| perr(path, e))?;
        }
        // What the view leaves out: the untrained loss (the same model and seeds for all).
        let untrained: Vec<f64> = (0..report.candidates.len())
            .filter_map(|c| report.curves[c][v].first().filter(|p| p.0 == 0).map(|p| p.1))
            .collect();
        if let Some(&u) = untrained.first() {
            let y = 48 + 24 * report.candidates.len() as i32 + 12;
            let note = ("sans-serif", 12).into_font().color(&BLACK.mix(0.7));
            legend
                .draw(&Text::new(format!("at 0 tokens: {u:.2} nats"), (8, y), note.clone()))
                .map_err(|e| perr(path, e))?;
            legend
                .draw(&Text::new("(untrained, off the view)".to_string(), (8, y + 16), note))
                .map_err(|e| perr(path, e))?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_colour_stands_out_on_white() {
        for c in PALETTE {
            assert!(contrast_on_white(c) >= 3.0, "{c:?}: {:.2}", contrast_on_white(c));
        }
        // The oracle: black is 21:1, white 1:1.
        assert!((contrast_on_white((0, 0, 0)) - 21.0).abs() < 1e-9);
        assert!((contrast_on_white((255, 255, 255)) - 1.0).abs() < 1e-9);
        let distinct: std::collections::HashSet<_> = PALETTE.iter().collect();
        assert_eq!(distinct.len(), PALETTE.len());
    }

    #[test]
    fn long_names_are_cut_to_fit_the_legend() {
        assert_eq!(fit("random", 18), "random");
        assert_eq!(fit("a-very-long-candidate-name", 10), "a-very-lo…");
    }
}
