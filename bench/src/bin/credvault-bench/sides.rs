//! Health and Resolve on a server without a feature, then on one with it, round by round, over
//! the same data: the shape of the `revalidate` and `metrics` scenarios.

use tonic::transport::Channel;

use crate::jobs;
use crate::load::{Limits, Row, Sample};
use crate::short;

/// The rounds measured so far: health and Resolve, off and on.
pub struct Sides {
    /// The feature, for the progress lines ("metrics", "re-validation").
    what: &'static str,
    /// health off, resolve off, health on, resolve on.
    samples: [Vec<Sample>; 4],
}

impl Sides {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            samples: Default::default(),
        }
    }

    /// Health, then Resolve of `n` credentials, on `chans`; `on`: the side with the feature.
    pub async fn measure(
        &mut self,
        chans: &[Channel],
        conc: usize,
        limits: Limits,
        n: usize,
        on: bool,
    ) {
        let h = jobs::health(chans, conc, limits, "health").once().await;
        let r = jobs::resolve(chans, conc, limits, n, "resolve")
            .once()
            .await;
        eprintln!(
            "  {} {}: health {:.0} rps, resolve {:.0} rps",
            self.what,
            if on { "on" } else { "off" },
            h.rps(),
            r.rps()
        );
        let i = if on { 2 } else { 0 };
        self.samples[i].push(h);
        self.samples[i + 1].push(r);
    }

    /// Health off, Resolve off, health on, Resolve on, each named "{health|resolve} {n} ({side})".
    pub fn rows(self, n: usize, conc: usize, off: &str, on: &str) -> Vec<Row> {
        let [h_off, r_off, h_on, r_on] = self.samples;
        let row = |what: &str, side: &str, s: Vec<Sample>| {
            Row::new(
                format!("{what} {} ({side})", short(n)),
                conc,
                Sample::merge_rounds(s),
            )
        };
        vec![
            row("health", off, h_off),
            row("resolve", off, r_off),
            row("health", on, h_on),
            row("resolve", on, r_on),
        ]
    }
}

/// Throughput of `a` over `b`.
pub fn ratio(a: &Row, b: &Row) -> f64 {
    a.rps / b.rps.max(1.0)
}
