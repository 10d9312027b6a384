//! Rendering a `slapos.recipe.template:jinja2` template, with the engine its text asks for:
//! minijinja (in process, fast) when the template uses nothing minijinja lacks, Python's own
//! Jinja2 (`jinja2py.rs`) otherwise. The choice is a static look at the texts (the template,
//! its `import-list` templates) and the context's modules, never a retry after an error, so one
//! template always renders with the same engine, at plan time, in a dry run and in a build.
//! Both engines get the same context and the same `import-list` templates.
//!
//! What only Jinja2 renders ([`python_only`]): methods that change a value (minijinja's values
//! are immutable: `l.append(x)`, `d.pop(k)`, `d.update(..)`, `__setitem__`), Python methods
//! minijinja-contrib's pycompat lacks (`rsplit`, `zfill`, ...), builtins `pybuiltins.rs` lacks
//! (`isinstance`, `map`, `next`, ...), `import` with context (minijinja ignores `with
//! context`), and a module `pybuiltins.rs` does not make.

use std::collections::BTreeMap;

/// One template to render: its text, its context (JSON; modules marked as
/// `pybuiltins::MODULE_KEY`), the `import-list` templates by name.
pub struct Job<'a> {
    pub source: &'a str,
    pub context: &'a serde_json::Value,
    pub imports: &'a BTreeMap<String, String>,
}

/// Which engine renders a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    MiniJinja,
    /// Python's Jinja2, and the construct that asked for it.
    Jinja2(&'static str),
}

/// Methods of Python's `list`, `dict`, `set` and `str` that minijinja-contrib's pycompat does
/// not give (mutating ones above all).
const PYTHON_METHODS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "remove",
    "pop",
    "popitem",
    "clear",
    "sort",
    "reverse",
    "copy",
    "index",
    "setdefault",
    "update",
    "fromkeys",
    "add",
    "discard",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
    "issubset",
    "issuperset",
    "isdisjoint",
    "rsplit",
    "rindex",
    "partition",
    "rpartition",
    "zfill",
    "ljust",
    "rjust",
    "center",
    "casefold",
    "swapcase",
    "expandtabs",
    "encode",
    "decode",
    "isdigit",
    "isdecimal",
    "isidentifier",
    "isprintable",
    "istitle",
    "removeprefix",
    "removesuffix",
    "translate",
    "format_map",
];

/// The builtins slapos.recipe.template gives every template that `pybuiltins.rs` does not.
const PYTHON_BUILTINS: &[&str] = &[
    "isinstance",
    "callable",
    "iter",
    "next",
    "map",
    "filter",
    "format",
    "frozenset",
    "complex",
    "divmod",
    "pow",
    "round",
    "bin",
    "bytes",
    "six",
    "assert",
];

/// The engine for `job`.
pub fn engine(job: &Job) -> Engine {
    if let Some(module) = foreign_module(job.context) {
        return Engine::Jinja2(module);
    }
    std::iter::once(job.source)
        .chain(job.imports.values().map(String::as_str))
        .find_map(python_only)
        .map_or(Engine::MiniJinja, Engine::Jinja2)
}

/// Renders `job` with its engine.
pub fn render(job: &Job) -> Result<String, String> {
    match engine(job) {
        Engine::MiniJinja => render_minijinja(job),
        Engine::Jinja2(_) => super::jinja2py::render(job.source, job.context, job.imports),
    }
    .map_err(|e| format!("the jinja2 template does not render: {e}"))
}

/// The first construct of `text` that only Python's Jinja2 renders, if any (anywhere in the
/// text: a false hit in literal text only means the exact engine renders it).
pub fn python_only(text: &str) -> Option<&'static str> {
    if text.contains(".__") {
        return Some("`.__` (Python's special methods)");
    }
    for (at, _) in text.match_indices(" context") {
        let before = text[..at].trim_end();
        if before.ends_with("with") || before.ends_with("without") {
            return Some("`import ... with context`");
        }
    }
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) || (i > 0 && is_word(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        let word = &text[start..i];
        let called = text[i..].trim_start().starts_with('(');
        if !called {
            continue;
        }
        let method = start > 0 && bytes[start - 1] == b'.';
        let list = if method {
            PYTHON_METHODS
        } else {
            PYTHON_BUILTINS
        };
        if let Some(name) = list.iter().find(|n| **n == word) {
            return Some(name);
        }
    }
    None
}

/// A module of the context that `pybuiltins.rs` does not make.
fn foreign_module(context: &serde_json::Value) -> Option<&'static str> {
    let serde_json::Value::Object(map) = context else {
        return None;
    };
    map.values()
        .filter_map(|v| v.get(super::pybuiltins::MODULE_KEY)?.as_str())
        .any(|m| !super::pybuiltins::MODULES.contains(&m))
        .then_some("an `import` of a module other than json, os, os.path, re")
}

