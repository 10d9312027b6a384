//! `slapos.cookbook:postgres`: a PostgreSQL cluster in the partition, as the cookbook makes it.
//!
//! Rendering writes the service `<services>/postgres-start` (`exec <bin>/postgres -D
//! <pgdata-directory>`, both quoted) and sets `url` (`postgresql://superuser:password@[ipv6]:
//! port/dbname`, on the first `ipv6`) when `ipv6` is not empty; it records a deploy step
//! ([`Spec`]) with the cluster's configuration. The cluster is instance data, made at deploy
//! ([`deploy`]), after every switch to the generation, as buildout runs the recipe's `install`
//! on every run: when `pgdata-directory` does not exist, `initdb -D pgdata -A ident -E UTF8 -U
//! superuser`, the configuration, `CREATE DATABASE "dbname"` and the superuser's password, in
//! single-user mode (what fails removes the half-made cluster); otherwise the configuration
//! again and the password (through `psql` on the cluster's socket when the server runs, the
//! stale `postmaster.pid` of a dead one removed). The configuration is the cookbook's:
//! `postgresql.conf` (listening on `ipv4` and `ipv6`, `port`, `max-connections`, the socket in
//! pgdata) and `pg_hba.conf` (local trust, md5 from each address with `ipv4-netmask-bits` or
//! `ipv6-netmask-bits`). The password is recorded only as PostgreSQL's md5 form
//! (`md5(password + user)`), which is what the cookbook sends too.

use std::path::Path;
use std::process::{Command, Stdio};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::recipes::deploy::Step;
use crate::recipes::instance::{add_file, relative, FileSpec};
use crate::recipes::wrapper::quote;
use crate::recipes::Part;

/// The cluster a generation deploys, as it records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub section: String,
    /// The directory of `initdb`, `postgres`, `pg_ctl` and `psql`.
    pub bin: String,
    pub pgdata: String,
    pub superuser: String,
    pub dbname: String,
    pub port: String,
    /// `md5` and the hex md5 of the password followed by the superuser's name.
    #[serde(rename = "password-md5")]
    pub password_md5: String,
    #[serde(rename = "postgresql-conf")]
    pub postgresql_conf: String,
    #[serde(rename = "pg-hba-conf")]
    pub pg_hba_conf: String,
}

/// An option refused when it holds one of `bad` (or a newline): it goes into a configuration
/// line or an SQL identifier as it is.
fn plain(part: &mut Part, key: &str, bad: &[char], what: &str) -> Result<String> {
    let value = part.require(key)?;
    if let Some(c) = value.chars().find(|c| *c == '\n' || bad.contains(c)) {
        return Err(part.option_error(key, format!("{what} cannot hold {c:?}")));
    }
    Ok(value)
}

/// A number option (`default` when absent).
fn number(part: &mut Part, key: &str, default: Option<&str>, empty: bool) -> Result<String> {
    let value = match (part.get(key)?, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d.to_owned(),
        (None, None) => part.require(key)?,
    };
    let value = value.trim().to_owned();
    if !(value.chars().all(|c| c.is_ascii_digit()) && (empty || !value.is_empty())) {
        return Err(part.option_error(key, format!("`{value}` is not a number")));
    }
    Ok(value)
}

