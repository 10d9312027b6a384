//! Build progress on stderr. On a terminal: a bar with the count of derivations done and, for
//! those being built, their names, how long they have run and the last line of their logs;
//! finished ones printed above it. Otherwise (logs, CI) one plain line per event. `-q` keeps
//! failures and warnings only; `-L` (`--print-build-logs`) also streams every build's log, each
//! line prefixed with its part's name, as `nix build -L` does.
//!
//! The logs are followed by one thread that reads what was appended to each running build's log
//! (`<root>/var/log/<path>.log`) every 200 ms, and once more when the build ends, so no line is
//! lost.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use slapstore_store::build::{Event, Observer};
use slapstore_store::{Derivation, StoreError};

/// How often running builds' logs are read.
const TICK: Duration = Duration::from_millis(200);
/// The most read from one log at a time.
const MAX_READ: u64 = 1 << 20;

pub struct Progress {
    shared: Arc<Shared>,
    follower: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    total: usize,
    done: AtomicUsize,
    quiet: bool,
    bar: Option<ProgressBar>,
    /// Where build logs are, when they are followed.
    log_dir: Option<PathBuf>,
    print_logs: bool,
    running: Mutex<Vec<Running>>,
    stop: AtomicBool,
}

/// A build being run, and how far its log was read.
struct Running {
    name: String,
    /// The store path's base name, which tells apart two builds of one name.
    path: String,
    log: Option<PathBuf>,
    start: Instant,
    offset: u64,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
    last_line: String,
}

impl Progress {
    /// Progress over `total` derivations.
    pub fn new(total: usize, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let (bar, template) = if total == 0 {
                (ProgressBar::new_spinner(), "{spinner} [{pos}] {wide_msg}")
            } else {
                (
                    ProgressBar::new(total as u64),
                    "{spinner} [{pos}/{len}] {wide_msg}",
                )
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            shared: Arc::new(Shared {
                total,
                done: AtomicUsize::new(0),
                quiet,
                bar,
                log_dir: None,
                print_logs: false,
                running: Mutex::new(Vec::new()),
                stop: AtomicBool::new(false),
            }),
            follower: None,
        }
    }

    /// Follows the build logs of `log_dir`: their last lines on the bar, and every line on
    /// stderr with `print_logs`.
    pub fn with_logs(mut self, log_dir: PathBuf, print_logs: bool) -> Progress {
        let Some(shared) = Arc::get_mut(&mut self.shared) else {
            return self;
        };
        if shared.bar.is_none() && !print_logs {
            return self;
        }
        shared.log_dir = Some(log_dir);
        shared.print_logs = print_logs;
        let shared = Arc::clone(&self.shared);
        self.follower = Some(std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                let mut running = shared.running();
                for r in running.iter_mut() {
                    shared.read_log(r, false);
                }
                shared.show(&running);
            }
        }));
        self
    }
}

