//! Fingerprints of what an operation last acted on, and the small state files that keep them:
//! how `slapstore node` (`node/state.rs`) and `instance reconcile` (`instance/reconcile.rs`)
//! leave alone what did not change since their last pass, as slapgrid skips a partition whose
//! `.timestamp` did not change. A state file is a cache: a missing or unreadable one is an
//! empty state (everything is looked at again, which changes nothing that did not change), and
//! it is replaced atomically (a temporary file renamed over it).

use std::io::Write;
use std::path::Path;

/// A short, stable fingerprint of a serialisable value (32 hex digits of its JSON's BLAKE3).
pub fn fingerprint(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    blake3::hash(&bytes).to_hex()[..32].to_owned()
}

/// Reads a state file; a missing or unreadable one is the default (empty) state.
pub fn load<T: serde::de::DeserializeOwned + Default>(file: &Path) -> T {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes a state file atomically (its directory made if needed).
pub fn save(file: &Path, state: &impl serde::Serialize) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    tmp.write_all(&text)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_state_file_round_trips_and_a_bad_one_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("var/x/state.json");
        let empty: BTreeMap<String, String> = load(&file);
        assert!(empty.is_empty());
        let state: BTreeMap<String, String> = [("a".to_owned(), fingerprint(&("a", 1)))].into();
        save(&file, &state).expect("save");
        assert_eq!(load::<BTreeMap<String, String>>(&file), state);
        std::fs::write(&file, "{not json").expect("write");
        assert!(load::<BTreeMap<String, String>>(&file).is_empty());
        assert_eq!(fingerprint(&"x"), fingerprint(&"x"));
        assert_ne!(fingerprint(&"x"), fingerprint(&"y"));
        assert_eq!(fingerprint(&"x").len(), 32);
    }
}
