//! Prometheus metrics: the series (`Metrics`, one per process, in a registry of its own) and
//! the listener that serves them in the text exposition format (`serve.rs`, `metrics.listen`).
//!
//! No label ever holds a secret, a phone number or an unbounded value: methods and gRPC codes
//! are fixed names, validation outcomes three words, Twilio codes only those credvault knows
//! (the rest are `other`). Owners and labels never appear.

mod serve;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

pub use serve::{serve, MetricsError};

/// Latency buckets in seconds: sub-millisecond resolution where Resolve and List answer, up to
/// the seconds a validation can take.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rpc {
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Validation {
    /// `valid`, `invalid` or `no_verdict`.
    outcome: &'static str,
    /// A Twilio error code credvault knows, `0` for none, `other` for the rest.
    twilio_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TestSms {
    /// `sent` or `refused_by_quota`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RewrapStateLabel {
    /// `idle`, `running`, `done` or `failed`.
    state: &'static str,
}

const REWRAP_STATES: [&str; 4] = ["idle", "running", "done", "failed"];

/// What a scrape reads from the server at that moment, rather than recorded as it happens.
#[derive(Debug, Default)]
pub struct Reading {
    /// Credentials in the store (kept by the vault, never a scan per scrape).
    pub stored_credentials: u64,
    pub rewrap: RewrapReading,
}

/// The key rotation's re-encryption pass run by this instance: the running one, or the last.
#[derive(Debug, Default)]
pub struct RewrapReading {
    /// One of `idle` (none since start), `running`, `done`, `failed`.
    pub state: &'static str,
    /// The data key id records are moved to.
    pub target_key: u32,
    /// Records the pass has to go through.
    pub planned: u64,
    /// Records gone through (re-sealed, already on the key, or unreadable).
    pub passed: u64,
    /// Records that do not open, left as they are.
    pub unreadable: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: &'static str,
    commit: &'static str,
}

/// Every series credvault exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<Rpc, Counter>,
    latency: Family<Method, Histogram>,
    validations: Family<Validation, Counter>,
    test_sms: Family<TestSms, Counter>,
    flush_writers: Histogram,
    flush_latency: Histogram,
    stored: Gauge,
    rewrap_state: Family<RewrapStateLabel, Gauge>,
    rewrap_target: Gauge,
    rewrap_planned: Gauge,
    rewrap_passed: Gauge,
    rewrap_unreadable: Gauge,
}

/// Registers `metric` under `name` and hands it back, to be recorded into.
fn add<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

static METRICS: OnceLock<Metrics> = OnceLock::new();
/// Metrics listeners serving now: with none, nothing is recorded (metrics off cost one load).
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// The process's metrics while a listener serves them; `None` when metrics are off.
pub fn get() -> Option<&'static Metrics> {
    if SERVING.load(Ordering::Relaxed) == 0 {
        return None;
    }
    Some(registered())
}

