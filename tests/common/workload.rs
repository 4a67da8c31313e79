//! A concurrent Add/replace/Delete workload with an exact model of what must survive a crash.
//!
//! Each label has one writer task, so the model per label is exact: the state after the last
//! acknowledged operation, plus at most one operation in flight when the server died (which may
//! or may not have landed). Many labels run at once, so the server sees many concurrent writes
//! sharing each group commit. Every write gets a unique id that is encoded into every field of the
//! credential, so a Resolve answer names the write it came from and can be compared field by field.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use credvault::proto::v1 as pb;
use tokio::sync::watch;

type Client = credvault::client::VaultClient;
use tonic::Code;

pub const OWNERS: [&str; 2] = ["crash-a", "crash-b"];
/// Every RPC gets a deadline, so no task can hang on a dead connection.
const RPC_TIMEOUT: Duration = Duration::from_secs(20);

/// What a label holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Absent,
    Present { version: u64, write: u64 },
}

/// An operation sent but not answered when the server went away.
#[derive(Clone, Copy, Debug)]
pub enum Pending {
    Write { version: u64, write: u64 },
    Delete,
}

#[derive(Debug)]
pub struct Slot {
    pub index: usize,
    pub owner: &'static str,
    pub label: String,
    pub acked: State,
    pub pending: Option<Pending>,
}

pub fn slots(n: usize) -> Vec<Slot> {
    (0..n)
        .map(|index| Slot {
            index,
            owner: OWNERS[index % OWNERS.len()],
            label: format!("label-{index:03}"),
            acked: State::Absent,
            pending: None,
        })
        .collect()
}

/// The credential of write `write` to slot `slot`: every field names the write.
pub fn credential(slot: usize, write: u64) -> pb::TwilioCredential {
    use pb::twilio_credential::{Auth, Sender};
    let slot = slot as u64;
    pb::TwilioCredential {
        account_sid: format!("AC{write:016x}{slot:016x}"),
        auth: Some(if write % 2 == 0 {
            Auth::AuthToken(pb::AuthToken {
                auth_token: format!("{slot:016x}{write:016x}"),
            })
        } else {
            Auth::ApiKey(pb::ApiKey {
                api_key_sid: format!("SK{slot:016x}{write:016x}"),
                api_key_secret: format!("secret-w{write}-s{slot}"),
            })
        }),
        sender: Some(if write % 3 == 0 {
            Sender::FromNumber(format!("+1{:010}", write % 10_000_000_000))
        } else {
            Sender::MessagingServiceSid(format!("MG{write:016x}{slot:016x}"))
        }),
        ..Default::default()
    }
}

/// What Resolve must answer for write `write` stored as `version`.
pub fn expected_resolve(slot: usize, write: u64, version: u64) -> pb::ResolveResponse {
    use pb::twilio_credential::{Auth, Sender};
    let c = credential(slot, write);
    let (auth, username, password) = match c.auth.unwrap() {
        Auth::AuthToken(t) => (
            pb::resolve_response::Auth::AuthToken(t.clone()),
            c.account_sid.clone(),
            t.auth_token,
        ),
        Auth::ApiKey(k) => (
            pb::resolve_response::Auth::ApiKey(k.clone()),
            k.api_key_sid,
            k.api_key_secret,
        ),
    };
    pb::ResolveResponse {
        account_sid: c.account_sid,
        auth: Some(auth),
        sender: Some(match c.sender.unwrap() {
            Sender::FromNumber(n) => pb::resolve_response::Sender::FromNumber(n),
            Sender::MessagingServiceSid(s) => pb::resolve_response::Sender::MessagingServiceSid(s),
        }),
        version,
        username,
        password,
        region: "us1".into(),
        edge: String::new(),
        // common::config's bases: no real Twilio.
        api_base_url: "http://127.0.0.1:9".into(),
        messaging_base_url: "http://127.0.0.1:9".into(),
    }
}

/// The write id a Resolve answer claims to come from (from its account SID).
pub fn write_of(r: &pb::ResolveResponse) -> Option<u64> {
    u64::from_str_radix(r.account_sid.get(2..18)?, 16).ok()
}

