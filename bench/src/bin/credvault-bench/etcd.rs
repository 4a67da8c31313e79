//! The etcd baseline: what a user would otherwise run. Range and Put of values as large as a
//! credvault record, through etcd-client, at the same concurrency.
//!
//! etcd-client compiles etcd's protos with `protoc`, so it sits behind the `etcd-bench` feature;
//! without it (or without an `etcd` binary on PATH) `start` prints a notice and the etcd rows
//! are skipped.

#[cfg(feature = "etcd-bench")]
pub use with_etcd::Etcd;
#[cfg(not(feature = "etcd-bench"))]
pub use without_etcd::Etcd;

#[cfg(not(feature = "etcd-bench"))]
mod without_etcd {
    use crate::jobs::Job;
    use crate::load::Limits;

    /// Never constructed: this build has no etcd client.
    pub enum Etcd {}

    impl Etcd {
        pub async fn start() -> Option<Etcd> {
            eprintln!(
                "notice: etcd rows skipped: built without the etcd-bench feature \
                 (cargo run --release -p credvault-bench --features etcd-bench; needs protoc)"
            );
            None
        }

        pub async fn range_job(
            &self,
            _: usize,
            _: usize,
            _: Limits,
            _: usize,
            _: usize,
            _: &str,
        ) -> Result<Job, String> {
            match *self {}
        }

        pub async fn put_job(
            &self,
            _: usize,
            _: usize,
            _: Limits,
            _: usize,
            _: &str,
        ) -> Result<Job, String> {
            match *self {}
        }
    }
}

#[cfg(feature = "etcd-bench")]
mod with_etcd {
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use etcd_client::{Client, KvClient};

    use crate::jobs::Job;
    use crate::load::{BoxFut, Limits};
    use crate::server::{label, TempDir, OWNER};
    use crate::startup::Guard;

    /// A single-member etcd on loopback ports in a scratch dir, stopped on drop.
    pub struct Etcd {
        endpoint: String,
        _child: Guard,
        _dir: TempDir,
    }

    fn free_port() -> std::io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    fn key(i: usize) -> Vec<u8> {
        format!("cred/{OWNER}/{}", label(i)).into_bytes()
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
            let log =
                std::fs::File::create(dir.path().join("etcd.log")).map_err(|e| e.to_string())?;
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
                    if kv.get("probe", None).await.is_ok() {
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

        /// `n` connections (one etcd-client `Client` each).
        async fn clients(&self, n: usize) -> Result<Vec<KvClient>, String> {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let c = Client::connect([self.endpoint.as_str()], None)
                    .await
                    .map_err(|e| e.to_string())?;
                out.push(c.kv_client());
            }
            Ok(out)
        }

        /// Range (get) of a random key among `n` preloaded values of `value_size` bytes.
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
                        kv.put(key(i), vec![b'x'; value_size], None)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }));
            }
            for t in tasks {
                t.await.map_err(|e| e.to_string())??;
            }
            Ok(Job::new(name, clients, conc, limits, move |kv, r| {
                Box::pin(async move {
                    let resp = kv
                        .get(key((r % n as u64) as usize), None)
                        .await
                        .map_err(|e| e.to_string())?;
                    match resp.kvs().first() {
                        Some(kv) if kv.value().len() == value_size => Ok(()),
                        _ => Err("Range did not return the value".into()),
                    }
                }) as BoxFut<'_>
            }))
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
            let seq = Arc::new(AtomicU64::new(0));
            let tag = name.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            Ok(Job::new(name, clients, conc, limits, move |kv, _| {
                let k = format!("put/{tag}/{:08}", seq.fetch_add(1, Ordering::Relaxed));
                Box::pin(async move {
                    kv.put(k, vec![b'x'; value_size], None)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(())
                }) as BoxFut<'_>
            }))
        }
    }
}
