//! The files of a plan's outputs that are known without building them, for
//! `instance create --dry-run`: what a `template` part renders (its text is in its derivation),
//! what a `jinja2` part renders (its template and context are, and a template made by an
//! earlier part is known the same way), and what a `download` of a local file copies. Reading a
//! profile, an `extends` or a template at one of those paths gives that text; any other file
//! inside a planned output that is not in the store yet is known only once it is built, and
//! reading it is an error saying which part makes it. Nothing is built or written here.

use std::collections::{BTreeMap, HashMap};

use slapstore_store::{Derivation, Recipe};

/// The planned outputs of a profile and the files of theirs that are known now.
#[derive(Debug, Default, Clone)]
pub struct Planned {
    store_dir: String,
    /// File path → its text, or why it is not known.
    files: HashMap<String, std::result::Result<String, String>>,
    /// Output directory (`<store>/<hash>-<name>`) → its part and recipe.
    outputs: HashMap<String, (String, Recipe)>,
    /// The egg parts' outputs in the store, and the names of those not built yet: where the
    /// release's distributions are (`python/eggs.rs`).
    egg_outputs: Vec<String>,
    egg_parts_pending: Vec<String>,
    /// The release's files by their buildout paths (the last derivation's, `software_paths.rs`).
    pub software_paths: std::sync::Arc<crate::software_paths::SoftwarePaths>,
}

impl Planned {
    /// The planned outputs of `drvs` (in build order) that are not in the store yet: the
    /// derivations whose `is_valid` is false.
    pub fn of(
        store_dir: &str,
        drvs: &[Derivation],
        is_valid: impl Fn(&Derivation) -> bool,
    ) -> Self {
        let mut planned = Planned {
            store_dir: store_dir.trim_end_matches('/').to_owned(),
            software_paths: std::sync::Arc::new(
                drvs.last()
                    .map(crate::software_paths::SoftwarePaths::of)
                    .unwrap_or_default(),
            ),
            ..Planned::default()
        };
        for d in drvs.iter().filter(|d| d.recipe() == Recipe::Egg) {
            if is_valid(d) {
                let out = format!("{}/{}", planned.store_dir, d.path);
                planned.egg_outputs.push(out);
            } else {
                planned.egg_parts_pending.push(d.name().to_owned());
            }
        }
        for d in drvs.iter().filter(|d| !is_valid(d)) {
            let out = format!("{}/{}", planned.store_dir, d.path);
            planned
                .outputs
                .insert(out.clone(), (d.name().to_owned(), d.recipe()));
            if let Some((file, text)) = planned.render(d) {
                planned.files.insert(format!("{out}/{file}"), text);
            }
        }
        planned
    }

    /// What a derivation's build would write, when it is one known file: its name in the
    /// output and its text (or why it cannot be known).
    fn render(&self, d: &Derivation) -> Option<(String, std::result::Result<String, String>)> {
        match d.recipe() {
            Recipe::Template => {
                let file = d.option("output-file")?;
                let text = d.option("rendered-text").unwrap_or_default();
                Some((file.to_owned(), Ok(text.to_owned())))
            }
            Recipe::Jinja2 => {
                let file = d.option("output-file")?;
                Some((file.to_owned(), self.render_jinja2(d)))
            }
            Recipe::Download => {
                let source = d.build.sources.iter().find(|s| s.role == "url")?;
                let url = source.urls.first()?;
                let local = url.strip_prefix("file://").unwrap_or(url);
                if crate::extends::is_url(local) {
                    return None;
                }
                let name = d
                    .option("filename")
                    .and_then(|f| std::path::Path::new(f.trim()).file_name())
                    .and_then(|n| n.to_str())
                    .unwrap_or(d.name())
                    .to_owned();
                let text = std::fs::read_to_string(local)
                    .map_err(|e| format!("cannot read `{local}`: {e}"));
                Some((name, text))
            }
            _ => None,
        }
    }