impl Shared {
    fn running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prints a line; never panics (stderr may be a closed pipe, and this runs in build threads).
    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// Reads what was appended to `r`'s log: its lines printed with `print_logs`, the last one
    /// kept; at the `end` of the build, an unfinished last line too.
    fn read_log(&self, r: &mut Running, end: bool) {
        let Some(path) = &r.log else {
            return;
        };
        let Ok(mut file) = std::fs::File::open(path) else {
            return;
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(r.offset)).is_err()
            || file.take(MAX_READ).read_to_end(&mut bytes).is_err()
        {
            return;
        }
        r.offset += bytes.len() as u64;
        r.partial.extend_from_slice(&bytes);
        let complete = match r.partial.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if end => r.partial.len(),
            None => return,
        };
        let text: Vec<u8> = r.partial.drain(..complete).collect();
        let rest = if end {
            std::mem::take(&mut r.partial)
        } else {
            Vec::new()
        };
        for line in String::from_utf8_lossy(&text)
            .lines()
            .chain(String::from_utf8_lossy(&rest).lines())
        {
            if self.print_logs {
                self.say(&format!("{}> {line}", r.name));
            }
            if !line.trim().is_empty() {
                r.last_line = line.trim().to_owned();
            }
        }
    }

    /// The bar's message for the builds running.
    fn show(&self, running: &[Running]) {
        if let Some(bar) = &self.bar {
            let now = Instant::now();
            let builds: Vec<(&str, Duration, &str)> = running
                .iter()
                .map(|r| (r.name.as_str(), now - r.start, r.last_line.as_str()))
                .collect();
            bar.set_message(status(&builds));
        }
    }

    fn started(&self, drv: &Derivation) {
        let mut running = self.running();
        running.push(Running {
            name: drv.name().to_owned(),
            path: drv.path.to_string(),
            log: self
                .log_dir
                .as_ref()
                .map(|d| d.join(format!("{}.log", drv.path))),
            start: Instant::now(),
            offset: 0,
            partial: Vec::new(),
            last_line: String::new(),
        });
        self.show(&running);
    }

    fn ended(&self, drv: &Derivation) {
        let mut running = self.running();
        if let Some(i) = running.iter().position(|r| r.path == drv.path.to_string()) {
            let mut r = running.remove(i);
            self.read_log(&mut r, true);
        }
        self.show(&running);
    }

    /// Counts one more derivation done: `[n/total]`, or `[n]` when the total is not known.
    fn finish_one(&self) -> String {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.total == 0 {
            format!("[{n}]")
        } else {
            format!("[{n}/{}]", self.total)
        }
    }
}

/// What the bar says of the builds running: each one's name and time so far, then the last log
/// line of the most recent one that has one.
fn status(builds: &[(&str, Duration, &str)]) -> String {
    if builds.is_empty() {
        return String::new();
    }
    let names: Vec<String> = builds
        .iter()
        .map(|(name, elapsed, _)| format!("{name} ({} s)", elapsed.as_secs()))
        .collect();
    let mut message = format!("building {}", names.join(", "));
    if let Some((name, _, line)) = builds.iter().rev().find(|(_, _, line)| !line.is_empty()) {
        let line: String = line.chars().take(100).collect();
        if builds.len() == 1 {
            message.push_str(&format!(": {line}"));
        } else {
            message.push_str(&format!(" | {name}: {line}"));
        }
    }
    message
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(follower) = self.follower.take() {
            let _ = follower.join();
        }
        if let Some(bar) = &self.shared.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn event(&self, event: Event) {
        let s = &self.shared;
        match event {
            Event::Valid(_) => {
                s.finish_one();
            }
            Event::Started(d) => {
                s.started(d);
                if !s.quiet && s.bar.is_none() {
                    s.say(&format!("building {} ({})", d.name(), d.recipe().name()));
                }
            }
            Event::Built { drv, millis } => {
                s.ended(drv);
                let n = s.finish_one();
                if !s.quiet {
                    s.say(&format!(
                        "{n} built {} in {:.1} s",
                        drv.name(),
                        millis as f64 / 1000.0
                    ));
                }
            }
            Event::Substituted { drv, from } => {
                let n = s.finish_one();
                if !s.quiet {
                    s.say(&format!("{n} fetched {} from {from}", drv.name()));
                }
            }
            Event::Warning { drv, message } => {
                s.say(&format!("warning: {}: {message}", drv.name()));
            }
            Event::Failed { drv, error } => {
                s.ended(drv);
                let n = s.finish_one();
                // the error itself, with the log's last lines, is reported once at the end
                let what = match error {
                    StoreError::Interrupted { .. } => "interrupted",
                    _ => "failed",
                };
                s.say(&format!("{n} {what} {}", drv.name()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_message() {
        assert_eq!(status(&[]), "");
        let s = Duration::from_secs;
        assert_eq!(
            status(&[("greet", s(3), "checking for gcc... yes")]),
            "building greet (3 s): checking for gcc... yes"
        );
        assert_eq!(status(&[("greet", s(0), "")]), "building greet (0 s)");
        assert_eq!(
            status(&[("a", s(12), "make[1]: ok"), ("b", s(1), "")]),
            "building a (12 s), b (1 s) | a: make[1]: ok"
        );
    }
}
