//! Recipe `software` (entry point `default`, `software:Recipe`): rapid-cdn's own egg, which the
//! release develops from its `setup.py` and `software.py` (`[software-develop]`) into the
//! develop-eggs directory its instance profile uses. The recipe does nothing — its `__init__`
//! sets no option, its `install` and `update` install nothing; its part is there so that
//! buildout puts the egg (the `software` module the templates import) and its requirements on
//! its path before the parts that `depends` on it. So here too: nothing is set or written.

use crate::error::Result;
use crate::recipes::Part;

/// `software`: no option, no file.
pub fn software(_part: &mut Part) -> Result<()> {
    Ok(())
}
