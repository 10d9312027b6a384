//! Where a release's files are, by the paths zc.buildout would give them. Buildout installs a
//! part at `${buildout:parts-directory}/<name>` and a template part's file at its `output`
//! (`${buildout:directory}/template-monitor.cfg`); slapstore builds them in the store, so an
//! instance profile that names such a path as text (`{{ buildout['parts-directory'] }}/<part>/
//! <file>`, `${buildout:directory}/<file>` written by a software-time template, as grafana,
//! proftpd and jupyter do) reads the file where it is: the release records the map
//! ([`OPTION`]) and a render reads profiles and templates through it (`extends.rs`,
//! `recipes/template.rs`).

use std::collections::BTreeMap;
use std::path::Path;

/// The release's option holding the map, as JSON `{buildout path: store path}`.
pub const OPTION: &str = "software-paths-json";

/// A release's files by their buildout paths: a part's directory, or a template's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoftwarePaths(BTreeMap<String, String>);

impl SoftwarePaths {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        SoftwarePaths(map)
    }

    /// The map a release derivation records (empty without one).
    pub fn of(release: &slapstore_store::Derivation) -> Self {
        let map = release
            .option(OPTION)
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        SoftwarePaths(map)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// Where `path` is: the store path of the file, or of the directory holding it, that the
    /// release records under that buildout path; `None` when it records none.
    pub fn map(&self, path: &str) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let path = crate::pystr::normpath(path);
        for dir in Path::new(&path).ancestors() {
            let Some(at) = self.0.get(dir.to_str()?) else {
                continue;
            };
            let rest = Path::new(&path).strip_prefix(dir).ok()?;
            return Some(if rest.as_os_str().is_empty() {
                at.clone()
            } else {
                format!("{at}/{}", rest.to_str()?)
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_and_the_files_below_a_part_s_directory_are_mapped() {
        let paths = SoftwarePaths::new(BTreeMap::from([
            ("/sw/parts/dl".to_owned(), "/s/h-dl".to_owned()),
            ("/sw/t.cfg".to_owned(), "/s/h-t/t.cfg".to_owned()),
        ]));
        assert_eq!(paths.map("/sw/t.cfg").as_deref(), Some("/s/h-t/t.cfg"));
        assert_eq!(
            paths.map("/sw/parts/dl/a/b.in").as_deref(),
            Some("/s/h-dl/a/b.in")
        );
        assert_eq!(
            paths.map("/sw/parts/dl/../dl/x").as_deref(),
            Some("/s/h-dl/x")
        );
        assert_eq!(paths.map("/sw/parts/dlx/b.in"), None);
        assert_eq!(paths.map("/sw/other.cfg"), None);
    }
}
