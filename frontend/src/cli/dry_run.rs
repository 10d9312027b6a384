//! What `instance create NAME --dry-run` prints: the instance's partition, release and
//! generation, then what its render would deploy (parts and recipes, directories, files,
//! services, published parameters, requests, commands, sections deferred to the deploy);
//! `--json` gives the same as one object (`docs/cli.md`).

use crate::instance::DryRun;
use crate::recipes::instance::FileSpec;

/// Whether `rel` is a service of the partition (`etc/service/*`, `etc/run/*`).
fn is_service(rel: &str) -> bool {
    ["etc/service/", "etc/run/"].iter().any(|dir| {
        rel.strip_prefix(dir)
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    })
}

/// The services of a dry run's partition.
fn services(d: &DryRun) -> Vec<&String> {
    d.output.files.keys().filter(|f| is_service(f)).collect()
}

/// One dry run as JSON (`--json` prints a list of them).
pub(super) fn json(d: &DryRun, full: &dyn Fn(&str) -> String) -> serde_json::Value {
    let files: Vec<serde_json::Value> = d
        .output
        .files
        .iter()
        .map(|(path, spec)| match spec {
            FileSpec::Text { text, mode } => serde_json::json!({
                "path": path, "mode": format!("{mode:04o}"), "text": text,
            }),
            FileSpec::Link { target } => serde_json::json!({"path": path, "link": target}),
        })
        .collect();
    let dirs: serde_json::Map<String, serde_json::Value> = d
        .output
        .dirs
        .iter()
        .map(|(p, m)| (p.clone(), format!("{m:04o}").into()))
        .collect();
    let requests: Vec<serde_json::Value> = d
        .output
        .requests
        .iter()
        .map(|r| {
            serde_json::json!({
                "part": r.part, "title": r.title, "software_url": r.software_url,
                "software_type": r.software_type, "state": r.state,
                "parameters": r.parameters,
            })
        })
        .collect();
    serde_json::json!({
        "name": d.name,
        "partition_id": d.partition_id,
        "software_type": d.software_type,
        "release": full(&d.release.to_string()),
        "to_build": d.to_build,
        "instance_profile_from": d.instance_profile_from,
        "generation": full(&d.generation.to_string()),
        "parameters": d.parameters,
        "parts": d.output.parts.iter()
            .map(|(part, recipe)| serde_json::json!({"part": part, "recipe": recipe}))
            .collect::<Vec<_>>(),
        "directories": dirs,
        "files": files,
        "services": services(d),
        "connection": d.output.connection,
        "requests": requests,
        "commands": d.output.commands.iter().map(|c| c.section()).collect::<Vec<_>>(),
        "deferred": d.output.deferred.iter()
            .map(|x| serde_json::json!({
                "section": x.section, "needs": x.needs, "parts_not_built": x.pending,
            }))
            .collect::<Vec<_>>(),
    })
}

/// One dry run as text.
pub(super) fn text(d: &DryRun, full: &dyn Fn(&str) -> String) -> String {
    let services = services(d);
    let mut out = format!(
        "would create {} on {} (software type `{}`); nothing changed (dry run)\n",
        d.name, d.partition_id, d.software_type
    );
    let built = if d.to_build.is_empty() {
        "built".to_owned()
    } else {
        format!("not built: {} parts to build", d.to_build.len())
    };
    out.push_str(&format!(
        "  release      {} ({built})\n",
        full(&d.release.to_string())
    ));
    if let Some(from) = &d.instance_profile_from {
        out.push_str(&format!("  profile      {from}\n"));
    }
    out.push_str(&format!(
        "  generation   {}\n",
        full(&d.generation.to_string())
    ));
    let mut section = |title: String, lines: Vec<String>| {
        if !lines.is_empty() {
            out.push_str(&title);
            out.push('\n');
            for l in lines {
                out.push_str(&format!("  {l}\n"));
            }
        }
    };
    let width = d
        .output
        .parts
        .iter()
        .map(|(p, _)| p.len())
        .max()
        .unwrap_or(0);
    section(
        format!("parts ({}, in install order):", d.output.parts.len()),
        d.output
            .parts
            .iter()
            .map(|(part, recipe)| format!("{part:width$}  {recipe}"))
            .collect(),
    );
    section(
        format!("directories ({}):", d.output.dirs.len()),
        d.output.dirs.keys().cloned().collect(),
    );
    section(
        format!("files ({}):", d.output.files.len()),
        d.output
            .files
            .iter()
            .map(|(path, spec)| match spec {
                FileSpec::Text { mode, .. } => format!("{path} ({mode:04o})"),
                FileSpec::Link { target } => format!("{path} -> {target}"),
            })
            .collect(),
    );
    section(
        format!("services ({}):", services.len()),
        services.iter().map(|s| s.to_string()).collect(),
    );
    section(
        "published:".to_owned(),
        d.output
            .connection
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect(),
    );
    section(
        "requests:".to_owned(),
        d.output
            .requests
            .iter()
            .map(|r| {
                format!(
                    "{} (software type `{}`, {}) of {}",
                    r.title, r.software_type, r.state, r.software_url
                )
            })
            .collect(),
    );
    section(
        "commands and parts installed at deploy (run after each switch):".to_owned(),
        d.output
            .commands
            .iter()
            .map(|c| match c {
                crate::recipes::deploy::Step::Render(r) => format!(
                    "{} (renders `{}`, read at deploy, into `{}`)",
                    r.section, r.template, r.output
                ),
                _ => c.section().to_owned(),
            })
            .collect(),
    );
    section(
        "deferred to the deploy (code needing what parts not built make; \
         what it sets reads as <deferred-to-deploy:SECTION:OPTION>):"
            .to_owned(),
        d.output
            .deferred
            .iter()
            .map(|x| {
                format!(
                    "[{}] needs {} (parts not built: {})",
                    x.section,
                    x.needs.join(", "),
                    x.pending.join(", ")
                )
            })
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn services_are_the_files_directly_in_etc_service_and_etc_run() {
        assert!(super::is_service("etc/service/web"));
        assert!(super::is_service("etc/run/init"));
        assert!(!super::is_service("etc/service/web/conf"));
        assert!(!super::is_service("etc/services/web"));
        assert!(!super::is_service("etc/run/"));
    }
}
