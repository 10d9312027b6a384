//! `slapstore node --master URL --computer ID [--loop]`: this root as a node of a SlapOS master
//! (`crate::node`), one pass or one every `--interval` seconds. The master, the computer id,
//! the key and certificate and the partition count come from the command line or from
//! `<root>/etc/slapstore.toml` (`master-url`, `computer-id`, `key-file`, `cert-file`,
//! `master-ca-file`, `partition-count`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use slapstore_store::Store;

use super::{report, StoreArgs};
use crate::node::pass::{Node, Summary, DEFAULT_PARTITIONS};
use crate::node::slap::{Credentials, Master};

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The master's URL (`http://` or `https://`; also `master-url`).
    #[arg(long, value_name = "URL")]
    master: Option<String>,
    /// This computer's id at the master, `COMP-…` (also `computer-id`).
    #[arg(long, value_name = "ID")]
    computer: Option<String>,
    /// The computer's key, PEM, for an `https://` master (also `key-file`).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The computer's certificate, PEM (also `cert-file`).
    #[arg(long, value_name = "FILE")]
    cert_file: Option<PathBuf>,
    /// The CA that signed the master's certificate, PEM (default: the web's roots; also
    /// `master-ca-file`).
    #[arg(long, value_name = "FILE")]
    master_ca_file: Option<PathBuf>,
    /// How many partitions (`slappart0`…) the computer offers (also `partition-count`;
    /// default 10, as `slapos node format`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    partition_count: Option<u32>,
    /// Pass again and again, as the node's service does, until interrupted.
    #[arg(long = "loop")]
    repeat: bool,
    /// Seconds between the starts of two passes with `--loop`.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    interval: u64,
}

pub fn run(store_args: &StoreArgs, args: NodeArgs) -> i32 {
    let interrupts = match super::interrupts::Interrupts::start() {
        Ok(i) => i,
        Err(code) => return code,
    };
    let code = run_inner(store_args, &args, &interrupts).unwrap_or_else(|code| code);
    interrupts.stopped(None).unwrap_or(code)
}

fn run_inner(
    store_args: &StoreArgs,
    args: &NodeArgs,
    interrupts: &super::interrupts::Interrupts,
) -> Result<i32, i32> {
    let store = Store::open(&store_args.root()).map_err(|e| report::store_error(&e))?;
    let config = super::config(&store)?;
    let file = store.root().join(super::CONFIG);
    let missing = |what: &str, key: &str| {
        report::usage(&format!(
            "no master to serve: give `--{what}` or `{key}` in `{}`",
            file.display()
        ))
    };
    let url = args
        .master
        .clone()
        .or(config.master_url.clone())
        .ok_or_else(|| missing("master", "master-url"))?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(report::usage(&format!(
            "the master's URL `{url}` is neither `http://` nor `https://`"
        )));
    }
    let computer = args
        .computer
        .clone()
        .or(config.computer_id.clone())
        .ok_or_else(|| missing("computer", "computer-id"))?;
    let credentials = Credentials {
        key_file: args.key_file.clone().or(config.key_file.clone()),
        cert_file: args.cert_file.clone().or(config.cert_file.clone()),
        ca_file: args
            .master_ca_file
            .clone()
            .or(config.master_ca_file.clone()),
    };
    let master =
        Master::new(&url, &computer, &credentials).map_err(|e| report::usage(&e.to_string()))?;
    // the computer as the local master knows it (`computer-id`, `ipv4`, `ipv6`), with the
    // master's id for it, its URL and the partitions it offers
    let mut computer_model = super::computer(&store)?;
    computer_model.id = computer.clone();
    computer_model.server_url = url.clone();
    computer_model.partition_count = Some(
        args.partition_count
            .or(config.partition_count)
            .unwrap_or(DEFAULT_PARTITIONS),
    );
    let observer = super::progress::Progress::new(0, store_args.quiet);
    // a release the master supplies uses its lock file when it has one, without requiring it
    let mut ctx = super::instance_context(store_args, &store, &observer, computer_model, false)?;
    // a release's profile may be `http(s)://`: it and what it extends come through the
    // download cache
    ctx.eval.remote_cache = Some(store.cache_dir());
    let node = Node {
        master: &master,
        ctx: &ctx,
        user: std::env::var("USER").unwrap_or_else(|_| current_uid().to_string()),
    };
    loop {
        let started = Instant::now();
        let code = match node.pass() {
            Ok(summary) => show(&summary, store_args.quiet),
            Err(e) => {
                report::error_line(&e.to_string(), None);
                report::FAILED
            }
        };
        if !args.repeat {
            return Ok(code);
        }
        let next = started + Duration::from_secs(args.interval);
        while Instant::now() < next {
            if let Some(code) = interrupts.pending() {
                return Ok(code);
            }
            std::thread::sleep(Duration::from_millis(200).min(next - Instant::now()));
        }
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions
    unsafe { libc::getuid() }
}

/// Prints what a pass did; its exit status (1 when something failed).
fn show(summary: &Summary, quiet: bool) -> i32 {
    let mut out = String::new();
    for e in &summary.events {
        if e.failed {
            report::error_line(&format!("{}: {}", e.subject, e.message), None);
        } else if !quiet {
            out.push_str(&format!("{}: {}\n", e.subject, e.message));
        }
    }
    if !quiet {
        out.push_str(&format!(
            "pass done: {} changes, {} partitions unchanged, {} failures\n",
            summary.events.iter().filter(|e| !e.failed).count(),
            summary.unchanged,
            summary.events.iter().filter(|e| e.failed).count(),
        ));
    }
    let code = super::print(&out);
    if summary.failed() {
        report::FAILED
    } else {
        code
    }
}
