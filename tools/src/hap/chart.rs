//! The bar chart, as SVG written by hand (and PNG through `rsvg-convert`):
//! for each workload, its distinct kernel functions in the steady state
//! and over its whole lifetime, guests next to their native peers.

use std::fmt::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::bench::{Result, start_error};
use crate::svg::{self, escape};

/// One bar group.
#[derive(Debug)]
pub struct Bar {
    pub label: String,
    pub steady: usize,
    pub whole: usize,
    pub guest: bool,
}

/// The SVG document.
pub fn svg(title: &str, bars: &[Bar]) -> String {
    let max = bars.iter().map(|b| b.whole.max(b.steady)).max().unwrap_or(1).max(1);
    // A round top for the axis.
    let step = [100usize, 200, 250, 500, 1000, 2000, 2500, 5000]
        .into_iter()
        .find(|s| max / s < 8)
        .unwrap_or(10_000);
    let top = max.div_ceil(step) * step;
    let (left, right, plot_top, plot_h, group_w) = (70.0, 20.0, 60.0, 320.0, 110.0);
    let width = left + right + group_w * bars.len() as f64;
    let height = plot_top + plot_h + 90.0;
    let y = |v: usize| plot_top + plot_h * (1.0 - v as f64 / top as f64);
    let mut s = svg::open(width, height, title, 24.0);
    let mut v = 0;
    while v <= top {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy}" x2="{}" y2="{yy}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v}</text>"##,
            width - right,
            left - 6.0,
            yy + 4.0
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">distinct kernel functions</text>"#,
        plot_top + plot_h / 2.0,
        plot_top + plot_h / 2.0
    );
    for (i, b) in bars.iter().enumerate() {
        let x0 = left + group_w * i as f64 + 15.0;
        let (steady_c, whole_c) =
            if b.guest { ("#1f6fb4", "#9cc3e6") } else { ("#c0504d", "#eaa9a7") };
        for (j, (value, colour)) in [(b.steady, steady_c), (b.whole, whole_c)].iter().enumerate() {
            let x = x0 + 40.0 * j as f64;
            let yy = y(*value);
            let _ = writeln!(
                s,
                r#"<rect x="{x}" y="{yy}" width="36" height="{}" fill="{colour}"/><text x="{}" y="{}" text-anchor="middle" font-size="11">{value}</text>"#,
                plot_top + plot_h - yy,
                x + 18.0,
                yy - 4.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x0 + 38.0,
            plot_top + plot_h + 18.0,
            escape(&b.label)
        );
    }
    let ly = plot_top + plot_h + 48.0;
    for (k, (colour, text)) in [
        ("#1f6fb4", "nabla guest, steady state"),
        ("#9cc3e6", "nabla guest, whole lifetime"),
        ("#c0504d", "native peer, steady state"),
        ("#eaa9a7", "native peer, whole lifetime"),
    ]
    .iter()
    .enumerate()
    {
        let x = left + (k % 2) as f64 * 220.0;
        let yy = ly + (k / 2) as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{text}</text>"#,
            yy - 10.0,
            x + 18.0,
            yy
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Converts `svg` to `png` with rsvg-convert.
pub fn png(svg: &Path, png: &Path) -> Result<()> {
    let out = Command::new("rsvg-convert")
        .arg("-o")
        .arg(png)
        .arg(svg)
        .stdin(Stdio::null())
        .output()
        .map_err(start_error("rsvg-convert", "librsvg2-bin"))?;
    if !out.status.success() {
        return Err(format!(
            "rsvg-convert {}: {}: {}",
            svg.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_bar() {
        let bars = [
            Bar { label: "hello".into(), steady: 60, whole: 900, guest: true },
            Bar { label: "native".into(), steady: 0, whole: 700, guest: false },
        ];
        let s = svg("HAP <test>", &bars);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("width=\"36\"").count(), 4);
        assert!(s.contains("HAP &lt;test&gt;"));
        assert!(s.contains(">900<"));
    }
}
