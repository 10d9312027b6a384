//! Stopping builds on request (Ctrl-C, SIGTERM): [`interrupt`] kills the process group of every
//! build command running in this process and makes the builds stop starting anything new; the
//! builds then fail, and a failed build removes its partial output and scratch directory.
//!
//! The state is process-wide, as signals are. Invariant: a command whose process group is
//! registered after [`interrupt`] is killed at once, so none outlives it (registration and
//! interruption take the same lock).

use std::sync::Mutex;

struct Running {
    groups: Vec<i32>,
    interrupted: bool,
}

static RUNNING: Mutex<Running> = Mutex::new(Running {
    groups: Vec::new(),
    interrupted: false,
});

fn running() -> std::sync::MutexGuard<'static, Running> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Kills every running build command's process group; no build starts afterwards.
pub fn interrupt() {
    let mut running = running();
    running.interrupted = true;
    for &pgid in &running.groups {
        kill_group(pgid);
    }
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    running().interrupted
}

/// A build command's process group, registered until dropped (killed at once if the builds
/// were interrupted already).
pub struct Group(i32);

impl Group {
    pub fn register(pgid: i32) -> Group {
        let mut running = running();
        if running.interrupted {
            kill_group(pgid);
        }
        running.groups.push(pgid);
        Group(pgid)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let mut running = running();
        if let Some(i) = running.groups.iter().position(|&g| g == self.0) {
            running.groups.swap_remove(i);
        }
    }
}
