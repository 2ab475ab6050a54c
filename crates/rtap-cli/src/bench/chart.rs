//! `bench.svg`: the benchmark cells as horizontal bar charts, one panel per test,
//! one bar per contender, each labelled with its value and its ratio to the
//! reference contender ([`reference`](super::results::reference)). Plain SVG 1.1 text, no
//! scripts or external resources, so it renders on GitHub and in any browser.

use std::fmt::Write;

use anyhow::{Context, Result};

use super::results::{reference, Cell, Machine, Unit};

const WIDTH: u32 = 880;
const LABEL_W: u32 = 150;
const BAR_W: u32 = 380;
const ROW_H: u32 = 22;
const TITLE_H: u32 = 26;
const PANEL_GAP: u32 = 14;

/// Panel order and titles.
const PANELS: [(&str, &str); 18] = [
    ("tx", "tx 64-byte frames, Mpps (higher is better)"),
    ("rx", "rx drain 64-byte frames, Mpps (higher is better)"),
    ("fwd", "io forward 64-byte frames, Mpps (higher is better)"),
    (
        "pkt-tx",
        "AF_PACKET tx 64-byte frames over a veth, Mpps (higher is better)",
    ),
    (
        "pkt-txp",
        "AF_PACKET tx paced at 200 kpps, Mpps (the table has the CPU per packet)",
    ),
    (
        "pkt-rx",
        "AF_PACKET rx drain 64-byte frames, Mpps (higher is better)",
    ),
    (
        "pkt-rx-1500",
        "AF_PACKET rx drain 1500-byte frames, Mpps (higher is better)",
    ),
    (
        "pkt-fwd",
        "AF_PACKET io forward 64-byte frames, veth to veth, Mpps (higher is better)",
    ),
    (
        "xdp-tx",
        "AF_XDP tx 64-byte frames over a veth, Mpps (higher is better)",
    ),
    (
        "xdp-txp",
        "AF_XDP tx paced at 200 kpps, Mpps (the table has the CPU per packet)",
    ),
    (
        "xdp-rx",
        "AF_XDP rx drain 64-byte frames, Mpps (higher is better)",
    ),
    (
        "xdp-fwd",
        "AF_XDP io forward 64-byte frames, veth to veth, Mpps (higher is better)",
    ),
    (
        "tcp",
        "TCP through a forwarder (tap or AF_PACKET ports), Gbit/s (higher is better)",
    ),
    (
        "lat",
        "UDP ping-pong round trip, us: p50 dark, p99 light (lower is better)",
    ),
    (
        "sink",
        "One TCP flow received over a veth, Gbit/s (receiver CPU per GB labelled)",
    ),
    (
        "handoff",
        "Packets allocated and dropped on the pool's thread or another, Mpps (higher is better)",
    ),
    (
        "csum",
        "Checksum sums and a 64 KiB split, GB/s (higher is better)",
    ),
    (
        "seg",
        "A 64 KiB TSO frame into a header-less tap, frames/s (higher is better)",
    ),
];

/// Bar colour by contender family.
fn colour(contender: &str) -> (&'static str, &'static str) {
    if contender.starts_with("uring") {
        ("#2b6cb0", "#90cdf4")
    } else if contender.starts_with("xdp") {
        ("#c05621", "#fbd38d")
    } else if contender.starts_with("packet") || contender == "ring-inplace" {
        ("#6b46c1", "#d6bcfa")
    } else if contender.starts_with("rw") || contender == "rawsock" {
        ("#718096", "#cbd5e0")
    } else {
        ("#2f855a", "#9ae6b4")
    }
}