/// Renders with minijinja (undefined names are errors, trailing newlines kept), as
/// slapos.recipe.template:jinja2 renders with Jinja2. Python's methods on values
/// (`parameters.get('k', default)`, `.items()`, `.keys()`, `.split()`, ...), which SlapOS's
/// templates call everywhere, come from minijinja-contrib's pycompat; the builtins
/// slapos.recipe.template gives every template (`int`, `len`, `enumerate`, `dumps`, ...) from
/// `pybuiltins.rs`; the `import-list` templates are templates of the environment.
fn render_minijinja(job: &Job) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    super::pybuiltins::add(&mut env);
    for (name, text) in job.imports {
        env.add_template_owned(name.clone(), text.clone())
            .map_err(|e| format!("{e:#}"))?;
    }
    env.render_str(job.source, super::pybuiltins::context(job.context))
        .map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(
        source: &'a str,
        context: &'a serde_json::Value,
        imports: &'a BTreeMap<String, String>,
    ) -> Job<'a> {
        Job {
            source,
            context,
            imports,
        }
    }

    #[test]
    fn python_methods_on_values_render_as_jinja2_renders_them() {
        // as SlapOS's templates read their parameters: dict.get with a default, items, split
        let context = serde_json::json!({"p": {"port": 8080, "names": "a b"}});
        let none = BTreeMap::new();
        let source = "{{ p.get('port', 1) }} {{ p.get('missing', 'dflt') }} \
            {% for k, v in p.items() %}{{ k }}{% endfor %} {{ p['names'].split() | length }}";
        assert_eq!(engine(&job(source, &context, &none)), Engine::MiniJinja);
        assert_eq!(
            render(&job(source, &context, &none)).expect("renders"),
            "8080 dflt namesport 2"
        );
        // an unknown name is still an error (Strict, as the recipe's StrictUndefined)
        assert!(render(&job("{{ nothing }}", &context, &none)).is_err());
    }

    #[test]
    fn what_only_jinja2_renders_is_seen_in_the_text() {
        for (text, construct) in [
            ("{% set l = [] %}{% do l.append(1) %}", "append"),
            ("{%- do d.pop('k', None) %}", "pop"),
            ("{% do  d.update ({'a': 1}) %}", "update"),
            (
                "{{ d.__setitem__('k', 1) }}",
                "`.__` (Python's special methods)",
            ),
            ("{% if isinstance(x, str) %}{% endif %}", "isinstance"),
            ("{{ next(iter(l)) }}", "next"),
            ("{{ 'a.b'.rsplit('.', 1) }}", "rsplit"),
            (
                "{% import 'caucase' as caucase with context %}",
                "`import ... with context`",
            ),
        ] {
            assert_eq!(python_only(text), Some(construct), "{text}");
        }
        for text in [
            // pycompat's methods, minijinja's builtins, words that only look like calls
            "{{ p.get('a', 1) }} {{ s.split() }} {{ ', '.join(l) }} {{ '{}'.format(1) }}",
            "{{ range(3) | list }} {{ dict(a=1) }} {{ len(l) }} {{ int('1') }}",
            "append (x) is text; {{ x.appendix }} {{ mapping }} {{ remap(1) }}",
            "{% import 'lib' as lib %}{{ lib.m(1) }}",
        ] {
            assert_eq!(python_only(text), None, "{text}");
        }
    }

    #[test]
    fn a_module_minijinja_does_not_make_asks_for_jinja2() {
        let none = BTreeMap::new();
        let json = serde_json::json!({"j": {"$python-module": "json"}});
        assert_eq!(
            engine(&job("{{ j.dumps(1) }}", &json, &none)),
            Engine::MiniJinja
        );
        let hashlib = serde_json::json!({"h": {"$python-module": "hashlib"}});
        assert!(matches!(
            engine(&job("{{ 1 }}", &hashlib, &none)),
            Engine::Jinja2(_)
        ));
    }

    #[test]
    fn an_import_list_template_is_found_by_its_name_in_both_engines() {
        let context = serde_json::json!({"x": 5});
        let imports = BTreeMap::from([(
            "lib".to_owned(),
            "{% macro m(a) %}{{ a + 1 }}{% endmacro %}".to_owned(),
        )]);
        let plain = "{% import 'lib' as lib %}{{ lib.m(x) }}";
        assert_eq!(engine(&job(plain, &context, &imports)), Engine::MiniJinja);
        assert_eq!(render(&job(plain, &context, &imports)).as_deref(), Ok("6"));
        // with context: Jinja2, whose macros see the importer's names
        let with = "{% import 'lib' as lib with context %}{{ lib.m(x) }}";
        assert!(matches!(
            engine(&job(with, &context, &imports)),
            Engine::Jinja2(_)
        ));
        assert_eq!(render(&job(with, &context, &imports)).as_deref(), Ok("6"));
    }

    #[test]
    fn jinja2_renders_what_minijinja_cannot_with_the_same_context() {
        let none = BTreeMap::new();
        let context = serde_json::json!({"p": {"port": 8080}, "json": {"$python-module": "json"}});
        let source = "{% set l = [] %}{% do l.append(p.port) %}{% do p.update({'k': 1}) %}\
            {{ l }} {{ p | dictsort }} {{ isinstance(p, dict) }} {{ dumps(['a']) }} \
            {{ json.dumps({'b': 1}) }}\n";
        assert_eq!(
            render(&job(source, &context, &none)).as_deref(),
            Ok("[8080] [('k', 1), ('port', 8080)] True !py!['a'] {\"b\": 1}\n")
        );
        // its errors name the template's line
        let source = "{% do [].append(1) %}a\n{{ nothing }}";
        let error = render(&job(source, &context, &none)).unwrap_err();
        assert!(
            error.contains("'nothing' is undefined (in <template>:2)"),
            "{error}"
        );
        assert!(super::super::jinja2py::version()
            .expect("Jinja2")
            .starts_with("Jinja2 "));
    }
}