/// Counts shared by the writer tasks.
#[derive(Default)]
pub struct Progress {
    pub acked: AtomicU64,
    pub refused_duplicates: AtomicU64,
}

/// What one run of the workload did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub acked: u64,
    pub refused_duplicates: u64,
    /// Codes of RPCs that failed after the server was told to go away.
    pub failures_after_stop: Vec<(Code, String)>,
}

/// Runs one writer task per slot until each did `ops_per_slot` operations or its server went
/// away. An RPC error before `stopping` is set fails the test; after it, the task records the
/// code and ends with its last operation left as pending. `acks` counts acknowledgements.
pub async fn run(
    clients: &[Client],
    slots: Vec<Slot>,
    next_write: Arc<AtomicU64>,
    ops_per_slot: usize,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    acks: watch::Sender<u64>,
    seed: u64,
) -> (Vec<Slot>, Outcome) {
    let progress = Arc::new(Progress::default());
    let acks = Arc::new(acks);
    let mut tasks = Vec::new();
    for slot in slots {
        let client = clients[slot.index % clients.len()].clone();
        let (next_write, stopping, acks, progress) = (
            next_write.clone(),
            stopping.clone(),
            acks.clone(),
            progress.clone(),
        );
        let mut rng = Rng((seed ^ (slot.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        tasks.push(tokio::spawn(async move {
            let mut slot = slot;
            let mut client = client;
            let mut failure = None;
            for _ in 0..ops_per_slot {
                match one_op(&mut client, &mut slot, &next_write, &mut rng, &progress).await {
                    Ok(acked) => {
                        if acked {
                            acks.send_modify(|n| *n += 1);
                        }
                    }
                    Err(status) if stopping.load(Ordering::SeqCst) => {
                        failure = Some((status.code(), status.message().to_owned()));
                        break;
                    }
                    Err(status) => panic!(
                        "{}/{} failed while the server was up: {status:?}",
                        slot.owner, slot.label
                    ),
                }
            }
            (slot, failure)
        }));
    }
    let mut slots = Vec::new();
    let mut outcome = Outcome::default();
    for task in tasks {
        let (slot, failure) = task.await.expect("writer task panicked");
        outcome.failures_after_stop.extend(failure);
        slots.push(slot);
    }
    slots.sort_by_key(|s| s.index);
    outcome.acked = progress.acked.load(Ordering::SeqCst);
    outcome.refused_duplicates = progress.refused_duplicates.load(Ordering::SeqCst);
    (slots, outcome)
}

/// One operation on `slot`. `Ok(true)`: a write or delete was acknowledged.
async fn one_op(
    client: &mut Client,
    slot: &mut Slot,
    next_write: &AtomicU64,
    rng: &mut Rng,
    progress: &Progress,
) -> Result<bool, tonic::Status> {
    let roll = rng.below(100);
    match slot.acked {
        State::Present { version, .. } if roll < 25 => {
            slot.pending = Some(Pending::Delete);
            let reply = client
                .delete(request(pb::DeleteRequest {
                    owner: slot.owner.into(),
                    label: slot.label.clone(),
                }))
                .await?
                .into_inner();
            assert_eq!(reply.version, version, "{} delete version", slot.label);
            slot.acked = State::Absent;
        }
        State::Present { .. } if roll < 35 => {
            // A duplicate without `replace` must be refused and change nothing.
            let write = next_write.fetch_add(1, Ordering::SeqCst);
            let err = client
                .add(request(add(slot, write, false)))
                .await
                .expect_err("duplicate Add without replace must fail");
            if err.code() != Code::AlreadyExists {
                return Err(err);
            }
            progress.refused_duplicates.fetch_add(1, Ordering::SeqCst);
            return Ok(false);
        }
        current => {
            let write = next_write.fetch_add(1, Ordering::SeqCst);
            let (version, replace) = match current {
                State::Absent => (1, false),
                State::Present { version, .. } => (version + 1, true),
            };
            slot.pending = Some(Pending::Write { version, write });
            let reply = client
                .add(request(add(slot, write, replace)))
                .await?
                .into_inner();
            let got = reply.credential.map(|m| m.version);
            assert_eq!(got, Some(version), "{} ack version", slot.label);
            slot.acked = State::Present { version, write };
        }
    }
    slot.pending = None;
    progress.acked.fetch_add(1, Ordering::SeqCst);
    Ok(true)
}

fn add(slot: &Slot, write: u64, replace: bool) -> pb::AddRequest {
    pb::AddRequest {
        owner: slot.owner.into(),
        label: slot.label.clone(),
        credential: Some(credential(slot.index, write)),
        replace,
        ..Default::default()
    }
}

fn request<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(RPC_TIMEOUT);
    req
}

/// What a check after restart found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Labels whose last acknowledged operation was verified.
    pub labels: u64,
    /// Of those, labels that hold a credential (it resolved, field for field).
    pub present: u64,
    /// Operations in flight at the crash that turned out to have landed / not landed.
    pub pending_landed: u64,
    pub pending_lost: u64,
}

/// Checks every slot against the server: each label holds its last acknowledged state or the
/// state its in-flight operation would have made, and nothing else. Afterwards each slot's
/// `acked` is what the server holds, ready for the next round.
pub async fn verify(client: &mut Client, slots: &mut [Slot]) -> Checked {
    let mut checked = Checked::default();
    for slot in slots.iter_mut() {
        let found = match client
            .resolve(request(pb::ResolveRequest {
                owner: slot.owner.into(),
                label: slot.label.clone(),
                require_valid: false,
            }))
            .await
        {
            Ok(reply) => {
                let reply = reply.into_inner();
                let write = write_of(&reply)
                    .unwrap_or_else(|| panic!("{}: unrecognised answer", slot.label));
                assert_eq!(
                    reply,
                    expected_resolve(slot.index, write, reply.version),
                    "{}: fields of write {write} do not match",
                    slot.label
                );
                State::Present {
                    version: reply.version,
                    write,
                }
            }
            Err(s) if s.code() == Code::NotFound => State::Absent,
            Err(s) => panic!(
                "{}/{}: Resolve failed after restart: {s:?}",
                slot.owner, slot.label
            ),
        };
        let after_pending = match slot.pending {
            None => None,
            Some(Pending::Delete) => Some(State::Absent),
            Some(Pending::Write { version, write }) => Some(State::Present { version, write }),
        };
        if found == slot.acked {
            if after_pending.is_some() && after_pending != Some(found) {
                checked.pending_lost += 1;
            }
        } else if Some(found) == after_pending {
            checked.pending_landed += 1;
        } else {
            panic!(
                "{}/{}: acknowledged state {:?} (in flight: {:?}) but the restarted server holds {:?}",
                slot.owner, slot.label, slot.acked, slot.pending, found
            );
        }
        checked.labels += 1;
        if matches!(found, State::Present { .. }) {
            checked.present += 1;
        }
        slot.acked = found;
        slot.pending = None;
    }
    // List agrees with Resolve: exactly the present labels, at their versions.
    for owner in OWNERS {
        let mut listed = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list(request(pb::ListRequest {
                    owner: owner.into(),
                    page_size: 7,
                    page_token: token,
                }))
                .await
                .unwrap_or_else(|s| panic!("List {owner} after restart: {s:?}"))
                .into_inner();
            listed.extend(page.credentials.into_iter().map(|m| (m.label, m.version)));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let expected: Vec<_> = slots
            .iter()
            .filter(|s| s.owner == owner)
            .filter_map(|s| match s.acked {
                State::Present { version, .. } => Some((s.label.clone(), version)),
                State::Absent => None,
            })
            .collect();
        assert_eq!(listed, expected, "List of {owner} disagrees with Resolve");
    }
    checked
}

/// xorshift64*: tiny, seeded, good enough to pick operations and kill points.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_os() -> Self {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("os rng");
        Self(u64::from_le_bytes(b) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
