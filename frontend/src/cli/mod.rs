//! The `slapstore` command line: argument parsing, printing, and the mapping of errors to exit
//! codes (0 ok, 1 failed, 2 bad usage or bad profile, 3 not found; `docs/cli.md`). The only
//! module that prints.

mod build;
mod cache;
mod diff;
mod dry_run;
mod eval;
mod gc;
mod generate;
mod help;
mod inspect;
mod instance;
mod interrupts;
mod lock;
mod node;
mod plumbing;
mod progress;
mod query;
mod report;
mod services;
mod software;
mod sources;
mod table;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Nix-style store for SlapOS buildout profiles.
#[derive(Parser, Debug)]
#[command(
    name = "slapstore",
    version,
    about = "Nix-style store for SlapOS buildout profiles",
    long_about = None
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes, before or after its name; every `--help` lists them under
/// "Global options" (the build ones matter only to commands that build).
#[derive(Args, Debug)]
#[command(next_help_heading = "Global options")]
pub struct StoreArgs {
    /// The store root (`store/`, `var/`, `partitions/` live under it).
    #[arg(
        long,
        global = true,
        env = "SLAPSTORE_ROOT",
        default_value = "/opt/slapstore",
        value_name = "DIR"
    )]
    root: PathBuf,
    /// How many derivations to build at once (default: the number of cores).
    #[arg(short = 'j', long, global = true, value_name = "N")]
    jobs: Option<usize>,
    /// Where partitions live (default: `<root>/partitions`).
    #[arg(long, global = true, env = "SLAPSTORE_PARTITIONS", value_name = "DIR")]
    partitions: Option<PathBuf>,
    /// A binary cache to fetch outputs from before building (repeatable; also `substituters`
    /// in `<root>/etc/slapstore.toml`).
    #[arg(long = "substituter", global = true, value_name = "URL")]
    substituters: Vec<String>,
    /// A public key whose signatures are trusted, `name:base64` (repeatable; also
    /// `trusted-keys` in `<root>/etc/slapstore.toml`).
    #[arg(long = "trusted-key", global = true, value_name = "NAME:BASE64")]
    trusted_keys: Vec<String>,
    /// How long one download may take in all, in seconds (default: an hour; each read also
    /// times out after 60 s without data).
    #[arg(
        long,
        global = true,
        env = "SLAPSTORE_DOWNLOAD_TIMEOUT",
        value_name = "SECONDS"
    )]
    download_timeout: Option<u64>,
    /// Run build commands without the build sandbox (also `sandbox = false` in
    /// `<root>/etc/slapstore.toml`, or `SLAPSTORE_SANDBOX=0`): for hosts without namespaces.
    #[arg(long, global = true)]
    no_sandbox: bool,
    /// Say more.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Say only what fails.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Colour errors: `auto` (on a terminal, unless `NO_COLOR` is set), `always`, `never`.
    #[arg(long, global = true, value_enum, default_value_t = report::ColorMode::Auto, value_name = "WHEN")]
    color: report::ColorMode,
}

impl StoreArgs {
    /// The total deadline of one download (`--download-timeout`).
    fn download_deadline(&self) -> std::time::Duration {
        self.download_timeout.map_or(
            slapstore_store::fetch::DOWNLOAD_DEADLINE,
            std::time::Duration::from_secs,
        )
    }

