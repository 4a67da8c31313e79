//! The etcd baseline: what a user would otherwise run. Range, Put and a create Txn (what an Add
//! on the etcd store sends) of values as large as a credvault record, at the same concurrency,
//! through the same generated etcd client the etcd store uses (`credvault::store::etcd_pb`).
//!
//! Without an `etcd` binary on PATH `start` prints a notice and the etcd rows are skipped.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credvault::store::etcd_pb::etcdserverpb::{
    compare, kv_client::KvClient, request_op, Compare, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use tonic::transport::{Channel, Endpoint};

use crate::jobs::Job;
use crate::load::{BoxFut, Limits};
use crate::server::{label, TempDir, OWNER};
use crate::startup::Guard;

type Kv = KvClient<Channel>;

/// A single-member etcd on loopback ports in a scratch dir, stopped on drop.
pub struct Etcd {
    pub endpoint: String,
    _child: Guard,
    _dir: TempDir,
}

/// A loopback port nobody listens on now (for a listener started next).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn key(i: usize) -> Vec<u8> {
    format!("cred/{OWNER}/{}", label(i)).into_bytes()
}

fn put(key: Vec<u8>, value: Vec<u8>) -> PutRequest {
    PutRequest {
        key,
        value,
        ..Default::default()
    }
}

impl Etcd {
    pub async fn start() -> Option<Etcd> {
        match Self::try_start().await {
            Ok(Some(etcd)) => Some(etcd),
            Ok(None) => {
                eprintln!("notice: etcd rows skipped: no `etcd` binary on PATH (apt-get install etcd-server)");
                None
            }
            Err(e) => {
                eprintln!("notice: etcd rows skipped: etcd did not start: {e}");
                None
            }
        }
    }

    async fn try_start() -> Result<Option<Etcd>, String> {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
            .unwrap_or(false);
        if !on_path {
            return Ok(None);
        }
        let dir = TempDir::new("etcd").map_err(|e| e.to_string())?;
        let (client, peer) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("etcd")
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        let etcd = Etcd {
            endpoint,
            _child: Guard(child),
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(mut kv) = etcd.clients(1).await.map(|mut c| c.remove(0)) {
                let probe = RangeRequest {
                    key: b"probe".to_vec(),
                    ..Default::default()
                };
                if kv.range(probe).await.is_ok() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(format!("{} not answering after 20 s", etcd.endpoint));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let version = Command::new("etcd").arg("--version").output();
        let version = version
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default();
        eprintln!("etcd ready on {} ({version})", etcd.endpoint);
        Ok(Some(etcd))
    }

    /// `n` connections (one HTTP/2 connection each).
    async fn clients(&self, n: usize) -> Result<Vec<Kv>, String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let channel = Endpoint::from_shared(self.endpoint.clone())
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            out.push(KvClient::new(channel));
        }
        Ok(out)
    }

    /// Range (a linearizable get, etcd's default) of a random key among `n` preloaded values
    /// of `value_size` bytes.
    pub async fn range_job(
        &self,
        conns: usize,
        conc: usize,
        limits: Limits,
        n: usize,
        value_size: usize,
        name: &str,
    ) -> Result<Job, String> {
        let clients = self.clients(conns).await?;
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..64.min(n) {
            let (mut kv, next) = (clients[w % clients.len()].clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        return Ok::<_, String>(());
                    }
                    kv.put(put(key(i), vec![b'x'; value_size]))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        Ok(Job::new(
            name,
            clients,
            conc,
            limits,
            move |kv: &mut Kv, r| {
                let request = RangeRequest {
                    key: key((r % n as u64) as usize),
                    ..Default::default()
                };
                Box::pin(async move {
                    let resp = kv.range(request).await.map_err(|e| e.to_string())?;
                    match resp.get_ref().kvs.first() {
                        Some(kv) if kv.value.len() == value_size => Ok(()),
                        _ => Err("Range did not return the value".into()),
                    }
                }) as BoxFut<'_>
            },
        ))
    }

    /// Put of a fresh key each time (etcd acknowledges after its WAL fsync).
    pub async fn put_job(
        &self,
        conns: usize,
        conc: usize,
        limits: Limits,
        value_size: usize,
        name: &str,
    ) -> Result<Job, String> {
        let clients = self.clients(conns).await?;
        let next_key = fresh_keys("put", name);
        Ok(Job::new(
            name,
            clients,
            conc,
            limits,
            move |kv: &mut Kv, _| {
                let request = put(next_key(), vec![b'x'; value_size]);
                Box::pin(async move {
                    kv.put(request).await.map_err(|e| e.to_string())?;
                    Ok(())
                }) as BoxFut<'_>
            },
        ))
    }

    /// The Txn an Add on the etcd store sends: put a fresh key if its create revision is 0.
    pub async fn create_txn_job(
        &self,
        conns: usize,
        conc: usize,
        limits: Limits,
        value_size: usize,
        name: &str,
    ) -> Result<Job, String> {
        let clients = self.clients(conns).await?;
        let next_key = fresh_keys("txn", name);
        Ok(Job::new(
            name,
            clients,
            conc,
            limits,
            move |kv: &mut Kv, _| {
                let k = next_key();
                let request = TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Create as i32,
                        key: k.clone(),
                        target_union: Some(compare::TargetUnion::CreateRevision(0)),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(put(
                            k,
                            vec![b'x'; value_size],
                        ))),
                    }],
                    failure: vec![],
                };
                Box::pin(async move {
                    let reply = kv.txn(request).await.map_err(|e| e.to_string())?;
                    if reply.get_ref().succeeded {
                        Ok(())
                    } else {
                        Err("the create Txn found its fresh key taken".into())
                    }
                }) as BoxFut<'_>
            },
        ))
    }
}

/// Keys never used before, `{kind}/{name}/{n}`, for a job that writes a fresh key each time.
/// Clones (one per caller) share the sequence.
fn fresh_keys(kind: &str, name: &str) -> impl Fn() -> Vec<u8> + Clone + Send + Sync + 'static {
    let seq = Arc::new(AtomicU64::new(0));
    let prefix = format!(
        "{kind}/{}/",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    move || format!("{prefix}{:08}", seq.fetch_add(1, Ordering::Relaxed)).into_bytes()
}
