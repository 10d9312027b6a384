//! The platform a buildout condition is evaluated for, and the host facts that
//! conditions may read.
//!
//! zc.buildout evaluates conditional section headers (`[versions:python2]`)
//! against the interpreter that runs buildout. slapstore does not run Python,
//! so the interpreter is described by a [`Target`] instead: Python version,
//! implementation, `sys.platform`, `os.name`, machine, pointer width and byte
//! order. The default is CPython 3.11.7 on Linux x86-64 (64-bit,
//! little-endian, `os.name == "posix"`); the CLI flag `--target KEY=VALUE`
//! changes one field at a time through [`Target::set`].
//!
//! Some facts cannot be described by a target and are read from the host at
//! evaluation time, exactly when an expression asks for them (never
//! eagerly): the kernel release and version (`platform.release()`,
//! `platform.version()`, the `platform_release`/`platform_version` markers,
//! read from `/proc/sys/kernel/osrelease` and `/proc/sys/kernel/version`),
//! `platform.freedesktop_os_release()` (`/etc/os-release`, then
//! `/usr/lib/os-release`), environment variables and file-system probes.
//!
//! Invariants: every derived value is a pure function of the `Target` fields;
//! host readers never panic and never block on special files (only regular
//! files are read, with a size cap).

use std::fmt;

/// Python implementation named by `sys.implementation.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    CPython,
    PyPy,
    Jython,
    IronPython,
}

impl Implementation {
    const ALL: [Implementation; 4] = [
        Implementation::CPython,
        Implementation::PyPy,
        Implementation::Jython,
        Implementation::IronPython,
    ];

    /// `sys.implementation.name`, e.g. `cpython` (the `implementation_name` marker).
    pub fn name(self) -> &'static str {
        match self {
            Implementation::CPython => "cpython",
            Implementation::PyPy => "pypy",
            Implementation::Jython => "jython",
            Implementation::IronPython => "ironpython",
        }
    }

    /// `platform.python_implementation()`, e.g. `CPython`.
    pub fn display_name(self) -> &'static str {
        match self {
            Implementation::CPython => "CPython",
            Implementation::PyPy => "PyPy",
            Implementation::Jython => "Jython",
            Implementation::IronPython => "IronPython",
        }
    }

    /// Parses a name, case-insensitively (`cpython`, `PyPy`, ...).
    pub fn parse(name: &str) -> Option<Implementation> {
        Self::ALL
            .into_iter()
            .find(|implementation| implementation.name().eq_ignore_ascii_case(name))
    }
}

/// The interpreter and platform conditions are evaluated for.
///
/// Fields are public; values outside the documented sets are tolerated (for
/// example `pointer_bits: 16` makes both `bits32` and `bits64` false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Python version `(major, minor, micro)`.
    pub python: (u32, u32, u32),
    pub implementation: Implementation,
    /// `sys.platform`, e.g. `linux`, `darwin`, `win32`.
    pub sys_platform: String,
    /// `os.name`: `posix`, `nt` or `java`.
    pub os_name: String,
    /// `platform.machine()`, e.g. `x86_64`, `aarch64`.
    pub machine: String,
    /// Pointer width in bits (`struct.calcsize('P') * 8`): 32 or 64.
    pub pointer_bits: u32,
    /// `sys.byteorder == 'little'`.
    pub little_endian: bool,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            python: (3, 11, 7),
            implementation: Implementation::CPython,
            sys_platform: "linux".to_owned(),
            os_name: "posix".to_owned(),
            machine: "x86_64".to_owned(),
            pointer_bits: 64,
            little_endian: true,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {} {} ({}-bit, {}-endian, os.name {})",
            self.implementation.display_name(),
            self.python_full_version(),
            self.sys_platform,
            self.machine,
            self.pointer_bits,
            self.byteorder(),
            self.os_name
        )
    }
}

impl Target {
    /// Keys accepted by [`Target::set`].
    pub const KEYS: [&'static str; 7] = [
        "python",
        "implementation",
        "platform",
        "machine",
        "bits",
        "endian",
        "os-name",
    ];