    /// The root, absolute.
    fn root(&self) -> PathBuf {
        std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone())
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the resolved configuration of a profile, as zc.buildout resolves it.
    Eval(eval::EvalArgs),
    /// Show the derivations of a profile in build order, without building anything.
    Plan(build::PlanArgs),
    /// Build every part of a profile not yet in the store, then its release (printed last).
    Build(build::BuildArgs),
    /// Pin the profile's unpinned inputs (branches, files without checksum) in `<profile>.lock`.
    Lock(lock::LockArgs),
    /// Show the hash, size, references and deriver of store paths (`--tree`: the closure tree).
    PathInfo(inspect::PathInfoArgs),
    /// Print a DOT graph of a profile's derivations or of store paths' closures.
    Graph(query::GraphArgs),
    /// Show why store path A depends on B: the chain of references from A to B.
    WhyDepends(query::WhyDependsArgs),
    /// List the store paths that refer to a store path.
    Referrers(query::ReferrersArgs),
    /// List the garbage collector's roots and the store paths they keep.
    Roots(query::RootsArgs),
    /// Check the store against its database (`--check-contents`: re-hash every path).
    Verify(inspect::VerifyArgs),
    /// Print the build log of a part or store path.
    Log(inspect::LogArgs),
    /// Put local files into the download cache, by checksum.
    AddSource(sources::AddSourceArgs),
    /// Create, upgrade, roll back and inspect instances.
    Instance(instance::InstanceArgs),
    /// Delete every store path that no generation, pin or running process reaches.
    Gc(gc::GcArgs),
    /// Say which root keeps a store path alive, and through which references.
    WhyAlive(query::WhyAliveArgs),
    /// Keep a store path (and its closure) alive: a symlink in `var/gcroots/`.
    Pin(gc::PinArgs),
    /// Remove a pin.
    Unpin(gc::UnpinArgs),
    /// Share identical files across the store (reflinks where possible, else hard links).
    Optimise(gc::OptimiseArgs),
    /// Installed releases (a build installs one; it is a gc root until removed).
    Software(software::SoftwareArgs),
    /// Signing keys for binary caches.
    Key(cache::KeyArgs),
    /// Binary caches: push closures into one.
    Cache(cache::CacheArgs),
    /// Serve a SlapOS master as one of its nodes: install what it supplies, deploy what it
    /// requests, report back (`--loop`: again and again).
    Node(node::NodeArgs),
    /// Low-level commands on store paths (add files, register trees).
    Store(plumbing::PlumbingArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the manual page (roff), or write one per command into a directory.
    Man(generate::ManArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    use clap::FromArgMatches;
    let parsed = help::command::<Cli>(report::color_in_args(std::env::args_os()))
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { report::BAD_INPUT } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    report::set_color(cli.store.color);
    match cli.command {
        Command::Eval(args) => eval::run(args),
        Command::Plan(args) => build::plan(&cli.store, args),
        Command::Build(args) => build::build(&cli.store, args),
        Command::Lock(args) => lock::run(&cli.store, args),
        Command::PathInfo(args) => inspect::path_info(&cli.store, args),
        Command::Graph(args) => query::graph(&cli.store, args),
        Command::WhyDepends(args) => query::why_depends(&cli.store, args),
        Command::Referrers(args) => query::referrers(&cli.store, args),
        Command::Roots(args) => query::roots(&cli.store, args),
        Command::Verify(args) => inspect::verify(&cli.store, args),
        Command::Log(args) => inspect::log(&cli.store, args),
        Command::AddSource(args) => sources::add_source(&cli.store, args),
        Command::Store(args) => plumbing::run(&cli.store, args),
        Command::Instance(args) => instance::run(&cli.store, args),
        Command::Gc(args) => gc::gc(&cli.store, args),
        Command::Key(args) => cache::key(&cli.store, args),
        Command::Cache(args) => cache::cache(&cli.store, args),
        Command::WhyAlive(args) => query::why_alive(&cli.store, args),
        Command::Pin(args) => gc::pin(&cli.store, args),
        Command::Unpin(args) => gc::unpin(&cli.store, args),
        Command::Optimise(args) => gc::optimise(&cli.store, args),
        Command::Software(args) => software::run(&cli.store, args),
        Command::Node(args) => node::run(&cli.store, args),
        Command::Completions(args) => generate::completions::<Cli>(args),
        Command::Man(args) => generate::man::<Cli>(args),
    }
}

/// The substituters of the command line and of `<root>/etc/slapstore.toml`, with the trusted
/// keys; `None` when there are none.
fn substituter(
    args: &StoreArgs,
    store: &slapstore_store::Store,
    parsed: Config,
) -> Result<Option<slapstore_store::cache::Substituter>, i32> {
    let mut urls = args.substituters.clone();
    for url in &urls {
        slapstore_store::cache::substitute::check_url(url)
            .map_err(|e| report::usage(&format!("`--substituter {url}`: {e}")))?;
    }
    let mut keys = args.trusted_keys.clone();
    for url in &parsed.substituters {
        slapstore_store::cache::substitute::check_url(url).map_err(|e| {
            report::usage(&format!(
                "`{}`: `substituters`: `{url}`: {e}",
                store.root().join(CONFIG).display()
            ))
        })?;
    }
    urls.extend(parsed.substituters);
    keys.extend(parsed.trusted_keys);
    if urls.is_empty() {
        return Ok(None);
    }
    let keys = keys
        .iter()
        .map(|k| slapstore_store::cache::PublicKey::parse(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| report::usage(&e.to_string()))?;
    if keys.is_empty() {
        report::warn("substituters without a trusted key: nothing they serve can be used");
    }
    Ok(Some(
        slapstore_store::cache::Substituter::new(urls, keys, &store.store_dir())
            .deadline(args.download_deadline()),
    ))
}

/// The configuration file, under the root.
const CONFIG: &str = "etc/slapstore.toml";

/// `<root>/etc/slapstore.toml`; empty when there is none.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    substituters: Vec<String>,
    #[serde(default)]
    trusted_keys: Vec<String>,
    /// `false`: build without the sandbox.
    sandbox: Option<bool>,
    /// The computer, as the local master knows it (`docs/instances.md`), and as `slapstore
    /// node` registers it with a SlapOS master (`docs/node.md`).
    computer_id: Option<String>,
    ipv4: Option<Vec<String>>,
    ipv6: Option<Vec<String>>,
    partition_count: Option<u32>,
    /// `slapstore node`: the master, the computer's key and certificate, the master's CA.
    master_url: Option<String>,
    key_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    master_ca_file: Option<PathBuf>,
    /// The pool each instance takes its own user from (`slapstore_store::users`).
    instance_users: Option<slapstore_store::users::UserPool>,
    /// The users builds run as, when slapstore runs as root.
    build_users: Option<BuildUsers>,
}

/// `build-users` in the configuration: whether sandboxed builds run as unprivileged build users
/// when slapstore runs as root, and which. `true` (the default) is the default pool
/// ([`UserPool::default_build_users`](slapstore_store::users::UserPool::default_build_users)),
/// `false` builds as root inside the sandbox, a table (`[build-users]`) is a pool of one's own.
enum BuildUsers {
    Default,
    Off,
    Pool(slapstore_store::users::UserPool),
}

impl<'de> serde::Deserialize<'de> for BuildUsers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BuildUsers, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BuildUsers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`true`, `false` or a table with `prefix`, `count` and `first-uid`")
            }
            fn visit_bool<E>(self, on: bool) -> Result<BuildUsers, E> {
                Ok(if on {
                    BuildUsers::Default
                } else {
                    BuildUsers::Off
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<BuildUsers, A::Error> {
                serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(BuildUsers::Pool)
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn config(store: &slapstore_store::Store) -> Result<Config, i32> {
    let path = store.root().join(CONFIG);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let config: Config = toml::from_str(&text)
                .map_err(|e| report::usage(&format!("`{}`: {e}", path.display())))?;
            let build_pool = match &config.build_users {
                Some(BuildUsers::Pool(pool)) => Some(pool.clone()),
                _ => None,
            };
            for (section, pool) in [
                ("instance-users", &config.instance_users),
                ("build-users", &build_pool),
            ] {
                if let Some(Err(m)) = pool.as_ref().map(|p| p.check()) {
                    return Err(report::usage(&format!(
                        "`{}`: `[{section}]`: {m}",
                        path.display()
                    )));
                }
            }
            Ok(config)
        }
        Err(_) => Ok(Config::default()),
    }
}

/// What every command that deploys instances (`instance`, `node`) works with: the partitions'
/// directory (`--partitions`, else `<root>/partitions`), how a profile given as software is
/// evaluated, the build options and the instance users' pool from the configuration.
fn instance_context<'a>(
    store_args: &StoreArgs,
    store: &'a slapstore_store::Store,
    observer: &'a dyn slapstore_store::build::Observer,
    computer: slapstore_store::master::Computer,
    frozen: bool,
) -> Result<crate::instance::Context<'a>, i32> {
    let partitions = store_args
        .partitions
        .clone()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .unwrap_or_else(|| store.root().join("partitions"));
    let (build, users) = settings(store_args, store)?;
    Ok(crate::instance::Context {
        store,
        partitions,
        eval: crate::evaluate::EvalOptions {
            python: std::env::var("SLAPSTORE_PYTHON").unwrap_or_else(|_| eval::default_python()),
            ..crate::evaluate::EvalOptions::default()
        },
        build,
        users,
        frozen,
        observer,
        computer,
        requester: None,
    })
}

/// The computer this root is (`computer-id`, `ipv4`, `ipv6`, `partition-count` in
/// `<root>/etc/slapstore.toml`; by default `slapstore` on 127.0.0.1 and ::1); each address is
/// checked.
fn computer(store: &slapstore_store::Store) -> Result<slapstore_store::master::Computer, i32> {
    let config = config(store)?;
    let mut computer = slapstore_store::master::Computer::default();
    let file = store.root().join(CONFIG);
    let bad =
        |key: &str, what: String| report::usage(&format!("`{}`: `{key}`: {what}", file.display()));
    if let Some(id) = config.computer_id {
        if id.trim().is_empty() || id.chars().any(char::is_control) {
            return Err(bad("computer-id", format!("`{id}` is not a computer id")));
        }
        computer.id = id;
    }
    if let Some(list) = config.ipv4 {
        for a in &list {
            a.parse::<std::net::Ipv4Addr>()
                .map_err(|_| bad("ipv4", format!("`{a}` is not an IPv4 address")))?;
        }
        computer.ipv4 = list;
    }
    if let Some(list) = config.ipv6 {
        for a in &list {
            a.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("ipv6", format!("`{a}` is not an IPv6 address")))?;
        }
        computer.ipv6 = list;
    }
    if let Some(0) = config.partition_count {
        return Err(bad(
            "partition-count",
            "a computer has at least one partition".into(),
        ));
    }
    computer.partition_count = config.partition_count;
    Ok(computer)
}

