//! `credvault keys rewrap`: starts (or joins) the server's background re-encryption and follows
//! it with a progress bar until it is done. The rewrap runs in the server: stopping this command,
//! or the server, does not lose it (a restarted server resumes it; run this again to follow).

use std::time::Duration;

use credvault::proto::v1::{self as pb, RewrapState};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{self, Output};
use super::{failed, ClientArgs, Exit};

const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub struct RewrapArgs {
    /// Start it and return at once, printing its progress (follow it later with `keys rewrap`)
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: RewrapArgs) -> Exit {
    let mut admin = match args.client.admin().await {
        Ok(admin) => admin,
        Err(exit) => return exit,
    };
    let mut status = match admin.start_rewrap(pb::StartRewrapRequest {}).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return failed(&status),
    };
    let json = args.client.output == Output::Json;
    if args.detach {
        print_status(&status, json);
        return Exit::Ok;
    }
    // Drawn on stderr, and only on a terminal (indicatif hides it otherwise).
    let bar = ProgressBar::new(status.total);
    bar.set_style(
        ProgressStyle::with_template("rewrap {bar:40} {pos}/{len} records  {msg}")
            .expect("a valid template"),
    );
    while status.state() == RewrapState::Running {
        bar.set_length(status.total);
        bar.set_position(status.done);
        bar.set_message(rate_and_eta(&status));
        tokio::time::sleep(POLL).await;
        status = match admin.get_rewrap_status(pb::GetRewrapStatusRequest {}).await {
            Ok(reply) => reply.into_inner(),
            Err(e) => {
                bar.abandon();
                eprintln!(
                    "credvault: lost track of the rewrap; a server that restarts resumes it by itself: run `credvault keys rewrap` again to follow it"
                );
                return failed(&e);
            }
        };
    }
    bar.set_length(status.total);
    bar.set_position(status.done);
    bar.finish_and_clear();
    print_status(&status, json);
    match status.state() {
        RewrapState::Done if status.unreadable == 0 => Exit::Ok,
        RewrapState::Done => {
            eprintln!(
                "credvault: {} record(s) do not open (DATA_LOSS) and were left as they are; the server log names them",
                status.unreadable
            );
            Exit::Failure
        }
        _ => Exit::Failure,
    }
}

fn print_status(status: &pb::RewrapStatus, json: bool) {
    if json {
        println!("{}", output::json(status, "RewrapStatus"));
        return;
    }
    match status.state() {
        RewrapState::Done => println!(
            "rewrap done: {} record(s), {} re-encrypted to data key {} (or newer), {} unreadable",
            status.done, status.rewrapped, status.target_key_id, status.unreadable
        ),
        RewrapState::Running => println!(
            "rewrap running to data key {}: {}/{} records, {}",
            status.target_key_id,
            status.done,
            status.total,
            rate_and_eta(status)
        ),
        RewrapState::Failed => eprintln!(
            "credvault: the rewrap stopped: {} (start it again to resume)",
            status.error
        ),
        RewrapState::Idle | RewrapState::Unspecified => println!("no rewrap is running"),
    }
}

fn rate_and_eta(status: &pb::RewrapStatus) -> String {
    let eta = status.eta.map_or_else(
        || "-".into(),
        |d| humantime::format_duration(Duration::from_secs(d.seconds.max(0) as u64)).to_string(),
    );
    format!("{:.0}/s, ETA {eta}", status.records_per_second)
}
