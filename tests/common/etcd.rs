//! Real etcd on loopback in a tempdir, for the etcd store's tests: one member (`Etcd`) or a
//! cluster of several (`Cluster`). The `etcd` binary (Debian package `etcd-server`) is installed
//! by `.ci/install.d/40-etcd.sh` in CI, where its absence fails the test; on a machine without
//! it the test says so and passes.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on, never handed out twice in this process (tests run
/// concurrently and start several members each). Bound and released at once: a tiny window in
/// which another process could take it.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether there is an `etcd` to start; outside CI its absence is a visible skip.
fn available(what: &str) -> bool {
    if Command::new("etcd").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no etcd binary: .ci/install.d/40-etcd.sh installs it"
    );
    // Straight to the process's stderr: libtest captures `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "notice: no etcd binary on PATH; {what} skipped (apt-get install etcd-server)"
    );
    false
}

/// One etcd process.
pub struct Member {
    pub endpoint: String,
    /// Where its plain-HTTP API (health, the v3 JSON gateway) answers: the client port, or with
    /// TLS a metrics port of its own.
    http_host: String,
    child: Option<Child>,
    args: Vec<String>,
    /// etcd's own log (beside its data dir), for a test that fails.
    log: std::path::PathBuf,
}

impl Member {
    fn new(name: &str, dir: &Path, client: u16, peer: u16, cluster: &str, state: &str) -> Self {
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args = [
            "--name",
            name,
            "--data-dir",
            &dir.display().to_string(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            cluster,
            "--initial-cluster-state",
            state,
            // Elections in well under a second on loopback (defaults: 100 ms / 1 s).
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Member {
            http_host: format!("127.0.0.1:{client}"),
            endpoint: client_url,
            child: None,
            args,
            log: dir.with_extension("log"),
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a member that holds its connections open and
    /// answers nothing, as a hung or partitioned one would.
    pub fn freeze(&self, frozen: bool) {
        let child = self.child.as_ref().expect("a running member");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGKILL: the member is gone (its data stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process (again: same ports, same data).
    fn spawn(&mut self) {
        self.kill();
        if let Some(parent) = self.log.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let log = std::fs::File::create(&self.log).expect("etcd's log file");
        let child = Command::new("etcd")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    fn host(&self) -> String {
        self.http_host.clone()
    }

    /// One HTTP/1.0 request to the member's client port; the reply's body, if it answered.
    fn http(&self, method: &str, path: &str, body: &str) -> Option<String> {
        use std::io::{Read, Write};
        let host = self.host();
        let mut s = std::net::TcpStream::connect(&host).ok()?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
    }

    /// The end of its log, for a failure message.
    fn tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(15);
        format!("--- {}\n{}", self.log.display(), lines[from..].join("\n"))
    }

    fn healthy(&self) -> bool {
        self.http("GET", "/health", "")
            .is_some_and(|b| b.contains("\"health\":\"true\""))
    }

    /// (this member's id, the leader's id as it sees it), from the v3 JSON gateway.
    fn status(&self) -> Option<(String, String)> {
        let body = self.http("POST", "/v3/maintenance/status", "{}")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let id = v["header"]["member_id"].as_str()?.to_owned();
        let leader = v["leader"].as_str()?.to_owned();
        Some((id, leader))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A single-member etcd.
pub struct Etcd {
    pub endpoint: String,
    member: Member,
}

impl Etcd {
    /// Starts a single-node etcd with its data in `dir`; `None` when there is no `etcd` binary
    /// (outside CI).
    pub fn start(dir: &Path) -> Option<Self> {
        Self::start_with(dir, |_, _| {})
    }

    /// Starts a single-node etcd whose clients must speak TLS with a certificate signed by
    /// `client_ca` (`--client-cert-auth`); its own certificate is `cert`/`key`. Health is read
    /// from a plain-HTTP metrics port.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path, client_ca: &Path) -> Option<Self> {
        Self::start_with(dir, |member, client| {
            let url = format!("https://127.0.0.1:{client}");
            for arg in member.args.iter_mut() {
                if arg.starts_with("http://127.0.0.1:") && arg.ends_with(&format!(":{client}")) {
                    *arg = url.clone();
                }
            }
            let metrics = free_port();
            member.args.extend(
                [
                    "--cert-file",
                    &cert.display().to_string(),
                    "--key-file",
                    &key.display().to_string(),
                    "--trusted-ca-file",
                    &client_ca.display().to_string(),
                    "--client-cert-auth",
                    "--listen-metrics-urls",
                    &format!("http://127.0.0.1:{metrics}"),
                ]
                .map(String::from),
            );
            member.endpoint = url;
            member.http_host = format!("127.0.0.1:{metrics}");
        })
    }

    /// Starts a single-node etcd with auth enabled: user `root` (role root) with `password`,
    /// and tokens that expire after `token_ttl_s` seconds unused (`--auth-token-ttl`).
    pub fn start_with_auth(dir: &Path, password: &str, token_ttl_s: u32) -> Option<Self> {
        let etcd = Self::start_with(dir, |member, _| {
            member
                .args
                .extend(["--auth-token-ttl".to_owned(), token_ttl_s.to_string()]);
        })?;
        let m = &etcd.member;
        for (path, body) in [
            ("/v3/auth/role/add", r#"{"name":"root"}"#.to_owned()),
            (
                "/v3/auth/user/add",
                format!(r#"{{"name":"root","password":"{password}"}}"#),
            ),
            (
                "/v3/auth/user/grant",
                r#"{"user":"root","role":"root"}"#.to_owned(),
            ),
            ("/v3/auth/enable", "{}".to_owned()),
        ] {
            let reply = m.http("POST", path, &body).expect("etcd answers");
            assert!(reply.contains("header"), "{path}: {reply}");
        }
        Some(etcd)
    }

    /// A single-node etcd with its ports chosen but not started yet (`restart` starts it).
    pub fn prepare(dir: &Path) -> Option<Self> {
        Self::build(dir, |_, _| {})
    }

    fn start_with(dir: &Path, adjust: impl FnOnce(&mut Member, u16)) -> Option<Self> {
        let mut etcd = Self::build(dir, adjust)?;
        etcd.restart();
        Some(etcd)
    }

    fn build(dir: &Path, adjust: impl FnOnce(&mut Member, u16)) -> Option<Self> {
        if !available("the etcd store test") {
            return None;
        }
        let (client, peer) = (free_port(), free_port());
        let cluster = format!("test=http://127.0.0.1:{peer}");
        let mut member = Member::new("test", dir, client, peer, &cluster, "new");
        adjust(&mut member, client);
        Some(Etcd {
            endpoint: member.endpoint.clone(),
            member,
        })
    }

    /// SIGKILL: etcd is gone (its data stays).
    pub fn kill(&mut self) {
        self.member.kill();
    }

    /// SIGSTOP / SIGCONT (see `Member::freeze`).
    pub fn freeze(&self, frozen: bool) {
        self.member.freeze(frozen);
    }

    /// Compacts etcd's history up to its current revision (through the v3 JSON gateway), so a
    /// watch from an older revision is refused.
    pub fn compact(&self) {
        let status = self
            .member
            .http(
                "POST",
                "/v3/kv/range",
                r#"{"key":"AA==","count_only":true}"#,
            )
            .expect("etcd answers");
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        let revision = v["header"]["revision"].as_str().unwrap().to_owned();
        let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
        let reply = self
            .member
            .http("POST", "/v3/kv/compaction", &body)
            .unwrap();
        assert!(reply.contains("header"), "compaction refused: {reply}");
    }

    /// Starts it again on the same ports and data, and waits until it is healthy.
    pub fn restart(&mut self) {
        self.member.spawn();
        let m = &self.member;
        wait_for("etcd healthy", &[m], || m.healthy());
    }
}

/// A cluster of `n` members on loopback.
pub struct Cluster {
    pub members: Vec<Member>,
}

impl Cluster {
    /// Starts `n` members, data under `dir`, and waits until every one is healthy (which needs
    /// a leader). `None` without an `etcd` binary (outside CI).
    pub fn start(dir: &Path, n: usize) -> Option<Self> {
        if !available("the etcd cluster test") {
            return None;
        }
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Member> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let name = format!("m{i}");
                Member::new(&name, &dir.join(&name), *client, *peer, &cluster, "new")
            })
            .collect();
        for m in &mut members {
            m.spawn();
        }
        let cluster = Cluster { members };
        let all: Vec<&Member> = cluster.members.iter().collect();
        wait_for("every member healthy", &all, || {
            all.iter().all(|m| m.healthy())
        });
        Some(cluster)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint.clone()).collect()
    }

    /// The index of the member that leads now, as the members that answer agree.
    pub fn leader(&self) -> usize {
        let mut found = None;
        let all: Vec<&Member> = self.members.iter().collect();
        wait_for("a leader", &all, || {
            let ids: Vec<Option<(String, String)>> =
                self.members.iter().map(Member::status).collect();
            found = ids
                .iter()
                .enumerate()
                .find_map(|(i, s)| s.as_ref().filter(|(id, leader)| id == leader).map(|_| i));
            found.is_some()
        });
        found.unwrap()
    }

    /// Restarts member `i` (killed before) and waits until it is healthy again.
    pub fn restart(&mut self, i: usize) {
        self.members[i].spawn();
        let m = &self.members[i];
        wait_for("the restarted member healthy", &[m], || m.healthy());
    }
}

/// Until `ready` (bounded: 30 s, then a panic with the members' logs).
fn wait_for(what: &str, members: &[&Member], mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() >= deadline {
            let logs: Vec<String> = members.iter().map(|m| m.tail()).collect();
            panic!("etcd: no {what} within 30 s; logs:\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The etcd store's settings for `endpoints` and `prefix`, the rest at their defaults.
pub fn store_config(endpoints: &[String], prefix: &str) -> credvault::config::EtcdConfig {
    credvault::config::EtcdConfig {
        endpoints: endpoints.to_vec(),
        prefix: prefix.into(),
        ..Default::default()
    }
}

/// A fresh 32-byte root key file in `dir` (0600), for instances that must share one.
pub fn shared_root_key(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let key = dir.join("root.key");
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .unwrap();
    std::io::Write::write_all(&mut f, &bytes).unwrap();
    key
}
