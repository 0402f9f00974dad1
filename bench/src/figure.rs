//! A figure: one named value of one repetition, with its unit, the baselines
//! it is divided by and the target it is checked against. Every scenario
//! yields figures; the report gathers them.

use serde_json::Value;

/// A target from the issue, checked against a figure's median.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// At most this many times the baseline named by `vs_hop`.
    HopTimes(f64),
}

/// One measured figure of one repetition.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// Name of the raw-hop figure this one is divided by.
    pub vs_hop: Option<String>,
    /// Name of the raw-relay figure this one is divided by.
    pub vs_relay: Option<String>,
    pub goal: Option<Goal>,
    pub note: Option<String>,
    /// Samples behind the figure (e.g. the soak run's RSS every 10 s), kept
    /// in the JSON file only.
    pub series: Option<Value>,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self { name: name.into(), value, unit, vs_hop: None, vs_relay: None, goal: None, note: None, series: None }
    }
    pub fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// p50, p99 and p999 figures named `<prefix> p50` etc. (µs), compared to the
/// same percentile of the given baselines.
pub fn latency(prefix: &str, p: [f64; 3], hop: Option<&str>, relay: Option<&str>) -> Vec<Figure> {
    ["p50", "p99", "p999"]
        .iter()
        .zip(p)
        .map(|(q, v)| {
            let mut f = Figure::new(format!("{prefix} {q}"), v, "µs");
            f.vs_hop = hop.map(|h| format!("{h} {q}"));
            f.vs_relay = relay.map(|r| format!("{r} {q}"));
            f
        })
        .collect()
}
