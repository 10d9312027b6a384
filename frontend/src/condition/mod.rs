//! Conditional section headers: `[name:EXPR]` is kept only if EXPR holds for the target.
//!
//! As zc.buildout 3.0.1 does: `\x23` and `\x3b` in EXPR are un-escaped to `#` and `;`; EXPR is
//! first read as a PEP 508 environment marker (`marker`); if it is not one, it is evaluated as
//! Python (`python`), as the first element of the list `[EXPR]`. What buildout takes from the
//! interpreter that runs it (version, implementation, platform, machine, pointer width) comes
//! from a [`Target`], by default CPython 3.11 on Linux x86-64 (`target`).
//!
//! Invariant: evaluation never panics and always ends; any failure is a [`ConditionError`].

mod marker;
mod python;
mod target;

pub use python::literal;
pub use target::{Implementation, Target};

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub message: String,
    /// Byte offset in the expression given to [`evaluate`], when known.
    pub offset: Option<usize>,
}

/// Evaluates the expression of a conditional section header, as zc.buildout 3.0.1 does.
pub fn evaluate(expression: &str, target: &Target) -> Result<bool, ConditionError> {
    let expression = expression.replace(r"\x23", "#").replace(r"\x3b", ";");
    match marker::parse(&expression) {
        Ok(marker) => marker.evaluate(&|name| target.marker_variable(name)),
        Err(_) => python::evaluate(&expression, target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_first_then_python() {
        let t = Target::default();
        assert_eq!(evaluate(r#"python_version >= "3.8""#, &t), Ok(true));
        assert_eq!(evaluate(r#"python_version < "3""#, &t), Ok(false));
        assert_eq!(evaluate(r#"platform_system == "Linux""#, &t), Ok(true));
        assert_eq!(evaluate("python3", &t), Ok(true));
        assert_eq!(evaluate(r"'\x23' == chr(35)", &t), Ok(true));
        assert_eq!(evaluate(r"'a\x23' == 'a' + '#'", &t), Ok(true));
    }
}