/// Python's `str.splitlines()`, for the address lists.
fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// `postgres`.
pub fn postgres(part: &mut Part) -> Result<()> {
    let bin = plain(part, "bin", &[], "a path")?;
    let pgdata = plain(part, "pgdata-directory", &['\''], "a path")?;
    let superuser = plain(part, "superuser", &['"', '\''], "a role name")?;
    let dbname = plain(part, "dbname", &['"'], "a database name")?;
    let password = part.require("password")?;
    let port = number(part, "port", None, true)?;
    let services = part.require("services")?;
    let ipv4 = part.require("ipv4")?;
    let ipv6 = part.require("ipv6")?;
    for (key, value) in [("ipv4", &ipv4), ("ipv6", &ipv6)] {
        if let Some(c) = value.chars().find(|c| " \t'".contains(*c)) {
            return Err(part.option_error(key, format!("an address cannot hold {c:?}")));
        }
    }
    let max_connections = number(part, "max-connections", Some("100"), false)?;
    let ipv4_bits = number(part, "ipv4-netmask-bits", Some("32"), false)?;
    let ipv6_bits = number(part, "ipv6-netmask-bits", Some("128"), false)?;
    if let Some(first) = lines(&ipv6).first() {
        let url = format!("postgresql://{superuser}:{password}@[{first}]:{port}/{dbname}");
        part.set("url", url);
    }

    let mut listen: Vec<&str> = Vec::new();
    for address in lines(&ipv4).into_iter().chain(lines(&ipv6)) {
        if !listen.contains(&address) {
            listen.push(address);
        }
    }
    let port_line = if port.is_empty() {
        String::new()
    } else {
        format!("port = {port}")
    };
    let postgresql_conf = format!(
        "listen_addresses = '{listen}'\n\
         {port_line}\n\
         logging_collector = on\n\
         log_rotation_size = 50MB\n\
         max_connections = {max_connections}\n\
         datestyle = 'iso, mdy'\n\
         \n\
         lc_messages = 'C.UTF-8'\n\
         lc_monetary = 'C.UTF-8'\n\
         lc_numeric = 'C.UTF-8'\n\
         lc_time = 'C.UTF-8'\n\
         default_text_search_config = 'pg_catalog.english'\n\
         \n\
         unix_socket_directories = '{pgdata}'\n\
         unix_socket_permissions = 0700\n",
        listen = listen.join(","),
    );
    let mut hba = vec![
        "# TYPE  DATABASE        USER            ADDRESS                 METHOD".to_owned(),
        String::new(),
        "# \"local\" is for Unix domain socket connections only (check unix_socket_permissions!)"
            .to_owned(),
        "local   all             all                                     trust".to_owned(),
        "host    all             all             127.0.0.1/32            md5".to_owned(),
        "host    all             all             ::1/128                 md5".to_owned(),
    ];
    for (list, bits) in [(&ipv4, &ipv4_bits), (&ipv6, &ipv6_bits)] {
        for ip in lines(list) {
            hba.push(format!(
                "host    all             all             {ip}/{bits}                   md5"
            ));
        }
    }

    let rel = relative(part, "pgdata-directory", &pgdata)?;
    let out = &part.r.instance_output;
    if out.files.contains_key(&rel) || out.kept.contains(&rel) || out.dirs.contains_key(&rel) {
        return Err(part.option_error(
            "pgdata-directory",
            format!("`{pgdata}` is written by another part too"),
        ));
    }
    if let Some(parent) = Path::new(&rel)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let parent = parent.to_string_lossy().into_owned();
        part.r.instance_output.dirs.entry(parent).or_insert(0o755);
    }

    let start = crate::pystr::path_join(services.trim(), "postgres-start");
    let text = format!(
        "#!/bin/sh\nexec {} \\\n    -D {}\n",
        quote(&format!("{bin}/postgres")),
        quote(&pgdata)
    );
    add_file(
        part,
        "services",
        &start,
        FileSpec::Text { text, mode: 0o700 },
    )?;

    let digest = Md5::digest(format!("{password}{superuser}").as_bytes());
    let spec = Spec {
        section: part.name.clone(),
        bin,
        pgdata: crate::pystr::normpath(pgdata.trim()),
        superuser,
        dbname,
        port,
        password_md5: format!("md5{}", hex::encode(digest)),
        postgresql_conf,
        pg_hba_conf: hba.join("\n"),
    };
    part.r.instance_output.commands.push(Step::Postgres(spec));
    Ok(())
}

/// Makes or updates the cluster of `spec` (run in the partition, after a switch).
pub fn deploy(partition: &Path, spec: &Spec) -> std::result::Result<(), String> {
    let failed = |m: String| format!("[{}] {m}", spec.section);
    let pgdata = Path::new(&spec.pgdata);
    if pgdata.symlink_metadata().is_ok() {
        configure(spec).map_err(failed)?;
        return update_superuser(partition, spec).map_err(failed);
    }
    let made = initdb(partition, spec)
        .and_then(|()| configure(spec))
        .and_then(|()| {
            let create = format!("CREATE DATABASE \"{}\"", spec.dbname);
            single_user(partition, spec, &create)
        })
        .and_then(|()| update_superuser(partition, spec));
    if let Err(e) = made {
        // no half-made cluster: the next deploy makes it again
        let _ = std::fs::remove_dir_all(pgdata);
        return Err(failed(e));
    }
    Ok(())
}

