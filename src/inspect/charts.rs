//! Inline SVG charts of the report: horizontal bar charts and a roofline.
//! Plain SVG text, no script and nothing fetched, so the pictures show from
//! `file://` and in a saved page.

use super::report::esc;
use std::fmt::Write as _;

const LABEL_W: f64 = 300.0;
const BAR_W: f64 = 440.0;
const VALUE_W: f64 = 110.0;
const ROW_H: f64 = 16.0;
const TOP: f64 = 6.0;

/// One bar: its label (full name in the tooltip) and value.
pub struct Bar {
    /// Shown left of the bar (shortened from the left when long).
    pub label: String,
    /// The bar's length, in the chart's unit.
    pub value: f64,
    /// Extra text for the tooltip.
    pub note: String,
}

fn short(label: &str, max: usize) -> String {
    let n = label.chars().count();
    if n <= max {
        label.to_string()
    } else {
        let tail: String = label.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    }
}

/// A horizontal bar chart with one `rect.bar` per row, inside a
/// `<figure>` with a caption; `fmt` writes the values.
pub fn bar_chart(id: &str, title: &str, bars: &[Bar], fmt: &dyn Fn(f64) -> String) -> String {
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let w = LABEL_W + BAR_W + VALUE_W;
    let h = TOP * 2.0 + ROW_H * bars.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure class=\"chart\"><figcaption>{t}</figcaption>\
<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{id}\" class=\"bars\" width=\"{w}\" height=\"{h}\" \
viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"11\">",
        t = esc(title),
        id = esc(id)
    );
    s.push('\n');
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let len = if max > 0.0 {
            (b.value / max * BAR_W).max(1.0)
        } else {
            1.0
        };
        let v = fmt(b.value);
        let _ = writeln!(
            s,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" fill=\"#333\">{l}</text>\
<rect class=\"bar\" x=\"{LABEL_W}\" y=\"{ry}\" width=\"{len:.1}\" height=\"{rh}\" fill=\"#4a78c2\">\
<title>{full}: {v}{note}</title></rect>\
<text x=\"{vx:.1}\" y=\"{ty}\" fill=\"#555\">{v}</text>",
            lx = LABEL_W - 6.0,
            ty = y + 12.0,
            l = esc(&short(&b.label, 46)),
            ry = y + 2.0,
            rh = ROW_H - 4.0,
            full = esc(&b.label),
            note = if b.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", esc(&b.note))
            },
            vx = LABEL_W + len + 4.0,
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// One point of the roofline: a layer's FLOPs and bytes.
pub struct Point {
    /// The layer.
    pub label: String,
    /// FLOPs.
    pub flops: f64,
    /// Bytes accessed.
    pub bytes: f64,
}

fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut e = lo.log10().floor() as i32;
    while 10f64.powi(e) <= hi * 1.0001 {
        let t = 10f64.powi(e);
        if t >= lo * 0.9999 {
            v.push(t);
        }
        e += 1;
    }
    v
}

fn tick_label(v: f64) -> String {
    if (0.01..1e4).contains(&v) {
        let s = format!("{v}");
        s.trim_end_matches(".0").to_string()
    } else {
        format!("1e{}", v.log10().round() as i32)
    }
}

