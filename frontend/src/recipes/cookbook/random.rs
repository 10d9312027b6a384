//! The cookbook's generators (`slapos.recipe.random`, `slapos.recipe.free_port`):
//! `generate.password`, `generate.mac`, `random.integer`, `random.time` and `free_port`. Each
//! value is generated once and kept in the partition (`state.rs`): in the file the profile
//! names (`storage-path`), else in `.slapstore/<section>.<option>`; later renders read it back,
//! so upgrades and rollbacks keep it. Where the cookbook regenerates a value at every run (an
//! empty `storage-path`, `random.*`), slapstore keeps it too: a render is a pure function of
//! the profile, the parameters and the partition's state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::Mutex;

use super::{passlib, state};
use crate::error::Result;
use crate::pystr::path_join;
use crate::recipes::instance::relative;
use crate::recipes::Part;

/// `n` random bytes from the system's generator.
fn random_bytes(part: &Part, n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf)
        .map_err(|e| part.error(format!("the system's random generator failed: {e}")))?;
    Ok(buf)
}

/// A uniform integer in `low..=high` (rejection sampling, no bias).
pub(super) fn uniform(part: &Part, low: i128, high: i128) -> Result<i128> {
    let span = (high - low + 1) as u128;
    if span > u64::MAX as u128 {
        return Err(part.error("the range is too wide"));
    }
    let span = span as u64;
    let zone = u64::MAX - u64::MAX % span;
    loop {
        let b = random_bytes(part, 8)?;
        let x = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        if x < zone {
            return Ok(low + (x % span) as i128);
        }
    }
}

/// The value kept at `rel` in the partition, or `generate()`'s, recorded to be kept.
pub(super) fn keep(
    part: &mut Part,
    option: &str,
    rel: &str,
    generate: impl FnOnce(&Part) -> Result<String>,
) -> Result<String> {
    let partition = part.buildout("directory")?;
    let found = state::read(Path::new(&partition), Path::new(rel))
        .map_err(|e| part.option_error(option, format!("cannot read `{partition}/{rel}`: {e}")))?;
    match found {
        Some(v) => {
            claim(part, option, rel, None)?;
            Ok(v)
        }
        None => {
            // generated already by an earlier render of this operation (a requester rendered
            // again with its children's connections): the same value, still to be kept
            let earlier =
                (part.r.settings.slap.as_ref()).and_then(|s| s.generated.get(rel).cloned());
            let v = match earlier {
                Some(v) => v,
                None => generate(part)?,
            };
            claim(part, option, rel, Some(v.clone()))?;
            Ok(v)
        }
    }
}

/// Reserves `rel` for this part (no other part may write or keep it) and its directory as a
/// mutable one of the partition; `value` is what must be written there.
fn claim(part: &mut Part, option: &str, rel: &str, value: Option<String>) -> Result<()> {
    let out = &part.r.instance_output;
    if out.files.contains_key(rel) || out.dirs.contains_key(rel) || out.kept.contains(rel) {
        return Err(part.option_error(option, format!("`{rel}` is written by another part too")));
    }
    let out = &mut part.r.instance_output;
    out.kept.insert(rel.to_owned());
    if let Some(parent) = Path::new(rel)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let parent = parent.to_string_lossy().into_owned();
        let mode = if parent == state::DIR {
            state::DIR_MODE
        } else {
            0o755
        };
        out.dirs.entry(parent).or_insert(mode);
    }
    if let Some(v) = value {
        out.state.insert(rel.to_owned(), v);
    }
    Ok(())
}

/// Where a value with a `storage-path` option is kept: that file (relative to the partition),
/// or, when it is empty, the section's own slot.
fn storage(part: &mut Part, option: &str) -> Result<String> {
    let path = part.require("storage-path")?;
    if path.trim().is_empty() {
        Ok(state::slot(&part.name, option))
    } else {
        relative(part, "storage-path", &path)
    }
}

fn integer(part: &mut Part, option: &str, default: Option<&str>) -> Result<i128> {
    let text = match default {
        Some(d) => part.get(option)?.unwrap_or_else(|| d.to_owned()),
        None => part.require(option)?,
    };
    text.trim()
        .parse()
        .map_err(|_| part.option_error(option, format!("`{text}` is not an integer")))
}

