//! A bridge's own view of where time goes: quantiles of its Prometheus
//! summaries (`GET /metrics`), e.g. a cluster instance's
//! `letta_bridge_append_visible_seconds` (a local runtime's event → the
//! same event read back into this instance's mirror of the log).

use anyhow::bail;

use crate::http::HttpConn;
use crate::target::Target;

/// `GET /metrics` of `at`.
pub async fn metrics(at: &Target) -> anyhow::Result<String> {
    let mut conn = HttpConn::connect(&at.addr).await?;
    let r = conn.request("GET", &at.path("/metrics"), Some(&at.client_token), None).await?;
    if r.status != 200 {
        bail!("GET /metrics answered {}: {}", r.status, r.text());
    }
    Ok(r.text())
}

/// The `q` quantile of summary `name` (unlabelled apart from `quantile`), in
/// the metric's unit.
pub fn quantile(text: &str, name: &str, q: &str) -> Option<f64> {
    let wanted = format!("{name}{{quantile=\"{q}\"}}");
    text.lines().find_map(|l| l.strip_prefix(&wanted)).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_summary_quantiles() {
        let text = "# TYPE x summary\nx{quantile=\"0.5\"} 0.00025\nx{quantile=\"0.99\"} 0.001\nx_sum 1\nx_count 4\n";
        assert_eq!(quantile(text, "x", "0.99"), Some(0.001));
        assert_eq!(quantile(text, "x", "0.9"), None);
    }
}
