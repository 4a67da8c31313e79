//! Upgrade in place: a data dir written by the release before key management
//! (`tests/fixtures/store-v1`, made with that release's binary) opens with today's binary and
//! answers exactly what the old one did: every credential, version, timestamp and validation
//! state. A crash half-way through the upgrade is resumed by the next start.

#[path = "common/child.rs"]
mod child;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use child::{ChildServer, Launch};
use credvault::store::SledStore;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_credvault");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1");
const CREDENTIALS: [(&str, &str); 5] = [
    ("acme", "prod"),
    ("acme", "backup"),
    ("acme", "bad"),
    ("acme", "replaced"),
    ("globex", "sender"),
];

/// A private copy of the fixture: `(data dir, root key file)`. git keeps no modes; the server
/// wants its data dir 0700 and its key 0600.
fn copy_fixture(root: &Path) -> (PathBuf, PathBuf) {
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).unwrap();
                fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }
    let data = child::data_dir(root);
    copy_dir(&Path::new(FIXTURE).join("data"), &data);
    // sled's blob dir is empty, so git does not keep it.
    fs::create_dir_all(data.join("blobs")).unwrap();
    let key = root.join("root.key");
    fs::copy(Path::new(FIXTURE).join("root.key"), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    (data, key)
}

fn launch(key: &Path) -> Launch {
    Launch {
        env: vec![(
            "CREDVAULT_MASTER_KEY_FILE".into(),
            key.display().to_string(),
        )],
        ..Default::default()
    }
}

/// Runs a client subcommand against `server`; its stdout as JSON lines.
fn cli(server: &ChildServer, data: &Path, args: &[&str]) -> Vec<Value> {
    let out = std::process::Command::new(BIN)
        .args(args)
        .args(["-o", "json", "--addr"])
        .arg(format!("http://{}", server.addr))
        .env("CREDVAULT_TOKEN_FILE", data.join("admin.token"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn expected(name: &str) -> Vec<Value> {
    fs::read_to_string(Path::new(FIXTURE).join("expected").join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every field the old binary answered is answered the same (new fields may be added).
fn assert_superset(got: &[Value], want: &[Value], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:#?}");
    for (g, w) in got.iter().zip(want) {
        for (field, value) in w.as_object().unwrap() {
            assert_eq!(g.get(field), Some(value), "{what}: field {field} of {w}");
        }
    }
}

fn answers_as_before(server: &ChildServer, data: &Path) {
    let mut listed = cli(server, data, &["list", "acme"]);
    listed.extend(cli(server, data, &["list", "globex"]));
    assert_superset(&listed, &expected("list.jsonl"), "list");
    let resolved: Vec<Value> = CREDENTIALS
        .iter()
        .flat_map(|(owner, label)| cli(server, data, &["resolve", owner, label]))
        .collect();
    assert_superset(&resolved, &expected("resolve.jsonl"), "resolve");
}

/// The old form's marks: a canary, or a record that is not a whole-sealed envelope (format 2).
fn old_form_left(data: &Path) -> Vec<String> {
    let store = SledStore::open(data, 1 << 20).unwrap();
    let mut left = Vec::new();
    for entry in store.tree().iter() {
        let (key, value) = entry.unwrap();
        let key = String::from_utf8_lossy(&key).into_owned();
        if key == "meta/canary" || (key.starts_with("cred/") && value.first() != Some(&2)) {
            left.push(key);
        }
    }
    left
}

fn stop(mut server: ChildServer) {
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(15)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_release_data_dir_opens_with_every_credential_intact() {
    let root = tempfile::tempdir().unwrap();
    let (data, key) = copy_fixture(root.path());
    assert_eq!(
        old_form_left(&data).len(),
        6,
        "the fixture is of the old form"
    );

    let server = ChildServer::start_with(&data, &launch(&key));
    assert!(server.log().contains("store upgraded"), "{}", server.log());
    answers_as_before(&server, &data);
    // What was deleted before the upgrade stays deleted.
    let gone = std::process::Command::new(BIN)
        .args(["resolve", "acme", "gone", "--addr"])
        .arg(format!("http://{}", server.addr))
        .env("CREDVAULT_TOKEN_FILE", data.join("admin.token"))
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(3), "NOT_FOUND");
    tokio::task::block_in_place(|| stop(server));
    assert!(
        old_form_left(&data).is_empty(),
        "{:?}",
        old_form_left(&data)
    );

    // A second start has nothing to upgrade and answers the same.
    let server = ChildServer::start_with(&data, &launch(&key));
    assert!(!server.log().contains("store upgraded"), "{}", server.log());
    answers_as_before(&server, &data);
    tokio::task::block_in_place(|| stop(server));
}

/// A crash after the keyring was stored and some records re-sealed: the canary and the other
/// records are still of the old form. The next start finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_cut_short_is_finished_by_the_next_start() {
    let root = tempfile::tempdir().unwrap();
    let (data, key) = copy_fixture(root.path());
    let original: Vec<(Vec<u8>, Vec<u8>)> = {
        let store = SledStore::open(&data, 1 << 20).unwrap();
        let all = store.tree().iter().map(|e| e.unwrap()).collect::<Vec<_>>();
        all.into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    };
    let server = ChildServer::start_with(&data, &launch(&key));
    tokio::task::block_in_place(|| stop(server));

    // Put back the canary and the old form of every other record, as a crash would leave them.
    {
        let store = SledStore::open(&data, 1 << 20).unwrap();
        let mut i = 0;
        for (k, v) in &original {
            let is_record = k.starts_with(b"cred/");
            if k == b"meta/canary" || (is_record && i % 2 == 0) {
                store.tree().insert(k, v.as_slice()).unwrap();
            }
            i += usize::from(is_record);
        }
        store.tree().flush().unwrap();
    }
    assert!(old_form_left(&data).len() >= 3);

    let server = ChildServer::start_with(&data, &launch(&key));
    assert!(server.log().contains("store upgraded"), "{}", server.log());
    answers_as_before(&server, &data);
    tokio::task::block_in_place(|| stop(server));
    assert!(old_form_left(&data).is_empty());
}

/// The upgraded store's root key is the old master key: another key is refused, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_with_another_key_is_refused_and_left_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let (data, key) = copy_fixture(root.path());
    fs::write(&key, [42u8; 32]).unwrap();
    let failure = ChildServer::try_start_with(&data, &launch(&key))
        .err()
        .expect("must refuse");
    assert_eq!(failure.status.and_then(|s| s.code()), Some(1));
    assert!(
        failure.log.contains(&key.display().to_string())
            && failure.log.contains("does not open this store's keyring"),
        "{}",
        failure.log
    );
    assert_eq!(old_form_left(&data).len(), 6, "nothing was touched");
}
