//! Unpacking source archives: tar (plain, gzip, bzip2, xz, zstd; v7, old GNU, GNU, ustar and pax
//! headers) and zip, recognised by their magic bytes (a tar stream by its first header's
//! checksum, as GNU tar does), never by their names.
//!
//! Invariants:
//! - `dest` is left as it was unless unpacking succeeds: the archive is extracted into a fresh
//!   temporary directory next to `dest` (same file system), renamed to `dest` only on success, and
//!   removed on failure;
//! - nothing is ever written outside that temporary directory: entries with an absolute path or a
//!   `..` component are refused, as are symlinks whose target is absolute, leaves the extraction
//!   root (resolved from the link's own directory), or has a `..` after a name (which cannot be
//!   checked without resolving symlinks); hard links must point to a regular file extracted
//!   before them; no entry is ever written through a symlink or a file (every directory on the way
//!   must be a real directory), and files are created with `O_EXCL`, so never through a link;
//! - devices, fifos and sockets are refused; so are archives expanding beyond
//!   [`UnpackOptions::max_bytes`], or beyond [`UnpackOptions::max_ratio`] times their own size
//!   once past [`UnpackOptions::ratio_threshold`], or with more than
//!   [`UnpackOptions::max_entries`] entries. The expanded size counts both the decompressed tar
//!   stream (which bounds what the tar reader may buffer: long names, pax headers) and the bytes
//!   written (which bounds sparse files), and what a tar reader reads to find the next entry is
//!   capped at [`MAX_ENTRY_METADATA`];
//! - permissions are normalised: directories `0o755`, files `0o755` when any executable bit is
//!   set, else `0o644`; owners and setuid/setgid/sticky bits are not kept. File modification times
//!   are kept (best effort, as `make` compares them), directory ones too.
//!
//! With [`StripTopLevel::Auto`] an archive whose only top-level entry is a directory has that
//! directory's content become `dest`, as `slapos.recipe.cmmi` and `download-unpacked` do.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Default of [`UnpackOptions::max_bytes`]: 64 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;
/// Default of [`UnpackOptions::max_ratio`].
pub const DEFAULT_MAX_RATIO: u64 = 1000;
/// Default of [`UnpackOptions::ratio_threshold`]: 64 MiB.
pub const DEFAULT_RATIO_THRESHOLD: u64 = 64 << 20;
/// Default of [`UnpackOptions::max_entries`].
pub const DEFAULT_MAX_ENTRIES: u64 = 2_000_000;
/// The most a tar reader may read between two entries (headers, long names, pax extensions,
/// skipped data), which it keeps in memory: 16 MiB.
pub const MAX_ENTRY_METADATA: u64 = 16 << 20;

const BUFFER_SIZE: usize = 64 * 1024;
/// The longest symlink target read from a zip entry.
const MAX_ZIP_LINK: u64 = 64 * 1024;

/// Whether the single top-level directory of an archive is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StripTopLevel {
    /// Strip it if the archive has exactly one top-level entry and it is a directory.
    #[default]
    Auto,
    /// Strip it, and fail if the archive does not have exactly one top-level directory.
    Yes,
    /// Keep the archive's layout.
    No,
}

/// How [`unpack`] unpacks, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    pub strip_top_level: StripTopLevel,
    /// The most bytes the archive may expand to.
    pub max_bytes: u64,
    /// The most times its own size the archive may expand to, once over `ratio_threshold`.
    pub max_ratio: u64,
    /// The expanded size under which `max_ratio` is not enforced (tiny archives of zeros).
    pub ratio_threshold: u64,
    /// The most entries the archive may have.
    pub max_entries: u64,
}

impl Default for UnpackOptions {
    fn default() -> UnpackOptions {
        UnpackOptions {
            strip_top_level: StripTopLevel::Auto,
            max_bytes: DEFAULT_MAX_BYTES,
            max_ratio: DEFAULT_MAX_RATIO,
            ratio_threshold: DEFAULT_RATIO_THRESHOLD,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// An archive format, as recognised by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    TarBz2,
    TarXz,
    TarZst,
    Zip,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Tar => "tar",
            Format::TarGz => "gzip",
            Format::TarBz2 => "bzip2",
            Format::TarXz => "xz",
            Format::TarZst => "zstd",
            Format::Zip => "zip",
        })
    }
}

/// Why an archive was not unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot read archive `{archive}`: {source}")]
    Read { archive: PathBuf, source: io::Error },
    #[error("zip archive `{archive}`: {source}")]
    Zip {
        archive: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("`{archive}` is not a tar, tar.gz, tar.bz2, tar.xz, tar.zst or zip archive")]
    UnknownFormat { archive: PathBuf },
    #[error("`{archive}` is {format}-compressed but does not hold a tar archive")]
    NotTar { archive: PathBuf, format: Format },
    #[error("archive `{archive}`: cannot extract `{entry}`: {source}")]
    Write {
        archive: PathBuf,
        entry: String,
        source: io::Error,
    },
    #[error("archive `{archive}`: refusing entry `{entry}`: its path is absolute")]
    AbsolutePath { archive: PathBuf, entry: String },
    #[error("archive `{archive}`: refusing entry `{entry}`: its path has a `..` component")]
    ParentComponent { archive: PathBuf, entry: String },
    #[error("archive `{archive}`: refusing entry `{entry}`: its name is empty")]
    EmptyName { archive: PathBuf, entry: String },
    #[error("archive `{archive}`: refusing symlink `{entry}`: its target `{target}` is absolute")]
    AbsoluteSymlink {
        archive: PathBuf,
        entry: String,
        target: String,
    },
    #[error(
        "archive `{archive}`: refusing symlink `{entry}`: its target `{target}` is outside the \
         archive"
    )]
    EscapingSymlink {
        archive: PathBuf,
        entry: String,
        target: String,
    },
    #[error(
        "archive `{archive}`: refusing symlink `{entry}`: its target `{target}` is empty or has a \
         `..` after a name, so it cannot be checked to stay inside the archive"
    )]
    UncheckedSymlink {
        archive: PathBuf,
        entry: String,
        target: String,
    },
    #[error(
        "archive `{archive}`: refusing hard link `{entry}`: its target `{target}` is outside the \
         archive"
    )]
    HardLinkOutside {
        archive: PathBuf,
        entry: String,
        target: String,
    },
    #[error(
        "archive `{archive}`: refusing hard link `{entry}`: its target `{target}` is not a file \
         extracted before it"
    )]
    HardLinkMissing {
        archive: PathBuf,
        entry: String,
        target: String,
    },
    #[error("archive `{archive}`: refusing entry `{entry}`: it is a {kind}")]
    SpecialFile {
        archive: PathBuf,
        entry: String,
        kind: &'static str,
    },
    #[error("archive `{archive}`: refusing entry `{entry}`: unsupported tar entry type `{kind}`")]
    UnsupportedEntry {
        archive: PathBuf,
        entry: String,
        kind: String,
    },
    #[error(
        "archive `{archive}`: refusing entry `{entry}`: `{through}` on its way is not a directory \
         (a symlink or a file)"
    )]
    ThroughNonDirectory {
        archive: PathBuf,
        entry: String,
        through: String,
    },
    #[error("archive `{archive}`: refusing entry `{entry}`: it would replace a directory")]
    ReplacesDirectory { archive: PathBuf, entry: String },
    #[error("archive `{archive}` expands to more than {limit} bytes")]
    TooLarge { archive: PathBuf, limit: u64 },
    #[error("archive `{archive}` expands to more than {limit} times its size of {size} bytes")]
    TooExpanded {
        archive: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("archive `{archive}` has more than {limit} entries")]
    TooManyEntries { archive: PathBuf, limit: u64 },
    #[error("archive `{archive}`: the headers of an entry take more than {limit} bytes")]
    MetadataTooLarge { archive: PathBuf, limit: u64 },
    #[error("archive `{archive}` has no single top-level directory to strip ({})", top_level(.count))]
    NotSingleTopLevel { archive: PathBuf, count: usize },
    #[error("cannot unpack `{archive}` into `{dest}`: it exists and is not an empty directory")]
    DestExists { archive: PathBuf, dest: PathBuf },
    #[error("cannot unpack `{archive}` into `{dest}`: {source}")]
    Dest {
        archive: PathBuf,
        dest: PathBuf,
        source: io::Error,
    },
}

