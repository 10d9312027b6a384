//! Build progress on stderr. On a terminal: a bar with the count of derivations done and the
//! names of those being built, finished ones printed above it; otherwise (logs, CI) one plain
//! line per event. `-q` keeps failures and warnings only.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use slapstore_store::build::{Event, Observer};

pub struct Progress {
    total: usize,
    done: AtomicUsize,
    quiet: bool,
    bar: Option<ProgressBar>,
    running: Mutex<Vec<String>>,
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
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            total,
            done: AtomicUsize::new(0),
            quiet,
            bar,
            running: Mutex::new(Vec::new()),
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn running(&self, name: &str, start: bool) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if start {
            running.push(name.to_owned());
        } else {
            running.retain(|n| n != name);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(if running.is_empty() {
                String::new()
            } else {
                format!("building {}", running.join(", "))
            });
        }
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

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn event(&self, event: Event) {
        match event {
            Event::Valid(_) => {
                self.finish_one();
            }
            Event::Started(d) => {
                self.running(d.name(), true);
                if !self.quiet && self.bar.is_none() {
                    self.say(&format!("building {} ({})", d.name(), d.recipe().name()));
                }
            }
            Event::Built { drv, millis } => {
                self.running(drv.name(), false);
                let n = self.finish_one();
                if !self.quiet {
                    self.say(&format!(
                        "{n} built {} in {:.1} s",
                        drv.name(),
                        millis as f64 / 1000.0
                    ));
                }
            }
            Event::Substituted { drv, from } => {
                let n = self.finish_one();
                if !self.quiet {
                    self.say(&format!("{n} fetched {} from {from}", drv.name()));
                }
            }
            Event::Warning { drv, message } => {
                self.say(&format!("warning: {}: {message}", drv.name()));
            }
            Event::Failed {
                drv,
                error: slapstore_store::StoreError::Interrupted { .. },
            } => {
                self.running(drv.name(), false);
                let n = self.finish_one();
                self.say(&format!("{n} interrupted {}", drv.name()));
            }
            Event::Failed { drv, error } => {
                self.running(drv.name(), false);
                let n = self.finish_one();
                self.say(&format!("{n} failed {}: {error}", drv.name()));
            }
        }
    }
}