fn registered() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("credvault");
        let requests = add(
            &mut registry,
            "requests",
            "CredentialVault and Admin RPCs answered, by method and gRPC code",
            Family::<Rpc, Counter>::default(),
        );
        let latency = add(
            &mut registry,
            "request_duration_seconds",
            "Time to answer a CredentialVault or Admin RPC (its audit line included), by method",
            Family::<Method, Histogram>::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        );
        let validations = add(
            &mut registry,
            "validations",
            "Validations (Validate, Add with validate, re-validation) by outcome and Twilio error code",
            Family::<Validation, Counter>::default(),
        );
        let test_sms = add(
            &mut registry,
            "test_sms",
            "Test SMS sent, or refused by a quota before sending",
            Family::<TestSms, Counter>::default(),
        );
        let flush_writers = add(
            &mut registry,
            "group_commit_writers",
            "Writes made durable by one group flush of the sled store",
            Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        );
        let flush_latency = add(
            &mut registry,
            "group_commit_flush_seconds",
            "Time of one group flush of the sled store (its write and fdatasync)",
            Histogram::new(LATENCY_BUCKETS),
        );
        let stored = add(
            &mut registry,
            "stored_credentials",
            "Credentials in the store (shared store: counted again at most every 10 s)",
            Gauge::default(),
        );
        let rewrap_state = add(
            &mut registry,
            "rewrap_state",
            "The key rotation's re-encryption pass on this instance: 1 for its state",
            Family::<RewrapStateLabel, Gauge>::default(),
        );
        let rewrap_target = add(
            &mut registry,
            "rewrap_target_key",
            "The data key id the re-encryption pass moves records to",
            Gauge::default(),
        );
        let rewrap_planned = add(
            &mut registry,
            "rewrap_planned_records",
            "Records the re-encryption pass has to go through",
            Gauge::default(),
        );
        let rewrap_passed = add(
            &mut registry,
            "rewrap_passed_records",
            "Records the re-encryption pass went through",
            Gauge::default(),
        );
        let rewrap_unreadable = add(
            &mut registry,
            "rewrap_unreadable_records",
            "Records the re-encryption pass found unreadable (left as they are)",
            Gauge::default(),
        );
        let build = Family::<Build, Gauge>::default();
        build
            .get_or_create(&Build {
                version: env!("CARGO_PKG_VERSION"),
                commit: option_env!("CREDVAULT_GIT_COMMIT").unwrap_or("unknown"),
            })
            .set(1);
        registry.register("build_info", "The version and commit of this binary", build);
        Self {
            registry,
            requests,
            latency,
            validations,
            test_sms,
            flush_writers,
            flush_latency,
            stored,
            rewrap_state,
            rewrap_target,
            rewrap_planned,
            rewrap_passed,
            rewrap_unreadable,
        }
    }

    /// One group flush of the sled store: how many writes it made durable, and how long it took.
    pub fn group_flush(&self, writers: usize, took: Duration) {
        self.flush_writers.observe(writers as f64);
        self.flush_latency.observe(took.as_secs_f64());
    }

    /// One answered CredentialVault RPC.
    pub fn rpc(&self, method: &'static str, code: &'static str, took: Duration) {
        self.requests.get_or_create(&Rpc { method, code }).inc();
        self.latency
            .get_or_create(&Method { method })
            .observe(took.as_secs_f64());
    }

    /// One validation that reached an end: `Some((valid, code))` for Twilio's verdict, `None`
    /// for none (Twilio unreachable, rate limited, off-spec).
    pub fn validation(&self, verdict: Option<(bool, i32)>) {
        let (outcome, code) = match verdict {
            Some((true, code)) => ("valid", code),
            Some((false, code)) => ("invalid", code),
            None => ("no_verdict", 0),
        };
        let twilio_code = match code {
            0 => "0".to_owned(),
            c if crate::twilio::is_known_code(c) => c.to_string(),
            _ => "other".to_owned(),
        };
        self.validations
            .get_or_create(&Validation {
                outcome,
                twilio_code,
            })
            .inc();
    }

    pub fn test_sms_sent(&self) {
        self.test_sms
            .get_or_create(&TestSms { result: "sent" })
            .inc();
    }

    pub fn test_sms_refused(&self) {
        self.test_sms
            .get_or_create(&TestSms {
                result: "refused_by_quota",
            })
            .inc();
    }

    /// The text exposition of every series, with `reading` as the gauges read at scrape time.
    /// One scrape at a time: servers sharing a process (tests) each show their own reading.
    pub fn encode(&self, reading: &Reading) -> String {
        static SCRAPE: Mutex<()> = Mutex::new(());
        let _one = SCRAPE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&self.stored, reading.stored_credentials);
        let rewrap = &reading.rewrap;
        for state in REWRAP_STATES {
            self.rewrap_state
                .get_or_create(&RewrapStateLabel { state })
                .set(i64::from(state == rewrap.state));
        }
        gauge(&self.rewrap_target, u64::from(rewrap.target_key));
        gauge(&self.rewrap_planned, rewrap.planned);
        gauge(&self.rewrap_passed, rewrap.passed);
        gauge(&self.rewrap_unreadable, rewrap.unreadable);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
