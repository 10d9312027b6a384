//! The artifacts of an egg build: which file of which distribution is installed, with its
//! SHA-256. This is the builder's input interface: a locked list (the derivation's
//! `egg-artifacts` and `egg-build-artifacts` options, one [`Artifact`] a line, as
//! [`Artifact::parse`] reads it) is used as given; without one, the list is resolved here by
//! `uv pip compile` into a PEP 751 `pylock.toml` ([`from_pylock`]) and the file of each
//! distribution chosen as buildout would ([`choose`]).
//!
//! Fetching happens here, outside the sandbox: each remote artifact through the download cache
//! (by its SHA-256, in parallel), each local one checked against its SHA-256; all are put
//! into the build's wheelhouse, which holds exactly the chosen files, and under their names
//! into the cache's `dists/` (so that an offline resolution finds them).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use crate::checksum::{Algorithm, Checksum};
use crate::fetch::Fetcher;

/// One file to install (or, for a build dependency, to build with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub version: String,
    /// The file name (`six-1.16.0-py2.py3-none-any.whl`, `psutil-5.9.8.tar.gz`); for a local
    /// tree (`:develop`), its directory.
    pub file: String,
    /// Hex SHA-256 of the file; empty for a local tree.
    pub sha256: String,
    /// Where it is: an `http(s)://` URL, or a local path.
    pub location: String,
}

/// What kind of file an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Wheel,
    Sdist,
    Tree,
}

impl Artifact {
    pub fn kind(&self) -> Kind {
        if self.sha256.is_empty() {
            Kind::Tree
        } else if self.file.ends_with(".whl") {
            Kind::Wheel
        } else {
            Kind::Sdist
        }
    }

    /// A line `name version file sha256:HEX location`, as [`Artifact::line`] writes it.
    pub fn parse(line: &str) -> Result<Artifact, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, version, file, sha, location] = words[..] else {
            return Err(format!(
                "`{line}` is not `name version file sha256:HEX location`"
            ));
        };
        let sha256 = sha
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("`{sha}` is not `sha256:` and 64 hex digits"))?;
        Ok(Artifact {
            name: name.to_owned(),
            version: version.to_owned(),
            file: file.to_owned(),
            sha256: sha256.to_ascii_lowercase(),
            location: location.to_owned(),
        })
    }

    /// The line [`Artifact::parse`] reads.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} sha256:{} {}",
            self.name, self.version, self.file, self.sha256, self.location
        )
    }
}

/// Every artifact that a `pylock.toml` offers, per package: its sdist, its wheels, or its
/// local tree.
#[derive(Debug, Default)]
pub struct Offer {
    pub name: String,
    pub version: String,
    pub sdist: Option<Artifact>,
    pub wheels: Vec<Artifact>,
    pub tree: Option<Artifact>,
}

/// The packages of a `pylock.toml` (what `uv pip compile --format pylock.toml` writes).
pub fn from_pylock(text: &str) -> Result<Vec<Offer>, String> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let packages = doc
        .get("packages")
        .and_then(|p| p.as_array())
        .ok_or("no `[[packages]]`")?;
    let mut out = Vec::new();
    for p in packages {
        let s = |key: &str| p.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let (name, version) = (s("name").to_owned(), s("version").to_owned());
        if name.is_empty() {
            return Err("a package without a name".into());
        }
        let file = |t: &toml::Value| -> Result<Artifact, String> {
            let location = t
                .get("url")
                .or_else(|| t.get("path"))
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("`{name}`: a file with neither `url` nor `path`"))?;
            let file = t
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| percent_decode(location.rsplit('/').next().unwrap_or("")));
            let sha256 = t
                .get("hashes")
                .and_then(|h| h.get("sha256"))
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("`{name}`: `{file}` has no sha256"))?;
            Ok(Artifact {
                name: name.clone(),
                version: version.clone(),
                file,
                sha256: sha256.to_ascii_lowercase(),
                location: location.to_owned(),
            })
        };
        let mut offer = Offer {
            name: name.clone(),
            version: version.clone(),
            ..Offer::default()
        };
        if let Some(sdist) = p.get("sdist") {
            offer.sdist = Some(file(sdist)?);
        }
        for w in p
            .get("wheels")
            .and_then(|w| w.as_array())
            .into_iter()
            .flatten()
        {
            offer.wheels.push(file(w)?);
        }
        if let Some(dir) = p.get("directory") {
            let path = dir
                .get("path")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("`{name}`: a directory without `path`"))?;
            offer.tree = Some(Artifact {
                name: name.clone(),
                version: version.clone(),
                file: path.to_owned(),
                sha256: String::new(),
                location: path.to_owned(),
            });
        }
        out.push(offer);
    }
    Ok(out)
}

