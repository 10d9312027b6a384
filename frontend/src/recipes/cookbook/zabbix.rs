//! `slapos.cookbook:zabbixagent`, natively: a whole Zabbix agent instance, as the cookbook's
//! `BaseSlapRecipe` lays it out in the partition (`bin`, `etc`, `etc/run`, `srv`, `var/log`,
//! ...: mutable directories, mode 0700).
//!
//! - cron: `etc/run/crond`, dcron's `crond` (`dcrond_binary`) on `etc/cron.d`, `etc/crontabs`
//!   and `srv/cronstamps`, what a job prints caught by `bin/catchcron` into a dated file of
//!   `var/log/cron-output` (the cookbook's `catdatefile`);
//! - logrotate: `etc/logrotate.conf` (`include etc/logrotate.d`), run daily by the cron entry
//!   `etc/cron.d/logrotate` (`logrotate_binary -s srv/logrotate.status`), and the agent's log
//!   entry `etc/logrotate.d/zabbix_agentd` (daily, 30 kept, compressed, in
//!   `srv/backup/logrotate`);
//! - the agent: `etc/zabbix_agentd.conf` (listening on the partition's first IPv6 address,
//!   port 10050, for instance parameters `server` and `hostname`, with
//!   `custom-user-parameter`'s lines), `bin/zabbixagentd`, which starts `zabbix_agentd_binary`
//!   on it (the agent forks into the background), and the service `etc/run/zabbixagentd` (the
//!   cookbook's `svcdaemon`), which starts it and then watches its pid file every 5 s, and on
//!   SIGTERM, SIGINT or SIGQUIT stops it (SIGTERM, SIGKILL after 5 s).
//!
//! It publishes `ip`, `name` (the hostname) and `port`. Written as POSIX shell scripts, not
//! the cookbook's Python ones; every path quoted. `server` and `hostname` come from the
//! requester and go into the agent's configuration: a newline in either is refused (it would
//! add settings, `UserParameter`s that run commands among them).

use crate::error::Result;
use crate::pystr::path_join;
use crate::recipes::instance::{add_file, relative, FileSpec};
use crate::recipes::wrapper::quote;
use crate::recipes::Part;

use super::cron::crond_script;

/// The port the cookbook's agent listens on.
const PORT: u16 = 10050;

/// The directories of the cookbook's `default_directory_list`, relative to the partition.
const DEFAULT_DIRECTORIES: &[&str] = &[
    "bin",
    "sbin",
    "srv",
    "srv/backup",
    "etc",
    "etc/run",
    "etc/report",
    "etc/promise",
    "var",
    "var/xml_report",
    "var/log",
    "var/run",
    "tmp",
];

/// `zabbixagent`.
pub fn zabbixagent(part: &mut Part) -> Result<()> {
    let Some(slap) = part.r.settings.slap.clone() else {
        return Err(part.option_error(
            "recipe",
            "this recipe talks to the master: it runs only in an instance (`slapstore instance`)",
        ));
    };
    part.set("eggs", "slapos.cookbook");
    let crond = part.require("dcrond_binary")?;
    let logrotate = part.require("logrotate_binary")?;
    let agentd = part.require("zabbix_agentd_binary")?;
    let parameter = |part: &Part, key: &str| -> Result<String> {
        let value = slap.parameters.get(key).ok_or_else(|| {
            part.error(format!(
                "instance parameter `{key}` is missing: the agent needs `hostname` and `server`"
            ))
        })?;
        if value.contains(['\n', '\r']) {
            return Err(part.error(format!(
                "instance parameter `{key}` holds a newline: it is one setting of the agent"
            )));
        }
        Ok(value.clone())
    };
    let hostname = parameter(part, "hostname")?;
    let server = parameter(part, "server")?;
    let user_parameters = slap
        .parameters
        .get("custom-user-parameter")
        .cloned()
        .unwrap_or_default();
    let ip = slap
        .computer
        .ipv6
        .first()
        .cloned()
        .ok_or_else(|| part.error("the partition has no IPv6 address for the agent"))?;

    let root = part.buildout("directory")?;
    let at = |rel: &str| path_join(&root, rel);
    let mut dirs: Vec<&str> = DEFAULT_DIRECTORIES.to_vec();
    dirs.extend([
        "srv/cronstamps",
        "var/log/cron-output",
        "etc/cron.d",
        "etc/crontabs",
        "etc/logrotate.d",
        "srv/backup/logrotate",
    ]);
    for dir in dirs {
        let rel = relative(part, "recipe", &at(dir))?;
        part.r.instance_output.dirs.insert(rel, 0o700);
    }

    // cron
    let catcher = at("bin/catchcron");
    let text = format!(
        "#!/bin/sh\ncat >> {}/\"$(date +%Y-%m-%d.%H:%M.%s)\".log\n",
        quote(&at("var/log/cron-output"))
    );
    file(part, "dcrond_binary", &catcher, text, 0o755)?;
    let text = crond_script(
        crond.trim(),
        &at("etc/cron.d"),
        &at("etc/crontabs"),
        &at("srv/cronstamps"),
        &catcher,
    );
    file(part, "dcrond_binary", &at("etc/run/crond"), text, 0o755)?;

    // logrotate
    let conf = at("etc/logrotate.conf");
    let text = format!("include {}", at("etc/logrotate.d"));
    file(part, "logrotate_binary", &conf, text, 0o600)?;
    let text = format!(
        "0 0 * * * {} -s {} {}",
        quote(logrotate.trim()),
        quote(&at("srv/logrotate.status")),
        quote(&conf)
    );
    file(
        part,
        "logrotate_binary",
        &at("etc/cron.d/logrotate"),
        text,
        0o644,
    )?;
    let log = at("var/log/zabbix_agentd.log");
    let text = format!(
        "\"{log}\" {{\n  daily\n  dateext\n  rotate 30\n  compress\n  notifempty\n  \
         sharedscripts\n  create\n  olddir {}\n}}\n",
        at("srv/backup/logrotate")
    );
    let entry = at("etc/logrotate.d/zabbix_agentd");
    file(part, "logrotate_binary", &entry, text, 0o644)?;

    // the agent
    let pid = at("var/run/zabbix_agentd.pid");
    let conf = at("etc/zabbix_agentd.conf");
    let text = agent_conf(&pid, &log, &ip, &server, &hostname, &user_parameters);
    file(part, "zabbix_agentd_binary", &conf, text, 0o600)?;
    let start = at("bin/zabbixagentd");
    let text = format!(
        "#!/bin/sh\nexec {} -c {}\n",
        quote(agentd.trim()),
        quote(&conf)
    );
    file(part, "zabbix_agentd_binary", &start, text, 0o755)?;
    let text = svcdaemon(&start, &pid);
    file(
        part,
        "zabbix_agentd_binary",
        &at("etc/run/zabbixagentd"),
        text,
        0o755,
    )?;

    let connection = &mut part.r.instance_output.connection;
    connection.insert("ip".to_owned(), ip);
    connection.insert("name".to_owned(), hostname);
    connection.insert("port".to_owned(), PORT.to_string());
    Ok(())
}

