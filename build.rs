//! Compiles the public contract with protox (pure Rust, no protoc on the machine needed).

use std::{env, fs, path::PathBuf};

/// Messages that carry a secret: no derived `Debug`; `src/proto.rs` gives them a redacting one.
/// Their oneof enums follow their message (prost applies skip_debug to both).
const SECRET_MESSAGES: &[&str] = &[
    ".credvault.v1.AuthToken",
    ".credvault.v1.ApiKey",
    ".credvault.v1.TwilioCredential",
    ".credvault.v1.AddRequest",
    ".credvault.v1.ResolveResponse",
    ".credvault.v1.RotateRootKeyRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The compile_fds path prints no rerun-if-changed of its own.
    println!("cargo:rerun-if-changed=proto");
    git_commit();

    let mut compiler = protox::Compiler::new(["proto"])?;
    // Imports included so reflection can describe google.protobuf.Timestamp.
    compiler.include_imports(true).include_source_info(true);
    compiler.open_file("credvault/v1/credvault.proto")?;
    compiler.open_file("credvault/v1/admin.proto")?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // compile_fds ignores file_descriptor_set_path: write the set for reflection ourselves.
    fs::write(
        out_dir.join("credvault_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .skip_debug(SECRET_MESSAGES)
        .compile_fds(compiler.file_descriptor_set())?;

    // etcd's v3 API, trimmed (proto/etcd/README.md): clients only, for the etcd store.
    let mut etcd = protox::Compiler::new(["proto"])?;
    etcd.include_imports(true);
    etcd.open_file("etcd/api/etcdserverpb/rpc.proto")?;
    // The password and the token it buys: no derived Debug (src/store/etcd/session.rs).
    tonic_prost_build::configure()
        .build_server(false)
        .skip_debug([
            ".etcdserverpb.AuthenticateRequest",
            ".etcdserverpb.AuthenticateResponse",
        ])
        .compile_fds(etcd.file_descriptor_set())?;
    Ok(())
}

/// `CREDVAULT_GIT_COMMIT`: the commit the binary is built from, when built from a git checkout
/// (`credvault --version`, the start-up log line). Absent otherwise.
fn git_commit() {
    for watched in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output();
    if let Some(out) = out.ok().filter(|o| o.status.success()) {
        let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !commit.is_empty() {
            println!("cargo:rustc-env=CREDVAULT_GIT_COMMIT={commit}");
        }
    }
}
