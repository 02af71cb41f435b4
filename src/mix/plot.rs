//! `mix.png`: left, the target validation set's measured loss against the fit's prediction,
//! one dot per search run and, for the proposal, natural and uniform mixtures, the seed mean
//! with a bar from the lowest to the highest seed, beside the line where the two agree; right,
//! the three mixtures' shares per domain as grouped bars. The same font and palette as
//! `curves.png`.

use std::path::Path;

use plotters::prelude::*;

use super::MixReport;
use crate::error::{Error, Result};
use crate::eval::plot::{register_font, PALETTE};

fn perr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{}: drawing the plot: {e}", path.display()))
}

fn color(c: usize) -> RGBColor {
    let (r, g, b) = PALETTE[c % PALETTE.len()];
    RGBColor(r, g, b)
}

const CHECKED: [&str; 3] = ["proposal", "natural", "uniform"];

pub fn draw(path: &Path, r: &MixReport) -> Result<()> {
    register_font();
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(path, e))?;
    let (left, right) = root.split_horizontally(620);
    let t = r.valid.iter().position(|v| *v == r.target).unwrap_or(0);
    let fit = r.fits.get(t).and_then(|f| f.chosen.map(|c| &f.fits[c]));
    // Points: (predicted, measured) of the search runs; (predicted, mean, lo, hi) of the checks.
    let search: Vec<(f64, f64)> = match fit {
        Some(f) => r
            .runs
            .iter()
            .filter(|x| x.phase == "search")
            .map(|x| (f.predict(&x.shares), x.loss[t]))
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect(),
        None => Vec::new(),
    };
    let checks: Vec<(usize, f64, f64, f64, f64)> = CHECKED
        .iter()
        .enumerate()
        .filter_map(|(c, m)| {
            let row = r.summary.iter().find(|s| s.mixture == *m && s.valid == r.target)?;
            let xs: Vec<f64> =
                r.runs.iter().filter(|x| x.phase == "check" && x.mixture == *m).map(|x| x.loss[t]).collect();
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let p = row.predicted_loss?;
            (p.is_finite() && row.loss_mean.is_finite()).then_some((c, p, row.loss_mean, lo, hi))
        })
        .collect();
    let all = search.iter().flat_map(|p| [p.0, p.1]).chain(checks.iter().flat_map(|c| [c.1, c.3, c.4]));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in all.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("loss on {}: measured vs predicted", r.target), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(|e| perr(path, e))?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "predicted by the {}",
            fit.map_or("fit (none)".to_string(), |f| format!(
                "{} fit (leave-one-out rho {:.2})",
                f.family.name(),
                f.loo_spearman
            ))
        ))
        .y_desc("measured")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|e| perr(path, e))?;
    chart
        .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.3).stroke_width(1)))
        .map_err(|e| perr(path, e))?;
    chart
        .draw_series(search.iter().map(|&(p, m)| Circle::new((p, m), 4, color(6).mix(0.7).filled())))
        .map_err(|e| perr(path, e))?
        .label(format!("search runs at {}", r.search_scale))
        .legend(|(x, y)| Circle::new((x + 10, y), 4, color(6).filled()));
    for &(c, p, m, a, b) in &checks {
        let col = color(c);
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(p, a), (p, b)], col.stroke_width(2))))
            .map_err(|e| perr(path, e))?;
        chart
            .draw_series(std::iter::once(Circle::new((p, m), 7, col.filled())))
            .map_err(|e| perr(path, e))?
            .label(format!("{} at {}", CHECKED[c], r.check_scale))
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, col.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| perr(path, e))?;

    // Shares: one group per domain, a bar per checked mixture.
    let k = r.domains.len();
    let shares: Vec<Vec<f64>> = CHECKED
        .iter()
        .map(|m| r.summary.iter().find(|s| s.mixture == *m).map_or(vec![0.0; k], |s| s.shares.clone()))
        .collect();
    let top = shares.iter().flatten().copied().fold(0.0, f64::max).max(0.05) * 1.1;
    let mut bars = ChartBuilder::on(&right)
        .caption("shares of the token budget", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(52)
        .build_cartesian_2d(-0.5..k as f64 - 0.5, 0.0..top)
        .map_err(|e| perr(path, e))?;
    let names = r.domains.clone();
    bars.configure_mesh()
        .disable_x_mesh()
        .x_labels(k)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| perr(path, e))?;
    for (c, row) in shares.iter().enumerate() {
        let col = color(c);
        bars.draw_series(row.iter().enumerate().map(|(d, &w)| {
            let x0 = d as f64 - 0.38 + 0.25 * c as f64;
            Rectangle::new([(x0, 0.0), (x0 + 0.24, w)], col.filled())
        }))
        .map_err(|e| perr(path, e))?
        .label(CHECKED[c])
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], col.filled()));
    }
    bars.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| perr(path, e))?;
    root.present().map_err(|e| perr(path, e))?;
    Ok(())
}
