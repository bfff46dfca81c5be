//! Charts as SVG, drawn on the server: stacked bars (bytes by zone and class, daily volume,
//! file sizes) and a ranking curve. Pure functions of their data, so a page reads the same
//! with JavaScript off, and the tests can check what a chart says.
//!
//! Each chart has labelled axes with units, a legend, and every bar's value in an SVG
//! `<title>`, which browsers show on hover. The palette steps in lightness as well as hue, so
//! the series stay apart in greyscale; stacked segments are also parted by a thin line.

use maud::{Markup, html};

use super::format;

/// Series colours, darkest first.
const PALETTE: [&str; 5] = ["#08306b", "#2b8cbe", "#7bccc4", "#fdae6b", "#e6550d"];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

/// What a chart's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes, labelled in binary units.
    Bytes,
    /// A plain count.
    Count,
}

impl Unit {
    fn label(self, value: f64) -> String {
        match self {
            Self::Bytes => format::bytes(value.max(0.0).round() as u64),
            Self::Count => format::count(value.max(0.0).round() as u64),
        }
    }
}

/// One stacked series.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's name.
    pub label: String,
    /// One value per category.
    pub values: Vec<f64>,
}

/// A stacked bar chart.
#[derive(Debug, Clone)]
pub struct Bars {
    /// An accessible name for the whole chart.
    pub title: String,
    /// The x axis's name.
    pub x_label: String,
    /// The y axis's name.
    pub y_label: String,
    /// What the values measure.
    pub unit: Unit,
    /// One bar per category, left to right.
    pub categories: Vec<String>,
    /// Stacked bottom to top.
    pub series: Vec<Series>,
    /// Label every n-th category (1: all).
    pub label_every: usize,
}

/// Round tick steps: 1, 2 or 5 times a power of ten of `scale`, about five ticks up to `max`.
fn ticks(max: f64, unit: Unit) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let scale = match unit {
        Unit::Bytes => {
            let mut s = 1.0;
            while max / s >= 1024.0 {
                s *= 1024.0;
            }
            s
        }
        Unit::Count => 1.0,
    };
    let raw = max / scale / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
        .max(if unit == Unit::Count { 1.0 } else { 0.0 })
        * scale;
    let mut out = vec![0.0];
    while *out.last().unwrap_or(&0.0) < max {
        let next = out.len() as f64 * step;
        out.push(next);
    }
    out
}

/// The largest stacked total.
fn stacked_max(bars: &Bars) -> f64 {
    (0..bars.categories.len())
        .map(|i| {
            bars.series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
}

fn legend(labels: &[&str]) -> Markup {
    // About 6.5 px a character at the legend's 11 px, then a gap.
    let mut x = LEFT;
    let placed: Vec<(f64, &str)> = labels
        .iter()
        .map(|label| {
            let at = x;
            x += 16.0 + label.chars().count() as f64 * 6.5 + 18.0;
            (at, *label)
        })
        .collect();
    html! {
        g class="legend" {
            @for (i, (x, label)) in placed.iter().enumerate() {
                rect x=(x) y="6" width="12" height="12" fill=(PALETTE[i % PALETTE.len()]) {}
                text x=(x + 16.0) y="16" { (label) }
            }
        }
    }
}

/// The segments of category `i`'s bar, bottom up: series index, series, base and value;
/// zero values draw nothing.
fn stack(series: &[Series], i: usize) -> Vec<(usize, &Series, f64, f64)> {
    let mut base = 0.0;
    let mut out = Vec::new();
    for (s, one) in series.iter().enumerate() {
        let v = one.values.get(i).copied().unwrap_or(0.0);
        if v > 0.0 {
            out.push((s, one, base, v));
        }
        base += v;
    }
    out
}

/// A stacked bar chart as an `<svg>` element.
pub fn bars(bars: &Bars) -> Markup {
    let max = stacked_max(bars);
    let ticks = ticks(max, bars.unit);
    let top = ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = bars.categories.len().max(1);
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let labels: Vec<&str> = bars.series.iter().map(|s| s.label.as_str()).collect();
    let every = bars.label_every.max(1);
    html! {
        svg class="chart" role="img" viewBox={"0 0 " (WIDTH) " " (HEIGHT)} xmlns="http://www.w3.org/2000/svg" {
            title { (bars.title) }
            (legend(&labels))
            g class="axis" {
                @for t in &ticks {
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(*t)) y2=(y(*t)) class="grid" {}
                    text x=(LEFT - 6.0) y=(y(*t) + 4.0) text-anchor="end" { (bars.unit.label(*t)) }
                }
                line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + plot_h) class="axis-line" {}
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) class="axis-line" {}
                text x=(LEFT + plot_w / 2.0) y=(HEIGHT - 4.0) text-anchor="middle" class="axis-title" { (bars.x_label) }
                text x="12" y=(TOP + plot_h / 2.0) text-anchor="middle" class="axis-title"
                    transform={"rotate(-90 12 " (TOP + plot_h / 2.0) ")"} { (bars.y_label) }
            }
            @for (i, category) in bars.categories.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
                g class="bar" {
                    @for (s, series, base, v) in stack(&bars.series, i) {
                        rect x=(x) y=(y(base + v)) width=(bar_w) height=(y(base) - y(base + v))
                            fill=(PALETTE[s % PALETTE.len()]) stroke="#ffffff" stroke-width="0.5" {
                            title { (category) ", " (series.label) ": " (bars.unit.label(v)) }
                        }
                    }
                    @if i % every == 0 {
                        text x=(x + bar_w / 2.0) y=(TOP + plot_h + 14.0) text-anchor="middle" { (category) }
                    }
                }
            }
        }
    }
}

