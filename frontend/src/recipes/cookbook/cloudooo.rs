//! `slapos.cookbook:generic.cloudooo`, natively: a cloudooo conversion server's PasteDeploy
//! configuration at `configuration-file` (mode 0600) and its service at `wrapper`, which runs
//! `<ooo-paster> serve <configuration-file>`.
//!
//! The configuration holds the settings the cookbook's `cloudooo.cfg.in` gives (`working_path`
//! = `data-directory`, `uno_path`, `office_binary_path`, `ooo_enable_scripting`, `application_hostname`
//! and the server's `host` = `ip`, `port`, `openoffice_port`, the fixed monitor settings), one
//! `env-KEY = value` line per `KEY = value` line of `environment` (passed to the office), and
//! `mimetype_registry`: the cookbook's default entries and `mimetype_entry_addition`'s, sorted
//! as the cookbook sorts them (a `*` after any other character). The service is the cookbook's
//! `execute_with_signal_translation` as a POSIX shell script: the server runs in a session of its
//! own (util-linux's `setsid`, as the cookbook's `os.setsid`), whose process group is sent
//! SIGHUP then SIGTERM when the service gets SIGTERM, SIGINT or SIGQUIT. The service stays as
//! long as the server runs (the cookbook's outlives it, waiting for a signal).

use crate::error::Result;
use crate::recipes::instance::{add_file, FileSpec};
use crate::recipes::wrapper::quote;
use crate::recipes::Part;

/// The cookbook's `default_mimetype_entry_list`: `<from> <to> <handler>`.
const DEFAULT_MIMETYPES: &[&str] = &[
    "application/vnd.oasis.opendocument* * ooo",
    "application/vnd.sun.xml* * ooo",
    "application/pdf text/* pdf",
    "application/pdf * ooo",
    "video/* * ffmpeg",
    "audio/* * ffmpeg",
    "application/x-shockwave-flash * ffmpeg",
    "application/ogg * ffmpeg",
    "application/ogv * ffmpeg",
    "image/png image/jpeg imagemagick",
    "image/png * ooo",
    "image/* image/* imagemagick",
    "text/* * ooo",
    "application/zip * ooo",
    "application/msword * ooo",
    "application/vnd* * ooo",
    "application/x-vnd* * ooo",
    "application/postscript * ooo",
    "application/wmf * ooo",
    "application/csv * ooo",
    "application/x-openoffice-gdimetafile * ooo",
    "application/x-emf * ooo",
    "application/emf * ooo",
    "application/octet* * ooo",
    "* application/vnd.oasis.opendocument* ooo",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document application/x-asc-text x2t",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet application/x-asc-spreadsheet x2t",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation application/x-asc-presentation x2t",
    "application/x-asc-text application/vnd.openxmlformats-officedocument.wordprocessingml.document x2t",
    "application/x-asc-spreadsheet application/vnd.openxmlformats-officedocument.spreadsheetml.sheet x2t",
    "application/x-asc-presentation application/vnd.openxmlformats-officedocument.presentationml.presentation x2t",
    "application/vnd.oasis.opendocument.text application/x-asc-text x2t",
    "application/vnd.oasis.opendocument.spreadsheet application/x-asc-spreadsheet x2t",
    "application/vnd.oasis.opendocument.presentation application/x-asc-presentation x2t",
    "application/x-asc-text application/vnd.oasis.opendocument.text x2t",
    "application/x-asc-spreadsheet application/vnd.oasis.opendocument.spreadsheet x2t",
    "application/x-asc-presentation application/vnd.oasis.opendocument.presentation x2t",
];

