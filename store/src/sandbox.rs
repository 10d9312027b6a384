//! The build sandbox (design §5, issue 16): each command of a `cmmi` or `shell` build runs in
//! its own mount, PID, IPC, UTS and network namespaces, as Nix's builds do.
//!
//! What the command sees, set up between `fork` and `exec` ([`Sandbox::apply`]): a root that is
//! a read-only tmpfs holding the host's `/usr`, `/bin`, `/lib*`, `/etc` bound read-only (the
//! host's toolchain: the sandbox isolates, it does not purify), a few devices, a fresh `/proc`,
//! its own tmpfs `/tmp`; the store read-only (an overlay of it, so that the output's mount point
//! exists for the build's eyes only); the output, a scratch directory of `var/tmp` bound at the
//! output's store path, writable; the build's scratch directory (its `HOME`, `TMPDIR`, sources)
//! writable at its own path; the derivation's input files read-only at theirs; a network of
//! loopback only. Nothing else of the host: not `/root`, `/home`, other partitions, sockets.
//!
//! With a build user ([`Sandbox::run_as`], when slapstore runs as root), the command runs as
//! that unprivileged user once the mounts are made: no supplementary groups, its uid and gid,
//! the parent-death signal set again (a change of credentials clears it).
//!
//! The command is pid 1 of its PID namespace (the step before `exec` forks once more and waits,
//! forwarding the exit status), so when it ends, or is killed with its process group, every
//! process it left is killed by the kernel. Only async-signal-safe system calls run after `fork`:
//! everything they need is prepared beforehand ([`Plan`]).

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::UnshareFlags;

use crate::error::{io_error, Result};

/// The host directories a build sees read-only (or their symlinks, on merged-`/usr` systems).
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// The host devices a build may open.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The sandbox of one build: where its root and overlay are mounted, and what they hold.
pub struct Sandbox {
    /// The steps, each with what it does in words for the log when it fails.
    ops: Arc<Vec<(CString, Op)>>,
    root: CString,
    /// The build user's uid and gid, when the command runs as one.
    user: Option<(u32, u32)>,
}

/// One step of the setup.
#[derive(Clone)]
enum Op {
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: MountFlags,
        data: CString,
    },
    Bind {
        source: CString,
        target: CString,
    },
    ReadOnly {
        target: CString,
        bind: bool,
    },
    Mkdir(CString),
    Touch(CString),
    Symlink {
        target: CString,
        link: CString,
    },
}

