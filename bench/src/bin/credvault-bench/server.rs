//! The servers under test: credvault in-process (its own runtime and threads, like the binary),
//! stores preloaded through the vault library, and scratch directories.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credvault::client::{Bearer, VaultClient};
use credvault::domain::{AccountSid, Auth, Credential, Label, MessagingServiceSid, Owner, Secret};
use credvault::proto::v1 as pb;
use credvault::Config;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// The owner every bench credential belongs to.
pub const OWNER: &str = "bench";

/// The token of the `bench` caller that [`config`] declares (every scope, every owner).
const BENCH_TOKEN: &str = "cvt_bench-caller-token-with-every-scope-0000";

/// The bench's caller: `CREDVAULT_TOKEN_FILE`'s token when set (for `--addr` servers), else the
/// `bench` caller of in-process servers.
pub fn bearer() -> Bearer {
    let token = std::env::var_os("CREDVAULT_TOKEN_FILE")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_else(|| BENCH_TOKEN.to_owned());
    Bearer::new(&token).expect("a valid token")
}

/// A vault client on `chan` calling as [`bearer`].
pub fn client(chan: Channel) -> VaultClient {
    credvault::client::vault_client(chan, bearer())
}

/// A scratch directory removed on drop. Under the system temp dir (override with TMPDIR): on
/// this machine that is the same disk as the checkout, so fsync costs what it costs for real.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> std::io::Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "credvault-bench-{tag}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Label of the i-th bench credential.
pub fn label(i: usize) -> String {
    format!("cred-{i:07}")
}

/// The i-th bench credential: an auth token and a Messaging Service, as most senders use.
pub fn credential(i: usize) -> Credential {
    let hex = format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    Credential {
        account_sid: AccountSid::parse(&format!("AC{hex}")).expect("valid sid"),
        auth: Auth::AuthToken(Secret::parse_auth_token(&hex).expect("valid token")),
        sender: credvault::domain::Sender::MessagingService(
            MessagingServiceSid::parse(&format!("MG{hex}")).expect("valid sid"),
        ),
        location: Default::default(),
    }
}

/// The same credential as the wire message Add takes.
pub fn credential_pb(i: usize) -> pb::TwilioCredential {
    let hex = format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    pb::TwilioCredential {
        account_sid: format!("AC{hex}"),
        auth: Some(pb::twilio_credential::Auth::AuthToken(pb::AuthToken {
            auth_token: hex.clone(),
        })),
        sender: Some(pb::twilio_credential::Sender::MessagingServiceSid(format!(
            "MG{hex}"
        ))),
        ..Default::default()
    }
}

pub fn config(data_dir: &Path) -> Config {
    let mut c = Config::with_data_dir(data_dir);
    // Validation is never exercised here; keep any accidental call on loopback.
    c.twilio.api_base = "http://127.0.0.1:9".into();
    c.twilio.messaging_base = "http://127.0.0.1:9".into();
    c.callers = vec![credvault::auth::Caller::admin(
        "bench",
        credvault::auth::token::TokenHash::of(BENCH_TOKEN),
    )];
    c
}

