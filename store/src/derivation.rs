//! Derivations: one recipe invocation, fully resolved, and its identity.
//!
//! A derivation has two halves. [`Inputs`] is what its hash covers (design §4): the recipe and
//! its version, the part name, the system, the options that affect the output with the part's
//! own location replaced by a fixed placeholder, the declared checksums of its sources (never
//! their URLs), the content hashes of its local files, and the store paths it refers to.
//! [`Build`] is what the builder needs on top (URLs, file paths, the options with the real output
//! path). The store path is `BLAKE3(encoding of Inputs)` truncated to 160 bits, then the name.
//!
//! The encoding ([`Inputs::encode`]) is versioned: `docs/store.md` documents version 1. Changing
//! what it covers means a new version, so that old store paths keep their meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{PartName, StorePath};

/// The version of the canonical encoding of [`Inputs`].
pub const ENCODING_VERSION: u32 = 1;

/// The placeholder hash part for a derivation's own output while its hash is computed: 32 `0`s,
/// which is not base32, so it can never be a real store path.
pub const PLACEHOLDER_HASH: &str = "00000000000000000000000000000000";

/// The recipes the store knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    Download,
    DownloadUnpacked,
    Cmmi,
    Shell,
    Template,
    Jinja2,
    /// Python distributions installed with pip (`zc.recipe.egg` and its entry points).
    Egg,
    Release,
    /// One generation of an instance: the files its instance profile rendered.
    Generation,
    /// A checkout of one commit of a git repository (`slapos.recipe.build:gitclone`).
    Gitclone,
    /// `slapos.recipe.build`'s Python `install` code, run in the build's Python host.
    Script,
    /// A recipe that plans but cannot be built here (`rubygemsrecipe`, `vm.install-*`,
    /// `z3c.recipe.openoffice`): its
    /// build fails with the derivation's `refusal` option, writing nothing.
    Unbuildable,
}

impl Recipe {
    /// Every recipe, for error messages.
    pub const ALL: [Recipe; 12] = [
        Recipe::Download,
        Recipe::DownloadUnpacked,
        Recipe::Cmmi,
        Recipe::Shell,
        Recipe::Template,
        Recipe::Jinja2,
        Recipe::Egg,
        Recipe::Release,
        Recipe::Generation,
        Recipe::Gitclone,
        Recipe::Script,
        Recipe::Unbuildable,
    ];

    /// The canonical name (what `plan` prints and the hash covers).
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Download => "download",
            Recipe::DownloadUnpacked => "download-unpacked",
            Recipe::Cmmi => "cmmi",
            Recipe::Shell => "shell",
            Recipe::Template => "template",
            Recipe::Jinja2 => "jinja2",
            Recipe::Egg => "egg",
            Recipe::Release => "release",
            Recipe::Generation => "generation",
            Recipe::Gitclone => "gitclone",
            Recipe::Script => "script",
            Recipe::Unbuildable => "unbuildable",
        }
    }

    /// The version of the recipe's builder: bumped when what it produces from the same inputs
    /// changes, so that such outputs get new store paths.
    pub fn version(self) -> u32 {
        1
    }
}

/// A source to fetch: where from (not hashed) and its declared checksum (hashed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The role of the source in the recipe (`url`, or the patch's position).
    pub role: String,
    /// URLs to try in order (`url`, then `alternate-url`).
    pub urls: Vec<String>,
    /// `md5:<hex>`, `sha256:<hex>` or `blake3:<hex>`; `None` for a local file, which is then
    /// identified by its content hash in [`Inputs::files`].
    pub checksum: Option<String>,
}

/// What a derivation's hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub name: PartName,
    pub recipe: Recipe,
    pub system: String,
    /// Options as hashed: own location as the placeholder, profile locations as markers, no URLs
    /// of checksummed sources, local files by content (in `files`).
    pub options: BTreeMap<String, String>,
    /// Declared checksums of the sources, by role.
    pub sources: BTreeMap<String, String>,
    /// BLAKE3 of local files and trees (patches, templates, `path` sources), by role.
    pub files: BTreeMap<String, String>,
    /// Store paths of the derivations this one refers to (by base name).
    pub references: BTreeSet<String>,
}