    /// What a `jinja2` derivation renders: its template and `import-list` templates are its
    /// options' texts, or files of planned outputs or on disk.
    fn render_jinja2(&self, d: &Derivation) -> std::result::Result<String, String> {
        let read = |path: &str| match self.read(path) {
            Some(text) => text,
            None => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the template `{path}`: {e}")),
        };
        let json = |option: &str| -> std::result::Result<serde_json::Value, String> {
            serde_json::from_str(d.option(option).unwrap_or("{}"))
                .map_err(|e| format!("its `{option}` is not JSON: {e}"))
        };
        let source = match d.option("template-file") {
            Some(path) => read(path)?,
            None => d.option("template-text").unwrap_or_default().to_owned(),
        };
        let context = json("context-json")?;
        let mut imports: BTreeMap<String, String> =
            serde_json::from_value(json("import-texts")?)
                .map_err(|e| format!("its `import-texts` is not texts: {e}"))?;
        let files: BTreeMap<String, String> = serde_json::from_value(json("import-files")?)
            .map_err(|e| format!("its `import-files` is not paths: {e}"))?;
        for (name, path) in files {
            imports.insert(name, read(&path)?);
        }
        let job = slapstore_store::recipes::Jinja2Job {
            source: &source,
            context: &context,
            imports: &imports,
        };
        slapstore_store::recipes::render_jinja2(&job)
            .map_err(|e| format!("part [{}]: {e}", d.name()))
    }

    /// The distributions of the egg parts in the store, the others pending.
    pub fn release_eggs(&self) -> Result<crate::python::eggs::ReleaseEggs, String> {
        crate::python::eggs::ReleaseEggs::of_outputs(
            self.egg_outputs.iter().map(String::as_str),
            self.egg_parts_pending.clone(),
        )
    }

    /// The part (and its recipe) whose planned output, not built yet, `path` lies in.
    pub fn made_by(&self, path: &str) -> Option<(&str, Recipe)> {
        let path = crate::pystr::normpath(path);
        let rest = path.strip_prefix(&self.store_dir)?.strip_prefix('/')?;
        let name = rest.split('/').next()?;
        let (part, recipe) = self.outputs.get(&format!("{}/{name}", self.store_dir))?;
        Some((part, *recipe))
    }

    /// The text of the file at `path` if it lies in a planned output: `Some(Ok)` when it is
    /// known now, `Some(Err)` saying why not (the part that makes it is not built); `None` when
    /// the path is no planned output's, to be read from disk.
    pub fn read(&self, path: &str) -> Option<std::result::Result<String, String>> {
        let path = crate::pystr::normpath(path);
        if let Some(known) = self.files.get(&path) {
            return Some(known.clone());
        }
        let (part, recipe) = self.made_by(&path)?;
        Some(Err(format!(
            "`{path}` is made by part [{part}] (recipe `{}`) when it is built, and a dry run \
             builds nothing: build the software first (`slapstore build`), then run the dry \
             run again",
            recipe.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slapstore_store::derivation::{Build, Inputs};
    use std::collections::BTreeMap;

    fn drv(name: &str, recipe: Recipe, options: &[(&str, &str)]) -> Derivation {
        let options: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Derivation::new(
            Inputs {
                name: slapstore_store::PartName::new(name).unwrap(),
                recipe,
                system: "x".into(),
                options: options.clone(),
                sources: BTreeMap::new(),
                files: BTreeMap::new(),
                references: Default::default(),
            },
            Build {
                options,
                sources: Vec::new(),
                files: BTreeMap::new(),
            },
        )
    }

    #[test]
    fn a_jinja2_template_made_by_a_template_part_renders_in_memory() {
        let t = drv(
            "t",
            Recipe::Template,
            &[("output-file", "a.in"), ("rendered-text", "x={{ v }}")],
        );
        let file = format!("/s/{}/a.in", t.path);
        let j = drv(
            "j",
            Recipe::Jinja2,
            &[
                ("output-file", "out.cfg"),
                ("template-file", &file),
                ("context-json", r#"{"v": "1"}"#),
            ],
        );
        let planned = Planned::of("/s", &[t.clone(), j.clone()], |_| false);
        assert_eq!(planned.read(&file), Some(Ok("x={{ v }}".into())));
        assert_eq!(
            planned.read(&format!("/s/{}/out.cfg", j.path)),
            Some(Ok("x=1".into()))
        );
        let other = planned.read(&format!("/s/{}/bin/x", j.path)).unwrap();
        assert!(other.unwrap_err().contains("part [j] (recipe `jinja2`)"));
        assert_eq!(planned.read("/elsewhere/x"), None);
        // a valid output is read from disk
        let built = Planned::of("/s", &[t], |_| true);
        assert_eq!(built.read(&file), None);
    }
}
