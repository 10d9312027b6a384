//! What the node last did for its master, in `<root>/var/node/state.json`: the fingerprint of
//! the computer registration it sent and, per partition, of what the master asked it to host
//! (release URL, software type, parameters, state, titles, addresses, timestamp) and the
//! release it deployed. A pass leaves a partition alone when both are the same, as slapgrid
//! skips a partition whose `.timestamp` did not change. The file is a cache: losing it costs
//! one full pass (every partition rendered again, which changes nothing that did not change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The node's memory of its last pass.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeState {
    /// The fingerprint of the last registration the master accepted.
    #[serde(default)]
    pub format: String,
    /// Per partition: what it was last made to match.
    #[serde(default)]
    pub partitions: BTreeMap<String, Deployed>,
}

/// What one partition was last made to match.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Deployed {
    /// The fingerprint of the master's request for it.
    pub request: String,
    /// The release deployed (a store path), if any.
    pub release: Option<String>,
}

/// The state file of a root.
pub fn path(root: &Path) -> PathBuf {
    root.join("var/node/state.json")
}

impl NodeState {
    /// Reads the state file; a missing or unreadable one is an empty state (a full pass).
    pub fn load(file: &Path) -> NodeState {
        crate::fingerprint::load(file)
    }

    /// Writes the state file atomically (a temporary file renamed over it).
    pub fn save(&self, file: &Path) -> std::io::Result<()> {
        crate::fingerprint::save(file, self)
    }
}

pub use crate::fingerprint::fingerprint;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_bad_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        assert_eq!(NodeState::load(&file), NodeState::default());
        let mut state = NodeState {
            format: fingerprint(&("COMP-1", 3)),
            ..NodeState::default()
        };
        state.partitions.insert(
            "slappart0".into(),
            Deployed {
                request: fingerprint(&"x"),
                release: Some("abc-release".into()),
            },
        );
        state.save(&file).unwrap();
        assert_eq!(NodeState::load(&file), state);
        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(NodeState::load(&file), NodeState::default());
        assert_ne!(fingerprint(&"x"), fingerprint(&"y"));
    }
}