fn top_level(count: &usize) -> String {
    match count {
        1 => "its only top-level entry is not a directory".into(),
        n => format!("it has {n} top-level entries"),
    }
}

/// The format of `archive`, from its magic bytes.
pub fn detect(archive: &Path) -> Result<Format, UnpackError> {
    let read_error = |source| UnpackError::Read {
        archive: archive.to_owned(),
        source,
    };
    let mut head = [0; 512];
    let n =
        read_full(&mut File::open(archive).map_err(read_error)?, &mut head).map_err(read_error)?;
    detect_bytes(&head[..n]).ok_or_else(|| UnpackError::UnknownFormat {
        archive: archive.to_owned(),
    })
}

fn detect_bytes(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::TarGz)
    } else if head.starts_with(b"BZh") {
        Some(Format::TarBz2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Format::TarXz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::TarZst)
    } else if head.starts_with(b"PK\x03\x04") {
        Some(Format::Zip)
    } else if is_tar_head(head) {
        Some(Format::Tar)
    } else {
        None
    }
}

/// Whether `head` (the first block of a stream) starts a tar archive, as GNU tar decides: a header
/// whose checksum field matches the sum of its bytes (the field counted as spaces; unsigned, or
/// signed as some old tars computed it), whatever its magic — v7 (pre-POSIX, no magic), ustar,
/// GNU, pax — or an all-zero block (an empty archive).
fn is_tar_head(head: &[u8]) -> bool {
    if head.len() != 512 {
        return false;
    }
    if head.iter().all(|&b| b == 0) {
        return true;
    }
    let Some(stored) = parse_octal(&head[148..156]) else {
        return false;
    };
    let field = 148..156;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in head.iter().enumerate() {
        let b = if field.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored) == Ok(signed)
}

/// A tar numeric field: optional leading spaces, octal digits, then NULs or spaces; `None` when
/// it holds no digit or anything else.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = field.trim_ascii_start();
    let end = text
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(end);
    if digits.is_empty() || rest.iter().any(|&b| b != 0 && b != b' ') {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| match d {
        b'0'..=b'7' => n.checked_mul(8)?.checked_add(u64::from(d - b'0')),
        _ => None,
    })
}

/// Reads until `buffer` is full or the end of `reader`; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buffer.len() {
        match reader.read(&mut buffer[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Unpacks `archive` into `dest`, which must not exist or be an empty directory; see the module
/// documentation for what is refused.
pub fn unpack(archive: &Path, dest: &Path, options: &UnpackOptions) -> Result<(), UnpackError> {
    let dest_error = |source| UnpackError::Dest {
        archive: archive.to_owned(),
        dest: dest.to_owned(),
        source,
    };
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(dest_error(e)),
        Ok(meta) => {
            let empty_dir =
                meta.is_dir() && fs::read_dir(dest).map_err(dest_error)?.next().is_none();
            if !empty_dir {
                return Err(UnpackError::DestExists {
                    archive: archive.to_owned(),
                    dest: dest.to_owned(),
                });
            }
        }
    }
    let format = detect(archive)?;
    let read_error = |source| UnpackError::Read {
        archive: archive.to_owned(),
        source,
    };
    let file = File::open(archive).map_err(read_error)?;
    let archive_size = file.metadata().map_err(read_error)?.len();

    let name = dest.file_name().ok_or_else(|| {
        dest_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory name",
        ))
    })?;
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = TempDir::create(parent, name).map_err(dest_error)?;
    let mut extractor = Extractor {
        archive,
        root: temp.path.clone(),
        options,
        archive_size,
        written: 0,
        entries: 0,
        stream: Rc::new(StreamState::default()),
        dirs: HashSet::new(),
        files: HashSet::new(),
        dir_times: Vec::new(),
        buffer: Vec::new(),
    };
    match format {
        Format::Zip => extractor.extract_zip(file)?,
        _ => extractor.extract_tar(format, file)?,
    }
    extractor.set_dir_times();

    let mut source = temp.path.clone();
    if options.strip_top_level != StripTopLevel::No {
        let mut top = Vec::new();
        for entry in fs::read_dir(&temp.path).map_err(dest_error)? {
            top.push(entry.map_err(dest_error)?.path());
            if top.len() > 1 {
                break;
            }
        }
        let single_dir = match top.as_slice() {
            [only] => fs::symlink_metadata(only).map_err(dest_error)?.is_dir(),
            _ => false,
        };
        if single_dir {
            source = top.remove(0);
        } else if options.strip_top_level == StripTopLevel::Yes {
            let count = fs::read_dir(&temp.path).map_err(dest_error)?.count();
            return Err(UnpackError::NotSingleTopLevel {
                archive: archive.to_owned(),
                count,
            });
        }
    }
    fs::set_permissions(&source, fs::Permissions::from_mode(0o755)).map_err(dest_error)?;
    fs::rename(&source, dest).map_err(dest_error)?;
    if source == temp.path {
        temp.keep = true;
    }
    Ok(())
}

/// A temporary directory next to `dest`, removed (with its content) when dropped unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    fn create(parent: &Path, name: &OsStr) -> io::Result<TempDir> {
        for _ in 0..1000 {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut file_name = OsString::from(".");
            file_name.push(name);
            file_name.push(format!(".unpack-{}-{n}", std::process::id()));
            let path = parent.join(file_name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path, keep: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary name",
        ))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Which limit the decompressed stream went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Bytes,
    Ratio,
    Metadata,
}

/// What has been read from the decompressed tar stream, shared with the [`CountingReader`].
#[derive(Debug, Default)]
struct StreamState {
    read: Cell<u64>,
    /// Where the tar reader started looking for the next entry, while it does.
    mark: Cell<Option<u64>>,
    hit: Cell<Option<Limit>>,
}

/// Counts the decompressed bytes and fails once over a limit.
struct CountingReader<R> {
    inner: R,
    state: Rc<StreamState>,
    max_bytes: u64,
    max_ratio_bytes: u64,
    ratio_threshold: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        let total = self.state.read.get().saturating_add(n as u64);
        self.state.read.set(total);
        let hit = if total > self.max_bytes {
            Some(Limit::Bytes)
        } else if total > self.ratio_threshold && total > self.max_ratio_bytes {
            Some(Limit::Ratio)
        } else {
            match self.state.mark.get() {
                Some(mark) if total - mark > MAX_ENTRY_METADATA => Some(Limit::Metadata),
                _ => None,
            }
        };
        if let Some(limit) = hit {
            self.state.hit.set(Some(limit));
            return Err(io::Error::other("archive limit exceeded"));
        }
        Ok(n)
    }
}

