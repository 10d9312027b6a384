//! Ctrl-C and SIGTERM while building: the first one stops the builds
//! ([`slapstore_store::interrupt`]: their process groups killed, their partial outputs and
//! scratch directories removed as a failed build's are), and the command then exits with
//! 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as cargo and nix do. A second
//! one, or one arriving once the builds are over, exits at once.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// The signal handlers, installed while builds run.
pub struct Interrupts {
    received: Arc<AtomicI32>,
    over: Arc<AtomicBool>,
    _handle: Handle,
}

impl Interrupts {
    /// Installs the handlers; an error when the system refuses them.
    fn install() -> std::io::Result<Interrupts> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let received = Arc::new(AtomicI32::new(0));
        let over = Arc::new(AtomicBool::new(false));
        let (r, o) = (Arc::clone(&received), Arc::clone(&over));
        std::thread::spawn(move || {
            for signal in signals.forever() {
                let first = r.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
                if first.is_ok() {
                    slapstore_store::interrupt::interrupt();
                }
                if first.is_err() || o.load(Ordering::SeqCst) {
                    std::process::exit(128 + signal);
                }
            }
        });
        Ok(Interrupts {
            received,
            over,
            _handle: handle,
        })
    }

    /// Installs the handlers, or reports why it cannot; the exit status then.
    pub fn start() -> Result<Interrupts, i32> {
        Interrupts::install()
            .map_err(|e| super::report::failure(&format!("cannot handle interruptions: {e}")))
    }

    /// Marks the builds over; if a signal stopped them, says so (with how many were `built`
    /// before, when known) and gives the exit status the command must end with.
    pub fn stopped(&self, built: Option<usize>) -> Option<i32> {
        let code = self.finish()?;
        let before = built.map_or(String::new(), |n| format!(" ({n} built before)"));
        super::report::error_line(
            &format!(
                "interrupted: the builds running were killed and their partial outputs \
                 removed{before}"
            ),
            None,
        );
        Some(code)
    }

    /// The exit status a signal received so far asks for (`slapstore node --loop` checks it
    /// between passes).
    pub fn pending(&self) -> Option<i32> {
        match self.received.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(128 + signal),
        }
    }

    /// Marks the builds over: a signal from now on exits at once. The exit status the command
    /// must end with if a signal stopped the builds.
    fn finish(&self) -> Option<i32> {
        self.over.store(true, Ordering::SeqCst);
        match self.received.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(128 + signal),
        }
    }
}