impl Sandbox {
    /// The sandbox of a build whose scratch directory is `scratch` (commands run under
    /// `<scratch>/build`), writing the output `host_out` that it sees at `out` in `store_dir`,
    /// reading the host files `inputs`. Creates the (empty) mount points of its root and overlay
    /// under `<scratch>/sandbox`.
    pub fn new<'a>(
        scratch: &Path,
        store_dir: &Path,
        out: &Path,
        host_out: &Path,
        inputs: impl IntoIterator<Item = &'a Path>,
    ) -> Result<Sandbox> {
        let root = scratch.join("sandbox/root");
        let overlay = scratch.join("sandbox/overlay");
        for d in [&root, &overlay] {
            std::fs::create_dir_all(d).map_err(|e| io_error(d, e))?;
        }
        for (what, path) in [("store", store_dir), ("scratch", scratch)] {
            let text = path.as_os_str().as_bytes();
            if text.iter().any(|b| b",:\\".contains(b)) {
                return Err(crate::error::StoreError::Sandbox(format!(
                    "the {what} directory `{}` has a `,`, `:` or `\\` in its path, which an \
                     overlay mount cannot name",
                    path.display()
                )));
            }
        }
        let name = out
            .file_name()
            .ok_or_else(|| io_error(out, io::Error::other("an output path has a name")))?;
        let mut b = Builder {
            ops: Vec::new(),
            root: root.clone(),
        };
        b.mount("tmpfs", &root, "tmpfs", MountFlags::empty(), "mode=0755")?;
        for dir in SYSTEM {
            let host = Path::new(dir);
            match std::fs::symlink_metadata(host) {
                Ok(m) if m.file_type().is_symlink() => {
                    let target = std::fs::read_link(host).map_err(|e| io_error(host, e))?;
                    b.symlink(&target, host)?;
                }
                Ok(m) if m.is_dir() => {
                    b.mkdirs(host)?;
                    b.bind(host, host, true)?;
                }
                _ => {}
            }
        }
        b.mkdirs(Path::new("/tmp"))?;
        b.mount("tmpfs", &root.join("tmp"), "tmpfs", nosuid(), "mode=1777")?;
        b.mkdirs(Path::new("/dev/shm"))?;
        b.mount(
            "tmpfs",
            &root.join("dev/shm"),
            "tmpfs",
            nosuid(),
            "mode=1777",
        )?;
        for dev in DEVICES {
            let host = Path::new("/dev").join(dev);
            if host.exists() {
                b.touch(&host)?;
                b.bind(&host, &host, false)?;
            }
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            b.symlink(Path::new(target), &Path::new("/dev").join(link))?;
        }
        b.mkdirs(Path::new("/proc"))?;
        b.mount(
            "proc",
            &root.join("proc"),
            "proc",
            nosuid() | MountFlags::NOEXEC,
            "",
        )?;
        // the store, read-only, through an overlay whose upper layer (a tmpfs that dies with
        // the namespace) holds the output's mount point
        b.mount("tmpfs", &overlay, "tmpfs", MountFlags::empty(), "mode=0755")?;
        for d in ["upper", "work"] {
            b.ops.push(Op::Mkdir(c_path(&overlay.join(d))?));
        }
        b.ops
            .push(Op::Mkdir(c_path(&overlay.join("upper").join(name))?));
        b.mkdirs(store_dir)?;
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            store_dir.display(),
            overlay.join("upper").display(),
            overlay.join("work").display()
        );
        b.mount("overlay", &b.inside(store_dir), "overlay", nosuid(), &data)?;
        b.bind(host_out, out, false)?;
        b.ops.push(Op::ReadOnly {
            target: c_path(&b.inside(store_dir))?,
            bind: true,
        });
        let build = scratch.join("build");
        b.mkdirs(&build)?;
        b.bind(&build, &build, false)?;
        // sorted, so that a directory comes before what it holds, which it shows already
        let mut inputs: Vec<&Path> = inputs.into_iter().collect();
        inputs.sort();
        let mut shown: Vec<&Path> = vec![store_dir, &build];
        for input in inputs {
            if !input.is_absolute() || !input.exists() || shown.iter().any(|d| input.starts_with(d))
            {
                continue;
            }
            shown.push(input);
            if input.is_dir() {
                b.mkdirs(input)?;
            } else {
                if let Some(parent) = input.parent() {
                    b.mkdirs(parent)?;
                }
                b.touch(input)?;
            }
            b.bind(input, input, true)?;
        }
        b.ops.push(Op::ReadOnly {
            target: c_path(&root)?,
            bind: false,
        });
        Ok(Sandbox {
            ops: Arc::new(b.ops.iter().map(|op| (describe(op), op.clone())).collect()),
            root: c_path(&root)?,
            user: None,
        })
    }

    /// Makes the commands run as the user `uid`, group `gid` (a build user).
    pub fn run_as(&mut self, uid: u32, gid: u32) {
        self.user = Some((uid, gid));
    }

    /// The uid and gid the commands run as, when not slapstore's.
    pub fn user(&self) -> Option<(u32, u32)> {
        self.user
    }

    /// Makes `command` (whose working directory is `cwd`, inside the sandbox) run in the
    /// sandbox. Its other `pre_exec` steps (its process group) must be registered before.
    pub fn apply(&self, command: &mut Command, cwd: &Path) -> Result<()> {
        let plan = Plan {
            ops: Arc::clone(&self.ops),
            root: self.root.clone(),
            cwd: c_path(cwd)?,
            user: self.user,
        };
        // SAFETY: `Plan::enter` makes only async-signal-safe system calls and allocates nothing.
        unsafe {
            command.pre_exec(move || plan.enter());
        }
        Ok(())
    }
}

/// The step whose failure the sandbox wrote last in the build log `log`, in words.
pub fn failed_step(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("slapstore: build sandbox: "))
        .map_or_else(|| "setting it up failed".to_owned(), str::to_owned)
}

fn nosuid() -> MountFlags {
    MountFlags::NOSUID | MountFlags::NODEV
}

/// Builds the list of [`Op`]s, paths inside the sandbox taken under its root.
struct Builder {
    ops: Vec<Op>,
    root: PathBuf,
}