fn file(part: &mut Part, option: &str, path: &str, text: String, mode: u32) -> Result<()> {
    add_file(part, option, path, FileSpec::Text { text, mode })
}

/// The agent's configuration: the settings the cookbook's `zabbix_agentd.conf.in` gives.
fn agent_conf(
    pid: &str,
    log: &str,
    ip: &str,
    server: &str,
    hostname: &str,
    user_parameters: &str,
) -> String {
    let sensors = [
        ("temp1", "temp1", "  +", ".C.*"),
        ("temp2", "temp2", "  +", ".C.*"),
        ("core0", "Core 0", "  +", ".C.*"),
        ("core1", "Core 1", "  +", ".C.*"),
        ("core2", "Core 2", "  +", ".C.*"),
        ("core3", "Core 3", "  +", ".C.*"),
        ("fan1", "fan1", "  ", " .*"),
        ("fan2", "fan2", "  ", " .*"),
    ];
    let mut text = format!(
        "PidFile={pid}\nLogFile={log}\nLogFileSize=0\nSourceIP={ip}\nServer={server}\n\
         Hostname={hostname}\nListenPort={PORT}\nListenIP={ip}\nTimeout=15\n"
    );
    for (key, label, space, tail) in sensors {
        text.push_str(&format!(
            "UserParameter=custom_sensor.{key},sensors | grep \"{label}\" | \
             sed -e \"s/.*{space}//\" | sed -e \"s/{tail}//\"\n"
        ));
    }
    text.push('\n');
    text.push_str(user_parameters);
    text
}

/// The cookbook's `svcdaemon`: start the daemon, then check every 5 s that the process of
/// its pid file lives (exit 1 otherwise); a stop signal stops that process.
fn svcdaemon(start: &str, pid: &str) -> String {
    format!(
        "#!/bin/sh\n\
         pidfile={pid}\n\
         stop() {{\n\
         \x20 printf 'Killing on signal %s: ' \"$1\"\n\
         \x20 pid=$(cat \"$pidfile\" 2>/dev/null) || {{ echo 'Pid is none.'; exit 1; }}\n\
         \x20 kill -TERM \"$pid\" 2>/dev/null\n\
         \x20 if kill -0 \"$pid\" 2>/dev/null; then\n\
         \x20   sleep 5\n\
         \x20   kill -0 \"$pid\" 2>/dev/null && {{ printf 'with SIGKILL... '; kill -KILL \"$pid\"; }}\n\
         \x20 fi\n\
         \x20 echo done.\n\
         \x20 exit 0\n\
         }}\n\
         trap 'stop TERM' TERM\n\
         trap 'stop INT' INT\n\
         trap 'stop QUIT' QUIT\n\
         {start} || exit\n\
         echo 'Started '{start}\n\
         while :; do\n\
         \x20 sleep 5 > /dev/null 2>&1 & wait $!\n\
         \x20 pid=$(cat \"$pidfile\" 2>/dev/null) || {{ echo 'Pid is none'; exit 1; }}\n\
         \x20 kill -0 \"$pid\" || exit 1\n\
         done\n",
        pid = quote(pid),
        start = quote(start),
    )
}
