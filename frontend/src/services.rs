//! Running instances' services under supervisord: one supervisord per root, its files under
//! `<root>/var/supervisor/` (a 0700 directory: config, socket, pid, log), one program
//! `<instance>-<service>` per executable of a partition's `etc/service/` (restarted when it exits)
//! and `etc/run/` (run once), each its own process group so that `supervisorctl update` restarts
//! only the programs whose entry changed. An instance is started when its program file
//! `programs/<instance>.conf` exists; stopping it removes the file. Each entry carries a hash of
//! its wrapper's content, so that after an upgrade or a rollback exactly the services whose
//! wrapper changed are restarted. An instance with its own user (`slapstore_store::users`) has
//! its programs run as that user (`user=`; supervisord runs as root). supervisord and supervisorctl are run with arguments, never
//! through a shell; a path in an entry is limited to characters that need no quoting there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The kinds of service directories of a partition, and whether supervisord restarts them.
const KINDS: [(&str, bool); 2] = [("etc/service", true), ("etc/run", false)];

/// Errors: what went wrong, in words naming the file or program.
pub type Result<T> = std::result::Result<T, String>;

/// One service of an instance: its program name, wrapper and whether it is restarted on exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub instance: String,
    pub name: String,
    pub program: String,
    pub wrapper: PathBuf,
    pub restart: bool,
}

/// A service's state as supervisord reports it (`STOPPED` when supervisord does not run it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub service: Service,
    pub state: String,
    pub pid: Option<u32>,
}

/// An instance whose services are to run: its name, partition and user (when it has its own).
#[derive(Debug, Clone)]
pub struct Target {
    pub instance: String,
    pub partition: PathBuf,
    pub user: Option<String>,
}

/// The supervisord of a store root.
pub struct Supervisor {
    dir: PathBuf,
    logs: PathBuf,
}

impl Supervisor {
    /// The supervisor of `root` (nothing is made until a service starts).
    pub fn new(root: &Path) -> Supervisor {
        Supervisor {
            dir: root.join("var/supervisor"),
            logs: root.join("var/log/services"),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("supervisord.conf")
    }

    fn program_file(&self, instance: &str) -> PathBuf {
        self.dir.join("programs").join(format!("{instance}.conf"))
    }

    /// Whether `instance` is started (its programs are configured).
    pub fn is_started(&self, instance: &str) -> bool {
        self.program_file(instance).is_file()
    }

    /// Configures the instance's services (run as `user`, when it has one) and starts
    /// supervisord if needed; programs added or changed are (re)started, the others left running.
    pub fn start(
        &self,
        instance: &str,
        partition: &Path,
        user: Option<&str>,
    ) -> Result<Vec<Service>> {
        let services = services(instance, partition)?;
        self.write_programs(instance, &services, user)?;
        self.apply_programs()?;
        Ok(services)
    }

    /// [`Supervisor::start`] and [`Supervisor::stop`] of many instances at once: their program
    /// files written or removed, then one `supervisorctl update` (supervisord started when an
    /// instance is to run, shut down when none is left). The services of each started one.
    pub fn apply(&self, start: &[Target], stop: &[&str]) -> Result<Vec<Vec<Service>>> {
        let mut started = Vec::with_capacity(start.len());
        for t in start {
            started.push(self.configure(&t.instance, &t.partition, t.user.as_deref())?);
        }
        let mut removed = false;
        for instance in stop {
            removed |= self.unconfigure(instance)?;
        }
        // a supervisord that is down is started only for instances to start
        if !start.is_empty() || (removed && self.is_up()) {
            self.update()?;
        }
        Ok(started)
    }

    /// Writes the entries of the instance's services (run as `user`, when it has one) without
    /// telling supervisord: [`Supervisor::update`] does, once for many instances.
    pub fn configure(
        &self,
        instance: &str,
        partition: &Path,
        user: Option<&str>,
    ) -> Result<Vec<Service>> {
        let services = services(instance, partition)?;
        self.write_programs(instance, &services, user)?;
        Ok(services)
    }

    /// Removes the entries of the instance's services without telling supervisord
    /// ([`Supervisor::update`] does); whether there were any.
    pub fn unconfigure(&self, instance: &str) -> Result<bool> {
        let file = self.program_file(instance);
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot remove `{}`: {e}", file.display())),
        }
    }