impl Builder {
    /// `path` (absolute, as the build sees it) on the host, under the root.
    fn inside(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<()> {
        self.ops.push(Op::Mount {
            source: c_str(source)?,
            target: c_path(target)?,
            fstype: c_str(fstype)?,
            flags,
            data: c_str(data)?,
        });
        Ok(())
    }

    /// Binds the host's `source` at `target` inside, read-only when `read_only`.
    fn bind(&mut self, source: &Path, target: &Path, read_only: bool) -> Result<()> {
        let target = c_path(&self.inside(target))?;
        self.ops.push(Op::Bind {
            source: c_path(source)?,
            target: target.clone(),
        });
        if read_only {
            self.ops.push(Op::ReadOnly { target, bind: true });
        }
        Ok(())
    }

    /// `mkdir -p` of `path` inside.
    fn mkdirs(&mut self, path: &Path) -> Result<()> {
        let mut at = self.root.clone();
        for part in path.strip_prefix("/").unwrap_or(path).components() {
            at.push(part);
            self.ops.push(Op::Mkdir(c_path(&at)?));
        }
        Ok(())
    }

    fn touch(&mut self, path: &Path) -> Result<()> {
        let inside = self.inside(path);
        self.ops.push(Op::Touch(c_path(&inside)?));
        Ok(())
    }

    fn symlink(&mut self, target: &Path, link: &Path) -> Result<()> {
        let inside = self.inside(link);
        self.ops.push(Op::Symlink {
            target: c_path(target)?,
            link: c_path(&inside)?,
        });
        Ok(())
    }
}

/// What `op` does, as the log says when it fails.
fn describe(op: &Op) -> CString {
    let text = match op {
        Op::Mount { fstype, target, .. } => format!(
            "mounting {} at {}",
            fstype.to_string_lossy(),
            target.to_string_lossy()
        ),
        Op::Bind { source, target } => format!(
            "binding {} at {}",
            source.to_string_lossy(),
            target.to_string_lossy()
        ),
        Op::ReadOnly { target, .. } => {
            format!("making {} read-only", target.to_string_lossy())
        }
        Op::Mkdir(p) => format!("creating the directory {}", p.to_string_lossy()),
        Op::Touch(p) => format!("creating the file {}", p.to_string_lossy()),
        Op::Symlink { link, .. } => format!("creating the symlink {}", link.to_string_lossy()),
    };
    CString::new(format!("slapstore: build sandbox: {text} failed\n")).unwrap_or_default()
}

fn c_str(text: &str) -> Result<CString> {
    CString::new(text)
        .map_err(|_| crate::error::StoreError::Sandbox(format!("`{text}` contains a NUL byte")))
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io_error(path, io::Error::other("the path contains a NUL byte")))
}

/// Everything the steps between `fork` and `exec` need, allocated beforehand.
struct Plan {
    ops: Arc<Vec<(CString, Op)>>,
    root: CString,
    cwd: CString,
    user: Option<(u32, u32)>,
}

impl Plan {
    /// Runs in the forked child: new namespaces, a fork whose child (pid 1 of the new PID
    /// namespace) sets up the mounts and goes on to `exec`, while this process waits for it and
    /// exits as it did.
    fn enter(&self) -> io::Result<()> {
        let flags = UnshareFlags::NEWNS
            | UnshareFlags::NEWPID
            | UnshareFlags::NEWIPC
            | UnshareFlags::NEWUTS
            | UnshareFlags::NEWNET;
        // SAFETY: the process is single-threaded here (just forked); FILES is not unshared.
        if let Err(e) = unsafe { rustix::thread::unshare_unsafe(flags) } {
            say(c"slapstore: build sandbox: cannot create namespaces (unshare)\n");
            return Err(e.into());
        }
        // SAFETY: fork in a single-threaded child; both sides only make system calls.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid > 0 {
            wait_and_exit(pid);
        }
        // SAFETY: prctl with these arguments has no memory effects.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        }
        self.setup().map_err(io::Error::from)
    }

    fn setup(&self) -> std::result::Result<(), rustix::io::Errno> {
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .inspect_err(|_| say(c"slapstore: build sandbox: making / private failed\n"))?;
        for (what, op) in self.ops.iter() {
            run(op).inspect_err(|_| say(what))?;
        }
        rustix::system::sethostname(b"localhost")?;
        loopback_up().inspect_err(|_| say(c"slapstore: build sandbox: bringing up lo failed\n"))?;
        rustix::process::chdir(self.root.as_c_str())?;
        rustix::process::pivot_root(c".", c".")
            .inspect_err(|_| say(c"slapstore: build sandbox: pivot_root failed\n"))?;
        rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
        if let Some((uid, gid)) = self.user {
            become_user(uid, gid).inspect_err(|_| {
                say(c"slapstore: build sandbox: becoming the build user failed\n")
            })?;
        }
        rustix::process::chdir(self.cwd.as_c_str()).inspect_err(|_| {
            say(c"slapstore: build sandbox: entering the build directory failed\n")
        })
    }
}

