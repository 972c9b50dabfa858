//! The figures of a run: a table on stdout and, with `--json`, the same figures in a file.

use std::{fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    cli::Mode,
    record::Recorder,
    target::{Row, Target},
};

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) mode: Mode,
    pub(crate) connections: u16,
    /// Closed loop: the number of workers.
    pub(crate) concurrency: Option<u16>,
    /// Open loop: the offered requests per second.
    pub(crate) rate: Option<f64>,
    pub(crate) seconds_per_round: f64,
    pub(crate) rounds: u16,
    pub(crate) flood: Option<f64>,
    pub(crate) rows: Vec<RowReport>,
    /// VerifyKey throughput divided by Health/Check throughput, in the same run.
    pub(crate) ratio_verify_health_throughput: Option<f64>,
    /// The valid key's p99 under the flood divided by its p99 without it.
    pub(crate) ratio_flood_valid_p99: Option<f64>,
    /// ext_authz Check throughput divided by VerifyKey throughput, in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ratio_check_verify_throughput: Option<f64>,
    /// VerifyKey-with-the-access-token throughput divided by VerifyKey-with-the-key throughput,
    /// in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ratio_token_key_throughput: Option<f64>,
    /// Open loop: how late the generator itself sent requests (part of every latency).
    pub(crate) send_lag_p99_us: Option<f64>,
}

/// One row of the table.
#[derive(Debug, Serialize)]
pub(crate) struct RowReport {
    pub(crate) name: &'static str,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    /// Successful requests per second.
    pub(crate) throughput: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p99_9_us: f64,
    pub(crate) max_us: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
}

/// How the run was set up, for the report's header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) mode: Mode,
    pub(crate) connections: u16,
    pub(crate) concurrency: u16,
    pub(crate) rate: Option<f64>,
    pub(crate) duration: Duration,
    pub(crate) rounds: u16,
    pub(crate) flood: Option<f64>,
    /// Whether ext_authz's Check ran too.
    pub(crate) ext_authz: bool,
    /// Whether VerifyKey with an access token ran too.
    pub(crate) token: bool,
    /// Whether VerifyKey with a malformed key ran too.
    pub(crate) malformed: bool,
    /// Whether VerifyKey with the rate-limited key ran too.
    pub(crate) limited: bool,
}

impl Report {
    /// The report of `recorder`, whose targets ran for `elapsed(target)` in total.
    pub(crate) fn new(
        setup: Setup,
        recorder: &Recorder,
        elapsed: impl Fn(Target) -> Duration,
    ) -> Report {
        let rows: Vec<RowReport> = Row::ALL
            .iter()
            .filter(|row| match row.target() {
                Target::Flood => setup.flood.is_some(),
                Target::ExtAuthz => setup.ext_authz,
                Target::Token => setup.token,
                Target::Malformed => setup.malformed,
                Target::Limited => setup.limited,
                Target::Health | Target::Verify => true,
            })
            .map(|&row| row_report(row, recorder, elapsed(row.target())))
            .collect();
        let find = |row: Row| rows.iter().find(|report| report.name == row.name());
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let ratio_verify_health_throughput = ratio(
            find(Row::Verify).map(|row| row.throughput),
            find(Row::Health).map(|row| row.throughput),
        );
        let ratio_flood_valid_p99 = ratio(
            find(Row::FloodValid).map(|row| row.p99_us),
            find(Row::Verify).map(|row| row.p99_us),
        );
        let ratio_check_verify_throughput = ratio(
            find(Row::ExtAuthz).map(|row| row.throughput),
            find(Row::Verify).map(|row| row.throughput),
        );
        let ratio_token_key_throughput = ratio(
            find(Row::Token).map(|row| row.throughput),
            find(Row::Verify).map(|row| row.throughput),
        );
        let open = setup.mode == Mode::Open;
        Report {
            mode: setup.mode,
            connections: setup.connections,
            concurrency: (!open).then_some(setup.concurrency),
            rate: setup.rate.filter(|_| open),
            seconds_per_round: setup.duration.as_secs_f64(),
            rounds: setup.rounds,
            flood: setup.flood,
            ratio_verify_health_throughput,
            ratio_flood_valid_p99,
            ratio_check_verify_throughput,
            ratio_token_key_throughput,
            send_lag_p99_us: open.then(|| micros(&recorder.send_lag, 0.99)),
            rows,
        }
    }

    /// Whether any request failed.
    pub(crate) fn has_errors(&self) -> bool {
        self.rows.iter().any(|row| row.errors > 0)
    }