/// The file installed of each offered package, as buildout chooses it: a `:whl` pin
/// (`wheels`, normalised names) from its wheel; another pin (`pinned`) from its sdist, as
/// buildout builds it, unless the index offers only a wheel; a picked version from its wheel
/// when there is one (uv's choice). A package with neither is an error naming it.
pub fn choose(
    offers: Vec<Offer>,
    pinned: &BTreeSet<String>,
    wheels: &BTreeSet<String>,
) -> Result<Vec<Artifact>, String> {
    let mut out = Vec::new();
    for offer in offers {
        let key = super::egg::normalise(&offer.name);
        let prefer_sdist = pinned.contains(&key) && !wheels.contains(&key);
        let Offer {
            name,
            version,
            sdist,
            mut wheels,
            tree,
        } = offer;
        let wheel = (!wheels.is_empty()).then(|| wheels.swap_remove(0));
        let chosen = match (tree, prefer_sdist) {
            (Some(t), _) => Some(t),
            (None, true) => sdist.or(wheel),
            (None, false) => wheel.or(sdist),
        };
        out.push(chosen.ok_or_else(|| format!("`{name}` {version}: no file offered"))?);
    }
    Ok(out)
}

/// Fetches (or finds) every artifact, outside the sandbox, into `wheelhouse` under its file
/// name, and links it into `dists` under its name too; the file names of what was fetched from
/// the network. A wrong SHA-256 is an error naming the file.
pub fn fetch_all(
    fetcher: &Fetcher,
    artifacts: &[Artifact],
    wheelhouse: &Path,
    dists: &Path,
) -> Result<Vec<String>, String> {
    fs::create_dir_all(wheelhouse).map_err(|e| format!("`{}`: {e}", wheelhouse.display()))?;
    let fetched: Vec<Option<String>> = artifacts
        .par_iter()
        .filter(|a| a.kind() != Kind::Tree)
        .map(|a| {
            let sum: Checksum = format!("sha256:{}", a.sha256)
                .parse()
                .map_err(|e| format!("`{}`: {e}", a.file))?;
            let dest = wheelhouse.join(&a.file);
            let local = match a.location.strip_prefix("file://") {
                Some(path) => percent_decode(path),
                None => a.location.clone(),
            };
            let remote = local.starts_with("http://") || local.starts_with("https://");
            let outcome = if remote {
                fetcher
                    .fetch(&[a.location.as_str()], Some(&sum), &dest)
                    .map_err(|e| format!("`{}`: {e}", a.file))?
            } else {
                // a file of `dists/` or of a local `find-links`, as its hash says
                let path = Path::new(&local);
                let actual = Checksum::of_file(Algorithm::Sha256, path)
                    .map_err(|e| format!("`{local}`: {e}"))?;
                if actual != sum {
                    return Err(format!(
                        "`{local}` has SHA-256 {}, not the {} recorded for it",
                        actual.hex(),
                        a.sha256
                    ));
                }
                copy(path, &dest).map_err(|e| format!("`{}`: {e}", dest.display()))?;
                return Ok(None);
            };
            super::egg::keep_distribution(dists, &dest)
                .map_err(|e| format!("`{}`: {e}", dists.display()))?;
            Ok((!outcome.from_cache).then(|| a.file.clone()))
        })
        .collect::<Result<_, String>>()?;
    Ok(fetched.into_iter().flatten().collect())
}