/// The kind of a zip entry, from its Unix mode.
enum ZipKind {
    File,
    Dir,
    Symlink,
    Special(&'static str),
}

/// The name of a special file type from the `S_IFMT` bits of a mode, if it is one.
fn special_kind(mode: u32) -> Option<&'static str> {
    match mode & 0o170000 {
        0o010000 => Some("fifo"),
        0o020000 => Some("character device"),
        0o060000 => Some("block device"),
        0o140000 => Some("socket"),
        _ => None,
    }
}

fn file_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// Extraction into `root`, the temporary directory.
struct Extractor<'a> {
    archive: &'a Path,
    root: PathBuf,
    options: &'a UnpackOptions,
    archive_size: u64,
    /// Bytes written to files.
    written: u64,
    entries: u64,
    stream: Rc<StreamState>,
    /// Relative paths known to be real directories (never replaced once they are).
    dirs: HashSet<PathBuf>,
    /// Relative paths of the regular files extracted, which hard links may point to.
    files: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, SystemTime)>,
    /// The copy buffer, reused from file to file.
    buffer: Vec<u8>,
}

impl Extractor<'_> {
    fn archive(&self) -> PathBuf {
        self.archive.to_owned()
    }

    /// The error for a failed read of the archive: a limit of the stream, or a read error.
    fn read_error(&self, source: io::Error) -> UnpackError {
        let archive = self.archive();
        match self.stream.hit.get() {
            Some(Limit::Bytes) => UnpackError::TooLarge {
                archive,
                limit: self.options.max_bytes,
            },
            Some(Limit::Ratio) => UnpackError::TooExpanded {
                archive,
                size: self.archive_size,
                limit: self.options.max_ratio,
            },
            Some(Limit::Metadata) => UnpackError::MetadataTooLarge {
                archive,
                limit: MAX_ENTRY_METADATA,
            },
            None => UnpackError::Read { archive, source },
        }
    }

    fn write_error(&self, entry: &str, source: io::Error) -> UnpackError {
        UnpackError::Write {
            archive: self.archive(),
            entry: entry.into(),
            source,
        }
    }

    fn count_entry(&mut self) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.options.max_entries {
            return Err(UnpackError::TooManyEntries {
                archive: self.archive(),
                limit: self.options.max_entries,
            });
        }
        Ok(())
    }

    fn add_written(&mut self, n: u64) -> Result<(), UnpackError> {
        self.written = self.written.saturating_add(n);
        if self.written > self.options.max_bytes {
            return Err(UnpackError::TooLarge {
                archive: self.archive(),
                limit: self.options.max_bytes,
            });
        }
        if self.written > self.options.ratio_threshold
            && self.written > self.archive_size.saturating_mul(self.options.max_ratio)
        {
            return Err(UnpackError::TooExpanded {
                archive: self.archive(),
                size: self.archive_size,
                limit: self.options.max_ratio,
            });
        }
        Ok(())
    }

    /// The relative path of an entry named `raw` (`.` components and empty ones dropped); `None`
    /// for the root itself.
    fn entry_path(&self, raw: &[u8], entry: &str) -> Result<Option<PathBuf>, UnpackError> {
        if raw.first() == Some(&b'/') {
            return Err(UnpackError::AbsolutePath {
                archive: self.archive(),
                entry: entry.into(),
            });
        }
        let mut path = PathBuf::new();
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    return Err(UnpackError::ParentComponent {
                        archive: self.archive(),
                        entry: entry.into(),
                    })
                }
                name => path.push(OsStr::from_bytes(name)),
            }
        }
        Ok((!path.as_os_str().is_empty()).then_some(path))
    }

    /// Like [`entry_path`](Self::entry_path), for an entry that cannot be the root.
    fn entry_path_not_root(&self, raw: &[u8], entry: &str) -> Result<PathBuf, UnpackError> {
        self.entry_path(raw, entry)?
            .ok_or_else(|| UnpackError::EmptyName {
                archive: self.archive(),
                entry: entry.into(),
            })
    }

    /// Makes every directory on the way to `path` a real directory, creating missing ones, and
    /// fails if one of them is anything else.
    fn make_parents(&mut self, path: &Path, entry: &str) -> Result<(), UnpackError> {
        let mut prefix = PathBuf::new();
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        for component in parent.components() {
            prefix.push(component);
            if self.dirs.contains(&prefix) {
                continue;
            }
            let full = self.root.join(&prefix);
            match fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackError::ThroughNonDirectory {
                        archive: self.archive(),
                        entry: entry.into(),
                        through: prefix.to_string_lossy().into_owned(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).map_err(|e| self.write_error(entry, e))?;
                    fs::set_permissions(&full, fs::Permissions::from_mode(0o755))
                        .map_err(|e| self.write_error(entry, e))?;
                }
                Err(e) => return Err(self.write_error(entry, e)),
            }
            self.dirs.insert(prefix.clone());
        }
        Ok(())
    }

    /// Prepares for creating a non-directory at `path`: its parents are real directories, and
    /// whatever non-directory was there is removed (a later entry replaces an earlier one).
    fn make_room(&mut self, path: &Path, entry: &str) -> Result<PathBuf, UnpackError> {
        self.make_parents(path, entry)?;
        let full = self.root.join(path);
        match fs::symlink_metadata(&full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.write_error(entry, e)),
            Ok(meta) if meta.is_dir() => {
                return Err(UnpackError::ReplacesDirectory {
                    archive: self.archive(),
                    entry: entry.into(),
                })
            }
            Ok(_) => {
                fs::remove_file(&full).map_err(|e| self.write_error(entry, e))?;
                self.files.remove(path);
            }
        }
        Ok(full)
    }

    fn make_dir(
        &mut self,
        path: &Path,
        entry: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(), UnpackError> {
        self.make_parents(path, entry)?;
        let full = self.root.join(path);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&full).map_err(|e| self.write_error(entry, e))?;
                self.files.remove(path);
                fs::create_dir(&full).map_err(|e| self.write_error(entry, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&full).map_err(|e| self.write_error(entry, e))?;
            }
            Err(e) => return Err(self.write_error(entry, e)),
        }
        fs::set_permissions(&full, fs::Permissions::from_mode(0o755))
            .map_err(|e| self.write_error(entry, e))?;
        self.dirs.insert(path.to_owned());
        if let Some(mtime) = mtime {
            self.dir_times.push((path.to_owned(), mtime));
        }
        Ok(())
    }

    fn write_file(
        &mut self,
        path: &Path,
        entry: &str,
        mode: u32,
        mtime: Option<SystemTime>,
        reader: &mut dyn Read,
    ) -> Result<(), UnpackError> {
        let full = self.make_room(path, entry)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&full)
            .map_err(|e| self.write_error(entry, e))?;
        // One buffer for every file (an archive may hold millions of small ones).
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.resize(BUFFER_SIZE, 0);
        let copied = self.copy_data(entry, reader, &mut file, &mut buffer);
        self.buffer = buffer;
        copied?;
        file.set_permissions(fs::Permissions::from_mode(file_mode(mode)))
            .map_err(|e| self.write_error(entry, e))?;
        if let Some(mtime) = mtime {
            // Best effort: some file systems refuse some times.
            let _ = file.set_times(FileTimes::new().set_modified(mtime));
        }
        self.files.insert(path.to_owned());
        Ok(())
    }

    /// Copies `reader` into `file`, counting what is written against the limits.
    fn copy_data(
        &mut self,
        entry: &str,
        reader: &mut dyn Read,
        file: &mut File,
        buffer: &mut [u8],
    ) -> Result<(), UnpackError> {
        loop {
            let n = match reader.read(buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            };
            self.add_written(n as u64)?;
            file.write_all(&buffer[..n])
                .map_err(|e| self.write_error(entry, e))?;
        }
    }

    fn make_symlink(&mut self, path: &Path, entry: &str, target: &[u8]) -> Result<(), UnpackError> {
        let target_text = || String::from_utf8_lossy(target).into_owned();
        if target.first() == Some(&b'/') {
            return Err(UnpackError::AbsoluteSymlink {
                archive: self.archive(),
                entry: entry.into(),
                target: target_text(),
            });
        }
        // The link's directory is a real directory `depth` levels under the root (parents are
        // made real directories); the target may climb that many levels, then only descend.
        let depth = path.components().count().saturating_sub(1);
        let mut ups = 0;
        let mut named = false;
        for component in target.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." if named => {
                    return Err(UnpackError::UncheckedSymlink {
                        archive: self.archive(),
                        entry: entry.into(),
                        target: target_text(),
                    })
                }
                b".." => ups += 1,
                _ => named = true,
            }
        }
        if target.is_empty() {
            return Err(UnpackError::UncheckedSymlink {
                archive: self.archive(),
                entry: entry.into(),
                target: target_text(),
            });
        }
        if ups > depth {
            return Err(UnpackError::EscapingSymlink {
                archive: self.archive(),
                entry: entry.into(),
                target: target_text(),
            });
        }
        let full = self.make_room(path, entry)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &full)
            .map_err(|e| self.write_error(entry, e))
    }

    fn make_hard_link(
        &mut self,
        path: &Path,
        entry: &str,
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let target_text = || String::from_utf8_lossy(target).into_owned();
        let target_path = match self.entry_path(target, entry) {
            Ok(Some(target_path)) => target_path,
            Ok(None) => {
                return Err(UnpackError::HardLinkMissing {
                    archive: self.archive(),
                    entry: entry.into(),
                    target: target_text(),
                })
            }
            Err(_) => {
                return Err(UnpackError::HardLinkOutside {
                    archive: self.archive(),
                    entry: entry.into(),
                    target: target_text(),
                })
            }
        };
        if !self.files.contains(&target_path) {
            return Err(UnpackError::HardLinkMissing {
                archive: self.archive(),
                entry: entry.into(),
                target: target_text(),
            });
        }
        if target_path == path {
            return Ok(());
        }
        let full = self.make_room(path, entry)?;
        fs::hard_link(self.root.join(&target_path), &full)
            .map_err(|e| self.write_error(entry, e))?;
        self.files.insert(path.to_owned());
        Ok(())
    }

    /// Sets the modification times of directories, now that their content is written. Best
    /// effort.
    fn set_dir_times(&self) {
        for (path, mtime) in &self.dir_times {
            if let Ok(dir) = File::open(self.root.join(path)) {
                let _ = dir.set_times(FileTimes::new().set_modified(*mtime));
            }
        }
    }

    fn extract_tar(&mut self, format: Format, file: File) -> Result<(), UnpackError> {
        let input = BufReader::new(file);
        let decompressed: Box<dyn Read> = match format {
            Format::TarGz => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Format::TarBz2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
            Format::TarXz => Box::new(xz2::read::XzDecoder::new_multi_decoder(input)),
            Format::TarZst => Box::new(
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| self.read_error(e))?,
            ),
            Format::Tar | Format::Zip => Box::new(input),
        };
        let mut counting = CountingReader {
            inner: decompressed,
            state: Rc::clone(&self.stream),
            max_bytes: self.options.max_bytes,
            max_ratio_bytes: self.archive_size.saturating_mul(self.options.max_ratio),
            ratio_threshold: self.options.ratio_threshold,
        };
        let mut head = vec![0; 512];
        let n = read_full(&mut counting, &mut head).map_err(|e| self.read_error(e))?;
        head.truncate(n);
        if !is_tar_head(&head) {
            return Err(UnpackError::NotTar {
                archive: self.archive(),
                format,
            });
        }
        let mut tar = tar::Archive::new(io::Cursor::new(head).chain(counting));
        let mut entries = tar.entries().map_err(|e| self.read_error(e))?;
        loop {
            self.stream.mark.set(Some(self.stream.read.get()));
            let next = entries.next();
            self.stream.mark.set(None);
            let mut entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(self.read_error(e)),
            };
            self.count_entry()?;
            self.extract_tar_entry(&mut entry)?;
            // Whatever data was not used (say, of a directory) is read here, not by the
            // search for the next entry.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| self.read_error(e))?;
        }
        Ok(())
    }

    fn extract_tar_entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        use tar::EntryType;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644);
        let mtime = header
            .mtime()
            .ok()
            .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)));
        match kind {
            EntryType::XGlobalHeader | EntryType::XHeader => Ok(()),
            EntryType::Directory => match self.entry_path(&raw, &name)? {
                Some(path) => self.make_dir(&path, &name, mtime),
                None => Ok(()),
            },
            // Old tars mark directories with a trailing slash on a regular entry.
            EntryType::Regular if raw.ends_with(b"/") => match self.entry_path(&raw, &name)? {
                Some(path) => self.make_dir(&path, &name, mtime),
                None => Ok(()),
            },
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let path = self.entry_path_not_root(&raw, &name)?;
                self.write_file(&path, &name, mode, mtime, entry)
            }
            EntryType::Symlink | EntryType::Link => {
                let path = self.entry_path_not_root(&raw, &name)?;
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if kind == EntryType::Symlink {
                    self.make_symlink(&path, &name, &target)
                } else {
                    self.make_hard_link(&path, &name, &target)
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => Err(UnpackError::SpecialFile {
                archive: self.archive(),
                entry: name,
                kind: match kind {
                    EntryType::Char => "character device",
                    EntryType::Block => "block device",
                    _ => "fifo",
                },
            }),
            other => Err(UnpackError::UnsupportedEntry {
                archive: self.archive(),
                entry: name,
                kind: String::from_utf8_lossy(&[other.as_byte()]).into_owned(),
            }),
        }
    }

    fn extract_zip(&mut self, file: File) -> Result<(), UnpackError> {
        let zip_error = |source| UnpackError::Zip {
            archive: self.archive(),
            source,
        };
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_error)?;
        if zip.len() as u64 > self.options.max_entries {
            return Err(UnpackError::TooManyEntries {
                archive: self.archive(),
                limit: self.options.max_entries,
            });
        }
        for index in 0..zip.len() {
            let mut entry = zip.by_index(index).map_err(|source| UnpackError::Zip {
                archive: self.archive(),
                source,
            })?;
            self.count_entry()?;
            let name = entry.name().to_owned();
            let mode = entry.unix_mode();
            let mtime = entry.last_modified().and_then(zip_time);
            let kind = match mode {
                _ if name.ends_with('/') => ZipKind::Dir,
                Some(mode) => match mode & 0o170000 {
                    0o040000 => ZipKind::Dir,
                    0o120000 => ZipKind::Symlink,
                    _ => match special_kind(mode) {
                        Some(kind) => ZipKind::Special(kind),
                        None => ZipKind::File,
                    },
                },
                None => ZipKind::File,
            };
            match kind {
                ZipKind::Dir => {
                    if let Some(path) = self.entry_path(name.as_bytes(), &name)? {
                        self.make_dir(&path, &name, mtime)?;
                    }
                }
                ZipKind::Symlink => {
                    let path = self.entry_path_not_root(name.as_bytes(), &name)?;
                    let mut target = Vec::new();
                    (&mut entry)
                        .take(MAX_ZIP_LINK)
                        .read_to_end(&mut target)
                        .map_err(|e| self.read_error(e))?;
                    self.add_written(target.len() as u64)?;
                    self.make_symlink(&path, &name, &target)?;
                }
                ZipKind::Special(kind) => {
                    return Err(UnpackError::SpecialFile {
                        archive: self.archive(),
                        entry: name,
                        kind,
                    })
                }
                ZipKind::File => {
                    let path = self.entry_path_not_root(name.as_bytes(), &name)?;
                    self.write_file(&path, &name, mode.unwrap_or(0o644), mtime, &mut entry)?;
                }
            }
        }
        Ok(())
    }
}