impl Inputs {
    /// The canonical encoding: version line, then one line per field, length-prefixed values
    /// (`<kind> <key-len>:<key> <value-len>:<value>\n`), maps in key order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(format!("slapstore-derivation {ENCODING_VERSION}\n").as_bytes());
        field(&mut out, "name", "", self.name.as_str());
        field(
            &mut out,
            "recipe",
            self.recipe.name(),
            &self.recipe.version().to_string(),
        );
        field(&mut out, "system", "", &self.system);
        for (k, v) in &self.options {
            field(&mut out, "option", k, v);
        }
        for (k, v) in &self.sources {
            field(&mut out, "source", k, v);
        }
        for (k, v) in &self.files {
            field(&mut out, "file", k, v);
        }
        for r in &self.references {
            field(&mut out, "reference", "", r);
        }
        out
    }

    /// The derivation's hash.
    pub fn hash(&self) -> blake3::Hash {
        blake3::hash(&self.encode())
    }

    /// The store path the derivation builds.
    pub fn store_path(&self) -> StorePath {
        StorePath::new(&self.hash(), self.name.clone())
    }
}

fn field(out: &mut Vec<u8>, kind: &str, key: &str, value: &str) {
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(format!(" {}:", key.len()).as_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(format!(" {}:", value.len()).as_bytes());
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// What the builder needs beyond the hashed inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// The options with real values (the output path in place of the placeholder).
    pub options: BTreeMap<String, String>,
    /// Sources to fetch.
    pub sources: Vec<Source>,
    /// Local files by role, as paths on this machine.
    pub files: BTreeMap<String, PathBuf>,
}

/// A derivation: its identity, what building it takes, and the store path it builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivation {
    pub inputs: Inputs,
    pub build: Build,
    pub path: StorePath,
}

impl Derivation {
    pub fn new(inputs: Inputs, build: Build) -> Derivation {
        let path = inputs.store_path();
        Derivation {
            inputs,
            build,
            path,
        }
    }

    pub fn name(&self) -> &str {
        self.inputs.name.as_str()
    }

    pub fn recipe(&self) -> Recipe {
        self.inputs.recipe
    }

    /// An option's real value.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.build.options.get(key).map(String::as_str)
    }

    /// Why its build is refused, for an `unbuildable` derivation (a recipe slapstore cannot
    /// build here, or a part whose install fails as buildout's would): its `refusal` option.
    pub fn refusal(&self) -> Option<&str> {
        (self.recipe() == Recipe::Unbuildable).then(|| {
            self.option("refusal")
                .unwrap_or("slapstore cannot build this recipe")
        })
    }
}

impl Serialize for PartName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PartName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PartName::new(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for StorePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StorePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StorePath::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            name: PartName::new("lua").expect("valid"),
            recipe: Recipe::Cmmi,
            system: "x86_64-linux".into(),
            options: [("make-options".to_owned(), "posix".to_owned())].into(),
            sources: [("url".to_owned(), "md5:bd8c".to_owned())].into(),
            files: BTreeMap::new(),
            references: BTreeSet::new(),
        }
    }

    #[test]
    fn hash_is_stable_and_covers_every_field() {
        let a = inputs();
        assert_eq!(a.hash(), inputs().hash());
        let mut b = inputs();
        b.options.insert("make-options".into(), "linux".into());
        assert_ne!(a.hash(), b.hash());
        let mut c = inputs();
        c.sources.insert("url".into(), "md5:0000".into());
        assert_ne!(a.hash(), c.hash());
        let mut d = inputs();
        d.references.insert("x".into());
        assert_ne!(a.hash(), d.hash());
        let mut e = inputs();
        e.recipe = Recipe::Shell;
        assert_ne!(a.hash(), e.hash());
    }

    #[test]
    fn encoding_is_unambiguous() {
        // moving text between a key and its value changes the encoding
        let mut a = inputs();
        a.options = [("a b".to_owned(), "c".to_owned())].into();
        let mut b = inputs();
        b.options = [("a".to_owned(), "b c".to_owned())].into();
        assert_ne!(a.encode(), b.encode());
    }

    #[test]
    fn encoding_version_1_is_fixed() {
        let text = String::from_utf8(inputs().encode()).expect("utf-8");
        assert_eq!(
            text,
            "slapstore-derivation 1\nname 0: 3:lua\nrecipe 4:cmmi 1:1\nsystem 0: 12:x86_64-linux\n\
             option 12:make-options 5:posix\nsource 3:url 8:md5:bd8c\n"
        );
    }
}