/// `generic.cloudooo`.
pub fn cloudooo(part: &mut Part) -> Result<()> {
    let line = |part: &mut Part, key: &str| -> Result<String> {
        let value = part.require(key)?;
        if value.contains('\n') {
            return Err(part.option_error(key, "a value on one line"));
        }
        Ok(value)
    };
    let working_path = line(part, "data-directory")?;
    let uno_path = line(part, "ooo-uno-path")?;
    let office = line(part, "ooo-binary-path")?;
    let ip = line(part, "ip")?;
    let port = integer(part, "port")?;
    let openoffice_port = integer(part, "openoffice-port")?;
    let scripting = match part.get("ooo_enable_scripting")? {
        Some(v) if v.contains('\n') => {
            return Err(part.option_error("ooo_enable_scripting", "a value on one line"))
        }
        Some(v) => v,
        None => "false".to_owned(),
    };
    let environment = environment(part)?;
    let additions = part.get("mimetype_entry_addition")?.unwrap_or_default();
    let mut entries: Vec<String> = additions
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .collect();
    entries.extend(DEFAULT_MIMETYPES.iter().map(|e| e.to_string()));
    python_sort(&mut entries, mimetype_less);
    let registry: Vec<String> = entries.iter().map(|e| format!("  {e}")).collect();
    let text = format!(
        "[app:main]\n\
         use = egg:cloudooo\n\
         debug_mode = True\n\
         working_path = {working_path}\n\
         uno_path = {uno_path}\n\
         office_binary_path = {office}\n\
         ooo_enable_scripting = {scripting}\n\
         limit_number_request = 100\n\
         monitor_interval = 10\n\
         timeout_response = 180\n\
         enable_memory_monitor = True\n\
         limit_memory_used = 3000\n\
         application_hostname = {ip}\n\
         openoffice_port = {openoffice_port}\n\
         \n\
         {environment}\n\
         \n\
         mimetype_registry =\n\
         {registry}\n\
         \n\
         [server:main]\n\
         use = egg:PasteScript#wsgiutils\n\
         host = {ip}\n\
         port = {port}\n",
        registry = registry.join("\n"),
    );
    let configuration = part.require("configuration-file")?;
    let paster = part.require("ooo-paster")?;
    let service = service(paster.trim(), configuration.trim());
    add_file(
        part,
        "configuration-file",
        &configuration,
        FileSpec::Text { text, mode: 0o600 },
    )?;
    let wrapper = part.require("wrapper")?;
    add_file(
        part,
        "wrapper",
        &wrapper,
        FileSpec::Text {
            text: service,
            mode: 0o755,
        },
    )
}

/// Python's `int(options[key])`.
fn integer(part: &mut Part, key: &str) -> Result<u32> {
    let value = part.require(key)?;
    value
        .trim()
        .parse()
        .map_err(|_| part.option_error(key, format!("`{value}` is not an integer")))
}

/// The `env-KEY = value` lines of `environment`'s `KEY = value` lines (exactly one `=` each,
/// as the cookbook splits them).
fn environment(part: &mut Part) -> Result<String> {
    let text = part.require("environment")?;
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('=').collect();
        let [key, value] = fields[..] else {
            return Err(part.option_error(
                "environment",
                format!("line `{line}` is not `KEY = value` (one `=`)"),
            ));
        };
        lines.push(format!("env-{} = {}", key.trim(), value.trim()));
    }
    Ok(lines.join("\n"))
}

/// The cookbook's `compareMimetypeEntryPair(a, b) < 0`: at the first character where they
/// differ, `*` is greater than any other; otherwise neither is less (unless `a` is empty and
/// `b` is not), as the cookbook's comparison returns for a prefix.
fn mimetype_less(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            return *y == '*' || (*x != '*' && x < y);
        }
    }
    a.is_empty() && !b.is_empty()
}

/// Python's `list.sort` for lists under 64 items (a run found first, then binary insertion),
/// with `less` as `<`: the same order as Python's for a comparison that is not a total order
/// too (the cookbook's is not: a prefix is neither less nor greater).
fn python_sort(items: &mut [String], less: fn(&str, &str) -> bool) {
    let n = items.len();
    if n < 2 {
        return;
    }
    let mut run = 2;
    if less(&items[1], &items[0]) {
        while run < n && less(&items[run], &items[run - 1]) {
            run += 1;
        }
        items[..run].reverse();
    } else {
        while run < n && !less(&items[run], &items[run - 1]) {
            run += 1;
        }
    }
    for start in run..n {
        let (mut lo, mut hi) = (0, start);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if less(&items[start], &items[mid]) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        items[lo..=start].rotate_right(1);
    }
}

