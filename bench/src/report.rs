//! The report: it gathers every repetition's figures, keeps every raw value,
//! prints one table of medians with ratios to the baselines and the issue's
//! targets, and writes the same as JSON. With `--peer`, each figure also has
//! the peer's median and ours ÷ peer, and the figures the peer cannot produce
//! are footnoted with the reason.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::figure::{Figure, Goal};
use crate::side::Side;
use crate::stats::median;

struct Row {
    scenario: &'static str,
    figure: Figure,
    /// Ours, one per repetition.
    values: Vec<f64>,
    /// The peer's, one per repetition.
    peer: Vec<f64>,
    /// The peer's note, when it differs from ours.
    peer_note: Option<String>,
    /// Each repetition's series, with its side.
    series: Vec<Value>,
}

/// The run's header: what was measured, where and how.
pub struct Header {
    pub machine: String,
    pub date: String,
    pub bridge: String,
    pub options: String,
    pub limits: String,
    /// The machine's load averages at the start and the end of the run (other work on a shared machine).
    pub load: String,
    /// The redis-server of the cluster scenarios, when any ran.
    pub redis: Option<String>,
    /// The peer of `--peer`, when one ran.
    pub peer: Option<String>,
}

/// Every figure of the run.
#[derive(Default)]
pub struct Results {
    rows: Vec<Row>,
    errors: Vec<(String, String)>,
    skipped: Vec<(String, String)>,
    /// With `--peer`: scenarios or figures the peer has no value for, and why.
    peer_missing: Option<Vec<(String, String)>>,
}

impl Results {
    /// A report with a peer column.
    pub fn with_peer() -> Self {
        Self { peer_missing: Some(Vec::new()), ..Self::default() }
    }

    /// Adds one repetition's figures, measured on `side`.
    pub fn add(&mut self, scenario: &'static str, side: Side, figures: Vec<Figure>) {
        for mut f in figures {
            let series = f
                .series
                .take()
                .map(|s| json!({ "side": if side == Side::Ours { "ours" } else { "peer" }, "samples": s }));
            let row = match self.rows.iter().position(|r| r.figure.name == f.name) {
                Some(i) => &mut self.rows[i],
                None => {
                    let mut figure = f.clone();
                    if side == Side::Peer {
                        figure.note = None;
                    }
                    self.rows.push(Row {
                        scenario,
                        figure,
                        values: Vec::new(),
                        peer: Vec::new(),
                        peer_note: None,
                        series: Vec::new(),
                    });
                    self.rows.last_mut().expect("just pushed")
                }
            };
            row.series.extend(series);
            match side {
                Side::Ours => {
                    row.values.push(f.value);
                    if f.note.is_some() {
                        row.figure.note = f.note;
                    }
                }
                Side::Peer => {
                    row.peer.push(f.value);
                    if f.note.is_some() {
                        row.peer_note = f.note;
                    }
                }
            }
        }
    }

    /// Notes that the peer has no value for a scenario or figure, and why
    /// (printed under the table, with `--peer` only).
    pub fn peer_missing(&mut self, what: impl Into<String>, why: impl Into<String>) {
        let (what, why) = (what.into(), why.into());
        if let Some(m) = &mut self.peer_missing
            && !m.iter().any(|(w, _)| *w == what)
        {
            m.push((what, why));
        }
    }

    pub fn error(&mut self, case: String, error: String) {
        self.errors.push((case, error));
    }

    /// A scenario that could not run here and was not asked for by name.
    pub fn skip(&mut self, scenario: String, why: String) {
        self.skipped.push((scenario, why));
    }