/// A program of `bin`, which must exist.
fn program(spec: &Spec, name: &str) -> std::result::Result<String, String> {
    let path = crate::pystr::path_join(&spec.bin, name);
    if !Path::new(&path).is_file() {
        return Err(format!("File not found: {path}"));
    }
    Ok(path)
}

/// Runs `program` with `args` in the partition, `input` on its stdin: its exit code, stdout
/// and stderr.
fn run(
    partition: &Path,
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> std::result::Result<(Option<i32>, String), String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(partition)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write to `{program}`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), text.trim().to_owned()))
}

fn initdb(partition: &Path, spec: &Spec) -> std::result::Result<(), String> {
    let initdb = program(spec, "initdb")?;
    let args = [
        "-D",
        &spec.pgdata,
        "-A",
        "ident",
        "-E",
        "UTF8",
        "-U",
        &spec.superuser,
    ];
    match run(partition, &initdb, &args, None)? {
        (Some(0), _) => Ok(()),
        (_, text) => Err(format!(
            "Could not create cluster directory in {}: {text}",
            spec.pgdata
        )),
    }
}

/// `postgresql.conf` and `pg_hba.conf`, written over initdb's (and the previous deploy's).
fn configure(spec: &Spec) -> std::result::Result<(), String> {
    let pgdata = Path::new(&spec.pgdata);
    for (name, text) in [
        ("postgresql.conf", &spec.postgresql_conf),
        ("pg_hba.conf", &spec.pg_hba_conf),
    ] {
        let path = pgdata.join(name);
        std::fs::write(&path, text)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    }
    Ok(())
}

/// `command` in single-user mode (no server running); an `ERROR` or `FATAL` it reports fails.
fn single_user(partition: &Path, spec: &Spec, command: &str) -> std::result::Result<(), String> {
    let postgres = program(spec, "postgres")?;
    let args = ["--single", "-D", &spec.pgdata, "postgres"];
    let input = format!("{command}\n");
    let (code, text) = run(partition, &postgres, &args, Some(&input))?;
    let reported = text
        .lines()
        .any(|l| l.contains("ERROR:") || l.contains("FATAL:"));
    if code != Some(0) || reported {
        let verb = command.split(' ').next().unwrap_or_default();
        return Err(format!("`postgres --single` failed on {verb}: {text}"));
    }
    Ok(())
}

/// The superuser's password set, through the running server or in single-user mode.
fn update_superuser(partition: &Path, spec: &Spec) -> std::result::Result<(), String> {
    let query = format!(
        "ALTER USER \"{}\" ENCRYPTED PASSWORD '{}'",
        spec.superuser, spec.password_md5
    );
    if !running(partition, spec)? {
        return single_user(partition, spec, &query);
    }
    let psql = program(spec, "psql")?;
    let args = [
        "-h",
        &spec.pgdata,
        "-p",
        &spec.port,
        "-U",
        &spec.superuser,
        "-d",
        &spec.dbname,
    ];
    match run(partition, &psql, &args, Some(&format!("{query}\n")))? {
        (Some(0), _) => Ok(()),
        (_, text) => Err(format!("Error updating password: {text}")),
    }
}

/// Whether the cluster's server runs: `pg_ctl status` when it left a `postmaster.pid`, which is
/// removed when the server is gone (`pg_ctl` exits 3).
fn running(partition: &Path, spec: &Spec) -> std::result::Result<bool, String> {
    let pid = Path::new(&spec.pgdata).join("postmaster.pid");
    if pid.symlink_metadata().is_err() {
        return Ok(false);
    }
    let pg_ctl = program(spec, "pg_ctl")?;
    match run(partition, &pg_ctl, &["status", "-D", &spec.pgdata], None)? {
        (Some(0), _) => Ok(true),
        (Some(3), _) => {
            std::fs::remove_file(&pid)
                .map_err(|e| format!("cannot remove `{}`: {e}", pid.display()))?;
            Ok(false)
        }
        (_, text) => Err(format!("`pg_ctl status` failed: {text}")),
    }
}