/// The build options every command that builds shares, from the global options and the
/// configuration file (read once): `-j`, the substituters, the download deadline, and whether
/// builds run in the sandbox (unless `--no-sandbox`, `SLAPSTORE_SANDBOX=0` or `sandbox = false`).
fn build_options(
    args: &StoreArgs,
    store: &slapstore_store::Store,
) -> Result<slapstore_store::build::BuildOptions, i32> {
    settings(args, store).map(|(options, _)| options)
}

/// [`build_options`] and the pool of instance users (`[instance-users]`), from one read of the
/// configuration file.
fn settings(
    args: &StoreArgs,
    store: &slapstore_store::Store,
) -> Result<
    (
        slapstore_store::build::BuildOptions,
        Option<slapstore_store::users::UserPool>,
    ),
    i32,
> {
    let config = config(store)?;
    let instance_users = config.instance_users.clone();
    let defaults = slapstore_store::build::BuildOptions::default();
    let jobs = args.jobs.unwrap_or(defaults.jobs);
    // build users only as root (another user cannot switch to them, and builds as itself); by
    // default the default pool, sized for `jobs` builds at once
    let build_users = match config.build_users {
        None | Some(BuildUsers::Default) => {
            Some(slapstore_store::users::UserPool::default_build_users(jobs))
        }
        Some(BuildUsers::Off) => None,
        Some(BuildUsers::Pool(ref pool)) => Some(pool.clone()),
    }
    .filter(|_| slapstore_store::users::is_root());
    let sandbox = !args.no_sandbox
        && slapstore_store::build::sandbox_by_default()
        && config.sandbox.unwrap_or(true);
    let options = slapstore_store::build::BuildOptions {
        jobs,
        substituter: substituter(args, store, config)?,
        download_deadline: args.download_deadline(),
        sandbox,
        build_users,
        ..defaults
    };
    Ok((options, instance_users))
}

/// Writes `text` to stdout; a closed pipe is not an error.
fn print(text: &str) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => report::failure(&format!("cannot write the output: {e}")),
    }
}
