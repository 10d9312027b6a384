//! `slapos.cookbook:switch-softwaretype`: the instance profile of the instance's software type
//! is rendered as the cookbook's sub-buildout is, with the same partition, `[slap-connection]`
//! and `[slap-configuration]`: the cookbook gives the sub-buildout `[slap-configuration]
//! recipe = slapos.cookbook:switch-softwaretype.noop` and the switching profile's
//! `[slap-configuration]` options (serialised, types kept), which that recipe sets on the
//! section, over what the switched-to profile writes there (stack/monitor's defaults for
//! `instance-title`, say). The values travel in [`Slap::inherited`], not as profile text.

use std::sync::Arc;

use super::slap::Slap;
use super::Part;
use crate::config::Origin;
use crate::error::Result;
use crate::load::Assignment;

/// The recipe the cookbook gives a switched-to profile's `[slap-configuration]`.
const NOOP: &str = "slapos.cookbook:switch-softwaretype.noop";

/// One option of the switching profile's `[slap-configuration]`, as it was there.
#[derive(Debug, Clone, PartialEq)]
pub struct Inherited {
    pub key: String,
    pub text: String,
    /// The value itself when it is not text (`configuration`, `ipv6`, ...).
    pub typed: Option<serde_json::Value>,
    /// Parameter text: final, never substituted.
    pub verbatim: bool,
}

/// `slapos.cookbook:switch-softwaretype`: the option named by the instance's software type
/// (`section:key`) is the path of the instance profile to render for it, as a sub-buildout
/// with the same partition, parameters and `[slap-connection]`, and its `[slap-configuration]`
/// made this profile's (below); its files join this render's.
pub(super) fn switch(part: &mut Part, slap: &Slap) -> Result<()> {
    let configuration = part.r.section("slap-configuration").map_err(|e| {
        if !matches!(e.kind, crate::error::ErrorKind::MissingSection { .. }) {
            return e;
        }
        part.error(
            "the section to retrieve slap partition parameters (with \
             slapos.cookbook:slapconfiguration recipe or a derived one) must be named \
             [slap-configuration]",
        )
    })?;
    let software_type = part
        .r
        .get(configuration, "slap-software-type", None)?
        .ok_or_else(|| {
            part.error(
                "[slap-configuration] has no `slap-software-type`: it must use \
                 slapos.cookbook:slapconfiguration or a derived recipe",
            )
        })?;
    let mut chosen = software_type.clone();
    let mut mapped = part.get(&chosen)?;
    if mapped.is_none() && chosen == "RootSoftwareInstance" {
        chosen = "default".to_owned();
        mapped = part.get(&chosen)?;
    }
    let Some(mapped) = mapped else {
        // software/simpleran maps no `default` on purpose, "to force user to choose the
        // correct one"
        let keys = part.r.sections[part.idx].keys();
        let types: Vec<String> = keys
            .into_iter()
            .filter(|k| !matches!(k.as_str(), "recipe" | "override") && !k.starts_with('_'))
            .collect();
        return Err(part.error(format!(
            "this software type ({software_type}) isn't mapped. 'default' is the default \
             software type; this profile maps {}: choose one with `--software-type`",
            types.join(", ")
        )));
    };
    let Some((section, key)) = mapped
        .trim()
        .split_once(':')
        .filter(|(_, k)| !k.contains(':'))
    else {
        return Err(part.option_error(
            &chosen,
            "the software types must be given as `section:key`, where key is usually \
             `rendered` (not `${section:key}`)",
        ));
    };
    let span = part.r.span_of(part.idx, &chosen);
    let target = part.r.section(section).map_err(|e| e.or_at(span))?;
    let profile = part.r.require(target, key).map_err(|e| e.or_at(span))?;
    let inherited = inherited(part, configuration)?;
    let mut options = slap.eval.clone();
    // the cookbook's sub-buildout runs `[slap-configuration]` with its own recipe, which takes
    // the switching profile's options: a switched-to profile reads the same addresses,
    // titles and parameters whether or not it defines `[slap-configuration]` itself
    options.assignments.push(Assignment {
        section: "slap-configuration".into(),
        option: "recipe".into(),
        value: NOOP.into(),
    });
    // the profile is usually a file this render writes in the partition (a `jinja2` part's
    // `output`): its text is the render's, not yet on disk
    let written = super::instance::relative(part, &chosen, &profile)
        .ok()
        .and_then(|rel| match part.r.instance_output.files.get(&rel) {
            Some(super::instance::FileSpec::Text { text, .. }) => Some(text.clone()),
            _ => None,
        });
    options.text = written;
    // and so are the files it extends or reads that this render writes (gitlab's
    // `instance-gitlab-export.cfg` extends `instance-gitlab.cfg`): buildout installs them
    // before this part, which names them
    options.written = written_files(part)?;
    options.slap = Some(Arc::new(Slap {
        inherited,
        ..slap.clone()
    }));
    // a relative path is the partition's: the sub-buildout is read from buildout's directory
    let directory = part.buildout("directory")?;
    let profile = crate::pystr::path_join(&directory, profile.trim());
    let sub =
        crate::evaluate::evaluate(part.r.sources, &profile, &options).map_err(|e| e.or_at(span))?;
    let out = &mut part.r.instance_output;
    for (rel, spec) in sub.instance.files {
        if out.files.contains_key(&rel) || out.dirs.contains_key(&rel) || out.kept.contains(&rel) {
            return Err(part.option_error(
                &chosen,
                format!("`{rel}` is written by this profile and by the one it switches to"),
            ));
        }
        out.files.insert(rel, spec);
    }
    out.dirs.extend(sub.instance.dirs);
    out.connection.extend(sub.instance.connection);
    out.requests.extend(sub.instance.requests);
    // what the switched-to profile keeps in the partition (generated passwords, ports) and the
    // commands it runs are this render's too
    out.state.extend(sub.instance.state);
    out.kept.extend(sub.instance.kept);
    out.replaced.extend(sub.instance.replaced);
    out.commands.extend(sub.instance.commands);
    out.parts.extend(sub.instance.parts);
    Ok(())
}

