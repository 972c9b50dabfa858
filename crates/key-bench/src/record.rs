//! Latency histograms and counts, per report row.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::{error::Error, target::Row};

/// The largest latency kept exactly (anything slower is recorded as this): one minute.
const MAX_RECORDED_NANOS: u64 = 60_000_000_000;

/// One row's figures: latencies of successful requests (nanoseconds), and counts.
#[derive(Debug, Clone)]
pub(crate) struct RowStats {
    pub(crate) latency: Histogram<u64>,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    /// The first error seen, to tell the user what went wrong.
    pub(crate) first_error: Option<String>,
}

/// Everything recorded during one or more phases.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub(crate) rows: Vec<RowStats>,
    /// In open-loop mode: how late each request was sent after its intended time, by the
    /// generator itself. It is part of the measured latency, so it is reported beside it.
    pub(crate) send_lag: Histogram<u64>,
}

impl Recorder {
    /// An empty recorder: three significant figures from 1 ns to one minute. Workers clone
    /// one empty recorder rather than creating their own, so only this can fail.
    pub(crate) fn new() -> Result<Recorder, Error> {
        let histogram = Histogram::new_with_bounds(1, MAX_RECORDED_NANOS, 3)?;
        Ok(Recorder {
            rows: Row::ALL
                .iter()
                .map(|_| RowStats {
                    latency: histogram.clone(),
                    ok: 0,
                    errors: 0,
                    first_error: None,
                })
                .collect(),
            send_lag: histogram,
        })
    }

    pub(crate) fn row(&self, row: Row) -> &RowStats {
        &self.rows[row.index()]
    }

    /// Records one request: its latency when it succeeded, its error otherwise.
    pub(crate) fn record(&mut self, row: Row, latency: Duration, result: Result<(), String>) {
        let stats = &mut self.rows[row.index()];
        match result {
            Ok(()) => {
                stats.ok += 1;
                stats.latency.saturating_record(nanos(latency));
            }
            Err(error) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(error);
            }
        }
    }

    pub(crate) fn record_send_lag(&mut self, lag: Duration) {
        self.send_lag.saturating_record(nanos(lag));
    }

    /// Adds everything `other` recorded.
    pub(crate) fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.rows.iter_mut().zip(&other.rows) {
            // Both histograms have the same bounds, so adding cannot fail.
            let _ = mine.latency.add(&theirs.latency);
            mine.ok += theirs.ok;
            mine.errors += theirs.errors;
            if mine.first_error.is_none() {
                mine.first_error.clone_from(&theirs.first_error);
            }
        }
        let _ = self.send_lag.add(&other.send_lag);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
