//! `plone.recipe.command`: runs `command` at install; initialisation only checks
//! `stop-on-error`.

use super::Part;
use crate::error::Result;

pub fn init(part: &mut Part) -> Result<()> {
    if let Some(value) = part.get("stop-on-error")? {
        let lower = value.to_lowercase();
        if !matches!(
            lower.as_str(),
            "no" | "off" | "false" | "yes" | "on" | "true"
        ) {
            return Err(part.option_error(
                "stop-on-error",
                format!(
                    "invalid value '{value}' for 'stop_on_error', use 'yes', 'on', 'true', \
                     'no', 'off' or false"
                ),
            ));
        }
    }
    Ok(())
}
