//! `plone.recipe.command` in an instance: shell commands that make state in the partition
//! (certificates, databases, ...). Rendering runs nothing (a render is pure); the generation
//! records each part's `command`, `update-command` and `stop-on-error`, in install order, and
//! they run after every switch to it (`create`, `upgrade`, `rollback`), in the partition, as
//! buildout runs them: `command` when the part is new or its commands changed since they last
//! succeeded here (their hash is kept in `.slapstore/<section>.command`), `update-command`
//! otherwise. A failing command with `stop-on-error` fails the operation (exit status 1; the
//! generation stays current and the next operation runs it again); without, it is reported
//! and the others run. The commands are the profile's own shell code, as in SlapOS.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::state;
use crate::error::Result;
use crate::recipes::deploy::Step;
use crate::recipes::Part;

/// One part's commands, as the generation records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    pub section: String,
    pub command: Option<String>,
    #[serde(rename = "update-command")]
    pub update: Option<String>,
    #[serde(rename = "stop-on-error")]
    pub stop_on_error: bool,
}

/// `plone.recipe.command`: its options checked, its commands recorded.
pub fn command(part: &mut Part) -> Result<()> {
    crate::recipes::command_init(part)?;
    let stop_on_error = part
        .get("stop-on-error")?
        .is_some_and(|v| matches!(v.to_lowercase().as_str(), "yes" | "on" | "true"));
    let command = part.get("command")?.filter(|c| !c.trim().is_empty());
    let update = part.get("update-command")?.filter(|c| !c.trim().is_empty());
    let spec = CommandSpec {
        section: part.name.clone(),
        command,
        update,
        stop_on_error,
    };
    part.r.instance_output.commands.push(Step::Command(spec));
    Ok(())
}

/// Runs one part's commands in the partition: the failure to report when it does not stop the
/// operation (without `stop-on-error`), or the error that stops it.
pub fn run(partition: &Path, spec: &CommandSpec) -> std::result::Result<Option<String>, String> {
    let signature = blake3::hash(
        serde_json::to_string(&(&spec.command, &spec.update))
            .unwrap_or_default()
            .as_bytes(),
    )
    .to_hex()
    .to_string();
    let rel = state::slot(&spec.section, "command");
    let kept = state::read(partition, Path::new(&rel))
        .map_err(|e| format!("cannot read `{}/{rel}`: {e}", partition.display()))?;
    let fresh = kept.as_deref() != Some(signature.as_str());
    let (which, text) = if fresh {
        ("command", spec.command.as_deref())
    } else {
        ("update-command", spec.update.as_deref())
    };
    if let Some(text) = text {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(text)
            .current_dir(partition)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("[{}] cannot run /bin/sh: {e}", spec.section))?;
        if !out.status.success() {
            let message = format!(
                "[{}] {which} failed ({}): {}{}",
                spec.section,
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if spec.stop_on_error {
                return Err(message);
            }
            return Ok(Some(message));
        }
    }
    if fresh {
        state::replace(partition, Path::new(&rel), &signature)
            .map_err(|e| format!("cannot write `{}/{rel}`: {e}", partition.display()))?;
    }
    Ok(None)
}