    /// Makes supervisord run what the entries say, in one `supervisorctl update` (or its
    /// start, which reads them all): programs added, changed or removed started, restarted
    /// or stopped; shut down when no entry is left.
    pub fn update(&self) -> Result<()> {
        let programs = self.dir.join("programs");
        let empty = std::fs::read_dir(&programs)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        if !empty {
            return self.apply_programs();
        }
        if self.is_up() {
            self.ctl(&["update"])?;
            self.ctl(&["shutdown"])?;
        }
        Ok(())
    }

    /// Rewrites the entries of a started instance after its partition switched generation:
    /// supervisord restarts the services whose wrapper changed and stops the removed ones.
    pub fn refresh(&self, instance: &str, partition: &Path, user: Option<&str>) -> Result<()> {
        if !self.is_started(instance) {
            return Ok(());
        }
        self.start(instance, partition, user).map(|_| ())
    }

    /// Stops the instance's services and forgets them; supervisord shuts down when it runs no
    /// program any more.
    pub fn stop(&self, instance: &str) -> Result<()> {
        let file = self.program_file(instance);
        if !file.exists() {
            return Ok(());
        }
        std::fs::remove_file(&file)
            .map_err(|e| format!("cannot remove `{}`: {e}", file.display()))?;
        if !self.is_up() {
            return Ok(());
        }
        self.ctl(&["update"])?;
        let programs = self.dir.join("programs");
        let empty = std::fs::read_dir(&programs)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        if empty {
            self.ctl(&["shutdown"])?;
        }
        Ok(())
    }

