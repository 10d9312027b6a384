//! The cache of resolutions (`<download cache>/resolutions/<key>`): the artifact list that a
//! resolution of an egg build chose ([`super::egg_artifacts::Artifact`] lines), kept when every
//! distribution in it is pinned to its exact version by the versions section. Such a
//! resolution can only give the same versions again, so a later build (of any part, in any
//! root sharing the download cache) that would run the same resolution takes the list instead
//! of asking the index: a build from the download cache needs no network.
//!
//! The key ([`key`]) is the SHA-256 of the resolver's command (every option, find-links and
//! the index in it; the build's scratch directory and the download cache's place replaced by
//! markers), the requirements and constraints it reads, the build's environment (as the cache
//! of built wheels keys it), the interpreter's version and uv's. Locations inside the download
//! cache are kept relative to it (`${cache}/dists/...`), so that a copy of the cache serves as
//! well; an entry naming a local file that is gone is a miss. Entries are written through a
//! temporary file renamed into place (a reader sees a whole list or none). Resolving again
//! needs only deleting `resolutions/` (a new upload of a pinned version's files is not seen
//! until then, as buildout does not look again for an egg it has).

use std::fs;
use std::path::Path;

use super::egg::{normalise, Pins};
use super::egg_artifacts::{Artifact, Kind};
use crate::checksum::{Algorithm, Checksum};

/// The directory of the download cache holding resolutions.
pub const RESOLUTIONS_DIR: &str = "resolutions";

/// What stands for the download cache's directory in keys and entries.
const CACHE_MARKER: &str = "${cache}";

/// The key of a resolution: `parts` (the resolver's command, the files it reads, its
/// environment) with `scratch` and `cache` replaced by markers.
pub fn key(parts: &[&str], scratch: &Path, cache: &Path) -> String {
    let mut text = format!("slapstore resolution 1\nuv {}\n", super::egg_uv::UV_VERSION);
    let scratch = scratch.display().to_string();
    let cache = cache.display().to_string();
    for part in parts {
        text.push_str(
            &part
                .replace(&scratch, "${scratch}")
                .replace(&cache, CACHE_MARKER),
        );
        text.push_str("\n\0\n");
    }
    Checksum::of_bytes(Algorithm::Sha256, text.as_bytes()).hex()
}

/// The artifact list kept under `key`, if there is one whose local files all exist.
pub fn lookup(cache: &Path, key: &str) -> Option<Vec<Artifact>> {
    let text = fs::read_to_string(cache.join(RESOLUTIONS_DIR).join(key)).ok()?;
    let here = cache.display().to_string();
    let artifacts: Vec<Artifact> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Artifact::parse(&l.replace(CACHE_MARKER, &here)))
        .collect::<Result<_, _>>()
        .ok()?;
    let present = |a: &Artifact| {
        let local = a.location.strip_prefix("file://").unwrap_or(&a.location);
        !local.starts_with('/') || Path::new(&super::egg_artifacts::percent_decode(local)).exists()
    };
    artifacts.iter().all(present).then_some(artifacts)
}

/// Whether every artifact is a file (not a tree) of a distribution `pins` pins to exactly its
/// version: a resolution that cannot come out otherwise.
pub fn fully_pinned(artifacts: &[Artifact], pins: &Pins) -> bool {
    !artifacts.is_empty()
        && artifacts.iter().all(|a| {
            a.kind() != Kind::Tree
                && pins
                    .pins
                    .get(&normalise(&a.name))
                    .is_some_and(|(_, v)| *v == a.version)
        })
}

/// Keeps `artifacts` under `key` (a temporary file renamed into place).
pub fn keep(cache: &Path, key: &str, artifacts: &[Artifact]) -> std::io::Result<()> {
    let dir = cache.join(RESOLUTIONS_DIR);
    fs::create_dir_all(&dir)?;
    let here = cache.display().to_string();
    let text: String = artifacts
        .iter()
        .map(|a| format!("{}\n", a.line().replace(&here, CACHE_MARKER)))
        .collect();
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(tmp.as_file_mut(), text.as_bytes())?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o444))?;
    tmp.persist(dir.join(key)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str, version: &str, location: &str) -> Artifact {
        Artifact {
            name: name.into(),
            version: version.into(),
            file: format!("{name}-{version}-py3-none-any.whl"),
            sha256: "a".repeat(64),
            location: location.into(),
        }
    }

    #[test]
    fn the_key_ignores_where_the_scratch_and_the_cache_are() {
        let k = |scratch: &str, cache: &str, command: &str| {
            key(&[command, "six\n"], Path::new(scratch), Path::new(cache))
        };
        let a = k(
            "/r1/tmp/x",
            "/r1/cache",
            "uv -o /r1/tmp/x/l --find-links /r1/cache/dists",
        );
        let b = k(
            "/r2/tmp/y",
            "/r2/cache",
            "uv -o /r2/tmp/y/l --find-links /r2/cache/dists",
        );
        assert_eq!(a, b);
        let c = k(
            "/r2/tmp/y",
            "/r2/cache",
            "uv -o /r2/tmp/y/l --find-links /elsewhere",
        );
        assert_ne!(a, c);
    }

    #[test]
    fn only_exact_pins_of_every_distribution_make_a_resolution_kept() {
        let pins = Pins {
            pins: [
                ("six".to_owned(), ("six".to_owned(), "1.16.0".to_owned())),
                (
                    "zc-lockfile".to_owned(),
                    ("zc.lockfile".to_owned(), ">=2".to_owned()),
                ),
            ]
            .into(),
            wheels: Default::default(),
        };
        let six = wheel("six", "1.16.0", "https://x/six.whl");
        assert!(fully_pinned(std::slice::from_ref(&six), &pins));
        // a picked version, a specifier, another version: resolved again next time
        assert!(!fully_pinned(
            &[six.clone(), wheel("tomli", "2.0.1", "/t")],
            &pins
        ));
        assert!(!fully_pinned(&[wheel("zc.lockfile", "3.0", "/z")], &pins));
        assert!(!fully_pinned(&[wheel("six", "1.17.0", "/s")], &pins));
        assert!(!fully_pinned(&[], &pins));
    }

    #[test]
    fn an_entry_names_the_cache_relatively_and_a_missing_local_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        fs::create_dir_all(one.join("dists")).unwrap();
        fs::write(one.join("dists/six-1.16.0-py3-none-any.whl"), "w").unwrap();
        let local = format!("file://{}/dists/six-1.16.0-py3-none-any.whl", one.display());
        let list = [
            wheel("six", "1.16.0", &local),
            wheel("a", "1", "https://x/a.whl"),
        ];
        keep(&one, "k", &list).unwrap();
        assert_eq!(lookup(&one, "k").unwrap(), list);
        // a copy of the cache elsewhere: its own file
        let copied = fs::read_to_string(one.join("resolutions/k")).unwrap();
        assert!(copied.contains("file://${cache}/dists/"), "{copied}");
        assert!(lookup(&two, "k").is_none());
        fs::create_dir_all(two.join("dists")).unwrap();
        fs::create_dir_all(two.join(RESOLUTIONS_DIR)).unwrap();
        fs::write(two.join("resolutions/k"), &copied).unwrap();
        assert!(lookup(&two, "k").is_none(), "its dists/ lacks the file");
        fs::write(two.join("dists/six-1.16.0-py3-none-any.whl"), "w").unwrap();
        let found = lookup(&two, "k").unwrap();
        assert!(found[0]
            .location
            .starts_with(&format!("file://{}/", two.display())));
    }
}
