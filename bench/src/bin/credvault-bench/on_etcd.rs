//! `on-etcd`: credvault with `store.backend = "etcd"` next to etcd itself, side by side in one
//! run, on one single-member etcd: Resolve against etcd's own linearizable Range, durable Add
//! against the create Txn an Add sends (same concurrency, values the size of a stored record),
//! and Resolve against the health check on the same server (what the etcd store costs a read).
//! A second server over the same records reads with `etcd.read = "cached"`: its Resolve against
//! its own health check, and against a sled server's Resolve (the same vault without etcd).
//! Others read the same records with `audit.durability = "buffered"` (cached, and linearizable),
//! so what the etcd store costs shows apart from the audit log's fdatasync.

use crate::etcd::Etcd;
use crate::jobs;
use crate::load::{Limits, Row};
use crate::server::{self, channels, label, preload_remote, InProcess, TempDir, OWNER};
use crate::short;

use credvault::store::etcd_pb::etcdserverpb::{kv_client::KvClient, RangeRequest};

pub async fn run(
    n: usize,
    conc: usize,
    conns: usize,
    limits: Limits,
    rounds: usize,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let Some(etcd) = Etcd::start().await else {
        return Ok((Vec::new(), vec!["on-etcd skipped: no etcd".into()]));
    };
    let dir = TempDir::new("on-etcd").map_err(|e| e.to_string())?;
    let mut config = server::config(&dir.path().join("data"));
    config.backend = credvault::config::Backend::Etcd;
    config.etcd.endpoints = vec![etcd.endpoint.clone()];
    let prefix = config.etcd.prefix.clone();
    let mut cached = config.clone();
    let mut linear_buffered = config.clone();
    let srv = InProcess::start_with(config).await?;
    preload_remote(srv.addr, n).await?;
    // The same records, read through the watch-fed cache (the same root key: instances share it).
    cached.data_dir = dir.path().join("cached");
    cached.master_key_file = Some(dir.path().join("data").join("master.key"));
    cached.etcd.read = credvault::config::EtcdRead::Cached;
    let mut buffered = cached.clone();
    let cached_srv = InProcess::start_with(cached).await?;
    let cached_chans = channels(cached_srv.addr, conns).await?;
    // Both Resolve with the default audit (`sync`) wait for the audit log's group fdatasync;
    // with `buffered`, what the cached read itself costs shows.
    buffered.data_dir = dir.path().join("buffered");
    buffered.audit.durability = credvault::config::AuditDurability::Buffered;
    let buffered_srv = InProcess::start_with(buffered).await?;
    let buffered_chans = channels(buffered_srv.addr, conns).await?;
    // Linearizable reads with `buffered` audit: what the etcd store adds to a Resolve, without
    // the audit log's fdatasync that the default `sync` makes every Resolve wait for.
    linear_buffered.data_dir = dir.path().join("linear-buffered");
    linear_buffered.master_key_file = Some(dir.path().join("data").join("master.key"));
    linear_buffered.audit.durability = credvault::config::AuditDurability::Buffered;
    let linear_buffered_srv = InProcess::start_with(linear_buffered).await?;
    let linear_buffered_chans = channels(linear_buffered_srv.addr, conns).await?;
    // And the embedded default over as many records: what a Resolve costs without etcd.
    let sled_srv = InProcess::start_with(server::config(&dir.path().join("sled"))).await?;
    preload_remote(sled_srv.addr, n).await?;
    let sled_chans = channels(sled_srv.addr, conns).await?;
    let value_size = stored_size(&etcd.endpoint, &prefix).await?;
    eprintln!("a record on etcd is {value_size} bytes; the etcd baseline uses values as large");

    let chans = channels(srv.addr, conns).await?;
    let k = short(n);
    let range = format!("etcd range ({k} values)");
    let reads = vec![
        jobs::health(&chans, conc, limits, "health (etcd store)"),
        jobs::resolve(&chans, conc, limits, n, &format!("resolve {k} on etcd")),
        etcd.range_job(conns, conc, limits, n, value_size, &range)
            .await?,
        jobs::resolve(
            &linear_buffered_chans,
            conc,
            limits,
            n,
            &format!("resolve {k} on etcd, audit buffered"),
        ),
        jobs::health(&cached_chans, conc, limits, "health (cached etcd store)"),
        jobs::resolve(
            &cached_chans,
            conc,
            limits,
            n,
            &format!("resolve {k} on etcd, cached"),
        ),
        jobs::resolve(
            &sled_chans,
            conc,
            limits,
            n,
            &format!("resolve {k} on sled"),
        ),
        jobs::health(
            &buffered_chans,
            conc,
            limits,
            "health (cached, audit buffered)",
        ),
        jobs::resolve(
            &buffered_chans,
            conc,
            limits,
            n,
            &format!("resolve {k} on etcd, cached, audit buffered"),
        ),
    ];
    let mut rows = jobs::interleave(reads, rounds).await;
    let writes = vec![
        jobs::add(
            &chans,
            64,
            limits,
            &format!("on-etcd-p{}", std::process::id()),
            "add on etcd c=64",
        ),
        etcd.create_txn_job(conns, 64, limits, value_size, "etcd create txn c=64")
            .await?,
        jobs::add(
            &buffered_chans,
            64,
            limits,
            &format!("on-etcd-buffered-p{}", std::process::id()),
            "add on etcd c=64, audit buffered",
        ),
    ];
    rows.extend(jobs::interleave(writes, rounds).await);

    let row = |name: &str| rows.iter().find(|r| r.name == name);
    let mut notes = Vec::new();
    // `target`: the floor for the ratio, if it sets one.
    let mut ratio = |what: &str, a: &str, b: &str, target: Option<f64>| {
        if let (Some(a), Some(b)) = (row(a), row(b)) {
            let r = a.rps / b.rps.max(1.0);
            let verdict = match target {
                Some(t) if r >= t => format!(" (meets >= {t}x)"),
                Some(t) => format!(" (MISSES >= {t}x)"),
                None => String::new(),
            };
            notes.push(format!(
                "{what}: {r:.2}x{verdict}; p99 {:.2} ms vs {:.2} ms",
                a.p99, b.p99
            ));
        }
    };
    ratio(
        &format!("Resolve on etcd / etcd Range (c={conc})"),
        &format!("resolve {k} on etcd"),
        &range,
        Some(0.9),
    );
    ratio(
        &format!("Resolve on etcd, audit buffered / etcd Range (c={conc})"),
        &format!("resolve {k} on etcd, audit buffered"),
        &range,
        Some(0.9),
    );
    ratio(
        "Add on etcd / etcd create Txn (c=64)",
        "add on etcd c=64",
        "etcd create txn c=64",
        Some(0.9),
    );
    ratio(
        "Add on etcd, audit buffered / etcd create Txn (c=64)",
        "add on etcd c=64, audit buffered",
        "etcd create txn c=64",
        None,
    );
    ratio(
        &format!("Resolve on etcd / health on the same server (c={conc})"),
        &format!("resolve {k} on etcd"),
        "health (etcd store)",
        None,
    );
    ratio(
        &format!("Resolve on etcd, cached / health on the same server (c={conc})"),
        &format!("resolve {k} on etcd, cached"),
        "health (cached etcd store)",
        Some(0.8),
    );
    ratio(
        &format!("Resolve on etcd, cached / Resolve on sled (c={conc})"),
        &format!("resolve {k} on etcd, cached"),
        &format!("resolve {k} on sled"),
        None,
    );
    ratio(
        &format!("Resolve on etcd, cached, audit buffered / health on the same server (c={conc})"),
        &format!("resolve {k} on etcd, cached, audit buffered"),
        "health (cached, audit buffered)",
        Some(0.8),
    );
    drop((srv, cached_srv, sled_srv, buffered_srv, linear_buffered_srv));
    Ok((rows, notes))
}

/// The size of one stored record, read from etcd itself.
async fn stored_size(endpoint: &str, prefix: &str) -> Result<usize, String> {
    let mut kv = KvClient::connect(endpoint.to_owned())
        .await
        .map_err(|e| e.to_string())?;
    let key = format!("{prefix}cred/{OWNER}/{}", label(0)).into_bytes();
    let reply = kv
        .range(RangeRequest {
            key,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    reply
        .into_inner()
        .kvs
        .first()
        .map(|kv| kv.value.len())
        .ok_or_else(|| "the first preloaded record is not in etcd: wrong key layout?".into())
}