    /// The human-readable table.
    pub(crate) fn table(&self, address: &str) -> String {
        let mut out = String::new();
        let load = match self.mode {
            Mode::Closed => format!(
                "closed loop, {} workers",
                self.concurrency.unwrap_or_default()
            ),
            Mode::Open => format!("open loop, {:.0} requests/s", self.rate.unwrap_or_default()),
        };
        let _ = writeln!(
            out,
            "key-bench: {load} over {} HTTP/2 connections, {} rounds x {:.1} s per target, against {address}",
            self.connections, self.rounds, self.seconds_per_round
        );
        let _ = writeln!(
            out,
            "{:<36} {:>10} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9}",
            "target", "requests", "errors", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<36} {:>10} {:>7} {:>11.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                row.name,
                row.requests,
                row.errors,
                row.throughput,
                row.p50_us,
                row.p99_us,
                row.p99_9_us,
                row.max_us
            );
        }
        match self.ratio_verify_health_throughput {
            Some(ratio) => {
                let _ = writeln!(out, "ratio VerifyKey/Health throughput: {ratio:.3}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "ratio VerifyKey/Health throughput: n/a (no successful requests)"
                );
            }
        }
        if let Some(ratio) = self.ratio_flood_valid_p99 {
            let _ = writeln!(out, "ratio valid-key p99 under flood / quiet: {ratio:.3}");
        }
        if let Some(ratio) = self.ratio_check_verify_throughput {
            let _ = writeln!(
                out,
                "ratio ext_authz Check/VerifyKey throughput: {ratio:.3}"
            );
        }
        if let Some(ratio) = self.ratio_token_key_throughput {
            let _ = writeln!(out, "ratio VerifyKey token/key throughput: {ratio:.3}");
        }
        if let Some(lag) = self.send_lag_p99_us {
            let _ = writeln!(
                out,
                "generator send lag p99: {lag:.1} µs (included in the latencies)"
            );
        }
        for row in &self.rows {
            if let Some(error) = &row.first_error {
                let _ = writeln!(out, "first error of {}: {error}", row.name);
            }
        }
        out
    }
}

fn row_report(row: Row, recorder: &Recorder, elapsed: Duration) -> RowReport {
    let stats = recorder.row(row);
    let seconds = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let throughput = if seconds > 0.0 {
        stats.ok as f64 / seconds
    } else {
        0.0
    };
    RowReport {
        name: row.name(),
        requests: stats.ok,
        errors: stats.errors,
        seconds,
        throughput,
        p50_us: micros(&stats.latency, 0.50),
        p99_us: micros(&stats.latency, 0.99),
        p99_9_us: micros(&stats.latency, 0.999),
        max_us: micros(&stats.latency, 1.0),
        first_error: stats.first_error.clone(),
    }
}

/// A quantile of a nanosecond histogram, in microseconds.
fn micros(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let nanos = histogram.value_at_quantile(quantile) as f64;
    nanos / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(token: bool) -> Setup {
        Setup {
            mode: Mode::Closed,
            connections: 1,
            concurrency: 1,
            rate: None,
            duration: Duration::from_secs(1),
            rounds: 1,
            flood: None,
            ext_authz: false,
            token,
            malformed: false,
            limited: false,
        }
    }

    /// `ok` successful calls of `row`, each taking `micros`.
    fn record(recorder: &mut Recorder, row: Row, ok: u32, micros: u64) {
        for _ in 0..ok {
            recorder.record(row, Duration::from_micros(micros), Ok(()));
        }
    }

    #[test]
    fn the_token_row_and_its_ratio_to_the_key_appear_only_with_a_token() {
        let mut recorder = Recorder::new().unwrap();
        record(&mut recorder, Row::Health, 400, 100);
        record(&mut recorder, Row::Verify, 200, 200);
        record(&mut recorder, Row::Token, 150, 250);
        // Every target ran for one second, so throughput is the count.
        let with = Report::new(setup(true), &recorder, |_| Duration::from_secs(1));
        assert_eq!(with.rows.len(), 3);
        assert_eq!(with.rows[2].name, "VerifyKey with an OAuth access token");
        assert_eq!(with.ratio_token_key_throughput, Some(0.75));
        let table = with.table("http://127.0.0.1:1");
        assert!(
            table.contains("ratio VerifyKey token/key throughput: 0.750"),
            "{table}"
        );
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["ratio_token_key_throughput"], 0.75);

        let without = Report::new(setup(false), &recorder, |_| Duration::from_secs(1));
        assert_eq!(without.rows.len(), 2);
        assert_eq!(without.ratio_token_key_throughput, None);
        assert!(!without.table("x").contains("token"));
        let json = serde_json::to_value(&without).unwrap();
        assert!(json.get("ratio_token_key_throughput").is_none(), "{json}");
    }

    #[test]
    fn no_successful_key_call_leaves_the_token_ratio_undefined() {
        let mut recorder = Recorder::new().unwrap();
        record(&mut recorder, Row::Token, 10, 100);
        let report = Report::new(setup(true), &recorder, |_| Duration::from_secs(1));
        assert_eq!(report.ratio_token_key_throughput, None);
    }
}
