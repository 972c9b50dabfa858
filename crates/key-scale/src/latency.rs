//! Latency histograms and their percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies from 1 ns to a minute, to 3 significant digits.
#[derive(Debug)]
pub(crate) struct Latencies(Histogram<u64>);

/// The percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) samples: u64,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p99_9_us: f64,
    pub(crate) max_us: f64,
}

const MAX_NANOS: u64 = 60_000_000_000;

impl Latencies {
    pub(crate) fn new() -> anyhow::Result<Latencies> {
        Ok(Latencies(Histogram::new_with_bounds(1, MAX_NANOS, 3)?))
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(MAX_NANOS);
        self.0.saturating_record(nanos.clamp(1, MAX_NANOS));
    }

    pub(crate) fn summary(&self) -> Summary {
        let us = |nanos: u64| nanos as f64 / 1_000.0;
        Summary {
            samples: self.0.len(),
            p50_us: us(self.0.value_at_quantile(0.50)),
            p90_us: us(self.0.value_at_quantile(0.90)),
            p99_us: us(self.0.value_at_quantile(0.99)),
            p99_9_us: us(self.0.value_at_quantile(0.999)),
            max_us: us(self.0.max()),
        }
    }
}

impl Summary {
    /// The table's header, matching `row`.
    pub(crate) fn header() -> String {
        format!(
            "{:<34} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "samples", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
        )
    }

    pub(crate) fn row(&self, name: &str) -> String {
        format!(
            "{name:<34} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            self.samples, self.p50_us, self.p90_us, self.p99_us, self.p99_9_us, self.max_us
        )
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "samples": self.samples,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "p99_9_us": self.p99_9_us,
            "max_us": self.max_us,
        })
    }
}
