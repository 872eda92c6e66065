//! How cost grows: the sweeps of `nabla bench http --sweep` and `nabla
//! bench kvd --sweep` (one load parameter on the x axis, one size per
//! curve, the guest and its peer measured in the same run), drawn as line
//! charts in SVG written by hand (as `nabla hap`'s bar chart) and converted
//! to PNG by `rsvg-convert`.

use std::fmt::Write as _;
use std::path::Path;

use super::Result;
use crate::svg::{self, escape};

/// One curve: a server at one size.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// The nabla guest (blue) or its native peer (red).
    pub guest: bool,
    /// Which size: 0 solid, 1 dashed, 2 dotted, ...
    pub style: usize,
    /// One y per x of the panel (NaN: not measured).
    pub ys: Vec<f64>,
}

/// One plot: the x values are categories, equally spaced (the sweeps go
/// in powers: 1, 8, 64, 512), the y axis is linear from 0.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub xs: Vec<String>,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// A round step for an axis from 0 to `max`, about five ticks.
pub fn nice_step(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// A tick's text: 12000 → 12k, 1500000 → 1.5M, 0.25 → 0.25.
pub fn tick_text(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    if v >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if v >= 1e3 {
        format!("{}k", trim(format!("{:.2}", v / 1e3)))
    } else {
        trim(format!("{v:.2}"))
    }
}

const GUEST: [&str; 4] = ["#1f6fb4", "#4a90d0", "#123f6b", "#7fb2e0"];
const PEER: [&str; 4] = ["#c0504d", "#d9807d", "#7a2624", "#e8a9a7"];
const DASH: [&str; 4] = ["", "8 4", "2 3", "10 3 2 3"];

/// The SVG document: `panels` side by side under `title`, one legend.
pub fn svg(title: &str, subtitle: &str, panels: &[Panel]) -> String {
    let (pw, ph, left, gap, top) = (340.0, 260.0, 64.0, 30.0, 70.0);
    let n = panels.len().max(1) as f64;
    let width = left + n * (pw + left + gap);
    let series_n = panels.iter().map(|p| p.series.len()).max().unwrap_or(0);
    let legend_rows = series_n.div_ceil(2) as f64;
    let height = top + ph + 60.0 + legend_rows * 18.0 + 10.0;
    let mut s = svg::open(width, height, title, 22.0);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="40" text-anchor="middle" font-size="11" fill="#444">{}</text>"##,
        width / 2.0,
        escape(subtitle)
    );
    for (k, p) in panels.iter().enumerate() {
        let x0 = left + k as f64 * (pw + left + gap);
        let max = p.series.iter().flat_map(|s| s.ys.iter().copied()).filter(|v| v.is_finite());
        let max = max.fold(0.0f64, f64::max);
        let step = nice_step(max);
        let ymax = ((max / step).ceil() * step).max(step);
        let y = |v: f64| top + ph * (1.0 - v / ymax);
        let nx = p.xs.len().max(1);
        let x = |i: usize| {
            if nx == 1 {
                x0 + pw / 2.0
            } else {
                x0 + 10.0 + (pw - 20.0) * i as f64 / (nx - 1) as f64
            }
        };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
            x0 + pw / 2.0,
            top - 12.0,
            escape(&p.title)
        );
        let mut v = 0.0;
        while v <= ymax * 1.0001 {
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 + pw,
                x0 - 5.0,
                yy + 4.0,
                tick_text(v)
            );
            v += step;
        }
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        for (i, label) in p.xs.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(i),
                top + ph + 16.0,
                escape(label)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x0 + pw / 2.0,
            top + ph + 34.0,
            escape(&p.x_label)
        );
        let cy = top + ph / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{cy}" transform="rotate(-90 {} {cy})" text-anchor="middle">{}</text>"#,
            x0 - 46.0,
            x0 - 46.0,
            escape(&p.y_label)
        );
        for (j, se) in p.series.iter().enumerate() {
            let colour = colour(se, j);
            let dash = DASH[se.style % DASH.len()];
            // Broken at points not measured.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (i, &v) in se.ys.iter().enumerate().take(nx) {
                if v.is_finite() {
                    runs.last_mut().expect("one run").push((x(i), y(v)));
                } else if !runs.last().expect("one run").is_empty() {
                    runs.push(Vec::new());
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                let pts: Vec<String> = run.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                    pts.join(" ")
                );
                for (a, b) in run {
                    let _ =
                        writeln!(s, r#"<circle cx="{a:.1}" cy="{b:.1}" r="3" fill="{colour}"/>"#);
                }
            }
        }
    }
    if let Some(p) = panels.first() {
        let ly = top + ph + 60.0;
        for (j, se) in p.series.iter().enumerate() {
            let lx = left + (j % 2) as f64 * 300.0;
            let yy = ly + (j / 2) as f64 * 18.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2" stroke-dasharray="{}"/><text x="{}" y="{yy}">{}</text>"#,
                yy - 4.0,
                lx + 30.0,
                yy - 4.0,
                colour(se, j),
                DASH[se.style % DASH.len()],
                lx + 36.0,
                escape(&se.name)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn colour(se: &Series, _j: usize) -> &'static str {
    let palette = if se.guest { &GUEST } else { &PEER };
    palette[se.style % palette.len()]
}

/// Writes `svg` to `dir/name.svg` and, through rsvg-convert, `dir/name.png`;
/// returns what it wrote (a PNG that could not be made is a warning).
pub fn write_chart(dir: &Path, name: &str, svg: &str) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let svg_path = dir.join(format!("{name}.svg"));
    std::fs::write(&svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    let mut wrote = vec![svg_path.display().to_string()];
    let png_path = dir.join(format!("{name}.png"));
    match crate::hap::chart::png(&svg_path, &png_path) {
        Ok(()) => wrote.push(png_path.display().to_string()),
        Err(e) => eprintln!("nabla: bench: no PNG chart: {e}"),
    }
    Ok(wrote)
}

/// A size in bytes for a curve's name: 16 B, 1 KiB, 64 KiB, 1 MiB.
pub fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// Parses a size: `16`, `1k`, `64K`, `1m`, `1MiB` (binary units).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("mib").or(lower.strip_suffix('m')) {
        (n, 1u64 << 20)
    } else if let Some(n) = lower.strip_suffix("kib").or(lower.strip_suffix('k')) {
        (n, 1 << 10)
    } else {
        (lower.strip_suffix('b').unwrap_or(&lower), 1)
    };
    let n: u64 =
        num.trim().parse().map_err(|_| format!("not a size: {t:?} (e.g. 16, 1k, 64k, 1m)"))?;
    n.checked_mul(mult).filter(|&b| b > 0).ok_or_else(|| format!("size out of range: {t:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel() -> Panel {
        Panel {
            title: "requests/s <both>".into(),
            x_label: "connections".into(),
            xs: ["1", "8", "64", "512"].map(String::from).to_vec(),
            y_label: "req/s".into(),
            series: vec![
                Series {
                    name: "httpd 1 KiB".into(),
                    guest: true,
                    style: 0,
                    ys: vec![100.0, 800.0, 1200.0, 1100.0],
                },
                Series {
                    name: "nginx 1 KiB".into(),
                    guest: false,
                    style: 0,
                    ys: vec![90.0, f64::NAN, 1000.0, 1000.0],
                },
            ],
        }
    }

    #[test]
    fn draws_every_point_and_breaks_at_gaps() {
        let s = svg("How cost grows", "one run", &[panel(), panel()]);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        // 4 + 3 points per panel, two panels.
        assert_eq!(s.matches("<circle").count(), 14);
        // The peer's curve is broken at the gap: 3 polylines per panel.
        assert_eq!(s.matches("<polyline").count(), 6);
        assert!(s.contains("requests/s &lt;both&gt;"));
        assert!(s.contains(">1.25k<"), "{s}");
        // Legend once.
        assert_eq!(s.matches(">httpd 1 KiB<").count(), 1);
        assert!(s.contains(GUEST[0]) && s.contains(PEER[0]));
        // Every y coordinate inside the plot.
        for c in s.split("<circle ").skip(1) {
            let cy: f64 =
                c.split("cy=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
            assert!((70.0..=330.0).contains(&cy), "{cy}");
        }
    }

    #[test]
    fn empty_and_nan_panels_do_not_break() {
        let mut p = panel();
        for se in &mut p.series {
            se.ys = vec![f64::NAN; 4];
        }
        let s = svg("t", "", &[p]);
        assert_eq!(s.matches("<polyline").count(), 0);
        assert!(!s.contains("NaN") && !s.contains("inf"));
        assert!(svg("t", "", &[]).ends_with("</svg>\n"));
    }

    #[test]
    fn axes_and_sizes() {
        assert_eq!(nice_step(1234.0), 250.0);
        assert_eq!(nice_step(9.0), 2.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(tick_text(12000.0), "12k");
        assert_eq!(tick_text(1_500_000.0), "1.5M");
        assert_eq!(tick_text(0.25), "0.25");
        assert_eq!(tick_text(250.0), "250");
        assert_eq!(size_text(16), "16 B");
        assert_eq!(size_text(1024), "1 KiB");
        assert_eq!(size_text(65536), "64 KiB");
        assert_eq!(size_text(1 << 20), "1 MiB");
        assert_eq!(size_text(1500), "1500 B");
        assert_eq!(parse_size("16"), Ok(16));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("16B"), Ok(16));
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999999999999m").is_err());
    }
}
