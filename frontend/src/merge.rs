//! Merging configuration layers the way buildout does (`_update_section`, `_update`), and the
//! SlapOS fork's rule for a section's first definition.
//!
//! Merging an upper section onto a lower one first turns the upper one's `x +`/`x -` keys into
//! plain `x` values (based on the upper section's own `x` if it has one, else the lower one's,
//! else the empty string), then lets every upper key override the lower one.

use crate::config::{RawConfig, RawSection, Value};

/// The base name of an operator key: `x +` → `x` (Python's `rstrip(' +')` / `rstrip(' -')`).
fn base_name(key: &str, op: char) -> &str {
    key.trim_end_matches([' ', op])
}

/// `_update_section`: merge `upper` onto `lower`, in place.
pub fn update_section(lower: &mut RawSection, mut upper: RawSection) {
    let mut ops: Vec<String> = upper
        .keys()
        .filter(|k| k.ends_with(['+', '-']))
        .cloned()
        .collect();
    // buildout sorts on (key.rstrip(' +'), last character): `x +` comes before `x -`
    ops.sort_by(|a, b| {
        (base_name(a, '+'), a.chars().last()).cmp(&(base_name(b, '+'), b.chars().last()))
    });
    for key in ops {
        let Some(operand) = upper.get(&key).cloned() else {
            continue;
        };
        let adding = key.ends_with('+');
        let base = base_name(&key, if adding { '+' } else { '-' }).to_owned();
        let mut value = upper
            .get(&base)
            .or_else(|| lower.get(&base))
            .cloned()
            .unwrap_or_else(|| Value::new("", operand.origin.clone()));
        if adding {
            value.add(&operand);
        } else {
            value.remove(&operand);
        }
        upper.insert(base, value);
        upper.shift_remove(&key);
    }
    for (key, value) in upper {
        lower.insert(key, value);
    }
}

/// `_update`: merge every section of `upper` onto `lower`; a section new to `lower` is taken
/// as it is (operator keys included).
pub fn update(lower: &mut RawConfig, upper: RawConfig) {
    for (name, section) in upper {
        match lower.get_mut(&name) {
            Some(existing) => update_section(existing, section),
            None => {
                lower.insert(name, section);
            }
        }
    }
}

/// The SlapOS fork's merge of one file of the extends linearisation: like [`update`], except
/// that a section met for the first time resolves its base-less `x += v` to `x = v` and
/// `x -= v` to `x =` (zc.buildout ≥ 3.1.1 rule #641), unless it uses macros (`<`), whose
/// operator keys are kept to apply against the macro's values.
pub fn merge_file(result: &mut RawConfig, file: RawConfig) {
    for (name, mut section) in file {
        if let Some(existing) = result.get_mut(&name) {
            update_section(existing, section);
            continue;
        }
        if section.contains_key("<") {
            result.insert(name, section);
            continue;
        }
        let mut keys: Vec<String> = section.keys().cloned().collect();
        keys.sort();
        for key in keys {
            if !key.ends_with(['+', '-']) {
                continue;
            }
            let base = key.trim_end_matches([' ', '+', '-']).to_owned();
            if section.contains_key(&base) {
                continue;
            }
            if let Some(mut value) = section.shift_remove(&key) {
                if key.ends_with('-') {
                    value.text.clear();
                }
                section.insert(base, value);
            }
        }
        let mut merged = RawSection::default();
        update_section(&mut merged, section);
        result.insert(name, merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn section(items: &[(&str, &str)]) -> RawSection {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), Value::new(*v, Origin::Default)))
            .collect()
    }

    fn texts(s: &RawSection) -> Vec<(&str, &str)> {
        s.iter()
            .map(|(k, v)| (k.as_str(), v.text.as_str()))
            .collect()
    }

    #[test]
    fn add_and_remove_against_lower() {
        let mut lower = section(&[("x", "a\nb\nc")]);
        update_section(&mut lower, section(&[("x +", "d"), ("x -", "b")]));
        assert_eq!(texts(&lower), [("x", "a\nc\nd")]);
    }

    #[test]
    fn add_without_base_gives_leading_newline() {
        let mut lower = section(&[]);
        update_section(&mut lower, section(&[("x +", "d")]));
        assert_eq!(texts(&lower), [("x", "\nd")]);
    }

    #[test]
    fn upper_own_value_is_the_base() {
        let mut lower = section(&[("x", "low")]);
        update_section(&mut lower, section(&[("x", "a"), ("x +", "b")]));
        assert_eq!(texts(&lower), [("x", "a\nb")]);
    }

    #[test]
    fn first_definition_rule() {
        let mut result = RawConfig::default();
        let mut file = RawConfig::default();
        file.insert("s".into(), section(&[("x +", "v"), ("y -", "w")]));
        file.insert("m".into(), section(&[("<", "s"), ("x +", "v")]));
        merge_file(&mut result, file);
        assert_eq!(texts(&result["s"]), [("x", "v"), ("y", "")]);
        assert_eq!(texts(&result["m"]), [("<", "s"), ("x +", "v")]);
    }
}