/// The service: the cookbook's `execute_with_signal_translation` of `paster serve config`.
fn service(paster: &str, configuration: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # the server in a session of its own (`setsid`), whose process group a stop signal ends\n\
         setsid {paster} serve {configuration} &\n\
         child=$!\n\
         trap 'kill -s HUP -- \"-$child\" 2>/dev/null; kill -s TERM -- \"-$child\" 2>/dev/null; \
         exit 0' TERM INT QUIT\n\
         echo \"Process $child started\"\n\
         wait $child\n",
        paster = quote(paster),
        configuration = quote(configuration),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimetypes_sort_as_the_cookbook_sorts_them() {
        let mut entries: Vec<String> = DEFAULT_MIMETYPES.iter().map(|e| e.to_string()).collect();
        python_sort(&mut entries, mimetype_less);
        // Python 3: sorted(default_mimetype_entry_list, key=compareMimetypeEntryPair)
        let python = [
            "application/csv * ooo",
            "application/emf * ooo",
            "application/msword * ooo",
            "application/octet* * ooo",
            "application/ogg * ffmpeg",
            "application/ogv * ffmpeg",
            "application/pdf text/* pdf",
            "application/pdf * ooo",
            "application/postscript * ooo",
            "application/vnd.oasis.opendocument.presentation application/x-asc-presentation x2t",
            "application/vnd.oasis.opendocument.spreadsheet application/x-asc-spreadsheet x2t",
            "application/vnd.oasis.opendocument.text application/x-asc-text x2t",
            "application/vnd.oasis.opendocument* * ooo",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation application/x-asc-presentation x2t",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet application/x-asc-spreadsheet x2t",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document application/x-asc-text x2t",
            "application/vnd.sun.xml* * ooo",
            "application/vnd* * ooo",
            "application/wmf * ooo",
            "application/x-asc-presentation application/vnd.oasis.opendocument.presentation x2t",
            "application/x-asc-presentation application/vnd.openxmlformats-officedocument.presentationml.presentation x2t",
            "application/x-asc-spreadsheet application/vnd.oasis.opendocument.spreadsheet x2t",
            "application/x-asc-spreadsheet application/vnd.openxmlformats-officedocument.spreadsheetml.sheet x2t",
            "application/x-asc-text application/vnd.oasis.opendocument.text x2t",
            "application/x-asc-text application/vnd.openxmlformats-officedocument.wordprocessingml.document x2t",
            "application/x-emf * ooo",
            "application/x-openoffice-gdimetafile * ooo",
            "application/x-shockwave-flash * ffmpeg",
            "application/x-vnd* * ooo",
            "application/zip * ooo",
            "audio/* * ffmpeg",
            "image/png image/jpeg imagemagick",
            "image/png * ooo",
            "image/* image/* imagemagick",
            "text/* * ooo",
            "video/* * ffmpeg",
            "* application/vnd.oasis.opendocument* ooo",
        ];
        assert_eq!(entries, python);
    }

    #[test]
    fn a_prefix_keeps_its_place_as_in_python() {
        // sorted(["b x", "a", "a b"], key=compareMimetypeEntryPair) == ['a', 'a b', 'b x']
        // sorted(["a b", "a"], ...) == ['a b', 'a']: neither is less, the order is kept
        let mut v = vec!["b x".to_owned(), "a".to_owned(), "a b".to_owned()];
        python_sort(&mut v, mimetype_less);
        assert_eq!(v, ["a", "a b", "b x"]);
        let mut v = vec!["a b".to_owned(), "a".to_owned()];
        python_sort(&mut v, mimetype_less);
        assert_eq!(v, ["a b", "a"]);
    }
}