/// Writes `n` credentials into the (closed) data dir through the vault library, many Adds at a
/// time so group commit shares the flushes. Returns the stored size of one record.
pub async fn preload(data_dir: &Path, n: usize) -> Result<usize, String> {
    let started = Instant::now();
    let vault = credvault::open_vault(&config(data_dir))
        .await
        .map_err(|e| e.to_string())?;
    let owner = Owner::parse(OWNER).expect("valid owner");
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..256.min(n) {
        let (vault, owner, next) = (vault.clone(), owner.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, String>(());
                }
                let label = Label::parse(&label(i)).expect("valid label");
                vault
                    .add(&owner, &label, &credential(i), true)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    drop(vault);
    wait_unlocked(data_dir).await?;
    // The vault is closed; read one record back through the store API.
    let store = credvault::store::SledStore::open(data_dir, 8 << 20).map_err(|e| e.to_string())?;
    let key = credvault::vault::record_key(&owner, &Label::parse(&label(0)).expect("label"));
    let size = credvault::store::Store::get(&store, &key)
        .await
        .map_err(|e| e.to_string())?
        .map_or(0, |v| v.len());
    drop(store);
    wait_unlocked(data_dir).await?;
    eprintln!(
        "preloaded {n} credentials in {:.1}s ({size} bytes per stored record)",
        started.elapsed().as_secs_f64()
    );
    Ok(size)
}

/// Waits until no sled instance holds the data dir. Dropping the last `Db` handle does not
/// release sled's file lock at once: sled's own background threads let go of it a moment later,
/// and a reopen in that window fails with "could not acquire lock".
pub async fn wait_unlocked(data_dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let db = data_dir.join("db");
    let inode = std::fs::metadata(&db)
        .map_err(|e| format!("{}: {e}", db.display()))?
        .ino();
    let started = Instant::now();
    // sled takes a flock(2) on `db`; /proc/locks lists it as `... FLOCK ... maj:min:inode ...`.
    let held = || {
        std::fs::read_to_string("/proc/locks").is_ok_and(|locks| {
            locks.lines().any(|l| {
                l.contains("FLOCK")
                    && l.split_whitespace().any(|f| {
                        f.rsplit(':').next() == Some(&inode.to_string()) && f.contains(':')
                    })
            })
        })
    };
    while held() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("{} still locked after 10 s", db.display()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// credvault::serve on 127.0.0.1:0 in its own runtime, like the release binary.
pub struct InProcess {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    pub async fn start(data_dir: &Path) -> Result<Self, String> {
        Self::start_with(config(data_dir)).await
    }

    /// [`InProcess::start`] with a config of the caller's (TLS, audit durability, callers).
    pub async fn start_with(config: Config) -> Result<Self, String> {
        if config.data_dir.join("db").exists() {
            wait_unlocked(&config.data_dir).await?;
        }
        let tls = config.tls.enabled();
        let (addr_tx, addr_rx) = oneshot::channel();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("credvault-server")
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(addr_tx.send(Err(e.to_string()))),
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => return drop(addr_tx.send(Err(e.to_string()))),
                    };
                    let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string()));
                    let stop = async {
                        let _ = shutdown_rx.await;
                    };
                    if let Err(e) = credvault::serve(listener, config, stop).await {
                        eprintln!("in-process server failed: {e}");
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let addr = addr_rx
            .await
            .map_err(|_| "server thread died".to_string())??;
        let server = Self {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        if !tls {
            // Over TLS the first connection waits in the listen backlog instead.
            wait_serving(addr, Duration::from_secs(60)).await?;
        }
        Ok(server)
    }

    /// Graceful stop: drain, final flush, release the data dir.
    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.halt();
    }
}

/// `n` HTTP/2 connections to `addr` (every caller shares one of them).
pub async fn channels(addr: SocketAddr, n: usize) -> Result<Vec<Channel>, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| e.to_string())?;
    connect(endpoint, n, &addr.to_string()).await
}

/// `n` TLS connections to `addr` trusting `ca` (PEM), presenting `identity` (cert, key PEM).
pub async fn tls_channels(
    addr: SocketAddr,
    ca: &[u8],
    identity: Option<(&[u8], &[u8])>,
    n: usize,
) -> Result<Vec<Channel>, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| e.to_string())?;
    connect(endpoint, n, &format!("{addr} over TLS")).await
}

/// `n` separate connections of `endpoint`.
async fn connect(endpoint: Endpoint, n: usize, what: &str) -> Result<Vec<Channel>, String> {
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ch = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {what}: {e}"))?;
        out.push(ch);
    }
    Ok(out)
}

/// Polls the health service until it answers SERVING; returns how long that took.
pub async fn wait_serving(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if let Ok(ep) = Endpoint::from_shared(format!("http://{addr}")) {
            if let Ok(ch) = ep
                .connect_timeout(Duration::from_millis(200))
                .connect()
                .await
            {
                let mut health = HealthClient::new(ch);
                let req = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(r) = health.check(req).await {
                    if r.get_ref().status == 1 {
                        return Ok(started.elapsed());
                    }
                }
            }
        }
        if started.elapsed() > timeout {
            return Err(format!("{addr} not SERVING after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Preloads `n` credentials over gRPC (for `--addr`): Add(replace) so reruns are harmless.
pub async fn preload_remote(addr: SocketAddr, n: usize) -> Result<(), String> {
    let started = Instant::now();
    let chans = channels(addr, 2).await?;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..64.min(n) {
        let mut client = client(chans[w % chans.len()].clone());
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, String>(());
                }
                let req = pb::AddRequest {
                    owner: OWNER.into(),
                    label: label(i),
                    credential: Some(credential_pb(i)),
                    replace: true,
                    ..Default::default()
                };
                client.add(req).await.map_err(|e| e.message().to_owned())?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    eprintln!(
        "preloaded {n} credentials over gRPC in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Resolve through the vault library alone, one caller: what the core costs per call with no
/// gRPC around it (for profiling the Resolve path). Returns nanoseconds per call.
pub async fn core_resolve(data_dir: &Path, n: usize, calls: usize) -> Result<f64, String> {
    let vault = credvault::open_vault(&config(data_dir))
        .await
        .map_err(|e| e.to_string())?;
    let owner = Owner::parse(OWNER).expect("valid owner");
    let labels: Vec<Label> = (0..n)
        .map(|i| Label::parse(&label(i)).expect("valid label"))
        .collect();
    let mut rng = crate::load::SplitMix(42);
    let started = Instant::now();
    for _ in 0..calls {
        let label = &labels[(rng.next() % n as u64) as usize];
        let r = vault
            .resolve(&owner, label, false)
            .await
            .map_err(|e| e.to_string())?;
        std::hint::black_box(r);
    }
    let ns = started.elapsed().as_nanos() as f64 / calls as f64;
    drop(vault);
    wait_unlocked(data_dir).await?;
    Ok(ns)
}
