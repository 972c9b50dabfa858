//! Usage as an SVG bar chart, drawn on the server: succeeded and failed verifications stacked
//! per bucket. Only numbers and escaped labels reach the markup; no script draws it.

/// The chart's drawing area, in SVG units.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 160;
/// Room under the bars for the labels.
const LABEL_ROOM: u32 = 18;

/// One bucket's bar.
#[derive(Debug)]
pub(crate) struct Bar {
    pub(crate) x: u32,
    pub(crate) width: u32,
    pub(crate) ok_y: u32,
    pub(crate) ok_height: u32,
    pub(crate) failed_y: u32,
    pub(crate) failed_height: u32,
    /// What a pointer over the bar says (the SVG `<title>`), and what a screen reader reads.
    pub(crate) title: String,
    /// The label under the bar, for every few bars.
    pub(crate) label: Option<String>,
}

/// A drawn chart.
#[derive(Debug)]
pub(crate) struct Chart {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) label_y: u32,
    pub(crate) bars: Vec<Bar>,
    /// The largest bucket, the top of the scale.
    pub(crate) max: i64,
}

impl Chart {
    /// The chart of `buckets`: (label, succeeded, failed), oldest first.
    pub(crate) fn new(buckets: &[(String, i64, i64)]) -> Chart {
        let max = buckets
            .iter()
            .map(|(_, ok, failed)| ok.saturating_add(*failed))
            .max()
            .unwrap_or(0)
            .max(1);
        let count = u32::try_from(buckets.len()).unwrap_or(u32::MAX).max(1);
        let slot = (WIDTH / count).max(1);
        let width = (slot * 4 / 5).max(1);
        let plot = HEIGHT - LABEL_ROOM;
        // At most about twelve labels, whatever the number of bars.
        let every = (buckets.len() / 12).max(1);
        let scale = |value: i64| -> u32 {
            let scaled = i128::from(value.max(0)) * i128::from(plot) / i128::from(max);
            u32::try_from(scaled).unwrap_or(plot)
        };
        let bars = buckets
            .iter()
            .enumerate()
            .map(|(index, (label, ok, failed))| {
                let ok_height = scale(*ok);
                let failed_height = scale(*failed).min(plot - ok_height);
                let x = u32::try_from(index).unwrap_or(0) * slot;
                Bar {
                    x,
                    width,
                    ok_y: plot - ok_height,
                    ok_height,
                    failed_y: plot - ok_height - failed_height,
                    failed_height,
                    title: format!("{label}: {ok} succeeded, {failed} failed"),
                    label: (index % every == 0).then(|| label.clone()),
                }
            })
            .collect();
        Chart {
            width: WIDTH,
            height: HEIGHT,
            label_y: HEIGHT - 4,
            bars,
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_failures_on_successes_within_the_plot() {
        let chart = Chart::new(&[
            ("00:00".to_owned(), 10, 0),
            ("01:00".to_owned(), 5, 5),
            ("02:00".to_owned(), 0, 0),
        ]);
        assert_eq!(chart.max, 10);
        let plot = HEIGHT - LABEL_ROOM;
        assert_eq!(chart.bars[0].ok_height, plot);
        assert_eq!(chart.bars[1].ok_height + chart.bars[1].failed_height, plot);
        assert_eq!(
            chart.bars[1].failed_y + chart.bars[1].failed_height,
            chart.bars[1].ok_y
        );
        assert_eq!(chart.bars[2].ok_height, 0);
        assert!(chart.bars.iter().all(|bar| bar.x + bar.width <= WIDTH));
    }

    #[test]
    fn an_empty_range_draws_nothing_without_dividing_by_zero() {
        let chart = Chart::new(&[]);
        assert!(chart.bars.is_empty());
        assert_eq!(chart.max, 1);
    }
}