/// `generate.password`: `passwd`, `bytes` (default 16) letters and digits drawn by the system's
/// generator (given as `passwd` else), and on demand `passwd-<scheme>`, its hash by passlib's
/// `<scheme>` (`passlib.rs`). The password and the hashes asked for are kept together as the
/// cookbook keeps them: `json.dumps({"": passwd, "passwd-<scheme>": hash, ...},
/// sort_keys=True)` in `storage-path` (default `${buildout:parts-directory}/<section>`; a file
/// holding only the password, the older format, is read too), written again when a render asks
/// for a hash not kept yet, so that a kept password's hashes stay the same.
pub fn password(part: &mut Part) -> Result<()> {
    if part.get("storage-path")?.is_none() {
        let parts = part.buildout("parts-directory")?;
        let path = path_join(&parts, &part.name);
        part.set("storage-path", path);
    }
    let has_file = !part.require("storage-path")?.trim().is_empty();
    let rel = storage(part, "passwd")?;
    let given = part.get("passwd")?.filter(|p| !p.is_empty());
    // an earlier render of this operation's (a requester rendered again), else the partition's
    let earlier = (part.r.settings.slap.as_ref()).and_then(|s| s.generated.get(&rel).cloned());
    // (still to be written then)
    let in_partition = match earlier {
        Some(_) => None,
        None => {
            let partition = part.buildout("directory")?;
            state::read(Path::new(&partition), Path::new(&rel)).map_err(|e| {
                part.option_error(
                    "storage-path",
                    format!("cannot read `{partition}/{rel}`: {e}"),
                )
            })?
        }
    };
    let kept = earlier.or_else(|| in_partition.clone());
    let mut kept_dict = kept.as_deref().map(passwords).unwrap_or_default();
    if let Some(p) = &given {
        if kept_dict.get("") != Some(p) {
            kept_dict = BTreeMap::from([(String::new(), p.clone())]);
        }
    }
    if kept_dict.get("").is_none_or(|p| p.is_empty()) {
        let bytes = integer(part, "bytes", Some("16"))?;
        if bytes > 1 << 16 {
            let message = format!("a password of {bytes} characters is too long");
            return Err(part.option_error("bytes", message));
        }
        let mut passwd = String::new();
        // none when `bytes` is below 1, as Python's `range`
        for _ in 0..bytes.max(0) {
            passwd.push(ALPHABET[uniform(part, 0, ALPHABET.len() as i128 - 1)? as usize] as char);
        }
        kept_dict.insert(String::new(), passwd);
    }
    part.set("passwd", kept_dict[""].clone());
    // a password given with no file to keep it in is not kept, as the cookbook's
    let rel = (has_file || given.is_none()).then_some(rel);
    if let Some(rel) = &rel {
        claim(part, "storage-path", rel, None)?;
        record(part, rel, in_partition.as_deref(), &kept_dict);
    }
    let (name, recipe) = (part.name.clone(), part.recipe.clone());
    let mut dict = kept_dict;
    let answer = move |r: &mut crate::resolver::Resolver, idx: usize, option: &str| {
        let Some(scheme) = option.strip_prefix("passwd-") else {
            return Ok(None);
        };
        if let Some(h) = dict.get(option) {
            return Ok(Some(h.clone()));
        }
        let part = Part {
            r,
            idx,
            name: name.clone(),
            recipe: recipe.clone(),
            rendered: None,
        };
        let scheme = scheme.replace('-', "_");
        let mut salt = |n| random_bytes(&part, n).map_err(|e| e.to_string());
        let hashed = match passlib::hash(&scheme, &dict[""], &mut salt) {
            Some(Ok(h)) => h,
            Some(Err(e)) => return Err(part.error(format!("`{option}`: {e}"))),
            None if passlib::NOT_MADE.contains(&scheme.as_str()) => {
                return Err(part.error(format!(
                    "`{option}`: slapstore does not make passlib's `{scheme}` hashes (it makes {})",
                    passlib::SCHEMES.join(", ")
                )))
            }
            None => return Ok(None),
        };
        dict.insert(option.to_owned(), hashed.clone());
        let mut part = part;
        if let Some(rel) = &rel {
            record(&mut part, rel, None, &dict);
        }
        Ok(Some(hashed))
    };
    part.r.missing.insert(part.idx, Box::new(answer));
    Ok(())
}

/// The characters of a generated password (Python's `string.ascii_letters + string.digits`).
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A kept password file's content: the JSON object of the password (key `""`) and its hashes,
/// or, in any other form, the password itself.
fn passwords(text: &str) -> BTreeMap<String, String> {
    let json: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(text).ok();
    match json.filter(|m| m.contains_key("")) {
        Some(map) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
            .collect(),
        None => BTreeMap::from([(String::new(), text.to_owned())]),
    }
}

/// Records `dict` to be kept at `rel` (replacing what is there), unless the partition holds it
/// already (`kept`).
fn record(part: &mut Part, rel: &str, kept: Option<&str>, dict: &BTreeMap<String, String>) {
    let object = dict
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let json = slapstore_store::recipes::py_json_dumps(&serde_json::Value::Object(object), true);
    if kept == Some(json.as_str()) {
        return;
    }
    let out = &mut part.r.instance_output;
    out.state.insert(rel.to_owned(), json);
    out.replaced.insert(rel.to_owned());
}

