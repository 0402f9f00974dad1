//! The clock stamped into frames, a fixed-size latency histogram (so that
//! millions of deliveries cost no memory), and medians over repetitions.

use std::sync::OnceLock;
use std::time::Instant;

/// Added to every stamp so that stamps always have [`STAMP_DIGITS`] digits
/// (frames can then be built from a template by overwriting the digits).
const STAMP_BASE: u64 = 1_000_000_000_000_000;

/// Decimal digits of every stamp.
pub const STAMP_DIGITS: usize = 16;

/// Monotonic nanoseconds since the first call, plus [`STAMP_BASE`].
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    STAMP_BASE + BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Sub-buckets per power of two: values are kept to within 1/128 (< 0.8 %).
const SUB: usize = 128;
const SUB_BITS: u32 = 7;
/// Powers of two covered above the exact range: up to 2^47 ns (~39 hours).
const OCTAVES: usize = 41;

/// A log-linear histogram of nanosecond latencies.
#[derive(Clone)]
pub struct Hist {
    counts: Vec<u32>,
    total: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self { counts: vec![0; SUB * (OCTAVES + 1)], total: 0 }
    }
}

impl Hist {
    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= SUB_BITS
        let mantissa = (v >> (exp - SUB_BITS)) as usize & (SUB - 1);
        (((exp - SUB_BITS + 1) as usize) * SUB + mantissa).min(SUB * (OCTAVES + 1) - 1)
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> f64 {
        if i < SUB {
            return i as f64;
        }
        let exp = (i / SUB) as u32 + SUB_BITS - 1;
        let mantissa = (i % SUB) as u64;
        let low = (1u64 << exp) + (mantissa << (exp - SUB_BITS));
        low as f64 + (1u64 << (exp - SUB_BITS)) as f64 / 2.0
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    /// The `q` quantile in microseconds (NaN when empty).
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((self.total as f64 * q).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Self::value(i) / 1000.0;
            }
        }
        f64::NAN
    }

    /// p50, p99, p999 in microseconds.
    pub fn percentiles(&self) -> [f64; 3] {
        [self.quantile_us(0.50), self.quantile_us(0.99), self.quantile_us(0.999)]
    }
}

/// Median of the finite values (NaN when there are none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_one_percent() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile_us(q);
            assert!((got - want).abs() / want < 0.01, "q {q}: {got} vs {want}");
        }
    }

    #[test]
    fn stamps_have_fixed_width() {
        assert_eq!(now_ns().to_string().len(), STAMP_DIGITS);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
