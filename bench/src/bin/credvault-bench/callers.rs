//! `callers`: what caller checks, the audit log and TLS cost a Resolve, side by side with the
//! health check (no caller, no audit line) on the same servers, interleaved round by round.
//!
//! Three servers over stores of the same size: A (bearer token, audit `buffered`), B (bearer
//! token, audit `sync`), C (TLS with optional mTLS, audit `buffered`). Certificates are made
//! here with rcgen.

use std::path::Path;

use credvault::config::{AuditDurability, ClientAuth};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

use crate::jobs::{self, Job};
use crate::load::{Limits, Row};
use crate::server::{self, channels, preload, tls_channels, InProcess, TempDir};

const SENDER: &str = "spiffe://bench/sender";

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Result<Pki, String> {
    let e = |e: rcgen::Error| e.to_string();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(e)?).map_err(e)?;
    let issue = |san: SanType| -> Result<(String, String), String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        params.subject_alt_names.push(san);
        let key = KeyPair::generate().map_err(e)?;
        let cert = params.signed_by(&key, &ca).map_err(e)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    Ok(Pki {
        server: issue(SanType::DnsName("localhost".try_into().map_err(e)?))?,
        client: issue(SanType::URI(SENDER.try_into().map_err(e)?))?,
        ca: ca.pem(),
    })
}

fn write(dir: &Path, name: &str, text: &str) -> Result<std::path::PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Runs the comparison; returns the rows and the ratio lines.
pub async fn run(
    n: usize,
    conc: usize,
    conns: usize,
    limits: Limits,
    rounds: usize,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let dir = TempDir::new("callers").map_err(|e| e.to_string())?;
    let pki = pki()?;
    let mut servers = Vec::new();
    for (name, durability, tls) in [
        ("a", AuditDurability::Buffered, false),
        ("b", AuditDurability::Sync, false),
        ("c", AuditDurability::Buffered, true),
    ] {
        let data = dir.path().join(name);
        preload(&data, n).await?;
        let mut config = server::config(&data);
        config.audit.durability = durability;
        if tls {
            config.tls.cert_file = Some(write(dir.path(), "server.pem", &pki.server.0)?);
            config.tls.key_file = Some(write(dir.path(), "server.key", &pki.server.1)?);
            config.tls.client_ca_file = Some(write(dir.path(), "ca.pem", &pki.ca)?);
            config.tls.client_auth = ClientAuth::Optional;
            config.callers.push(
                credvault::auth::CallerSpec {
                    name: "sender".into(),
                    cert_identity: Some(SENDER.into()),
                    scopes: vec!["resolve".into()],
                    owners: vec![server::OWNER.into()],
                    ..Default::default()
                }
                .check()?,
            );
        }
        servers.push(InProcess::start_with(config).await?);
    }
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let plain_a = channels(a.addr, conns).await?;
    let plain_b = channels(b.addr, conns).await?;
    let ca = pki.ca.as_bytes();
    let tls = tls_channels(c.addr, ca, None, conns).await?;
    let client = (pki.client.0.as_bytes(), pki.client.1.as_bytes());
    let mtls = tls_channels(c.addr, ca, Some(client), conns).await?;
    let no_token = || credvault::client::Bearer::none();
    let jobs: Vec<Job> = vec![
        jobs::health(&plain_a, conc, limits, "health"),
        jobs::resolve(&plain_a, conc, limits, n, "resolve token audit=buffered"),
        jobs::resolve(&plain_b, conc, limits, n, "resolve token audit=sync"),
        jobs::health(&tls, conc, limits, "health over TLS"),
        jobs::resolve(&tls, conc, limits, n, "resolve token TLS buffered"),
        jobs::resolve_as(
            mtls.iter()
                .cloned()
                .map(|ch| credvault::client::vault_client(ch, no_token()))
                .collect(),
            conc,
            limits,
            n,
            "resolve mTLS buffered",
        ),
    ];
    let rows = jobs::interleave(jobs, rounds).await;
    let rps = |name: &str| rows.iter().find(|r| r.name == name).map_or(0.0, |r| r.rps);
    let ratio = |what: &str, num: &str, den: &str, target: f64| {
        let r = rps(num) / rps(den).max(1.0);
        let verdict = if r >= target { "meets" } else { "MISSES" };
        format!("{what}: {r:.2}x ({verdict} >= {target}x)")
    };
    let notes = vec![
        ratio(
            "resolve (token, audit buffered) / health",
            "resolve token audit=buffered",
            "health",
            0.9,
        ),
        ratio(
            "resolve (token, audit sync) / health",
            "resolve token audit=sync",
            "health",
            0.6,
        ),
        ratio(
            "resolve over TLS (token, buffered) / health over TLS",
            "resolve token TLS buffered",
            "health over TLS",
            0.85,
        ),
        ratio(
            "resolve over mTLS (certificate caller, buffered) / health over TLS",
            "resolve mTLS buffered",
            "health over TLS",
            0.85,
        ),
    ];
    drop(servers);
    let mut notes = notes;
    notes.extend(per_call_costs(dir.path()).await?);
    Ok((rows, notes))
}

/// What one caller check and one audit line cost on their own (one task, no gRPC), next to
/// what a whole health RPC costs in CPU: where a Resolve's extra time goes.
async fn per_call_costs(dir: &Path) -> Result<Vec<String>, String> {
    use credvault::audit::{AuditLog, Event};
    use credvault::auth::{token::TokenHash, Access, Caller, Callers, Presented, Scope};
    const CALLS: u32 = 100_000;
    let token = "cvt_bench-per-call-cost-token-000000000000000";
    let access = Access::new(Callers::new(vec![Caller::admin(
        "bench",
        TokenHash::of(token),
    )])?);
    let presented = Presented {
        token: Some(token),
        cert_identities: &[],
    };
    let started = std::time::Instant::now();
    for _ in 0..CALLS {
        std::hint::black_box(access.authorize(presented, Scope::Resolve, server::OWNER))
            .map_err(|e| e.to_string())?;
    }
    let authorize = started.elapsed() / CALLS;
    let mut lines = Vec::new();
    lines.push(format!(
        "per call, one task: authorize (SHA-256 of the token, constant-time compare) {:.2} us",
        authorize.as_secs_f64() * 1e6
    ));
    for durability in [AuditDurability::Buffered, AuditDurability::Sync] {
        let mut config = credvault::Config::with_data_dir(dir).audit;
        config.durability = durability;
        config.path = Some(dir.join(format!("cost-{}.log", durability.as_str())));
        let log = AuditLog::open(&config, dir).map_err(|e| e.to_string())?;
        let calls = if durability == AuditDurability::Sync {
            2_000
        } else {
            CALLS
        };
        let event = Event {
            request_id: "5f3a9c21-1234".into(),
            caller: Some("bench".into()),
            peer: Some("127.0.0.1:40000".into()),
            method: "Resolve",
            owner: server::OWNER.into(),
            label: server::label(1),
            code: "OK",
            ..Event::default()
        };
        let started = std::time::Instant::now();
        for _ in 0..calls {
            log.record(event.clone()).await.map_err(|e| e.to_string())?;
        }
        let each = started.elapsed() / calls;
        lines.push(format!(
            "per call, one task: audit record ({}) {:.2} us",
            durability.as_str(),
            each.as_secs_f64() * 1e6
        ));
    }
    Ok(lines)
}
