//! `slapos.cookbook:redis.server`: the Redis server's configuration at `config-file` (mode 0600;
//! the directives of the cookbook's `redis.conf.in`, with `pid-file`, `port`, `ipv6` as
//! `bind`, `server-dir` as `dir`, `log-file`, `unixsocket` (with `unixsocketperm 700`) and,
//! with `use-passwd`, `masterauth <passwd>`), the service `wrapper` that runs `server-bin` on it
//! and, when `promise-wrapper` is given, a wrapper that publishes a message with `cli-bin`
//! (`-h ipv6 -p port [-s unixsocket] publish Promise-Service 'SlapOS Promise'`): it succeeds
//! when the server answers. Both wrappers are the cookbook's `createWrapper` scripts.

use super::cron::is_true;
use crate::error::Result;
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::wrapper::create_wrapper;
use crate::recipes::Part;

/// An option that goes into the line-based configuration: refused when it holds a newline,
/// which would add directives nobody wrote.
fn line(part: &mut Part, key: &str) -> Result<String> {
    let value = part.require(key)?;
    if value.contains('\n') {
        return Err(part.option_error(key, "a value on one line: it holds a newline"));
    }
    Ok(value)
}

/// `redis.server`.
pub fn redis_server(part: &mut Part) -> Result<()> {
    let use_passwd = part.get("use-passwd")?.is_some_and(|v| is_true(&v));
    let master = if use_passwd {
        format!("masterauth {}", line(part, "passwd")?)
    } else {
        "# masterauth <master-password>".to_owned()
    };
    let config_file = part.require("config-file")?.trim().to_owned();
    let pid_file = line(part, "pid-file")?;
    let port = line(part, "port")?;
    let ipv6 = line(part, "ipv6")?;
    let server_dir = line(part, "server-dir")?;
    let log_file = line(part, "log-file")?;
    let unixsocket = part.get("unixsocket")?.filter(|s| !s.is_empty());
    let socket = match &unixsocket {
        Some(s) if s.contains('\n') => {
            return Err(part.option_error("unixsocket", "a path on one line: it holds a newline"))
        }
        Some(s) => format!("unixsocket {s}\nunixsocketperm 700"),
        None => String::new(),
    };
    let text = configuration(&Config {
        pid_file: &pid_file,
        port: &port,
        ipv6: &ipv6,
        socket: &socket,
        server_dir: &server_dir,
        log_file: &log_file,
        master: &master,
    });
    add_file(
        part,
        "config-file",
        &config_file,
        FileSpec::Text { text, mode: 0o600 },
    )?;
    let wrapper = part.require("wrapper")?;
    let server = part.require("server-bin")?;
    let text = create_wrapper(&[server, config_file], &[]);
    add_file(
        part,
        "wrapper",
        &wrapper,
        FileSpec::Text { text, mode: 0o700 },
    )?;
    let promise = part.get("promise-wrapper")?.unwrap_or_default();
    let promise = promise.trim();
    if !promise.is_empty() {
        let mut args = vec![
            part.require("cli-bin")?,
            "-h".into(),
            ipv6,
            "-p".into(),
            port,
        ];
        if let Some(s) = unixsocket {
            args.extend(["-s".into(), s]);
        }
        args.extend(["publish", "Promise-Service", "SlapOS Promise"].map(String::from));
        let text = create_wrapper(&args, &[]);
        add_file(
            part,
            "promise-wrapper",
            promise,
            FileSpec::Text { text, mode: 0o700 },
        )?;
    }
    Ok(())
}

/// What the configuration is made of.
struct Config<'a> {
    pid_file: &'a str,
    port: &'a str,
    ipv6: &'a str,
    /// `unixsocket` and `unixsocketperm` lines, or nothing.
    socket: &'a str,
    server_dir: &'a str,
    log_file: &'a str,
    /// `masterauth` line, or its comment.
    master: &'a str,
}

/// The directives of the cookbook's `redis.conf.in`, in its order.
fn configuration(c: &Config) -> String {
    format!(
        "# Redis configuration, written by slapstore for slapos.cookbook:redis.server\n\
         daemonize no\n\
         pidfile {pid}\n\
         port {port}\n\
         tcp-backlog 511\n\
         bind {bind}\n\
         {socket}\n\
         timeout 0\n\
         tcp-keepalive 0\n\
         loglevel notice\n\
         logfile {log}\n\
         databases 16\n\
         save 900 1\n\
         save 300 10\n\
         save 60 10000\n\
         stop-writes-on-bgsave-error yes\n\
         rdbcompression yes\n\
         rdbchecksum yes\n\
         dbfilename dump.rdb\n\
         dir {dir}\n\
         {master}\n\
         slave-serve-stale-data yes\n\
         slave-read-only yes\n\
         repl-diskless-sync no\n\
         repl-diskless-sync-delay 5\n\
         repl-disable-tcp-nodelay no\n\
         slave-priority 100\n\
         appendonly no\n\
         appendfilename \"appendonly.aof\"\n\
         appendfsync everysec\n\
         no-appendfsync-on-rewrite no\n\
         auto-aof-rewrite-percentage 100\n\
         auto-aof-rewrite-min-size 64mb\n\
         aof-load-truncated yes\n\
         lua-time-limit 5000\n\
         slowlog-log-slower-than 10000\n\
         slowlog-max-len 128\n\
         latency-monitor-threshold 0\n\
         notify-keyspace-events \"\"\n\
         hash-max-ziplist-entries 512\n\
         hash-max-ziplist-value 64\n\
         list-max-ziplist-entries 512\n\
         list-max-ziplist-value 64\n\
         set-max-intset-entries 512\n\
         zset-max-ziplist-entries 128\n\
         zset-max-ziplist-value 64\n\
         hll-sparse-max-bytes 3000\n\
         activerehashing yes\n\
         client-output-buffer-limit normal 0 0 0\n\
         client-output-buffer-limit slave 256mb 64mb 60\n\
         client-output-buffer-limit pubsub 32mb 8mb 60\n\
         hz 10\n\
         aof-rewrite-incremental-fsync yes\n",
        pid = c.pid_file,
        port = c.port,
        bind = c.ipv6,
        socket = c.socket,
        log = c.log_file,
        dir = c.server_dir,
        master = c.master,
    )
}
