//! Training metrics: one JSON object per step in `metrics.jsonl`, and `loss.svg`, a plot of the
//! train and validation curves drawn by hand (an SVG is just text).

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One optimizer step's measurements.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    /// Printed with full f32 precision (9 significant digits) by serde_json.
    pub loss: f32,
    pub lr: f32,
    pub grad_norm: f32,
    pub tokens_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f32>,
}

/// Appends to `metrics.jsonl` and redraws `loss.svg`.
pub struct MetricsLog {
    jsonl: std::fs::File,
    jsonl_path: PathBuf,
    svg_path: PathBuf,
    train: Vec<(usize, f32)>,
    val: Vec<(usize, f32)>,
}

impl MetricsLog {
    /// Open `DIR/metrics.jsonl`. A new run (`resume_at` = None) starts it afresh; a resumed run
    /// keeps the lines up to the step it resumes from and appends after them.
    pub fn open(dir: &Path, resume_at: Option<usize>) -> Result<MetricsLog> {
        let path = dir.join("metrics.jsonl");
        let mut train = Vec::new();
        let mut val = Vec::new();
        let mut kept = String::new();
        if let (Some(last), Ok(text)) = (resume_at, std::fs::read_to_string(&path)) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if let Ok(m) = serde_json::from_str::<StepMetrics>(line)
                    && m.step <= last
                {
                    train.push((m.step, m.loss));
                    if let Some(v) = m.val_loss {
                        val.push((m.step, v));
                    }
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
        }
        crate::cli::write_atomic(&path, kept.as_bytes())?;
        let jsonl = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(MetricsLog {
            jsonl,
            jsonl_path: path,
            svg_path: dir.join("loss.svg"),
            train,
            val,
        })
    }

    /// Record one step: a line in the JSONL, a point on the plot.
    pub fn log(&mut self, m: &StepMetrics) -> Result<()> {
        let line = serde_json::to_string(m)?;
        writeln!(self.jsonl, "{line}")
            .with_context(|| format!("writing {}", self.jsonl_path.display()))?;
        self.train.push((m.step, m.loss));
        if let Some(v) = m.val_loss {
            self.val.push((m.step, v));
        }
        Ok(())
    }

    /// Rewrite `loss.svg` from every point so far (atomically).
    pub fn redraw(&self) -> Result<()> {
        let svg = loss_svg(&self.train, &self.val);
        crate::cli::write_atomic(&self.svg_path, svg.as_bytes())
    }
}

/// An SVG line plot of train (blue) and validation (orange) loss against step.
pub fn loss_svg(train: &[(usize, f32)], val: &[(usize, f32)]) -> String {
    let (w, h, pad) = (640.0f64, 400.0f64, 50.0f64);
    let all = train.iter().chain(val).filter(|p| p.1.is_finite());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(s, l) in all {
        x_max = x_max.max(s as f64);
        y_min = y_min.min(l as f64);
        y_max = y_max.max(l as f64);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    if y_max - y_min < 1e-6 {
        y_max = y_min + 1.0;
    }
    let sx = |s: f64| pad + s / x_max * (w - 2.0 * pad);
    let sy = |l: f64| h - pad - (l - y_min) / (y_max - y_min) * (h - 2.0 * pad);
    let path = |pts: &[(usize, f32)]| {
        pts.iter()
            .filter(|p| p.1.is_finite())
            .map(|&(s, l)| format!("{:.1},{:.1}", sx(s as f64), sy(l as f64)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\n",
        b = h - pad,
        r = w - pad
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let (x, y) = (sx(f * x_max), sy(y_min + f * (y_max - y_min)));
        svg += &format!(
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.3}</text>\n",
            h - pad + 18.0,
            (f * x_max).round(),
            pad - 6.0,
            y + 4.0,
            y_min + f * (y_max - y_min)
        );
    }
    svg += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">step</text>\n\
         <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{}\"/>\n\
         <polyline fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\" points=\"{}\"/>\n\
         <text x=\"{:.1}\" y=\"20\" fill=\"#1f77b4\">train loss</text>\n\
         <text x=\"{:.1}\" y=\"36\" fill=\"#ff7f0e\">val loss</text>\n</svg>\n",
        w / 2.0,
        h - 12.0,
        path(train),
        path(val),
        w - pad - 90.0,
        w - pad - 90.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_writes_jsonl_with_full_precision_and_a_plot() {
        let dir = std::env::temp_dir().join(format!("pretrain-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = MetricsLog::open(&dir, None).unwrap();
        let m = StepMetrics {
            step: 1,
            loss: 4.123_456_7,
            lr: 1e-3,
            grad_norm: 0.5,
            tokens_per_sec: 1000.0,
            val_loss: Some(4.2),
        };
        log.log(&m).unwrap();
        log.log(&StepMetrics {
            step: 2,
            loss: 3.9,
            val_loss: None,
            ..m.clone()
        })
        .unwrap();
        log.redraw().unwrap();
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let first: StepMetrics = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first, m, "the loss survives the round trip bit for bit");
        // serde_json prints the shortest decimal that round-trips: 8 significant digits here.
        assert!(text.contains("\"loss\":4.1234565"), "{text}");
        assert!(!text.lines().nth(1).unwrap().contains("val_loss"));
        let svg = std::fs::read_to_string(dir.join("loss.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
        // Resuming from step 1 keeps step 1 only; a fresh run starts empty.
        let log2 = MetricsLog::open(&dir, Some(1)).unwrap();
        assert_eq!(log2.train.len(), 1);
        assert_eq!(log2.val.len(), 1);
        let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 1);
        MetricsLog::open(&dir, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap(),
            ""
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