    /// Applies one `KEY=VALUE` setting (the CLI flag `--target KEY=VALUE`).
    ///
    /// Keys: `python` (`3.11` or `3.12.1`; a missing micro is 0),
    /// `implementation` (`cpython`, `pypy`, `jython`, `ironpython`),
    /// `platform` (`sys.platform`, e.g. `linux`, `darwin`, `win32`),
    /// `machine` (e.g. `x86_64`, `aarch64`), `bits` (`32`, `64`),
    /// `endian` (`little`, `big`), `os-name` (`posix`, `nt`, `java`).
    /// On error the target is unchanged and the message names the key and the
    /// accepted values.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let invalid =
            |expected: &str| format!("invalid value `{value}` for target key `{key}`: {expected}");
        match key {
            "python" => {
                self.python = parse_python_version(value).ok_or_else(|| {
                    invalid("expected MAJOR.MINOR or MAJOR.MINOR.MICRO, e.g. 3.11 or 3.12.1")
                })?;
            }
            "implementation" => {
                self.implementation = Implementation::parse(value)
                    .ok_or_else(|| invalid("expected one of cpython, pypy, jython, ironpython"))?;
            }
            "platform" => {
                if !is_identifier_like(value) {
                    return Err(invalid(
                        "expected a sys.platform value such as linux, darwin, win32, cygwin",
                    ));
                }
                self.sys_platform = value.to_owned();
            }
            "machine" => {
                if !is_identifier_like(value) {
                    return Err(invalid(
                        "expected a machine name such as x86_64, aarch64, i686",
                    ));
                }
                self.machine = value.to_owned();
            }
            "bits" => {
                self.pointer_bits = match value {
                    "32" => 32,
                    "64" => 64,
                    _ => return Err(invalid("expected 32 or 64")),
                };
            }
            "endian" => {
                self.little_endian = match value {
                    "little" => true,
                    "big" => false,
                    _ => return Err(invalid("expected little or big")),
                };
            }
            "os-name" => {
                if !matches!(value, "posix" | "nt" | "java") {
                    return Err(invalid("expected posix, nt or java"));
                }
                self.os_name = value.to_owned();
            }
            _ => {
                return Err(format!(
                    "unknown target key `{key}`; accepted keys: {}",
                    Self::KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// `major.minor`, the `python_version` marker.
    pub fn python_version(&self) -> String {
        format!("{}.{}", self.python.0, self.python.1)
    }

    /// `major.minor.micro`, `platform.python_version()` and the
    /// `python_full_version` marker.
    pub fn python_full_version(&self) -> String {
        let (major, minor, micro) = self.python;
        format!("{major}.{minor}.{micro}")
    }

    /// `sys.byteorder`.
    pub fn byteorder(&self) -> &'static str {
        if self.little_endian {
            "little"
        } else {
            "big"
        }
    }

    /// `sys.maxsize` (`2**(bits-1) - 1`; 64-bit for unusual widths).
    pub fn maxsize(&self) -> i64 {
        match self.pointer_bits {
            32 => i64::from(i32::MAX),
            16 => i64::from(i16::MAX),
            _ => i64::MAX,
        }
    }

    /// `platform.system()`, derived from `sys.platform` (`linux` → `Linux`,
    /// `darwin` → `Darwin`, `win32` → `Windows`, `sunos5` → `SunOS`, ...).
    pub fn platform_system(&self) -> String {
        let platform = self.sys_platform.to_ascii_lowercase();
        let known = [
            ("linux", "Linux"),
            ("darwin", "Darwin"),
            ("win32", "Windows"),
            ("cygwin", "CYGWIN_NT"),
            ("sunos", "SunOS"),
            ("freebsd", "FreeBSD"),
            ("openbsd", "OpenBSD"),
            ("netbsd", "NetBSD"),
            ("aix", "AIX"),
            ("java", "Java"),
            ("emscripten", "Emscripten"),
            ("wasi", "WASI"),
        ];
        if let Some((_, system)) = known
            .iter()
            .find(|(prefix, _)| platform.starts_with(prefix))
        {
            return (*system).to_owned();
        }
        let stem: String = self
            .sys_platform
            .chars()
            .take_while(|c| c.is_alphabetic())
            .collect();
        let mut chars = stem.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => self.sys_platform.clone(),
        }
    }

    /// A synthetic `sys.version`: only its implementation hints are meaningful
    /// (buildout looks for `pypy`, `java` and `iron` in it).
    pub fn sys_version(&self) -> String {
        let version = self.python_full_version();
        match self.implementation {
            Implementation::CPython => format!("{version} (main) [GCC]"),
            Implementation::PyPy => format!("{version} (main) [PyPy with GCC]"),
            Implementation::Jython => format!("{version} (Java)"),
            Implementation::IronPython => format!("{version} (IronPython)"),
        }
    }

    /// `sys.hexversion` for a final release.
    pub fn hexversion(&self) -> i64 {
        let (major, minor, micro) = self.python;
        (i64::from(major & 0xff) << 24)
            | (i64::from(minor & 0xff) << 16)
            | (i64::from(micro & 0xff) << 8)
            | 0xf0
    }

    /// The value of a PEP 508 marker variable, as `packaging` computes its
    /// default environment (metadata context, so `extra` is empty). `None`
    /// for names outside that environment (`extras`, `dependency_groups`,
    /// anything else). `platform_release` and `platform_version` are host
    /// facts, read on demand.
    pub fn marker_variable(&self, name: &str) -> Option<String> {
        let value = match name {
            "implementation_name" => self.implementation.name().to_owned(),
            "implementation_version" | "python_full_version" => self.python_full_version(),
            "os_name" => self.os_name.clone(),
            "platform_machine" => self.machine.clone(),
            "platform_release" => host::kernel_release(),
            "platform_system" => self.platform_system(),
            "platform_version" => host::kernel_version(),
            "platform_python_implementation" => self.implementation.display_name().to_owned(),
            "python_version" => self.python_version(),
            "sys_platform" => self.sys_platform.clone(),
            "extra" => String::new(),
            _ => return None,
        };
        Some(value)
    }
}

fn parse_python_version(value: &str) -> Option<(u32, u32, u32)> {
    let parts: Vec<&str> = value.split('.').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let number = |part: &str| {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse::<u32>().ok()
    };
    let major = number(parts[0])?;
    let minor = number(parts[1])?;
    let micro = match parts.get(2) {
        Some(part) => number(part)?,
        None => 0,
    };
    Some((major, minor, micro))
}

fn is_identifier_like(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Facts read from the machine running slapstore, at the moment an expression
/// needs them.
pub(crate) mod host {
    use std::fs;
    use std::io::Read;

    /// Largest file `open().read()` and the other readers accept.
    pub(crate) const MAX_FILE_SIZE: u64 = 1 << 20;

    /// Files `platform.freedesktop_os_release()` tries, in order.
    pub(crate) const OS_RELEASE_CANDIDATES: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

    /// `platform.release()`: the running kernel's release (`uname -r`), or ''
    /// when unknown, as Python does.
    pub(crate) fn kernel_release() -> String {
        read_proc_line("/proc/sys/kernel/osrelease")
    }

    /// `platform.version()`: the running kernel's version (`uname -v`).
    pub(crate) fn kernel_version() -> String {
        read_proc_line("/proc/sys/kernel/version")
    }

    fn read_proc_line(path: &str) -> String {
        read_regular_file(path)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| text.trim_end_matches('\n').to_owned())
            .unwrap_or_default()
    }

    /// Reads a regular file (never a FIFO or device, which could block or be
    /// endless) of at most [`MAX_FILE_SIZE`] bytes.
    pub(crate) fn read_regular_file(path: &str) -> Result<Vec<u8>, String> {
        if path.contains('\0') {
            return Err("embedded null byte".to_owned());
        }
        let metadata = fs::metadata(path).map_err(|e| e.to_string())?;
        if metadata.is_dir() {
            return Err(format!("Is a directory: '{path}'"));
        }
        if !metadata.is_file() {
            return Err(format!("'{path}' is not a regular file (unsupported)"));
        }
        let file = fs::File::open(path).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(format!(
                "'{path}' is larger than {MAX_FILE_SIZE} bytes (unsupported)"
            ));
        }
        Ok(bytes)
    }

    /// `platform.freedesktop_os_release()`: the first readable candidate,
    /// parsed as Python does; `Err` is Python's `OSError` message.
    pub(crate) fn os_release() -> Result<Vec<(String, String)>, String> {
        for candidate in OS_RELEASE_CANDIDATES {
            if let Ok(bytes) = read_regular_file(candidate) {
                let text = String::from_utf8(bytes)
                    .map_err(|_| format!("'{candidate}' is not valid UTF-8"))?;
                return Ok(parse_os_release(&text));
            }
        }
        Err(format!(
            "Unable to read files {}",
            OS_RELEASE_CANDIDATES.join(", ")
        ))
    }

    /// `platform._parse_os_release`: defaults for NAME, ID and PRETTY_NAME,
    /// then every `KEY=value` line (`^[a-zA-Z0-9_]+=(["']?)(.*)\1$`) with
    /// matching surrounding quotes removed and `\\ \$ \" \' \`` unescaped.
    /// Keys keep their first-insertion order, like a Python dict.
    pub(crate) fn parse_os_release(text: &str) -> Vec<(String, String)> {
        let mut info: Vec<(String, String)> =
            [("NAME", "Linux"), ("ID", "linux"), ("PRETTY_NAME", "Linux")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        for line in text.lines() {
            let Some((name, rest)) = line.split_once('=') else {
                continue;
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            let value = unescape_os_release(unquote(rest));
            match info.iter_mut().find(|(key, _)| key == name) {
                Some(entry) => entry.1 = value,
                None => info.push((name.to_owned(), value)),
            }
        }
        info
    }

    fn unquote(rest: &str) -> &str {
        for quote in ['"', '\''] {
            if rest.len() >= 2 && rest.starts_with(quote) && rest.ends_with(quote) {
                return &rest[1..rest.len() - 1];
            }
        }
        rest
    }

    fn unescape_os_release(value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(&next) = chars.peek() {
                    if matches!(next, '\\' | '$' | '"' | '\'' | '`') {
                        out.push(next);
                        chars.next();
                        continue;
                    }
                }
            }
            out.push(c);
        }
        out
    }

    /// Approximates `os.access(path, mode)` from the permission bits and the
    /// process's real uid and groups (ACLs and read-only mounts are ignored).
    pub(crate) fn access(path: &str, mode: i64) -> bool {
        if path.contains('\0') || !(0..=7).contains(&mode) {
            return false;
        }
        let Ok(metadata) = fs::metadata(path) else {
            return false;
        };
        if mode == 0 {
            return true;
        }
        permission_allows(&metadata, mode as u32)
    }

    #[cfg(unix)]
    fn permission_allows(metadata: &fs::Metadata, mode: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let permissions = metadata.mode();
        let ids = process_ids();
        if ids.as_ref().is_some_and(|(uid, _)| *uid == 0) {
            // root may read and write anything, and execute what has an x bit.
            return mode & 1 == 0 || permissions & 0o111 != 0;
        }
        let bits = match &ids {
            Some((uid, _)) if *uid == metadata.uid() => permissions >> 6,
            Some((_, gids)) if gids.contains(&metadata.gid()) => permissions >> 3,
            Some(_) => permissions,
            None => permissions >> 6,
        } & 7;
        mode & !bits == 0
    }

    #[cfg(not(unix))]
    fn permission_allows(metadata: &fs::Metadata, mode: u32) -> bool {
        mode & 2 == 0 || !metadata.permissions().readonly()
    }

    /// Real uid and all gids (real and supplementary) from `/proc/self/status`.
    #[cfg(unix)]
    fn process_ids() -> Option<(u32, Vec<u32>)> {
        let status = String::from_utf8(read_regular_file("/proc/self/status").ok()?).ok()?;
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uid = *field("Uid:").first()?;
        let mut gids = field("Groups:");
        gids.extend(field("Gid:").first());
        Some((uid, gids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_cpython_311_linux_x86_64() {
        let target = Target::default();
        assert_eq!(target.python_version(), "3.11");
        assert_eq!(target.python_full_version(), "3.11.7");
        assert_eq!(target.platform_system(), "Linux");
        assert_eq!(target.byteorder(), "little");
        assert_eq!(target.maxsize(), i64::MAX);
        assert_eq!(target.hexversion(), 0x030b07f0);
        assert_eq!(
            target.to_string(),
            "CPython 3.11.7 on linux x86_64 (64-bit, little-endian, os.name posix)"
        );
    }

    #[test]
    fn set_each_key() {
        let mut target = Target::default();
        target.set("python", "2.7").unwrap();
        assert_eq!(target.python, (2, 7, 0));
        target.set("python", "3.12.1").unwrap();
        assert_eq!(target.python, (3, 12, 1));
        target.set("implementation", "PyPy").unwrap();
        assert_eq!(target.implementation, Implementation::PyPy);
        target.set("platform", "darwin").unwrap();
        assert_eq!(target.platform_system(), "Darwin");
        target.set("machine", "aarch64").unwrap();
        assert_eq!(target.machine, "aarch64");
        target.set("bits", "32").unwrap();
        assert_eq!(target.maxsize(), 2147483647);
        target.set("endian", "big").unwrap();
        assert_eq!(target.byteorder(), "big");
        target.set("os-name", "nt").unwrap();
        assert_eq!(target.os_name, "nt");
    }

    #[test]
    fn set_rejects_bad_values_and_keys() {
        let mut target = Target::default();
        for (key, value) in [
            ("python", "3"),
            ("python", "3.x"),
            ("python", "3.11.7.1"),
            ("python", "+3.11"),
            ("implementation", "rustpython"),
            ("platform", ""),
            ("platform", "linux os"),
            ("machine", "x86 64"),
            ("bits", "16"),
            ("endian", "middle"),
            ("os-name", "dos"),
        ] {
            let error = target.set(key, value).unwrap_err();
            assert!(error.contains(key) && error.contains(value), "{error}");
        }
        let error = target.set("arch", "x86_64").unwrap_err();
        assert!(error.contains("unknown target key `arch`") && error.contains("os-name"));
        assert_eq!(target, Target::default());
    }

    #[test]
    fn platform_system_names() {
        let mut target = Target::default();
        for (platform, system) in [
            ("win32", "Windows"),
            ("sunos5", "SunOS"),
            ("freebsd14", "FreeBSD"),
            ("haiku", "Haiku"),
            ("linux2", "Linux"),
        ] {
            target.sys_platform = platform.to_owned();
            assert_eq!(target.platform_system(), system);
        }
    }

    #[test]
    fn marker_variables() {
        let mut target = Target::default();
        target.set("implementation", "pypy").unwrap();
        assert_eq!(
            target.marker_variable("implementation_name").as_deref(),
            Some("pypy")
        );
        assert_eq!(
            target
                .marker_variable("platform_python_implementation")
                .as_deref(),
            Some("PyPy")
        );
        assert_eq!(target.marker_variable("extra").as_deref(), Some(""));
        assert_eq!(target.marker_variable("extras"), None);
        assert_eq!(
            target.marker_variable("platform_release"),
            Some(host::kernel_release())
        );
    }

    #[test]
    fn os_release_parsing_follows_python() {
        let text = "NAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nID=debian\n\
                    # comment\n BAD=1\nQ=\"unbalanced\nE=\"a\\$b\\\\c\\x\"\nNAME=Again\n\
                    EMPTY=\nONE=\"\n";
        let info = host::parse_os_release(text);
        let get = |k: &str| {
            info.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(info[0], ("NAME".to_owned(), "Again".to_owned()));
        assert_eq!(get("ID"), Some("debian"));
        assert_eq!(get("PRETTY_NAME"), Some("Linux"));
        assert_eq!(get("VERSION_ID"), Some("12"));
        assert_eq!(get("BAD"), None);
        assert_eq!(get("Q"), Some("\"unbalanced"));
        assert_eq!(get("E"), Some("a$b\\c\\x"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(get("ONE"), Some("\""));
    }

    #[test]
    fn host_readers_do_not_read_special_files() {
        assert!(host::read_regular_file("/dev/zero").is_err());
        assert!(host::read_regular_file("/").is_err());
        assert!(host::read_regular_file("/nonexistent/file").is_err());
        assert!(host::read_regular_file("a\0b").is_err());
        assert!(!host::access("/nonexistent/file", 0));
        assert!(host::access("/", 0));
        assert!(!host::access("/", 8));
    }
}
