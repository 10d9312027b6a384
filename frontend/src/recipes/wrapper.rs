//! The script that `slapos.cookbook:wrapper` writes, exactly as the cookbook makes it:
//! `command-line` split with Python's `shlex.split` (POSIX mode, no comments), each argument
//! quoted with `shlex.quote`, `environment` lines (`KEY = value`) exported sorted by key.
//!
//! Invariant: nothing of an option's value is ever shell code in the script. Every argument and
//! every environment value is quoted; an environment key must be a shell name
//! (`[A-Za-z_][A-Za-z0-9_]*`), so a newline or a metacharacter that a parameter brings into
//! `environment` is refused, never run.

use std::collections::BTreeMap;

/// Why an option cannot make a wrapper: the message, for the option named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperError {
    pub option: &'static str,
    pub message: String,
}

/// Python's `shlex.split(text)`: POSIX rules, whitespace ` \t\r\n`, quotes `'` and `"`, `\`
/// escaping outside quotes and, inside `"`, only before `"` or `\`; `#` is an ordinary
/// character. Unbalanced quotes or a final `\` are errors, as in Python.
pub fn split(text: &str) -> Result<Vec<String>, &'static str> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Space,
        Word,
        Single,
        Double,
        /// after `\`, in a word or inside `"`
        Escape {
            in_double: bool,
        },
    }
    let mut words = Vec::new();
    let mut token = String::new();
    let mut quoted = false;
    let mut state = State::Space;
    for c in text.chars() {
        let space = matches!(c, ' ' | '\t' | '\r' | '\n');
        state = match state {
            State::Space | State::Word if space => {
                if state == State::Word || quoted {
                    words.push(std::mem::take(&mut token));
                    quoted = false;
                }
                State::Space
            }
            State::Space | State::Word => match c {
                '\\' => State::Escape { in_double: false },
                '\'' => State::Single,
                '"' => State::Double,
                _ => {
                    token.push(c);
                    State::Word
                }
            },
            State::Single => {
                quoted = true;
                if c == '\'' {
                    State::Word
                } else {
                    token.push(c);
                    State::Single
                }
            }
            State::Double => {
                quoted = true;
                match c {
                    '"' => State::Word,
                    '\\' => State::Escape { in_double: true },
                    _ => {
                        token.push(c);
                        State::Double
                    }
                }
            }
            State::Escape { in_double } => {
                if in_double && c != '"' && c != '\\' {
                    token.push('\\');
                }
                token.push(c);
                if in_double {
                    State::Double
                } else {
                    State::Word
                }
            }
        };
    }
    match state {
        State::Single | State::Double => Err("it has no closing quotation"),
        State::Escape { .. } => Err("it ends with `\\` and no escaped character"),
        State::Word => {
            words.push(token);
            Ok(words)
        }
        State::Space => {
            if quoted {
                words.push(token);
            }
            Ok(words)
        }
    }
}

/// Python's `shlex.quote`: the text as is if it holds only `[A-Za-z0-9_@%+=:,./-]`, otherwise
/// single-quoted (`'` written `'"'"'`); `''` for nothing.
pub fn quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if text.is_empty() {
        "''".to_owned()
    } else if text.chars().all(safe) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\"'\"'"))
    }
}

/// Whether `key` can be exported by a POSIX shell: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_shell_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The wrapper script: `environment` exported, then `exec` of `command_line`'s arguments (and
/// the wrapper's own with `parameters_extra`).
pub fn script(
    command_line: &str,
    environment: Option<&str>,
    parameters_extra: bool,
) -> Result<String, WrapperError> {
    let mut env = BTreeMap::new();
    for line in environment.unwrap_or_default().lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |message: String| WrapperError {
            option: "environment",
            message,
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("line `{line}` has no `=`")))?;
        let key = key.trim_end();
        if !is_shell_name(key) {
            return Err(bad(format!(
                "`{}` is not a variable name (letters, digits and `_`, not starting with a digit)",
                key.escape_debug()
            )));
        }
        env.insert(key, value.trim_start());
    }
    let args = split(command_line).map_err(|why| WrapperError {
        option: "command-line",
        message: format!("cannot split `{command_line}`: {why}"),
    })?;
    if args.is_empty() {
        return Err(WrapperError {
            option: "command-line",
            message: "it names no command".into(),
        });
    }
    let mut out = String::from("#!/bin/sh\n");
    for (key, value) in env {
        out.push_str(&format!("export {key}={}\n", quote(value)));
    }
    out.push_str("exec");
    for arg in &args {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    if parameters_extra {
        out.push_str(" \"$@\"");
    }
    out.push('\n');
    Ok(out)
}