    /// Restarts the instance's services (starting the instance if it was stopped).
    pub fn restart(
        &self,
        instance: &str,
        partition: &Path,
        user: Option<&str>,
    ) -> Result<Vec<Service>> {
        let services = self.start(instance, partition, user)?;
        if !services.is_empty() {
            let mut args = vec!["restart".to_owned()];
            args.extend(services.iter().map(|s| s.program.clone()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.ctl(&args)?;
        }
        Ok(services)
    }

    /// The state of each service of the instance's partition.
    pub fn status(&self, instance: &str, partition: &Path) -> Result<Vec<Status>> {
        let services = services(instance, partition)?;
        let states = if self.is_started(instance) && self.is_up() {
            self.states()?
        } else {
            Vec::new()
        };
        Ok(services
            .into_iter()
            .map(|service| {
                let found = states.iter().find(|(p, _, _)| *p == service.program);
                Status {
                    state: found.map_or("STOPPED".to_owned(), |(_, s, _)| s.clone()),
                    pid: found.and_then(|(_, _, pid)| *pid),
                    service,
                }
            })
            .collect())
    }

    /// `supervisorctl status`: (program, state, pid) per line.
    fn states(&self) -> Result<Vec<(String, String, Option<u32>)>> {
        let out = self.ctl_output(&["status"])?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let program = words.next()?.to_owned();
                let state = words.next()?.to_owned();
                let pid = line
                    .split_once(" pid ")
                    .and_then(|(_, rest)| rest.split(',').next())
                    .and_then(|p| p.trim().parse().ok());
                Some((program, state, pid))
            })
            .collect())
    }

    fn write_programs(
        &self,
        instance: &str,
        services: &[Service],
        user: Option<&str>,
    ) -> Result<()> {
        self.write_config()?;
        let mut text = format!("; services of instance {instance}, written by slapstore\n");
        let user = match user {
            Some(u) if is_plain(u) => format!("user={u}\n"),
            Some(u) => {
                return Err(format!(
                    "instance `{instance}`: the user `{u}` needs quoting"
                ))
            }
            None => String::new(),
        };
        for s in services {
            let content = std::fs::read(&s.wrapper)
                .map_err(|e| format!("cannot read `{}`: {e}", s.wrapper.display()))?;
            let directory = s
                .wrapper
                .parent()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .unwrap_or(Path::new("/"));
            text.push_str(&format!(
                "\n[program:{program}]\ncommand={command}\ndirectory={directory}\n\
                 autostart=true\nautorestart={restart}\nstartsecs={startsecs}\n\
                 stopasgroup=true\nkillasgroup=true\nredirect_stderr=true\n\
                 stdout_logfile={log}\nenvironment=SLAPSTORE_WRAPPER_HASH=\"{hash}\"\n{user}",
                program = s.program,
                command = plain(&s.wrapper)?,
                directory = plain(directory)?,
                restart = s.restart,
                startsecs = if s.restart { 1 } else { 0 },
                log = plain(&self.logs.join(format!("{}.log", s.program)))?,
                hash = blake3::hash(&content).to_hex(),
            ));
        }
        let file = self.program_file(instance);
        write_atomic(&file, &text)
    }

    fn write_config(&self) -> Result<()> {
        make_private_dir(&self.dir)?;
        for d in [self.dir.join("programs"), self.logs.clone()] {
            std::fs::create_dir_all(&d)
                .map_err(|e| format!("cannot make `{}`: {e}", d.display()))?;
        }
        let socket = self.dir.join("supervisor.sock");
        // sockaddr_un holds 108 bytes
        if socket.as_os_str().len() >= 100 {
            return Err(format!(
                "the supervisor's socket `{}` is too long a path for a Unix socket: use a \
                 shorter --root",
                socket.display()
            ));
        }
        let d = plain(&self.dir)?;
        let text = format!(
            "; slapstore's supervisord for this root (written by slapstore)\n\
             [unix_http_server]\nfile={d}/supervisor.sock\nchmod=0700\n\n\
             [supervisord]\npidfile={d}/supervisord.pid\nlogfile={d}/supervisord.log\n\
             childlogdir={logs}\ndirectory={d}\n\n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n\n\
             [include]\nfiles = {d}/programs/*.conf\n",
            logs = plain(&self.logs)?,
        );
        if std::fs::read_to_string(self.config()).ok().as_deref() != Some(text.as_str()) {
            write_atomic(&self.config(), &text)?;
        }
        Ok(())
    }

    /// Whether supervisord listens on its socket (a connection accepted; no `supervisorctl`,
    /// whose Python start costs more than the rest of a command).
    fn is_up(&self) -> bool {
        self.config().is_file()
            && std::os::unix::net::UnixStream::connect(self.dir.join("supervisor.sock")).is_ok()
    }

    /// Makes supervisord run what the program files say: `supervisorctl update` when it runs
    /// (the programs whose entry changed restarted), else supervisord started, which reads
    /// them all and starts them itself (an `update` of 100 new programs takes seconds).
    fn apply_programs(&self) -> Result<()> {
        if self.is_up() {
            self.ctl(&["update"])
        } else {
            self.ensure_running()
        }
    }

    fn ensure_running(&self) -> Result<()> {
        if self.is_up() {
            return Ok(());
        }
        let status = Command::new("supervisord")
            .arg("-c")
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| {
                format!("cannot run supervisord ({e}): install it (`apt-get install supervisor`)")
            })?;
        if !status.status.success() {
            return Err(format!(
                "supervisord failed to start ({}): {}; its log is `{}`",
                status.status,
                String::from_utf8_lossy(&status.stderr).trim(),
                self.dir.join("supervisord.log").display()
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.is_up() {
            if Instant::now() > deadline {
                return Err(format!(
                    "supervisord did not answer on `{}` within 10 s; its log is `{}`",
                    self.dir.join("supervisor.sock").display(),
                    self.dir.join("supervisord.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn ctl(&self, args: &[&str]) -> Result<()> {
        let out = self.ctl_output(args)?;
        // supervisorctl exits 0 even for some failures; they say ERROR
        if let Some(line) = out.lines().find(|l| l.contains("ERROR")) {
            return Err(format!("supervisorctl {}: {line}", args.join(" ")));
        }
        Ok(())
    }

    fn ctl_output(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("supervisorctl")
            .arg("-c")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!("cannot run supervisorctl ({e}): install it (`apt-get install supervisor`)")
            })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // `status` exits 3 when a program is not running: its output is still the answer
        if !out.status.success() && args != ["status"] {
            return Err(format!(
                "supervisorctl {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(text)
    }
}

/// The executables of a partition's `etc/service/` and `etc/run/`, sorted by name.
pub fn services(instance: &str, partition: &Path) -> Result<Vec<Service>> {
    let mut out = Vec::new();
    for (kind, restart) in KINDS {
        let dir = partition.join(kind);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read `{}`: {e}", dir.display())),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
            names.push(e.file_name());
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let Some(name) = name.to_str().filter(|n| is_plain(n)) else {
                return Err(format!(
                    "service `{}`: a service's name is made of letters, digits and `-_.+@`",
                    path.display()
                ));
            };
            let executable = std::fs::metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            });
            if !executable {
                continue;
            }
            out.push(Service {
                instance: instance.to_owned(),
                name: name.to_owned(),
                program: format!("{instance}-{name}"),
                wrapper: path,
                restart,
            });
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &out {
        if !seen.insert(&s.program) {
            return Err(format!(
                "instance `{instance}` has two services named `{}` (in etc/service and etc/run)",
                s.name
            ));
        }
    }
    Ok(out)
}

/// Whether `text` needs no quoting in a supervisord entry (no shlex specials, no `%`, no `;`).
fn is_plain(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(['.', '-'])
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+@".contains(c))
}

/// A path as it is written in the config, if every character of it is plain.
fn plain(path: &Path) -> Result<String> {
    let text = path.to_str().unwrap_or("");
    let ok = text.starts_with('/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+@/".contains(c));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{}`: supervisord is given only paths of letters, digits and `-_.+@/` (use a \
             root whose path has no other character)",
            path.display()
        ))
    }
}

fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make `{}`: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make `{}` private: {e}", dir.display()))
}

fn write_atomic(file: &Path, text: &str) -> Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot write in `{}`: {e}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(|e| format!("cannot write `{}`: {e}", file.display()))?;
    tmp.persist(file)
        .map_err(|e| format!("cannot write `{}`: {e}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_that_would_need_quoting_are_refused() {
        assert!(is_plain("server-1.2_a+b@c"));
        for bad in ["", ".hidden", "-x", "a b", "a;b", "a%b", "a$b", "a\nb", "é"] {
            assert!(!is_plain(bad), "{bad:?}");
        }
        assert!(plain(Path::new("/tmp/x/etc/service/s")).is_ok());
        assert!(plain(Path::new("relative")).is_err());
        assert!(plain(Path::new("/tmp/a b")).is_err());
        assert!(plain(Path::new("/tmp/%(ENV_HOME)s")).is_err());
    }

    #[test]
    fn services_are_the_executables_of_both_directories() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        for (file, mode) in [
            ("etc/service/web", 0o755),
            ("etc/run/once", 0o755),
            ("etc/service/README", 0o644),
        ] {
            let f = p.join(file);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::write(&f, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let found = services("i", p).expect("services");
        let names: Vec<_> = found
            .iter()
            .map(|s| (s.program.as_str(), s.restart))
            .collect();
        assert_eq!(names, [("i-web", true), ("i-once", false)]);
        std::fs::write(p.join("etc/run/web"), "").expect("write");
        std::fs::set_permissions(
            p.join("etc/run/web"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        assert!(services("i", p)
            .expect_err("twice")
            .contains("two services"));
        std::fs::write(p.join("etc/run/a b"), "").expect("write");
        assert!(services("i", p).expect_err("bad name").contains("a b"));
    }
}
