//! The release's distributions, for instance profile code that asks buildout's easy_install
//! for them (`zc.buildout.easy_install.install([...], dest=None, path=[eggs-directory, ...])`,
//! as stack/monitor's `[expand-monitor-uri-template]` does): what the release's egg parts
//! installed, read from each egg output's `.slapstore-eggs` (`store/src/recipes/egg.rs`), each
//! distribution a store path. `bridge.py` answers such code from this list and never installs
//! anything. In a dry run, the egg parts not built yet are `pending`: code needing a
//! distribution none of the built ones has is deferred to the deploy, as is code reading a
//! file of an output not built yet ([`Deferred`]).

use std::path::Path;

/// One installed distribution: its name, version and the directory to put on `sys.path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub name: String,
    pub version: String,
    pub location: String,
}

/// A section whose code needs what only parts not built yet make (a dry run): distributions
/// of egg parts, or a file of an output. It runs at the deploy; until then each option it
/// would set reads as [`placeholder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub section: String,
    /// The distributions the code asked for that no built egg part has, or the file it read.
    pub needs: Vec<String>,
    /// The parts not built yet that make them (for distributions: every egg part not built).
    pub pending: Vec<String>,
}

/// What reading `${section:option}` of a deferred section gives: visible, never a value a
/// deploy could compute, with no whitespace (lists split on it) and no `${`.
pub fn placeholder(section: &str, option: &str) -> String {
    format!("<deferred-to-deploy:{section}:{option}>")
}

/// The distributions of a release's egg parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseEggs {
    /// In the egg parts' order, each distribution once (the first part's).
    pub dists: Vec<Distribution>,
    /// The egg parts not built yet (a dry run): their distributions are not known.
    pub pending: Vec<String>,
}

impl ReleaseEggs {
    /// The distributions of a built release: the egg outputs among the parts its
    /// `release.json` lists (`store/src/recipes/release.rs`). A release without one has none.
    pub fn of_release(release_dir: &Path) -> Result<ReleaseEggs, String> {
        let file = release_dir.join("release.json");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("cannot read `{}`: {e}", file.display())),
        };
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("`{}` is not JSON: {e}", file.display()))?;
        let outputs = json["parts"]
            .as_object()
            .into_iter()
            .flat_map(|parts| parts.values().filter_map(|p| p.as_str()));
        Self::of_outputs(outputs, Vec::new())
    }

    /// The distributions of the egg `outputs` (store directories; any without a manifest is
    /// no egg output), with the egg parts not built yet.
    pub fn of_outputs<'a>(
        outputs: impl IntoIterator<Item = &'a str>,
        pending: Vec<String>,
    ) -> Result<ReleaseEggs, String> {
        let mut eggs = ReleaseEggs {
            dists: Vec::new(),
            pending,
        };
        for out in outputs {
            let file = Path::new(out).join(".slapstore-eggs");
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read `{}`: {e}", file.display())),
            };
            for dist in parse_manifest(out, &text)
                .map_err(|line| format!("`{}`: cannot read the line `{line}`", file.display()))?
            {
                if !eggs.dists.iter().any(|d| same_name(&d.name, &dist.name)) {
                    eggs.dists.push(dist);
                }
            }
        }
        Ok(eggs)
    }
}

/// The distributions of an egg output's manifest (`name version file sha256:HEX where`, where
/// being a store path, `lib` for the output's own `lib`, or `build` for a build dependency,
/// which is not installed); a line that is not so is the error.
fn parse_manifest(out: &str, text: &str) -> Result<Vec<Distribution>, String> {
    let mut dists = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, version, _file, _sha, place] = fields[..] else {
            return Err(line.to_owned());
        };
        let location = match place {
            "build" => continue,
            "lib" => format!("{}/lib", out.trim_end_matches('/')),
            path if path.starts_with('/') => path.to_owned(),
            _ => return Err(line.to_owned()),
        };
        dists.push(Distribution {
            name: name.to_owned(),
            version: version.to_owned(),
            location,
        });
    }
    Ok(dists)
}

/// Whether two distribution names are one (PEP 503: case, `-`, `_` and `.` do not count).
fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '.'], "-");
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_lists_installed_distributions_not_build_dependencies() {
        let text = "uritemplate 4.1.1 uritemplate-4.1.1-py2.py3-none-any.whl sha256:83 /s/abc-uritemplate-4.1.1\n\
                    lxml 5.0 lxml-5.0.tar.gz sha256:- lib\n\
                    setuptools 67.8.0 setuptools-67.8.0-py3-none-any.whl sha256:11 build\n";
        let dists = parse_manifest("/s/out-eggs/", text).expect("manifest");
        assert_eq!(
            dists,
            [
                Distribution {
                    name: "uritemplate".into(),
                    version: "4.1.1".into(),
                    location: "/s/abc-uritemplate-4.1.1".into(),
                },
                Distribution {
                    name: "lxml".into(),
                    version: "5.0".into(),
                    location: "/s/out-eggs/lib".into(),
                },
            ]
        );
        assert_eq!(
            parse_manifest("/s/o", "six 1.16.0\n"),
            Err("six 1.16.0".to_owned())
        );
        assert!(parse_manifest("/s/o", "six 1.16.0 f sha256:1 relative/path\n").is_err());
    }

    #[test]
    fn each_distribution_is_taken_once_from_the_first_egg_part_that_has_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for (out, text) in [
            (&a, "Zope.Interface 5.0 f sha256:1 /s/zi-5\n"),
            (
                &b,
                "zope-interface 6.0 f sha256:2 /s/zi-6\nsix 1.16.0 f sha256:3 /s/six\n",
            ),
        ] {
            std::fs::create_dir_all(out).expect("mkdir");
            std::fs::write(out.join(".slapstore-eggs"), text).expect("write");
        }
        let none = dir.path().join("not-an-egg-part");
        let outputs = [&a, &none, &b].map(|p| p.to_str().expect("utf-8").to_owned());
        let eggs = ReleaseEggs::of_outputs(outputs.iter().map(String::as_str), vec!["x".into()])
            .expect("eggs");
        let found: Vec<(&str, &str)> = eggs
            .dists
            .iter()
            .map(|d| (d.name.as_str(), d.version.as_str()))
            .collect();
        assert_eq!(found, [("Zope.Interface", "5.0"), ("six", "1.16.0")]);
        assert_eq!(eggs.pending, ["x"]);
    }
}