/// A roofline on log–log axes: attainable FLOP/s = min(peak, intensity ×
/// bandwidth) and each layer at its arithmetic intensity (FLOPs ÷ bytes)
/// on the roof, left of the ridge memory-bound (orange), right of it
/// compute-bound (blue). One `circle.pt` per layer; the ridge is a dashed
/// line.
pub fn roofline(id: &str, title: &str, points: &[Point], peak: f64, bandwidth: f64) -> String {
    let ridge = peak / bandwidth;
    let ai: Vec<f64> = points
        .iter()
        .filter(|p| p.flops > 0.0 && p.bytes > 0.0)
        .map(|p| p.flops / p.bytes)
        .collect();
    let lo_ai = ai.iter().copied().fold(ridge / 10.0, f64::min);
    let hi_ai = ai.iter().copied().fold(ridge * 10.0, f64::max);
    let x0 = 10f64.powf(lo_ai.log10().floor());
    let x1 = 10f64.powf(hi_ai.log10().ceil());
    let y1 = 10f64.powf(peak.log10().ceil());
    let y0 = 10f64.powf((x0 * bandwidth).log10().floor());
    let (w, h) = (760.0, 420.0);
    let (l, r, t, b) = (70.0, 20.0, 14.0, 44.0);
    let px = |x: f64| l + (x.log10() - x0.log10()) / (x1.log10() - x0.log10()) * (w - l - r);
    let py = |y: f64| h - b - (y.log10() - y0.log10()) / (y1.log10() - y0.log10()) * (h - t - b);
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure class=\"chart\"><figcaption>{tt}</figcaption>\
<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{id}\" class=\"roofline\" width=\"{w}\" height=\"{h}\" \
viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{tt}\" font-family=\"sans-serif\" font-size=\"11\">\n\
<rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" fill=\"#fafbfd\" stroke=\"#99a\"/>\n",
        tt = esc(title),
        id = esc(id),
        pw = w - l - r,
        ph = h - t - b
    );
    for x in log_ticks(x0, x1) {
        let _ = writeln!(
            s,
            "<line x1=\"{X:.1}\" y1=\"{t}\" x2=\"{X:.1}\" y2=\"{yb}\" stroke=\"#e2e5ea\"/>\
<text x=\"{X:.1}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"#444\">{lab}</text>",
            X = px(x),
            yb = h - b,
            ty = h - b + 14.0,
            lab = tick_label(x)
        );
    }
    for y in log_ticks(y0, y1) {
        let y_label = format!("{y:.0e}");
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" y1=\"{Y:.1}\" x2=\"{xr}\" y2=\"{Y:.1}\" stroke=\"#e2e5ea\"/>\
<text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"#444\">{lab}</text>",
            Y = py(y),
            xr = w - r,
            tx = l - 4.0,
            ty = py(y) + 4.0,
            lab = y_label
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{cx}\" y=\"{by}\" text-anchor=\"middle\" fill=\"#222\">arithmetic intensity (FLOPs / byte accessed)</text>\
<text x=\"14\" y=\"{cy}\" text-anchor=\"middle\" fill=\"#222\" transform=\"rotate(-90 14 {cy})\">attainable FLOP/s</text>",
        cx = l + (w - l - r) / 2.0,
        by = h - 8.0,
        cy = t + (h - t - b) / 2.0
    );
    let _ = writeln!(
        s,
        "<polyline class=\"roof\" fill=\"none\" stroke=\"#222\" stroke-width=\"2\" points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>\
<line class=\"ridge\" x1=\"{rx:.1}\" y1=\"{t}\" x2=\"{rx:.1}\" y2=\"{yb}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\
<text x=\"{tx:.1}\" y=\"{ty}\" fill=\"#555\">ridge {ridge:.0} FLOP/B</text>",
        px(x0),
        py(x0 * bandwidth),
        px(ridge),
        py(peak),
        px(x1),
        py(peak),
        rx = px(ridge),
        yb = h - b,
        tx = px(ridge) + 4.0,
        ty = t + 12.0,
    );
    for p in points.iter().filter(|p| p.flops > 0.0 && p.bytes > 0.0) {
        let a = p.flops / p.bytes;
        let y = (a * bandwidth).min(peak);
        let (color, bound) = if a < ridge {
            ("#e07b00", "memory-bound")
        } else {
            ("#2b64c6", "compute-bound")
        };
        let _ = writeln!(
            s,
            "<circle class=\"pt\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\" fill-opacity=\"0.7\">\
<title>{}: {a:.1} FLOP/B, {bound}</title></circle>",
            px(a),
            py(y),
            esc(&p.label)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_row_scaled_to_the_largest() {
        let bars = [
            Bar {
                label: "a".into(),
                value: 2.0,
                note: String::new(),
            },
            Bar {
                label: "b<c".into(),
                value: 1.0,
                note: String::new(),
            },
        ];
        let s = bar_chart("x", "T", &bars, &|v| format!("{v}"));
        assert_eq!(s.matches("class=\"bar\"").count(), 2);
        assert!(s.contains(&format!("width=\"{BAR_W:.1}\"")));
        assert!(s.contains(&format!("width=\"{:.1}\"", BAR_W / 2.0)));
        assert!(s.contains("b&lt;c") && !s.contains("b<c"));
    }

    #[test]
    fn roofline_puts_low_intensity_layers_left_of_the_ridge() {
        let pts = [
            Point {
                label: "bn".into(),
                flops: 1e6,
                bytes: 1e6,
            },
            Point {
                label: "conv".into(),
                flops: 1e12,
                bytes: 1e9,
            },
        ];
        let s = roofline("r", "R", &pts, 1e14, 1e12);
        assert_eq!(s.matches("class=\"pt\"").count(), 2);
        assert!(s.contains("bn: 1.0 FLOP/B, memory-bound"));
        assert!(s.contains("conv: 1000.0 FLOP/B, compute-bound"));
        assert!(s.contains("ridge 100 FLOP/B"));
    }
}