/// The text files this render writes in the partition so far, by absolute path, with those of
/// the render that switched to it.
fn written_files(part: &mut Part) -> Result<crate::load::Written> {
    let partition = part.buildout("directory")?;
    let mut files = (*part.r.settings.written).clone();
    for (rel, spec) in &part.r.instance_output.files {
        if let super::instance::FileSpec::Text { text, .. } = spec {
            files.insert(crate::pystr::path_join(&partition, rel), text.clone());
        }
    }
    Ok(Arc::new(files))
}

/// Every option of `[slap-configuration]` (section `idx`), with its type and whether it is
/// parameter text.
fn inherited(part: &mut Part, idx: usize) -> Result<Vec<Inherited>> {
    let name = part.r.name(idx).to_owned();
    let items = part.r.items(idx)?;
    Ok(items
        .into_iter()
        .map(|(key, text)| Inherited {
            typed: part.r.typed.get(&(name.clone(), key.clone())).cloned(),
            verbatim: part.r.is_verbatim(&name, &key),
            key,
            text,
        })
        .collect())
}

/// `slapos.cookbook:switch-softwaretype.noop`: sets each option the switching profile's
/// `[slap-configuration]` had on this section, as it was (`NoOperation` in the cookbook).
pub(super) fn noop(part: &mut Part, slap: &Slap) -> Result<()> {
    if slap.inherited.is_empty() {
        return Err(part.option_error(
            "recipe",
            "this recipe is what `switch-softwaretype` gives the profile it renders: it has \
             nothing to take elsewhere",
        ));
    }
    let idx = part.idx;
    let origin = Origin::Recipe(part.recipe.clone());
    for option in &slap.inherited {
        if option.verbatim {
            part.r.set_parameter(idx, &option.key, option.text.clone());
        } else {
            part.r
                .set(idx, &option.key, option.text.clone(), origin.clone());
        }
        if let Some(value) = &option.typed {
            part.r
                .typed
                .insert((part.name.clone(), option.key.clone()), value.clone());
        }
    }
    Ok(())
}
