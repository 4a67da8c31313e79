//! The printed report: the machine, the table, startup, storm progress and the target ratios.

use std::fmt::Write;

use crate::args::Args;
use crate::load::Row;
use crate::startup::Startup;

pub struct Report {
    pub command: String,
    pub rows: Vec<Row>,
    pub startup: Option<Startup>,
    pub smoke: bool,
    /// Lines printed after the table (a scenario's own ratios).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(args: &Args, conc: usize) -> Self {
        let command = format!(
            "{} (concurrency {conc}, {} connections, {:.1} s x {} rounds, max {} requests)",
            std::env::args().skip(1).collect::<Vec<_>>().join(" "),
            args.connections,
            args.seconds.as_secs_f64(),
            args.rounds,
            args.requests
        );
        Report {
            command,
            rows: Vec::new(),
            startup: None,
            smoke: args.smoke,
            notes: Vec::new(),
        }
    }

    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n## credvault-bench {}", self.command);
        let _ = writeln!(out, "machine: {}\n", machine());
        if !self.rows.is_empty() {
            let _ = writeln!(out, "{}", Row::header());
            for r in &self.rows {
                let _ = writeln!(out, "{}", r.line());
            }
        }
        if let Some(s) = &self.startup {
            let _ = writeln!(
                out,
                "\nstartup ({} credentials, {}): SERVING after {:.0} ms; \
                 VmRSS {:.1} MiB at SERVING, {:.1} MiB after listing all and resolving 10%; \
                 VmHWM {:.1} MiB",
                s.creds,
                s.binary,
                s.to_serving.as_secs_f64() * 1000.0,
                s.rss_serving_kib as f64 / 1024.0,
                s.rss_used_kib as f64 / 1024.0,
                s.hwm_kib as f64 / 1024.0
            );
        }
        for r in self.rows.iter().filter(|r| r.name.contains("storm")) {
            let secs = &r.per_second;
            let min = secs.iter().min().copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "\n{}: completions per second {:?} (slowest second {min}: {})",
                r.name,
                secs,
                if min > 0 && r.errors == 0 {
                    "steady progress"
                } else {
                    "STALLED or errors"
                }
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "{note}");
            }
        }
        out.push_str(&self.ratios());
        out
    }

    /// Every target the rows allow computing, with met/missed.
    fn ratios(&self) -> String {
        let mut lines = Vec::new();
        let mut check = |what: String, value: f64, target: &str, met: bool| {
            lines.push(format!(
                "| {what:<46} | {value:>8.2} | {target:>8} | {:<6} |",
                if met { "met" } else { "MISSED" }
            ));
        };
        for r in self.rows.iter().filter(|r| r.name.starts_with("resolve ")) {
            let size = r.name.trim_start_matches("resolve ");
            let Some(h) = self.row(&format!("health ({size} store)")) else {
                continue;
            };
            let rps = r.rps / h.rps;
            check(
                format!("Resolve {size} RPS / health RPS"),
                rps,
                ">= 0.85",
                rps >= 0.85,
            );
            let p99 = r.p99 / h.p99;
            check(
                format!("Resolve {size} p99 / health p99"),
                p99,
                "<= 2",
                p99 <= 2.0,
            );
        }
        // On sled (the `on-etcd` rows have their own ratios).
        let first_resolve = self
            .rows
            .iter()
            .find(|r| r.name.starts_with("resolve ") && !r.name.contains(" on "));
        let range = self.rows.iter().find(|r| r.name.starts_with("etcd range"));
        if let (Some(r), Some(e)) = (first_resolve, range) {
            let x = r.rps / e.rps;
            check(
                format!("{} RPS / {} RPS", r.name, e.name),
                x,
                ">= 3",
                x >= 3.0,
            );
        }
        if let (Some(a), Some(p)) = (self.row("durable add c=64"), self.row("etcd put c=64")) {
            let x = a.rps / p.rps;
            check(
                "durable add c=64 RPS / etcd put c=64 RPS".into(),
                x,
                ">= 2",
                x >= 2.0,
            );
        }
        if let Some(s) = &self.startup {
            let mib = s.rss_used_kib.max(s.rss_serving_kib) as f64 / 1024.0;
            check(
                format!("server RSS MiB, {} credentials", s.creds),
                mib,
                "<= 150",
                mib <= 150.0,
            );
            let secs = s.to_serving.as_secs_f64();
            check(
                format!("startup to SERVING s, {} credentials", s.creds),
                secs,
                "<= 1",
                secs <= 1.0,
            );
        }
        if lines.is_empty() {
            return String::new();
        }
        let note = if self.smoke {
            " (smoke run: small stores and short runs, not the targets' conditions)"
        } else {
            ""
        };
        format!(
            "\nratios vs targets{note}:\n| {:<46} | {:>8} | {:>8} | {:<6} |\n|{}|\n{}\n",
            "ratio",
            "value",
            "target",
            "status",
            "-".repeat(46 + 8 + 8 + 6 + 11),
            lines.join("\n")
        )
    }
}

/// nproc, memory and CPU model, for the record.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: f64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores ({cpu}), {mem_gib:.1} GiB memory")
}