/// `script` that first waits until each of `files` exists (checked each second), as the
/// cookbook's `wait-for-files` and `execute_wait` do before they run the command.
pub fn waiting(script: &str, files: &[String]) -> String {
    let body = script.strip_prefix("#!/bin/sh\n").unwrap_or(script);
    let mut out = String::from("#!/bin/sh\n");
    for file in files {
        out.push_str(&format!(
            "while [ ! -e {} ]; do sleep 1; done\n",
            quote(file)
        ));
    }
    out.push_str(body);
    out
}

/// The script of the cookbook's `GenericBaseRecipe.createWrapper(path, args, env)` (its simple
/// case, no keywords), as it writes it: `#!/bin/sh -e`, `env` exported sorted by key, then
/// `exec` of every argument quoted and of the wrapper's own (`"$@"`), a line continued (`\`,
/// then a tab) once it is 40 characters long. Keys are the recipes' own (shell names).
pub fn create_wrapper(args: &[String], env: &[(&str, String)]) -> String {
    let mut lines = vec!["#!/bin/sh -e".to_owned()];
    let mut env: Vec<&(&str, String)> = env.iter().collect();
    env.sort();
    for (key, value) in env {
        lines.push(format!("export {key}={}", quote(value)));
    }
    lines.push("exec".to_owned());
    let words = args.iter().map(|a| quote(a)).chain(["\"$@\"".to_owned()]);
    for word in words {
        let last = lines.len() - 1;
        if lines[last].len() < 40 {
            lines[last].push(' ');
            lines[last].push_str(&word);
        } else {
            lines[last].push_str(" \\");
            lines.push(format!("\t{word}"));
        }
    }
    lines.push(String::new());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_pythons_shlex_split() {
        // expected values are Python 3's shlex.split
        let cases: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            ("a 'b c' \"d e\"", &["a", "b c", "d e"]),
            ("a\\ b", &["a b"]),
            (r#""a\"b" "a\$b" "a\\b""#, &["a\"b", "a\\$b", "a\\b"]),
            ("'' x \"\"", &["", "x", ""]),
            ("a'b'c\"d\"", &["abcd"]),
            ("x #not-a-comment", &["x", "#not-a-comment"]),
            ("--port $(touch /tmp/x)", &["--port", "$(touch", "/tmp/x)"]),
            ("  \n ", &[]),
        ];
        for (text, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|w| w.to_string()).collect();
            assert_eq!(split(text), Ok(expected), "{text:?}");
        }
        assert!(split("a 'b").is_err());
        assert!(split("a \"b").is_err());
        assert!(split("a \\").is_err());
    }

    #[test]
    fn quote_is_pythons_shlex_quote() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("/srv/a-b_c.d:e=f,g@h%+"), "/srv/a-b_c.d:e=f,g@h%+");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\"'\"'s'");
        assert_eq!(quote("$(touch x)"), "'$(touch x)'");
    }

    #[test]
    fn scripts_quote_everything_and_refuse_bad_keys() {
        let s = script(
            "/bin/server --port '$(touch /tmp/x)' \"a b\"",
            Some("B = 2\n A= it's\n"),
            true,
        )
        .expect("script");
        assert_eq!(
            s,
            "#!/bin/sh\nexport A='it'\"'\"'s'\nexport B=2\n\
             exec /bin/server --port '$(touch /tmp/x)' 'a b' \"$@\"\n"
        );
        for bad in ["X$(touch /tmp/x)=1", "1X=1", "A B=1", "=1", "X;Y=1"] {
            let e = script("/bin/true", Some(bad), false).expect_err(bad);
            assert_eq!(e.option, "environment", "{bad}");
        }
        assert_eq!(
            waiting(
                "#!/bin/sh\nexec /bin/x\n",
                &["/p/a b".into(), "/p/c".into()]
            ),
            "#!/bin/sh\nwhile [ ! -e '/p/a b' ]; do sleep 1; done\n\
             while [ ! -e /p/c ]; do sleep 1; done\nexec /bin/x\n"
        );
        assert_eq!(
            script("'unclosed", None, false)
                .expect_err("unclosed")
                .option,
            "command-line"
        );
    }

    #[test]
    fn create_wrapper_is_the_cookbooks() {
        // expected: slapos.recipe.librecipe's createWrapper, run on these arguments
        let args: Vec<String> = ["/opt/redis/bin/redis-server", "/srv/etc/redis.conf", "a b"]
            .map(str::to_owned)
            .to_vec();
        let env = [("HOME", "/srv/x y".to_owned()), ("A", "1".to_owned())];
        assert_eq!(
            create_wrapper(&args, &env),
            "#!/bin/sh -e\nexport A=1\nexport HOME='/srv/x y'\n\
             exec /opt/redis/bin/redis-server /srv/etc/redis.conf \\\n\t'a b' \"$@\"\n"
        );
    }
}