/// The time of a zip entry (a local time without zone, taken as UTC).
fn zip_time(time: zip::DateTime) -> Option<SystemTime> {
    let (year, month, day) = (
        i64::from(time.year()),
        i64::from(time.month()),
        i64::from(time.day()),
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400
        + i64::from(time.hour()) * 3600
        + i64::from(time.minute()) * 60
        + i64::from(time.second());
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use tar::{EntryType, Header};

    /// A tar archive being built in memory.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn file(mut self, path: &str, data: &[u8], mode: u32) -> Tar {
            let mut header = Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(1_000_000_000);
            header.set_entry_type(EntryType::Regular);
            self.0.append_data(&mut header, path, data).unwrap();
            self
        }

        fn dir(mut self, path: &str) -> Tar {
            let mut header = Header::new_gnu();
            header.set_size(0);
            header.set_mode(0o700);
            header.set_entry_type(EntryType::Directory);
            self.0.append_data(&mut header, path, io::empty()).unwrap();
            self
        }

        /// An entry written byte for byte, bypassing the checks of `tar::Header::set_path`.
        fn raw(mut self, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> Tar {
            let mut header = Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(kind);
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }

        fn symlink(self, name: &str, target: &str) -> Tar {
            self.raw(EntryType::Symlink, name.as_bytes(), target.as_bytes(), b"")
        }

        fn hard_link(self, name: &str, target: &str) -> Tar {
            self.raw(EntryType::Link, name.as_bytes(), target.as_bytes(), b"")
        }

        /// A pax extension header (`x`, or `g` for a global one) of `key=value` records.
        fn pax(self, kind: EntryType, records: &[(&str, &str)]) -> Tar {
            let mut data = Vec::new();
            for (key, value) in records {
                let rest = format!(" {key}={value}\n");
                let mut len = rest.len() + 1;
                while (len.to_string().len() + rest.len()) != len {
                    len += 1;
                }
                data.extend_from_slice(format!("{len}{rest}").as_bytes());
            }
            self.raw(kind, b"././@PaxHeader", b"", &data)
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn bz2(data: &[u8]) -> Vec<u8> {
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn zst(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 1).unwrap()
    }

    /// A zip archive of (name, kind, content, mode): kind `f`ile, `d`irectory or `l`ink.
    fn zip(entries: &[(&str, char, &[u8], u32)]) -> Vec<u8> {
        use zip::write::SimpleFileOptions;
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for &(name, kind, data, mode) in entries {
            let options = SimpleFileOptions::default().unix_permissions(mode);
            match kind {
                'd' => writer.add_directory(name, options).unwrap(),
                'l' => writer
                    .add_symlink(name, std::str::from_utf8(data).unwrap(), options)
                    .unwrap(),
                _ => {
                    writer.start_file(name, options).unwrap();
                    writer.write_all(data).unwrap();
                }
            }
        }
        writer.finish().unwrap().into_inner()
    }

    /// A scratch directory holding `archive.<ext>`; `dest` is `<dir>/out`.
    struct Scratch {
        dir: tempfile::TempDir,
        archive: PathBuf,
        dest: PathBuf,
    }

    impl Scratch {
        fn new(bytes: &[u8]) -> Scratch {
            let dir = tempfile::tempdir().unwrap();
            let archive = dir.path().join("archive");
            fs::write(&archive, bytes).unwrap();
            let dest = dir.path().join("out");
            Scratch { dir, archive, dest }
        }

        fn unpack(&self, options: &UnpackOptions) -> Result<(), UnpackError> {
            unpack(&self.archive, &self.dest, options)
        }

        /// Unpacking fails, leaving nothing but the archive (no `dest`, no temporary directory).
        fn refused(&self, options: &UnpackOptions) -> UnpackError {
            let err = self.unpack(options).unwrap_err();
            let names: Vec<_> = fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![OsString::from("archive")], "after {err:?}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("`{}`", self.archive.display())),
                "{message}"
            );
            err
        }

        fn read(&self, path: &str) -> Vec<u8> {
            fs::read(self.dest.join(path)).unwrap()
        }

        fn mode(&self, path: &str) -> u32 {
            fs::symlink_metadata(self.dest.join(path)).unwrap().mode() & 0o7777
        }
    }

    fn defaults() -> UnpackOptions {
        UnpackOptions::default()
    }

    fn with_strip(strip_top_level: StripTopLevel) -> UnpackOptions {
        UnpackOptions {
            strip_top_level,
            ..UnpackOptions::default()
        }
    }

    /// A typical source tarball: one top-level directory.
    fn source_tar() -> Vec<u8> {
        Tar::new()
            .dir("pkg-1.0/")
            .file("pkg-1.0/configure", b"#!/bin/sh\n", 0o4775)
            .file("pkg-1.0/src/main.c", b"int main;\n", 0o666)
            .symlink("pkg-1.0/src/link.c", "main.c")
            .symlink("pkg-1.0/src/up", "../configure")
            .hard_link("pkg-1.0/hard.c", "pkg-1.0/src/main.c")
            .bytes()
    }

    fn check_source_tree(scratch: &Scratch) {
        assert_eq!(scratch.read("configure"), b"#!/bin/sh\n");
        assert_eq!(
            scratch.mode("configure"),
            0o755,
            "setuid and group write dropped"
        );
        assert_eq!(scratch.mode("src/main.c"), 0o644);
        assert_eq!(scratch.mode("src"), 0o755);
        assert_eq!(scratch.mode(""), 0o755);
        assert_eq!(
            fs::read_link(scratch.dest.join("src/link.c")).unwrap(),
            Path::new("main.c")
        );
        assert_eq!(scratch.read("src/link.c"), b"int main;\n");
        assert_eq!(scratch.read("src/up"), b"#!/bin/sh\n");
        let main = fs::metadata(scratch.dest.join("src/main.c")).unwrap();
        let hard = fs::metadata(scratch.dest.join("hard.c")).unwrap();
        assert_eq!(main.ino(), hard.ino());
        assert_eq!(main.mtime(), 1_000_000_000);
        let names: Vec<_> = fs::read_dir(scratch.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary directory left: {names:?}");
    }

    #[test]
    fn every_tar_format() {
        let tar = source_tar();
        for (format, bytes) in [
            (Format::Tar, tar.clone()),
            (Format::TarGz, gz(&tar)),
            (Format::TarBz2, bz2(&tar)),
            (Format::TarXz, xz(&tar)),
            (Format::TarZst, zst(&tar)),
        ] {
            let scratch = Scratch::new(&bytes);
            assert_eq!(detect(&scratch.archive).unwrap(), format);
            scratch.unpack(&defaults()).unwrap();
            check_source_tree(&scratch);
        }
    }

    /// Pre-POSIX (v7) headers, as autotools' `make dist` writes them: no magic, directories as
    /// regular entries with a trailing slash, links in the old type bytes.
    #[test]
    fn v7_headers() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut entry = |kind: EntryType, name: &str, link: &str, data: &[u8], mode: u32| {
            let mut header = Header::new_old();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(1_000_000_000);
            header.set_entry_type(kind);
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_cksum();
            builder.append(&header, data).unwrap();
        };
        entry(EntryType::Regular, "pkg-1.0/", "", b"", 0o755);
        entry(
            EntryType::Regular,
            "pkg-1.0/configure",
            "",
            b"#!/bin/sh\n",
            0o4775,
        );
        entry(EntryType::Regular, "pkg-1.0/src/", "", b"", 0o755);
        entry(
            EntryType::Regular,
            "pkg-1.0/src/main.c",
            "",
            b"int main;\n",
            0o666,
        );
        entry(
            EntryType::Symlink,
            "pkg-1.0/src/link.c",
            "main.c",
            b"",
            0o777,
        );
        entry(
            EntryType::Symlink,
            "pkg-1.0/src/up",
            "../configure",
            b"",
            0o777,
        );
        entry(
            EntryType::Link,
            "pkg-1.0/hard.c",
            "pkg-1.0/src/main.c",
            b"",
            0o644,
        );
        let tar = builder.into_inner().unwrap();
        assert_ne!(&tar[257..262], b"ustar", "a v7 header has no magic");
        for (format, bytes) in [(Format::Tar, tar.clone()), (Format::TarGz, gz(&tar))] {
            let scratch = Scratch::new(&bytes);
            assert_eq!(detect(&scratch.archive).unwrap(), format);
            scratch.unpack(&defaults()).unwrap();
            check_source_tree(&scratch);
        }
        // A block whose checksum does not match is no tar, with or without magic.
        let mut corrupt = tar.clone();
        corrupt[0] ^= 1;
        let err = Scratch::new(&gz(&corrupt)).refused(&defaults());
        assert!(matches!(err, UnpackError::NotTar { .. }), "{err:?}");
    }

    /// Hostile entries are refused in v7 headers as in ustar ones.
    #[test]
    fn v7_hostile_entries_are_refused() {
        for (kind, name, link, why) in [
            (EntryType::Regular, "/tmp/evil", "", "is absolute"),
            (EntryType::Regular, "pkg/../../evil", "", "`..` component"),
            (EntryType::Symlink, "pkg/abs", "/etc/passwd", "is absolute"),
            (
                EntryType::Symlink,
                "pkg/out",
                "../../etc",
                "outside the archive",
            ),
            (
                EntryType::Link,
                "pkg/hard",
                "/etc/passwd",
                "outside the archive",
            ),
        ] {
            let mut header = Header::new_old();
            header.set_size(0);
            header.set_mode(0o644);
            header.set_entry_type(kind);
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_cksum();
            let mut builder = tar::Builder::new(Vec::new());
            builder.append(&header, io::empty()).unwrap();
            let err = Scratch::new(&gz(&builder.into_inner().unwrap())).refused(&defaults());
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
    }

    /// Every format GNU tar writes (`--format=v7|oldgnu|gnu|ustar|posix`), made by GNU tar itself,
    /// with a name too long for a v7 header where the format allows one.
    #[test]
    fn archives_made_by_gnu_tar() {
        let tree = tempfile::tempdir().unwrap();
        let top = tree.path().join("pkg-1.0");
        fs::create_dir_all(top.join("src")).unwrap();
        fs::write(top.join("configure"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(top.join("configure"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(top.join("src/main.c"), "int main;\n").unwrap();
        std::os::unix::fs::symlink("main.c", top.join("src/link.c")).unwrap();
        let long = format!("{}/file.c", "d".repeat(120));
        fs::create_dir_all(top.join("src").join(&long).parent().unwrap()).unwrap();
        fs::write(top.join("src").join(&long), "long\n").unwrap();
        for format in ["v7", "oldgnu", "gnu", "ustar", "posix"] {
            let archive = tree.path().join(format!("{format}.tar.gz"));
            let mut members = vec![
                "pkg-1.0/configure",
                "pkg-1.0/src/main.c",
                "pkg-1.0/src/link.c",
            ];
            let long_member = format!("pkg-1.0/src/{long}");
            if format != "v7" {
                members.push(&long_member);
            }
            let status = std::process::Command::new("tar")
                .arg(format!("--format={format}"))
                .arg("-czf")
                .arg(&archive)
                .arg("-C")
                .arg(tree.path())
                .args(&members)
                .status()
                .expect("GNU tar");
            assert!(status.success(), "tar --format={format}");
            let scratch = Scratch::new(&fs::read(&archive).unwrap());
            scratch.unpack(&defaults()).unwrap();
            assert_eq!(scratch.read("configure"), b"#!/bin/sh\n", "{format}");
            assert_eq!(scratch.mode("configure"), 0o755, "{format}");
            assert_eq!(scratch.read("src/link.c"), b"int main;\n", "{format}");
            if format != "v7" {
                assert_eq!(scratch.read(&format!("src/{long}")), b"long\n", "{format}");
            }
        }
    }

    #[test]
    fn tar_checksums() {
        let mut header = Header::new_old();
        header.set_size(3);
        header.set_cksum();
        assert!(is_tar_head(header.as_bytes()));
        // A checksum computed with signed bytes, as some old tars did.
        let mut bytes = *header.as_bytes();
        bytes[0] = 0xe9;
        let signed: i64 = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        bytes[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        assert!(is_tar_head(&bytes));
        bytes[1] = 1;
        assert!(!is_tar_head(&bytes));
        assert_eq!(parse_octal(b"  0644 \0"), Some(0o644));
        assert_eq!(parse_octal(b"\0\0\0\0"), None);
        assert_eq!(parse_octal(b"12 x"), None);
        assert_eq!(parse_octal(b"9"), None);
    }

    #[test]
    fn concatenated_gzip_members() {
        let tar = source_tar();
        let (first, second) = tar.split_at(1024);
        let mut bytes = gz(first);
        bytes.extend(gz(second));
        let scratch = Scratch::new(&bytes);
        scratch.unpack(&defaults()).unwrap();
        check_source_tree(&scratch);
    }

    #[test]
    fn zip_archive() {
        let bytes = zip(&[
            ("pkg/", 'd', b"", 0o755),
            ("pkg/run.sh", 'f', b"#!/bin/sh\n", 0o4755),
            ("pkg/sub/data.txt", 'f', b"data", 0o600),
            ("pkg/sub/link", 'l', b"data.txt", 0o777),
        ]);
        let scratch = Scratch::new(&bytes);
        assert_eq!(detect(&scratch.archive).unwrap(), Format::Zip);
        scratch.unpack(&defaults()).unwrap();
        assert_eq!(scratch.read("run.sh"), b"#!/bin/sh\n");
        assert_eq!(scratch.mode("run.sh"), 0o755);
        assert_eq!(scratch.mode("sub/data.txt"), 0o644);
        assert_eq!(scratch.read("sub/link"), b"data");
        assert!(fs::symlink_metadata(scratch.dest.join("sub/link"))
            .unwrap()
            .is_symlink());
    }

    #[test]
    fn zip_refusals() {
        let err = Scratch::new(&zip(&[("../evil", 'f', b"x", 0o644)])).refused(&defaults());
        assert!(matches!(&err, UnpackError::ParentComponent { entry, .. } if entry == "../evil"));
        let err = Scratch::new(&zip(&[("/abs", 'f', b"x", 0o644)])).refused(&defaults());
        assert!(matches!(err, UnpackError::AbsolutePath { .. }), "{err:?}");
        let err = Scratch::new(&zip(&[("l", 'l', b"/etc/passwd", 0o777)])).refused(&defaults());
        assert!(
            matches!(err, UnpackError::AbsoluteSymlink { .. }),
            "{err:?}"
        );
        let err = Scratch::new(&zip(&[("a/l", 'l', b"../../x", 0o777)])).refused(&defaults());
        assert!(
            matches!(err, UnpackError::EscapingSymlink { .. }),
            "{err:?}"
        );
        // The zip writer keeps only permission bits: set the file type in the central directory.
        let mut fifo = zip(&[("p", 'f', b"", 0o644)]);
        let central = memchr::memmem::find(&fifo, b"PK\x01\x02").unwrap();
        fifo[central + 38..central + 42].copy_from_slice(&(0o010644u32 << 16).to_le_bytes());
        let err = Scratch::new(&fifo).refused(&defaults());
        assert!(
            matches!(err, UnpackError::SpecialFile { kind: "fifo", .. }),
            "{err:?}"
        );
        let many = zip(&[("a", 'f', b"", 0o644), ("b", 'f', b"", 0o644)]);
        let options = UnpackOptions {
            max_entries: 1,
            ..defaults()
        };
        let err = Scratch::new(&many).refused(&options);
        assert!(
            matches!(err, UnpackError::TooManyEntries { limit: 1, .. }),
            "{err:?}"
        );
        let big = zip(&[("zeros", 'f', &[0; 100_000], 0o644)]);
        let options = UnpackOptions {
            max_bytes: 50_000,
            ..defaults()
        };
        let err = Scratch::new(&big).refused(&options);
        assert!(
            matches!(err, UnpackError::TooLarge { limit: 50_000, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn strip_top_level() {
        let tar = source_tar();
        let scratch = Scratch::new(&tar);
        scratch.unpack(&with_strip(StripTopLevel::Yes)).unwrap();
        check_source_tree(&scratch);

        let scratch = Scratch::new(&tar);
        scratch.unpack(&with_strip(StripTopLevel::No)).unwrap();
        assert_eq!(scratch.read("pkg-1.0/configure"), b"#!/bin/sh\n");

        // A top-level directory that is only implied by the paths of its entries.
        let implied = Tar::new().file("./top/a", b"a", 0o644).bytes();
        let scratch = Scratch::new(&implied);
        scratch.unpack(&defaults()).unwrap();
        assert_eq!(scratch.read("a"), b"a");

        // Two top-level entries: kept with Auto, refused with Yes.
        let two = Tar::new()
            .file("a/x", b"", 0o644)
            .file("b", b"", 0o644)
            .bytes();
        let scratch = Scratch::new(&two);
        scratch.unpack(&defaults()).unwrap();
        assert!(scratch.dest.join("a/x").is_file() && scratch.dest.join("b").is_file());
        let err = Scratch::new(&two).refused(&with_strip(StripTopLevel::Yes));
        assert!(
            matches!(err, UnpackError::NotSingleTopLevel { count: 2, .. }),
            "{err:?}"
        );

        // A single file is not stripped with Auto.
        let one = Tar::new().file("only", b"1", 0o644).bytes();
        let scratch = Scratch::new(&one);
        scratch.unpack(&defaults()).unwrap();
        assert_eq!(scratch.read("only"), b"1");
        let err = Scratch::new(&one).refused(&with_strip(StripTopLevel::Yes));
        assert_eq!(
            err.to_string().split(" has ").nth(1),
            Some("no single top-level directory to strip (its only top-level entry is not a directory)")
        );
    }

    #[test]
    fn dest_must_be_absent_or_empty() {
        let scratch = Scratch::new(&source_tar());
        fs::create_dir(&scratch.dest).unwrap();
        scratch.unpack(&defaults()).unwrap();
        check_source_tree(&scratch);
        let err = scratch.unpack(&defaults()).unwrap_err();
        assert!(matches!(err, UnpackError::DestExists { .. }), "{err:?}");
        assert_eq!(scratch.read("configure"), b"#!/bin/sh\n");
    }

    #[test]
    fn pax_and_long_names() {
        let long = format!("top/{}/file", "d".repeat(150));
        let tar = Tar::new()
            .pax(EntryType::XGlobalHeader, &[("comment", "global")])
            .file(&long, b"long", 0o644)
            .pax(EntryType::XHeader, &[("path", "top/pax-name")])
            .file("top/short", b"pax", 0o644)
            .bytes();
        let scratch = Scratch::new(&gz(&tar));
        scratch.unpack(&with_strip(StripTopLevel::No)).unwrap();
        assert_eq!(scratch.read(&long), b"long");
        assert_eq!(scratch.read("top/pax-name"), b"pax");
        assert!(!scratch.dest.join("top/short").exists());
        let names: Vec<_> = fs::read_dir(&scratch.dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![OsString::from("top")],
            "no pax_global_header file"
        );
    }

    #[test]
    fn later_entries_replace_earlier_ones_without_following_links() {
        let tar = Tar::new()
            .file("d/target", b"original", 0o644)
            .symlink("d/name", "target")
            .file("d/name", b"replaced", 0o644)
            .file("d/dup", b"one", 0o644)
            .file("d/dup", b"two", 0o755)
            .bytes();
        let scratch = Scratch::new(&tar);
        scratch.unpack(&with_strip(StripTopLevel::No)).unwrap();
        assert_eq!(scratch.read("d/target"), b"original");
        assert_eq!(scratch.read("d/name"), b"replaced");
        assert!(!fs::symlink_metadata(scratch.dest.join("d/name"))
            .unwrap()
            .is_symlink());
        assert_eq!(scratch.read("d/dup"), b"two");
        assert_eq!(scratch.mode("d/dup"), 0o755);
    }

    #[test]
    fn refuses_absolute_paths() {
        let tar = Tar::new()
            .raw(EntryType::Regular, b"/tmp/evil", b"", b"x")
            .bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(matches!(&err, UnpackError::AbsolutePath { entry, .. } if entry == "/tmp/evil"));
        assert!(err
            .to_string()
            .ends_with("refusing entry `/tmp/evil`: its path is absolute"));
    }

    #[test]
    fn refuses_parent_components() {
        for name in [&b"../evil"[..], b"a/../../evil", b"a/.."] {
            let tar = Tar::new()
                .file("a/ok", b"", 0o644)
                .raw(EntryType::Regular, name, b"", b"x")
                .bytes();
            let err = Scratch::new(&gz(&tar)).refused(&defaults());
            assert!(
                matches!(err, UnpackError::ParentComponent { .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn refuses_unsafe_symlinks() {
        type Check = fn(&UnpackError) -> bool;
        let cases: [(&str, &str, Check); 5] = [
            ("l", "/etc/passwd", |e| {
                matches!(e, UnpackError::AbsoluteSymlink { .. })
            }),
            ("l", "../x", |e| {
                matches!(e, UnpackError::EscapingSymlink { .. })
            }),
            ("a/b/l", "../../../x", |e| {
                matches!(e, UnpackError::EscapingSymlink { .. })
            }),
            ("a/l", "b/../../x", |e| {
                matches!(e, UnpackError::UncheckedSymlink { .. })
            }),
            ("a/l", "", |e| {
                matches!(e, UnpackError::UncheckedSymlink { .. })
            }),
        ];
        for (name, target, expected) in cases {
            let tar = Tar::new().symlink(name, target).bytes();
            let err = Scratch::new(&tar).refused(&defaults());
            assert!(expected(&err), "{name} -> {target}: {err:?}");
            assert!(
                err.to_string().contains(&format!("symlink `{name}`")),
                "{err}"
            );
        }
        // Allowed: climbing no higher than the root, then descending.
        let tar = Tar::new()
            .symlink("a/b/l", "../../c/./d")
            .symlink("top", ".")
            .bytes();
        let scratch = Scratch::new(&tar);
        scratch.unpack(&with_strip(StripTopLevel::No)).unwrap();
        assert_eq!(
            fs::read_link(scratch.dest.join("a/b/l")).unwrap(),
            Path::new("../../c/./d")
        );
    }

    #[test]
    fn refuses_writing_through_symlinks() {
        // `x/s` points to the root (allowed), so `x/s/l -> ../y` would point outside if created
        // through it: entries are never created through a symlink.
        let tar = Tar::new()
            .symlink("x/s", "..")
            .symlink("x/s/l", "../y")
            .bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(&err, UnpackError::ThroughNonDirectory { entry, through, .. }
                if entry == "x/s/l" && through == "x/s"),
            "{err:?}"
        );
        // Nor through a file.
        let tar = Tar::new()
            .file("f", b"", 0o644)
            .file("f/g", b"", 0o644)
            .bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::ThroughNonDirectory { .. }),
            "{err:?}"
        );
        // And a file does not replace a directory.
        let tar = Tar::new()
            .file("d/f", b"", 0o644)
            .file("d", b"", 0o644)
            .bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::ReplacesDirectory { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_bad_hard_links() {
        let tar = Tar::new().hard_link("h", "../etc/passwd").bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::HardLinkOutside { .. }),
            "{err:?}"
        );
        let tar = Tar::new().hard_link("h", "/etc/passwd").bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::HardLinkOutside { .. }),
            "{err:?}"
        );
        // Not extracted before it (even if it exists later).
        let tar = Tar::new().hard_link("h", "f").file("f", b"", 0o644).bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::HardLinkMissing { .. }),
            "{err:?}"
        );
        // To a symlink, whose target would then be read from another directory.
        let tar = Tar::new().symlink("s", "f").hard_link("d/h", "s").bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::HardLinkMissing { .. }),
            "{err:?}"
        );
        // To a directory.
        let tar = Tar::new().dir("d/").hard_link("h", "d").bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::HardLinkMissing { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_special_files() {
        for (kind, name) in [
            (EntryType::Fifo, "fifo"),
            (EntryType::Char, "character device"),
            (EntryType::Block, "block device"),
        ] {
            let tar = Tar::new().raw(kind, b"dev/node", b"", b"").bytes();
            let err = Scratch::new(&tar).refused(&defaults());
            assert!(
                matches!(&err, UnpackError::SpecialFile { kind, entry, .. } if *kind == name && entry == "dev/node"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn refuses_too_large() {
        let tar = Tar::new()
            .file("a", &[0; 4096], 0o644)
            .file("b", &[0; 4096], 0o644)
            .bytes();
        let options = UnpackOptions {
            max_bytes: 6000,
            ..defaults()
        };
        // Plain tar: the limit is hit by the bytes written; compressed: by the stream.
        let err = Scratch::new(&tar).refused(&options);
        assert!(
            matches!(err, UnpackError::TooLarge { limit: 6000, .. }),
            "{err:?}"
        );
        let err = Scratch::new(&gz(&tar)).refused(&options);
        assert!(
            matches!(err, UnpackError::TooLarge { limit: 6000, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_too_expanded() {
        let tar = Tar::new().file("zeros", &vec![0; 1 << 20], 0o644).bytes();
        let bytes = gz(&tar);
        let ratio = (1 << 20) / bytes.len() as u64;
        assert!(ratio > 100, "{ratio}");
        let options = UnpackOptions {
            max_ratio: 10,
            ratio_threshold: 100_000,
            ..defaults()
        };
        let err = Scratch::new(&bytes).refused(&options);
        assert!(
            matches!(err, UnpackError::TooExpanded { limit: 10, .. }),
            "{err:?}"
        );
        // Under the threshold, the ratio is not enforced: by default, tiny archives of zeros pass.
        Scratch::new(&bytes).unpack(&defaults()).unwrap();
        let options = UnpackOptions {
            max_ratio: 10,
            ..defaults()
        };
        Scratch::new(&bytes).unpack(&options).unwrap();
    }

    #[test]
    fn refuses_too_many_entries() {
        let tar = Tar::new()
            .file("a", b"", 0o644)
            .file("b", b"", 0o644)
            .file("c", b"", 0o644)
            .bytes();
        let options = UnpackOptions {
            max_entries: 2,
            ..defaults()
        };
        let err = Scratch::new(&tar).refused(&options);
        assert!(
            matches!(err, UnpackError::TooManyEntries { limit: 2, .. }),
            "{err:?}"
        );
        Scratch::new(&tar)
            .unpack(&UnpackOptions {
                max_entries: 3,
                ..defaults()
            })
            .unwrap();
    }

    #[test]
    fn refuses_huge_metadata() {
        // A GNU long name of 17 MiB, which the tar reader would hold in memory.
        let name = vec![b'n'; (MAX_ENTRY_METADATA + (1 << 20)) as usize];
        let tar = Tar::new()
            .raw(EntryType::GNULongName, b"././@LongLink", b"", &name)
            .file("x", b"", 0o644)
            .bytes();
        let err = Scratch::new(&tar).refused(&defaults());
        assert!(
            matches!(err, UnpackError::MetadataTooLarge { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_unknown_formats() {
        for bytes in [&b""[..], b"plain text", &[0x1f; 600]] {
            let err = Scratch::new(bytes).refused(&defaults());
            assert!(matches!(err, UnpackError::UnknownFormat { .. }), "{err:?}");
        }
        let err = Scratch::new(&gz(b"just some text, not a tar")).refused(&defaults());
        assert!(
            matches!(
                err,
                UnpackError::NotTar {
                    format: Format::TarGz,
                    ..
                }
            ),
            "{err:?}"
        );
        // Truncated and corrupt archives are read errors.
        let bytes = gz(&source_tar());
        let err = Scratch::new(&bytes[..bytes.len() / 2]).refused(&defaults());
        assert!(matches!(err, UnpackError::Read { .. }), "{err:?}");
        let err = Scratch::new(b"PK\x03\x04 not really a zip").refused(&defaults());
        assert!(matches!(err, UnpackError::Zip { .. }), "{err:?}");
    }

    #[test]
    fn zip_times() {
        let time = zip::DateTime::from_date_and_time(2001, 9, 9, 1, 46, 40).unwrap();
        assert_eq!(
            zip_time(time)
                .unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap(),
            Duration::from_secs(1_000_000_000)
        );
    }
}