/// Escapes text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The value shown at the end of a bar.
fn value_label(c: &Cell) -> String {
    match c.unit {
        Unit::Pps if c.test == "csum" => {
            format!(
                "{:.2} GB/s",
                c.rate * super::contenders::csum_bytes(c.contender) / 1e9
            )
        }
        Unit::Pps => format!("{:.2} Mpps", c.rate / 1e6),
        Unit::Gbps => format!("{:.1} Gbit/s", c.rate),
        Unit::Stream => format!("{:.1} Gbit/s, {:.2} CPU-s/GB", c.rate, c.cpu),
        Unit::Latency => {
            let l = c.lat.unwrap_or_default();
            format!(
                "p50 {:.0} / p99 {:.0} / p99.9 {:.0} us",
                l.p50_us, l.p99_us, l.p999_us
            )
        }
    }
}

/// The ratio label after the value (`1.12x rw`), or the role of a reference row.
fn ratio_label(cells: &[Cell], c: &Cell) -> String {
    match reference(cells, c) {
        Some((o, r)) if c.unit == Unit::Latency => format!("p50 {r:.2}x {}", o.contender),
        Some((o, r)) => format!("{r:.2}x {}", o.contender),
        None if c.contender == "veth" => "kernel ceiling".into(),
        None if matches!(
            c.contender,
            "rw" | "rw-nooffload"
                | "rawsock"
                | "recv"
                | "local"
                | "be-words-1500"
                | "be-words-64k"
                | "merge-vec-64k"
        ) =>
        {
            "baseline".into()
        }
        None => String::new(),
    }
}

/// Renders the chart; `subtitle` says where and when it was measured.
pub fn svg(cells: &[Cell], subtitle: &str) -> String {
    let panels: Vec<(&str, &str, Vec<&Cell>)> = PANELS
        .iter()
        .map(|(t, title)| (*t, *title, cells.iter().filter(|c| c.test == *t).collect()))
        .filter(|(_, _, v): &(&str, &str, Vec<&Cell>)| !v.is_empty())
        .collect();
    let sub_lines: Vec<&str> = subtitle.lines().collect();
    let header_h = 30 + 16 * sub_lines.len().max(1) as u32;
    let height = header_h
        + panels
            .iter()
            .map(|(_, _, v)| TITLE_H + v.len() as u32 * ROW_H + PANEL_GAP)
            .sum::<u32>();
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="20" font-size="15" font-weight="bold" fill="#1a202c">rtap bench</text>"##
    );
    for (i, line) in sub_lines.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="10" y="{}" fill="#4a5568">{}</text>"##,
            38 + 16 * i as u32,
            esc(line)
        );
    }
    let mut y = header_h;
    for (_, title, rows) in &panels {
        let _ = writeln!(
            s,
            r##"<text x="10" y="{}" font-weight="bold" fill="#2d3748">{}</text>"##,
            y + 17,
            esc(title)
        );
        y += TITLE_H;
        // Latency bars scale to the largest p99, the others to the largest value.
        let top = rows
            .iter()
            .map(|c| match c.unit {
                Unit::Latency => c.lat.map_or(c.rate, |l| l.p99_us),
                _ => c.rate,
            })
            .fold(0.0f64, f64::max);
        let scale = |v: f64| {
            if top > 0.0 && v.is_finite() {
                ((v / top) * BAR_W as f64).clamp(1.0, BAR_W as f64)
            } else {
                1.0
            }
        };
        for c in rows {
            let (dark, light) = colour(c.contender);
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" text-anchor="end" fill="#2d3748">{}</text>"##,
                LABEL_W - 8,
                y + 15,
                esc(c.contender)
            );
            let bar_end = match (c.unit, c.lat) {
                (Unit::Latency, Some(l)) => {
                    let w99 = scale(l.p99_us);
                    let _ = writeln!(
                        s,
                        r#"<rect class="bar p99" x="{LABEL_W}" y="{}" width="{w99:.1}" height="{}" fill="{light}"/>"#,
                        y + 3,
                        ROW_H - 6
                    );
                    let _ = writeln!(
                        s,
                        r#"<rect class="bar" x="{LABEL_W}" y="{}" width="{:.1}" height="{}" fill="{dark}"/>"#,
                        y + 3,
                        scale(l.p50_us).min(w99),
                        ROW_H - 6
                    );
                    w99
                }
                _ => {
                    let w = scale(c.rate);
                    let _ = writeln!(
                        s,
                        r#"<rect class="bar" x="{LABEL_W}" y="{}" width="{w:.1}" height="{}" fill="{dark}"/>"#,
                        y + 3,
                        ROW_H - 6
                    );
                    w
                }
            };
            let ratio = ratio_label(cells, c);
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{}" fill="#1a202c">{}<tspan dx="8" fill="#c05621" font-weight="bold">{}</tspan></text>"##,
                LABEL_W as f64 + bar_end + 6.0,
                y + 15,
                esc(&value_label(c)),
                esc(&ratio)
            );
            y += ROW_H;
        }
        y += PANEL_GAP;
    }
    s.push_str("</svg>\n");
    s
}

