//! The charts, as SVG written by hand (and PNG through `rsvg-convert`):
//! for each workload, its distinct kernel functions in the steady state
//! and over its whole lifetime, guests next to their native peers
//! ([`svg`]); and each guest's steady state split by the path that reaches
//! it, against the goal ([`paths_svg`]).

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

/// The goal for the guests' steady state (issue 17), drawn on
/// [`paths_svg`].
pub const GOAL: usize = 120;

/// One guest's steady state for [`paths_svg`]: the functions only each path
/// reaches, largest first, and those reached on more than one.
#[derive(Debug)]
pub struct Split {
    pub label: String,
    pub only: Vec<(String, usize)>,
    pub shared: usize,
}

/// A horizontal bar a guest, cut into the functions only each call and
/// device path reaches and those several reach (the syscall entry and
/// exit, the seccomp filter, the scheduler), with the goal as a dashed
/// line. Paths share a colour across bars.
pub fn paths_svg(title: &str, splits: &[Split]) -> String {
    const PALETTE: [&str; 10] = [
        "#1f6fb4", "#c0504d", "#9bbb59", "#8064a2", "#f79646", "#4bacc6", "#7f6000", "#d16ba5",
        "#2e8b57", "#b8860b",
    ];
    const SHARED: &str = "#bbbbbb";
    let mut labels: Vec<&str> = Vec::new();
    for s in splits {
        for (l, _) in &s.only {
            if !labels.contains(&l.as_str()) {
                labels.push(l);
            }
        }
    }
    let colour = |l: &str| {
        let i = labels.iter().position(|x| *x == l).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let total = |s: &Split| s.shared + s.only.iter().map(|(_, n)| n).sum::<usize>();
    let max = splits.iter().map(total).max().unwrap_or(0).max(GOAL);
    let top = max.div_ceil(50) * 50;
    let (left, right, plot_top, bar_h, gap) = (110.0, 30.0, 50.0, 34.0, 22.0);
    let plot_w = 600.0;
    let width = left + plot_w + right;
    let plot_h = (bar_h + gap) * splits.len() as f64;
    let legend_rows = (labels.len() + 1).div_ceil(2);
    let height = plot_top + plot_h + 40.0 + 18.0 * legend_rows as f64;
    let x = |v: usize| left + plot_w * v as f64 / top as f64;
    let mut s = svg::open(width, height, title, 24.0);
    let mut v = 0;
    while v <= top {
        let xx = x(v);
        let _ = writeln!(
            s,
            r##"<line x1="{xx}" y1="{plot_top}" x2="{xx}" y2="{}" stroke="#ddd"/><text x="{xx}" y="{}" text-anchor="middle">{v}</text>"##,
            plot_top + plot_h,
            plot_top + plot_h + 14.0
        );
        v += 50;
    }
    for (i, sp) in splits.iter().enumerate() {
        let y = plot_top + gap / 2.0 + (bar_h + gap) * i as f64;
        let mut at = 0;
        let parts = sp.only.iter().map(|(l, n)| (l.as_str(), *n, colour(l)));
        for (label, n, fill) in parts.chain([("more than one path", sp.shared, SHARED)]) {
            if n == 0 {
                continue;
            }
            let (x0, x1) = (x(at), x(at + n));
            let _ = writeln!(
                s,
                r##"<rect x="{x0}" y="{y}" width="{}" height="{bar_h}" fill="{fill}" stroke="white"><title>{}: {n}</title></rect>"##,
                x1 - x0,
                escape(label)
            );
            if x1 - x0 >= 18.0 {
                let _ = writeln!(
                    s,
                    r##"<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="white">{n}</text>"##,
                    (x0 + x1) / 2.0,
                    y + bar_h / 2.0 + 4.0
                );
            }
            at += n;
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}">{at}</text>"#,
            left - 6.0,
            y + bar_h / 2.0 + 4.0,
            escape(&sp.label),
            x(at) + 4.0,
            y + bar_h / 2.0 + 4.0
        );
    }
    let g = x(GOAL);
    let _ = writeln!(
        s,
        r##"<line x1="{g}" y1="{}" x2="{g}" y2="{}" stroke="black" stroke-dasharray="5,4"/><text x="{g}" y="{}" text-anchor="middle">goal for httpd and kvd: {GOAL}</text>"##,
        plot_top - 4.0,
        plot_top + plot_h,
        plot_top - 8.0
    );
    let ly = plot_top + plot_h + 40.0;
    let legend = labels.iter().map(|l| (*l, colour(l))).chain([("more than one path", SHARED)]);
    for (k, (text, fill)) in legend.enumerate() {
        let lx = left + (k % 2) as f64 * 300.0;
        let yy = ly + (k / 2) as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{fill}"/><text x="{}" y="{yy}">{}</text>"#,
            yy - 10.0,
            lx + 18.0,
            escape(text)
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

    #[test]
    fn paths_add_up_and_share_colours() {
        let splits = [
            Split {
                label: "httpd".into(),
                only: vec![("ppoll".into(), 37), ("read tap".into(), 19)],
                shared: 55,
            },
            Split {
                label: "kvd".into(),
                only: vec![("read tap".into(), 18), ("pwrite64 block".into(), 35)],
                shared: 58,
            },
        ];
        let s = paths_svg("paths", &splits);
        assert!(s.trim_end().ends_with("</svg>"));
        // Totals at the bars' ends, the goal, one legend entry a path.
        assert_eq!(s.matches(">111</text>").count(), 2, "{s}");
        assert!(s.contains(">goal for httpd and kvd: 120</text>"));
        assert_eq!(s.matches(">read tap</text>").count(), 1);
        assert_eq!(s.matches("<title>read tap: ").count(), 2);
        // read tap is the second path seen: the same colour on both bars.
        assert_eq!(s.matches(r##"fill="#c0504d" stroke="white"><title>read tap"##).count(), 2);
        assert!(s.contains("<title>more than one path: 58</title>"));
    }
}