/// `generate.mac`: `mac-address`, a locally administered address (`fe:..`), kept in
/// `storage-path` unless given.
pub fn mac(part: &mut Part) -> Result<()> {
    if part.get("mac-address")?.is_some_and(|m| !m.is_empty()) {
        return Ok(());
    }
    let rel = storage(part, "mac-address")?;
    let mac = keep(part, "storage-path", &rel, |part| {
        let b = random_bytes(part, 5)?;
        let mut octets = vec![0xfe];
        octets.extend(b);
        Ok(octets
            .iter()
            .map(|o| format!("{o:02x}"))
            .collect::<Vec<_>>()
            .join(":"))
    })?;
    part.set("mac-address", mac);
    Ok(())
}

/// `random.integer`: `value`, between `minimum` and `maximum` (both included), unless given.
pub fn random_integer(part: &mut Part) -> Result<()> {
    if part.get("value")?.is_some() {
        return Ok(());
    }
    let low = integer(part, "minimum", None)?;
    let high = integer(part, "maximum", None)?;
    if low > high {
        return Err(part.option_error("maximum", format!("{high} is below the minimum {low}")));
    }
    let rel = state::slot(&part.name, "value");
    let value = keep(part, "value", &rel, |part| {
        Ok(uniform(part, low, high)?.to_string())
    })?;
    part.set("value", value);
    Ok(())
}

/// `random.time`: `time`, a random `H:MM` of the day, unless given.
pub fn random_time(part: &mut Part) -> Result<()> {
    if part.get("time")?.is_some() {
        return Ok(());
    }
    let rel = state::slot(&part.name, "time");
    let time = keep(part, "time", &rel, |part| {
        Ok(format!(
            "{}:{:02}",
            uniform(part, 0, 23)?,
            uniform(part, 0, 59)?
        ))
    })?;
    part.set("time", time);
    Ok(())
}

/// Ports handed out by this process, so that instances rendered together get different ones
/// before any of their services listens.
static HANDED_OUT: Mutex<BTreeSet<(IpAddr, u16)>> = Mutex::new(BTreeSet::new());

/// Ports that the partitions beside `partition` keep (`.slapstore/*.port`), read once per
/// process: another instance's port is not free, even before its service listens.
fn kept_elsewhere(partition: &Path) -> &'static BTreeSet<u16> {
    static KEPT: std::sync::OnceLock<BTreeSet<u16>> = std::sync::OnceLock::new();
    KEPT.get_or_init(|| {
        let mut out = BTreeSet::new();
        let Some(partitions) = partition.parent() else {
            return out;
        };
        let Ok(entries) = std::fs::read_dir(partitions) else {
            return out;
        };
        for e in entries.flatten() {
            let dir = e.path().join(state::DIR);
            if dir == partition.join(state::DIR) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            for f in files.flatten() {
                let rel = Path::new(state::DIR).join(f.file_name());
                if !rel.to_string_lossy().ends_with(".port") {
                    continue;
                }
                if let Ok(Some(port)) = state::read(&e.path(), &rel) {
                    out.extend(port.trim().parse::<u16>().ok());
                }
            }
        }
        out
    })
}

/// `free_port`: `port`, the lowest port of `minimum..maximum` (`maximum` excluded, as the
/// cookbook's `range`) that `ip` can bind now and that no other partition of the root keeps
/// (instances share addresses here, where SlapOS gives each partition its own); kept afterwards (the cookbook reads it back from
/// `.installed.cfg`). `0` when `ip` is no address or no port is free, and then not kept.
pub fn free_port(part: &mut Part) -> Result<()> {
    let low = integer(part, "minimum", Some("1024"))?;
    let high = integer(part, "maximum", Some("49151"))?;
    if low == high {
        part.set("port", low.to_string());
        return Ok(());
    }
    let ip = part.get("ip")?.unwrap_or_default();
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        part.set("port", "0");
        return Ok(());
    };
    let rel = state::slot(&part.name, "port");
    let partition = part.buildout("directory")?;
    let found = state::read(Path::new(&partition), Path::new(&rel))
        .map_err(|e| part.option_error("ip", format!("cannot read `{partition}/{rel}`: {e}")))?;
    if let Some(port) = found {
        claim(part, "port", &rel, None)?;
        part.set("port", port);
        return Ok(());
    }
    let elsewhere = kept_elsewhere(Path::new(&partition));
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let port = (low.max(0)..high.min(65536)).map(|p| p as u16).find(|p| {
        !handed.contains(&(ip, *p)) && !elsewhere.contains(p) && TcpListener::bind((ip, *p)).is_ok()
    });
    match port {
        Some(p) => {
            handed.insert((ip, p));
            drop(handed);
            claim(part, "port", &rel, Some(p.to_string()))?;
            part.set("port", p.to_string());
        }
        None => part.set("port", "0"),
    }
    Ok(())
}