    fn median_of(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.figure.name == name).map(|r| median(&r.values))
    }

    /// Ours ÷ the peer's median.
    fn peer_ratio(row: &Row) -> Option<f64> {
        let (v, p) = (median(&row.values), median(&row.peer));
        (v.is_finite() && p.is_finite() && p != 0.0).then_some(v / p)
    }

    fn ratio(&self, row: &Row, baseline: &Option<String>) -> Option<f64> {
        let b = self.median_of(baseline.as_deref()?)?;
        let v = median(&row.values);
        (b.is_finite() && b != 0.0 && v.is_finite()).then_some(v / b)
    }

    fn verdict(&self, row: &Row) -> Option<String> {
        let v = median(&row.values);
        let (ok, text) = match row.figure.goal? {
            Goal::AtMost(t) => (v <= t, format!("≤ {} {}", num(t), row.figure.unit)),
            Goal::AtLeast(t) => (v >= t, format!("≥ {} {}", num(t), row.figure.unit)),
            Goal::HopTimes(t) => (self.ratio(row, &row.figure.vs_hop)? <= t, format!("≤ {t}× hop")),
        };
        let peer = self.peer_verdict(row).map(|p| format!("; peer {p}")).unwrap_or_default();
        Some(format!("{} {text}{peer}", if ok && v.is_finite() { "met" } else { "MISSED" }))
    }

    /// The peer's median against the same target (relative targets: against
    /// the same baseline).
    fn peer_verdict(&self, row: &Row) -> Option<&'static str> {
        let p = median(&row.peer);
        if !p.is_finite() {
            return None;
        }
        let ok = match row.figure.goal? {
            Goal::AtMost(t) => p <= t,
            Goal::AtLeast(t) => p >= t,
            Goal::HopTimes(t) => p / self.median_of(row.figure.vs_hop.as_deref()?)? <= t,
        };
        Some(if ok { "met" } else { "MISSED" })
    }

    /// The table, as printed.
    pub fn table(&self, header: &Header) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "machine: {}", header.machine);
        let _ = writeln!(out, "date:    {}", header.date);
        let _ = writeln!(out, "bridge:  {}", header.bridge);
        let _ = writeln!(out, "options: {}", header.options);
        let _ = writeln!(out, "limits:  {}", header.limits);
        let _ = writeln!(out, "load:    {}", header.load);
        if let Some(redis) = &header.redis {
            let _ = writeln!(out, "redis:   {redis}");
        }
        if let Some(peer) = &header.peer {
            let _ = writeln!(out, "peer:    {peer}");
        }
        let _ = writeln!(
            out,
            "figures: median of the repetitions; ratio = figure / the same figure of the baseline (raw hop; raw relay at the same receiver count){}\n",
            if self.peer_missing.is_some() { "; ÷peer = ours / the peer's" } else { "" }
        );
        let width = self.rows.iter().map(|r| r.figure.name.chars().count()).max().unwrap_or(10).max(10);
        let with_peer = self.peer_missing.is_some();
        let peer_head = if with_peer { format!("  {:>12}  {:>8}", "peer", "÷peer") } else { String::new() };
        let _ = writeln!(
            out,
            "{:<width$}  {:>12}  {:<5}{peer_head}  {:>8}  {:>8}  target",
            "name", "figure", "unit", "÷hop", "÷relay"
        );
        let _ = writeln!(out, "{}", "-".repeat(width + 52 + peer_head.chars().count()));
        let mut scenario = "";
        for row in &self.rows {
            if row.scenario != scenario {
                scenario = row.scenario;
                let _ = writeln!(out, "[{scenario}]");
            }
            let ratio = |b: &Option<String>| self.ratio(row, b).map_or("-".to_owned(), |r| format!("{r:.2}"));
            let peer = if with_peer {
                let r = Self::peer_ratio(row).map_or("-".to_owned(), |r| format!("{r:.2}"));
                format!("  {:>12}  {:>8}", num(median(&row.peer)), r)
            } else {
                String::new()
            };
            let mut notes: Vec<String> = row.figure.note.iter().cloned().collect();
            notes.extend(
                row.peer_note.iter().filter(|n| Some(*n) != row.figure.note.as_ref()).map(|n| format!("peer: {n}")),
            );
            let _ = writeln!(
                out,
                "{:<width$}  {:>12}  {:<5}{peer}  {:>8}  {:>8}  {}{}",
                row.figure.name,
                num(median(&row.values)),
                row.figure.unit,
                ratio(&row.figure.vs_hop),
                ratio(&row.figure.vs_relay),
                self.verdict(row).unwrap_or_default(),
                if notes.is_empty() { String::new() } else { format!("  ({})", notes.join("; ")) },
            );
        }
        if let Some(missing) = self.peer_missing.as_ref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "\npeer `-` (no figure from the peer):");
            for (what, why) in missing {
                let _ = writeln!(out, "  {what}: {why}");
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nfailed:");
            for (case, e) in &self.errors {
                let _ = writeln!(out, "  {case}: {e}");
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nskipped (not measured):");
            for (scenario, why) in &self.skipped {
                let _ = writeln!(out, "  {scenario}: {why}");
            }
        }
        out
    }

    /// The same figures as JSON, with every repetition's raw value.
    pub fn json(&self, header: &Header) -> Value {
        let figures: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "scenario": r.scenario,
                    "name": r.figure.name,
                    "value": finite(median(&r.values)),
                    "unit": r.figure.unit,
                    "reps": r.values.iter().map(|v| finite(*v)).collect::<Vec<_>>(),
                    "baseline_hop": r.figure.vs_hop,
                    "ratio_hop": self.ratio(r, &r.figure.vs_hop),
                    "baseline_relay": r.figure.vs_relay,
                    "ratio_relay": self.ratio(r, &r.figure.vs_relay),
                    "target": self.verdict(r),
                    "note": r.figure.note,
                    "peer": finite(median(&r.peer)),
                    "peer_reps": r.peer.iter().map(|v| finite(*v)).collect::<Vec<_>>(),
                    "ratio_peer": Self::peer_ratio(r),
                    "peer_note": r.peer_note,
                    "series": r.series,
                })
            })
            .collect();
        let errors: Vec<Value> = self.errors.iter().map(|(c, e)| json!({ "case": c, "error": e })).collect();
        let skipped: Vec<Value> = self.skipped.iter().map(|(s, why)| json!({ "scenario": s, "reason": why })).collect();
        json!({
            "machine": header.machine,
            "date": header.date,
            "bridge": header.bridge,
            "options": header.options,
            "limits": header.limits,
            "load": header.load,
            "redis": header.redis,
            "peer": header.peer,
            "peer_missing": self.peer_missing.iter().flatten().map(|(w, why)| json!({ "what": w, "reason": why })).collect::<Vec<_>>(),
            "figures": figures,
            "errors": errors,
            "skipped": skipped,
        })
    }

    pub fn write_json(&self, header: &Header, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(&self.json(header))? + "\n")?;
        Ok(())
    }
}

fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// A figure with about three significant digits, thousands grouped.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if v < 0.0 { format!("-{grouped}") } else { grouped }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figure::latency;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(1_234_567.8), "1,234,568");
        assert_eq!(num(123.4), "123");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(f64::NAN), "-");
    }

    #[test]
    fn ratios_and_goals_use_medians() {
        let mut r = Results::default();
        r.add("hop", Side::Ours, latency("raw hop", [10.0, 20.0, 30.0], None, None));
        for v in [30.0, 50.0] {
            r.add("input", Side::Ours, latency("input", [v, v, v], Some("raw hop"), None));
        }
        r.rows[4].figure.goal = Some(Goal::HopTimes(2.0));
        let row = &r.rows[4];
        assert_eq!(r.ratio(row, &row.figure.vs_hop), Some(2.0));
        assert!(r.verdict(row).unwrap().starts_with("met"));
    }

    #[test]
    fn the_peer_gets_its_own_column_ratio_and_verdict() {
        let mut r = Results::with_peer();
        let per_sub = |v: f64| vec![Figure::new("per idle sub", v, "KB").goal(Goal::AtMost(8.0))];
        r.add("memory", Side::Ours, per_sub(6.0));
        r.add("memory", Side::Peer, per_sub(12.0));
        r.add("memory", Side::Peer, per_sub(10.0));
        r.peer_missing("instructions", "not measured");
        let row = &r.rows[0];
        assert_eq!(Results::peer_ratio(row), Some(6.0 / 11.0));
        assert_eq!(r.verdict(row).unwrap(), "met ≤ 8.00 KB; peer MISSED");
        let header = Header {
            machine: String::new(),
            date: String::new(),
            bridge: String::new(),
            options: String::new(),
            limits: String::new(),
            load: String::new(),
            redis: None,
            peer: Some("node".into()),
        };
        let table = r.table(&header);
        assert!(table.contains("÷peer") && table.contains("11.0") && table.contains("instructions: not measured"));
        assert_eq!(r.json(&header)["figures"][0]["peer_reps"], json!([12.0, 10.0]));
    }
}
