//! Training curves as SVG files: the loss (training and held-out) and the dev-set execution
//! accuracy by optimizer step, read back from `metrics.jsonl`.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Result, TrainError};

/// The series found in a `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// `(step, training loss)`.
    pub loss: Vec<(f64, f64)>,
    /// `(step, held-out loss)`.
    pub eval_loss: Vec<(f64, f64)>,
    /// `(step, dev EX in percent)`.
    pub dev_ex: Vec<(f64, f64)>,
}

/// Reads the curves from a metrics file written by the trainer.
pub fn read_curves(metrics: &Path) -> Result<Curves> {
    let text = std::fs::read_to_string(metrics).map_err(|e| TrainError::io(metrics, e))?;
    let mut c = Curves::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
            continue;
        };
        if let Some(l) = v.get("loss").and_then(|x| x.as_f64()) {
            c.loss.push((step, l));
        }
        if let Some(l) = v.get("eval_loss").and_then(|x| x.as_f64()) {
            c.eval_loss.push((step, l));
        }
        if let Some(x) = v.get("dev_ex").and_then(|x| x.as_f64()) {
            c.dev_ex.push((step, 100.0 * x));
        }
    }
    Ok(c)
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::io(path, std::io::Error::other(e.to_string()))
}

/// Writes `loss.svg` (and `dev_ex.svg` when dev scores exist) into `dir`; returns the files.
pub fn write_curves(curves: &Curves, dir: &Path, title: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let mut out = Vec::new();
    if !curves.loss.is_empty() {
        let path = dir.join("loss.svg");
        let mut series = vec![("training loss", &curves.loss, BLUE)];
        if !curves.eval_loss.is_empty() {
            series.push(("held-out loss", &curves.eval_loss, RED));
        }
        line_chart(&path, &format!("{title}: loss"), "loss", &series, None)
            .map_err(|e| plot_err(&path, e))?;
        out.push(path);
    }
    if !curves.dev_ex.is_empty() {
        let path = dir.join("dev_ex.svg");
        line_chart(
            &path,
            &format!("{title}: dev execution accuracy"),
            "dev EX (%)",
            &[("dev EX", &curves.dev_ex, GREEN)],
            Some((0.0, 100.0)),
        )
        .map_err(|e| plot_err(&path, e))?;
        out.push(path);
    }
    Ok(out)
}

type Series<'a> = (&'a str, &'a Vec<(f64, f64)>, RGBColor);

fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = series.iter().flat_map(|(_, s, _)| s.iter());
    let (mut x_max, mut y_min, mut y_max) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    let (y0, y1) = y_range.unwrap_or_else(|| {
        let pad = ((y_max - y_min) * 0.05).max(1e-3);
        ((y_min - pad).max(0.0), y_max + pad)
    });
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..x_max, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("optimizer step")
        .y_desc(y_label)
        .draw()?;
    for (name, s, color) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        if s.len() < 40 {
            chart.draw_series(s.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_read_and_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("metrics.jsonl");
        std::fs::write(
            &m,
            "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":1.5}\n{\"step\":2,\"eval_loss\":1.7}\n\
             {\"step\":2,\"dev_ex\":0.4}\nnot json\n",
        )
        .unwrap();
        let c = read_curves(&m).unwrap();
        assert_eq!(c.loss, vec![(1.0, 2.5), (2.0, 1.5)]);
        assert_eq!(c.eval_loss, vec![(2.0, 1.7)]);
        assert_eq!(c.dev_ex, vec![(2.0, 40.0)]);
        let files = write_curves(&c, dir.path(), "toy").unwrap();
        assert_eq!(files.len(), 2);
        for f in files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("polyline"),
                "{svg:.200}"
            );
        }
    }
}
