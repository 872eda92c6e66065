//! What the hand-written SVG charts share (`nabla hap`'s bars, `nabla
//! bench`'s sweeps): escaping and the document's opening.

use std::fmt::Write;

/// `s` as SVG text or attribute content.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The opening of a `width` × `height` document: the `<svg>` element, a
/// white background and `title`, centred, with its baseline at `title_y`.
pub fn open(width: f64, height: f64, title: &str, title_y: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{title_y}" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_escaped_and_centred() {
        let s = open(200.0, 100.0, "a < b & \"c\"", 22.0);
        assert!(s.starts_with("<svg "), "{s}");
        assert!(s.contains(r#"x="100" y="22""#), "{s}");
        assert!(s.contains("a &lt; b &amp; &quot;c&quot;</text>"), "{s}");
    }
}