/// A copy of `from` at `to` (not a link: `from` may be in the cache or the store, a develop
/// egg's wheel, and nothing a build does to its scratch directory must reach it).
fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        return Ok(());
    }
    fs::copy(from, to).map(|_| ())
}

/// The `[build-system] requires` of an sdist (its `pyproject.toml`), or of a tree; setuptools
/// (`setuptools>=40.8.0`, PEP 517's default) when it has none.
pub fn build_requires(artifact: &Artifact, file: &Path) -> Result<Vec<String>, String> {
    let text = match artifact.kind() {
        Kind::Wheel => return Ok(Vec::new()),
        Kind::Tree => fs::read_to_string(Path::new(&artifact.location).join("pyproject.toml")).ok(),
        Kind::Sdist => pyproject_of_sdist(file)?,
    };
    let default = || vec!["setuptools>=40.8.0".to_owned()];
    let Some(text) = text else {
        return Ok(default());
    };
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("`{}`'s `pyproject.toml`: {e}", artifact.file))?;
    let Some(requires) = doc
        .get("build-system")
        .and_then(|b| b.get("requires"))
        .and_then(|r| r.as_array())
    else {
        return Ok(default());
    };
    Ok(requires
        .iter()
        .filter_map(|r| r.as_str())
        .map(str::to_owned)
        .collect())
}