/// Tenants' volumes ranked largest first (`(rank, bytes)` points of `tenants` ranks), drawn
/// on a log scale, with the cut-off of the top `top_count` (the dedicated-bucket share) marked.
pub fn ranking(
    title: &str,
    tenants: u64,
    points: &[(u64, u64)],
    top_count: u64,
    cutoff_bytes: u64,
    fraction: f64,
) -> Markup {
    let top = format!("top {:.0}%", fraction * 100.0);
    let cut_label = format!("{top} cut-off");
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    // Steps of 1024 from 1 KiB up to the largest volume.
    let mut decades = vec![1024.0];
    while *decades.last().unwrap_or(&1.0) < max {
        let next = decades.last().unwrap_or(&1.0) * 1024.0;
        decades.push(next);
    }
    let (low, high) = (
        decades[0].log2(),
        decades.last().copied().unwrap_or(1024.0).log2(),
    );
    let span = (high - low).max(1.0);
    let y = |v: f64| TOP + plot_h - ((v.max(1024.0)).log2() - low) / span * plot_h;
    let x = |rank: u64| {
        LEFT + if tenants <= 1 {
            0.0
        } else {
            (rank.saturating_sub(1)) as f64 / (tenants - 1) as f64 * plot_w
        }
    };
    let line: String = points
        .iter()
        .map(|(r, v)| format!("{:.1},{:.1} ", x(*r), y(*v as f64)))
        .collect();
    html! {
        svg class="chart" role="img" viewBox={"0 0 " (WIDTH) " " (HEIGHT)} xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            (legend(&["30-day volume", &cut_label]))
            g class="axis" {
                @for d in &decades {
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(*d)) y2=(y(*d)) class="grid" {}
                    text x=(LEFT - 6.0) y=(y(*d) + 4.0) text-anchor="end" { (Unit::Bytes.label(*d)) }
                }
                line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + plot_h) class="axis-line" {}
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) class="axis-line" {}
                text x=(LEFT) y=(TOP + plot_h + 14.0) text-anchor="start" { "1" }
                text x=(WIDTH - RIGHT) y=(TOP + plot_h + 14.0) text-anchor="end" { (format::count(tenants)) }
                text x=(LEFT + plot_w / 2.0) y=(HEIGHT - 4.0) text-anchor="middle" class="axis-title" { "Rank by 30-day volume (tenants)" }
                text x="12" y=(TOP + plot_h / 2.0) text-anchor="middle" class="axis-title"
                    transform={"rotate(-90 12 " (TOP + plot_h / 2.0) ")"} { "30-day volume (log)" }
            }
            @if !points.is_empty() {
                polyline points=(line) fill="none" stroke=(PALETTE[0]) stroke-width="2" {
                    title { (format::count(tenants)) " tenants; largest " (Unit::Bytes.label(max)) }
                }
            }
            @if top_count > 0 && top_count < tenants {
                @let cx = x(top_count) + (x(top_count + 1) - x(top_count)) / 2.0;
                line x1=(cx) x2=(cx) y1=(TOP) y2=(TOP + plot_h) stroke=(PALETTE[1]) stroke-width="2" stroke-dasharray="6 4" {
                    title { "The " (top) ": " (format::count(top_count)) " tenants at or above " (Unit::Bytes.label(cutoff_bytes as f64)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bars {
        Bars {
            title: "Bytes by zone".into(),
            x_label: "Zone".into(),
            y_label: "Stored".into(),
            unit: Unit::Bytes,
            categories: vec!["bronze".into(), "silver".into()],
            series: vec![
                Series {
                    label: "STANDARD".into(),
                    values: vec![3.0 * 1024.0 * 1024.0, 0.0],
                },
                Series {
                    label: "STANDARD_IA".into(),
                    values: vec![1024.0 * 1024.0, 512.0 * 1024.0],
                },
            ],
            label_every: 1,
        }
    }

    #[test]
    fn ticks_cover_the_maximum_in_round_steps() {
        let t = ticks(4.0 * 1024.0 * 1024.0, Unit::Bytes);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().expect("ticks") >= 4.0 * 1024.0 * 1024.0);
        assert!(t.len() <= 12);
        assert_eq!(ticks(7.0, Unit::Count), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(0.0, Unit::Count), [0.0, 1.0]);
    }

    #[test]
    fn every_segment_has_its_value_on_hover_and_empty_ones_are_not_drawn() {
        let svg = bars(&sample()).into_string();
        assert!(svg.contains("<title>bronze, STANDARD: 3.0 MiB</title>"), "{svg}");
        assert!(svg.contains("<title>bronze, STANDARD_IA: 1.0 MiB</title>"));
        assert!(svg.contains("<title>silver, STANDARD_IA: 512 KiB</title>"));
        assert!(
            !svg.contains("silver, STANDARD:"),
            "a zero value draws no segment"
        );
        assert!(
            svg.contains(">Zone</text>") && svg.contains(">Stored</text>"),
            "axes are labelled"
        );
        assert!(
            svg.contains(">4.0 MiB</text>"),
            "the y axis reaches the 4 MiB stack: {svg}"
        );
    }

    #[test]
    fn the_tallest_stack_reaches_the_top_tick_and_no_higher() {
        let svg = bars(&sample()).into_string();
        // The bronze stack totals 4 MiB, the top tick: its top segment starts at the plot top.
        assert!(svg.contains(&format!("y=\"{TOP}\"")), "{svg}");
    }

    #[test]
    fn labels_are_escaped() {
        let mut b = sample();
        b.categories[0] = "<script>alert(1)</script>".into();
        let svg = bars(&b).into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn the_ranking_marks_the_cut_off_between_the_top_tenants_and_the_rest() {
        let points: Vec<(u64, u64)> = (1..=100u64).map(|r| (r, (101 - r) * 1024 * 1024)).collect();
        let svg = ranking("Volume ranking", 100, &points, 10, 91 * 1024 * 1024, 0.1).into_string();
        assert!(
            svg.contains("The top 10%: 10 tenants at or above 91.0 MiB"),
            "{svg}"
        );
        assert!(svg.contains("100 tenants; largest 100 MiB"));
        let line = svg
            .split("points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("");
        assert_eq!(line.split_whitespace().count(), 100, "one vertex per point");
        // The cut-off sits between rank 10 and rank 11.
        let x = |rank: u64| LEFT + (rank - 1) as f64 / 99.0 * (WIDTH - LEFT - RIGHT);
        let cut = (x(10) + x(11)) / 2.0;
        assert!(svg.contains(&format!("x1=\"{cut}\"")), "{svg}");
        assert!(
            !ranking("x", 5, &[(1, 9)], 5, 9, 0.2)
                .into_string()
                .contains("The top"),
            "no line when all are in"
        );
    }
}