fn run(op: &Op) -> std::result::Result<(), rustix::io::Errno> {
    match op {
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => rustix::mount::mount(
            source.as_c_str(),
            target.as_c_str(),
            fstype.as_c_str(),
            *flags,
            Some(data.as_c_str()),
        ),
        Op::Bind { source, target } => {
            rustix::mount::mount_bind(source.as_c_str(), target.as_c_str())
        }
        Op::ReadOnly { target, bind } => {
            let mut flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
            if *bind {
                flags |= MountFlags::BIND;
            }
            rustix::mount::mount_remount(target.as_c_str(), flags, c"")
        }
        Op::Mkdir(path) => match rustix::fs::mkdir(path.as_c_str(), Mode::from_raw_mode(0o755)) {
            Err(rustix::io::Errno::EXIST) => Ok(()),
            other => other,
        },
        Op::Touch(path) => rustix::fs::open(
            path.as_c_str(),
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map(drop),
        Op::Symlink { target, link } => rustix::fs::symlink(target.as_c_str(), link.as_c_str()),
    }
}

/// Drops root for the build user: no supplementary groups, then the gid, then the uid (real,
/// effective and saved: no way back), and the parent-death signal again.
fn become_user(uid: u32, gid: u32) -> std::result::Result<(), rustix::io::Errno> {
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    let (uid, gid) = (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    );
    set_thread_groups(&[])?;
    set_thread_res_gid(gid, gid, gid)?;
    set_thread_res_uid(uid, uid, uid)?;
    // SAFETY: prctl with these arguments has no memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    Ok(())
}

/// Writes `text` to standard error (the build log); async-signal-safe.
fn say(text: &CStr) {
    let _ = rustix::io::write(
        // SAFETY: descriptor 2 stays open for the life of the process.
        unsafe { rustix::fd::BorrowedFd::borrow_raw(2) },
        text.to_bytes(),
    );
}

/// Brings the loopback interface of the new network namespace up (it starts down).
fn loopback_up() -> std::result::Result<(), rustix::io::Errno> {
    // SAFETY: plain system calls on a socket this function owns and an `ifreq` on the stack.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(rustix::io::Errno::from_raw_os_error(errno()));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = errno();
        libc::close(fd);
        if rc != 0 {
            return Err(rustix::io::Errno::from_raw_os_error(err));
        }
    }
    Ok(())
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// In the process between the caller and the sandboxed command: closes what it inherited (so
/// the caller's `spawn` sees the command's `exec`, not this process's exit), waits for the
/// command and exits with its status, or dies of its signal.
fn wait_and_exit(pid: libc::pid_t) -> ! {
    // SAFETY: system calls only; the descriptors closed are not used by this process again.
    unsafe {
        libc::close_range(3, libc::c_uint::MAX, 0);
        let mut status = 0;
        loop {
            let rc = libc::waitpid(pid, &mut status, 0);
            if rc == pid {
                break;
            }
            if rc < 0 && errno() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        let signal = libc::WTERMSIG(status);
        libc::signal(signal, libc::SIG_DFL);
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_mount_points_under_its_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let scratch = dir.path().join("var/tmp/x");
        let sandbox = Sandbox::new(
            &scratch,
            &store,
            &store.join("abc-x"),
            &scratch.join("out"),
            [Path::new("relative-is-skipped")],
        )
        .expect("sandbox");
        let root = scratch.join("sandbox/root");
        assert!(root.is_dir());
        for (_, op) in sandbox.ops.iter() {
            if let Op::Bind { target, .. } | Op::Mkdir(target) | Op::Touch(target) = op {
                let t = Path::new(std::ffi::OsStr::from_bytes(target.to_bytes()));
                assert!(
                    t.starts_with(&root) || t.starts_with(scratch.join("sandbox/overlay")),
                    "{t:?} is outside the sandbox"
                );
            }
        }
        // the output's mount point is in the overlay's upper layer, not in the store
        assert!(!store.join("abc-x").exists());
        let bad = dir.path().join("a,b");
        assert!(Sandbox::new(&bad, &store, &store.join("abc-x"), &bad, []).is_err());
    }
}