/// The top-level `pyproject.toml` of an sdist (`.tar.gz` or `.zip`), if it has one.
fn pyproject_of_sdist(file: &Path) -> Result<Option<String>, String> {
    let bad = |e: std::io::Error| format!("`{}`: {e}", file.display());
    let top_level = |path: &str| {
        let mut parts = path.trim_start_matches("./").split('/');
        matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(_), Some("pyproject.toml"), None)
        )
    };
    let name = file.to_string_lossy();
    if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(fs::File::open(file).map_err(bad)?)
            .map_err(|e| format!("`{}`: {e}", file.display()))?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| format!("`{name}`: {e}"))?;
            if top_level(entry.name()) {
                let mut text = String::new();
                entry.read_to_string(&mut text).map_err(bad)?;
                return Ok(Some(text));
            }
        }
        return Ok(None);
    }
    let reader: Box<dyn Read> = if name.ends_with(".tar.bz2") {
        Box::new(bzip2::read::BzDecoder::new(
            fs::File::open(file).map_err(bad)?,
        ))
    } else if name.ends_with(".tar.xz") {
        Box::new(xz2::read::XzDecoder::new(
            fs::File::open(file).map_err(bad)?,
        ))
    } else {
        Box::new(flate2::read::GzDecoder::new(
            fs::File::open(file).map_err(bad)?,
        ))
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if top_level(&path) {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(bad)?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// `%XX` escapes decoded (a URL's file name: `+` in a local version is `%2B`).
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYLOCK: &str = r#"
lock-version = "1.0"
created-by = "uv"
[[packages]]
name = "six"
version = "1.16.0"
sdist = { url = "https://h/six-1.16.0.tar.gz", size = 1, hashes = { sha256 = "AA11111111111111111111111111111111111111111111111111111111111111" } }
wheels = [{ url = "https://h/six-1.16.0-py2.py3-none-any.whl", hashes = { sha256 = "bb11111111111111111111111111111111111111111111111111111111111111" } }]
[[packages]]
name = "psutil"
version = "5.9.8"
sdist = { path = "/c/dists/psutil-5.9.8.tar.gz", hashes = { sha256 = "cc11111111111111111111111111111111111111111111111111111111111111" } }
[[packages]]
name = "patched"
version = "1.0+slapospatched001"
wheels = [{ url = "https://h/patched-1.0%2Bslapospatched001-py3-none-any.whl", hashes = { sha256 = "dd11111111111111111111111111111111111111111111111111111111111111" } }]
[[packages]]
name = "dev"
version = "0.1"
directory = { path = "/src/dev" }
"#;

    #[test]
    fn pylock_offers_and_buildouts_choice() {
        let offers = from_pylock(PYLOCK).unwrap();
        assert_eq!(offers.len(), 4);
        assert_eq!(offers[0].sdist.as_ref().unwrap().sha256[..4], *"aa11");
        assert_eq!(
            offers[1].sdist.as_ref().unwrap().file,
            "psutil-5.9.8.tar.gz"
        );
        assert_eq!(
            offers[2].wheels[0].file,
            "patched-1.0+slapospatched001-py3-none-any.whl"
        );
        let pinned: BTreeSet<String> = ["six", "psutil", "patched"].map(String::from).into();
        // six pinned without `:whl`: its sdist; with `:whl`: its wheel
        let chosen = choose(from_pylock(PYLOCK).unwrap(), &pinned, &BTreeSet::new()).unwrap();
        assert_eq!(chosen[0].kind(), Kind::Sdist);
        assert_eq!(chosen[1].kind(), Kind::Sdist);
        // only a wheel offered: the wheel
        assert_eq!(chosen[2].kind(), Kind::Wheel);
        assert_eq!(chosen[3].kind(), Kind::Tree);
        let whl: BTreeSet<String> = ["six".to_owned()].into();
        let chosen = choose(from_pylock(PYLOCK).unwrap(), &pinned, &whl).unwrap();
        assert_eq!(chosen[0].file, "six-1.16.0-py2.py3-none-any.whl");
        // a picked (unpinned) one: the wheel
        let chosen = choose(from_pylock(PYLOCK).unwrap(), &BTreeSet::new(), &whl).unwrap();
        assert_eq!(chosen[0].kind(), Kind::Wheel);
    }

    #[test]
    fn lines_round_trip_and_bad_lines_say_why() {
        let a = &choose(
            from_pylock(PYLOCK).unwrap(),
            &BTreeSet::new(),
            &BTreeSet::new(),
        )
        .unwrap()[0];
        assert_eq!(Artifact::parse(&a.line()).as_ref(), Ok(a));
        assert!(Artifact::parse("six 1.16.0 six.whl")
            .unwrap_err()
            .contains("not `name"));
        assert!(Artifact::parse("six 1 six.whl sha256:zz /x")
            .unwrap_err()
            .contains("64 hex digits"));
    }

    #[test]
    fn build_requires_of_an_sdist() {
        let dir = tempfile::tempdir().unwrap();
        let sdist = dir.path().join("p-1.0.tar.gz");
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            fs::File::create(&sdist).unwrap(),
            flate2::Compression::fast(),
        ));
        let text = b"[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "p-1.0/pyproject.toml", &text[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let a = Artifact {
            name: "p".into(),
            version: "1.0".into(),
            file: "p-1.0.tar.gz".into(),
            sha256: "a".repeat(64),
            location: sdist.display().to_string(),
        };
        assert_eq!(build_requires(&a, &sdist).unwrap(), ["flit_core >=3.2,<4"]);
        let none = dir.path().join("q-1.0.tar.gz");
        tar::Builder::new(flate2::write::GzEncoder::new(
            fs::File::create(&none).unwrap(),
            flate2::Compression::fast(),
        ))
        .into_inner()
        .unwrap()
        .finish()
        .unwrap();
        assert_eq!(build_requires(&a, &none).unwrap(), ["setuptools>=40.8.0"]);
    }

    #[test]
    fn percent_escapes() {
        assert_eq!(percent_decode("a%2Bb%zz%"), "a+b%zz%");
    }
}
