//! The latency plot: cumulative distributions of publish → delivered and of
//! Inspect (beside the echo baseline), drawn by the benchmark itself to an
//! SVG file with `plotters`.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::report::Samples;

/// One curve: its label, colour and sorted samples in seconds.
struct Curve<'a> {
    label: &'a str,
    colour: RGBColor,
    sorted: &'a [f64],
}

/// Draws the distributions to `path` (SVG).
pub fn latency_svg(path: &Path, samples: &Samples, caption: &str) -> Result<()> {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(caption, ("sans-serif", 18))
        .map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((1, 2));
    panel(
        &panels[0],
        "publish → delivered at every other node",
        &[Curve {
            label: "delivery",
            colour: RGBColor(31, 119, 180),
            sorted: &samples.delivery,
        }],
    )?;
    panel(
        &panels[1],
        "Inspect, 64 mutual-TLS clients",
        &[
            Curve {
                label: "Inspect (policy, audit, signed answer)",
                colour: RGBColor(214, 39, 40),
                sorted: &samples.inspect,
            },
            Curve {
                label: "echo baseline (same TLS)",
                colour: RGBColor(127, 127, 127),
                sorted: &samples.echo,
            },
        ],
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    curves: &[Curve<'_>],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let all = curves.iter().flat_map(|c| c.sorted.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, 0f64), |(lo, hi), s| {
        let ms = s * 1e3;
        (lo.min(ms), hi.max(ms))
    });
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        ((lo * 0.8).max(0.01), hi * 1.25)
    } else {
        (0.1, 100.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (log scale)")
        .y_desc("fraction of requests at or below")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for curve in curves {
        if curve.sorted.is_empty() {
            continue;
        }
        let n = curve.sorted.len() as f64;
        // At most ~2,000 points a curve: enough for the eye, small files.
        let step = (curve.sorted.len() / 2_000).max(1);
        let points = curve
            .sorted
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == curve.sorted.len())
            .map(|(i, s)| (s * 1e3, (i + 1) as f64 / n));
        let colour = curve.colour;
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(curve.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