/// Writes `bench.svg` (the chart of `cells`, measured on `m`) into `dir`;
/// returns its path.
pub fn write_out(
    dir: &std::path::Path,
    cells: &[Cell],
    m: &Machine,
    quick: bool,
) -> Result<std::path::PathBuf> {
    let sp = dir.join("bench.svg");
    let subtitle = format!(
        "{}{}\nratios: against the read/write backend (rw); tcp: rw with the same offloads, rw rows against veth",
        m.describe(),
        if quick { ", --quick" } else { "" }
    );
    std::fs::write(&sp, svg(cells, &subtitle))
        .with_context(|| format!("write {}", sp.display()))?;
    Ok(sp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::Lat;

    fn cell(test: &'static str, contender: &'static str, unit: Unit, rate: f64) -> Cell {
        Cell {
            test,
            contender,
            unit,
            rate,
            cpu: 0.0,
            sq_cpu: 0.0,
            host_cpu: 0.0,
            lat: (unit == Unit::Latency).then_some(Lat {
                p50_us: rate,
                p99_us: rate * 2.0,
                p999_us: rate * 3.0,
                ..Lat::default()
            }),
        }
    }

    /// Every opened element is closed, in order (enough of XML for our output).
    fn well_formed(s: &str) -> bool {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').expect("unclosed tag");
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name.trim()) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap());
            }
        }
        stack.is_empty()
    }

    #[test]
    fn one_bar_per_cell_with_values_and_ratios() {
        let cells = vec![
            cell("tx", "uring", Unit::Pps, 1.2e6),
            cell("tx", "rw", Unit::Pps, 1.0e6),
            cell("tcp", "uring", Unit::Gbps, 18.0),
            cell("tcp", "rw", Unit::Gbps, 20.0),
            cell("tcp", "veth", Unit::Gbps, 30.0),
            cell("lat", "uring", Unit::Latency, 30.0),
            cell("lat", "rw", Unit::Latency, 40.0),
        ];
        let s = svg(&cells, "2 vCPU <test> & co");
        assert!(s.starts_with("<svg "));
        assert!(well_formed(&s), "{s}");
        // One main bar per cell, plus a p99 bar per latency cell.
        assert_eq!(s.matches(r#"class="bar""#).count(), cells.len());
        assert_eq!(s.matches(r#"class="bar p99""#).count(), 2);
        assert!(s.contains("1.20 Mpps"));
        assert!(s.contains("1.20x rw"));
        assert!(s.contains("0.90x rw"), "tcp uring vs rw");
        assert!(s.contains("0.67x veth"), "tcp rw vs veth");
        assert!(s.contains("kernel ceiling"));
        assert!(s.contains("p50 0.75x rw"), "latency p50 ratio");
        assert!(s.contains("&lt;test&gt; &amp; co"), "escaped subtitle");
        // Panels only for the tests present.
        assert!(!s.contains("rx drain"));
    }

    #[test]
    fn empty_and_zero_cells_do_not_break_it() {
        let s = svg(&[], "");
        assert!(well_formed(&s));
        let s = svg(&[cell("rx", "uring", Unit::Pps, 0.0)], "x");
        assert!(well_formed(&s));
        assert!(!s.contains("NaN") && !s.contains("inf"));
    }
}
