//! The layout shows the architecture, checked over the sources (issues 10 and 17):
//! - no import cycle between the library's modules, of any length;
//! - `journal` is the only module whose code names the journal's tables, and others use
//!   it through `crate::journal::<item>` only;
//! - `capture` is the only module that names the change log, the trigger functions and
//!   their triggers, and others use it through `crate::capture::<item>` only;
//! - only a step (and the runner that runs a step's transaction) moves a plan's phase;
//! - `plan show` (which prints the SQL) does not import the runner or `plan apply`.
//!
//! No database: comments are left out, code is read as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each library module (a file under src/, or a folder's files together) with its code,
/// comments removed; the binary's files are left out (they only render).
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if ["main", "bars", "render", "lib"].contains(&top.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // A file's unit tests (its last item, by the house's convention) are not
            // its code.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let mut code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            // The SQL files a module includes are part of what it runs.
            for included in included_files(&code) {
                let file = path.parent().unwrap().join(&included);
                code.push('\n');
                code.push_str(
                    &std::fs::read_to_string(&file)
                        .unwrap_or_else(|e| panic!("{} includes {included}: {e}", path.display())),
                );
            }
            out.entry(top).or_insert_with(String::new).push_str(&code);
        }
    }
    out
}

/// The paths in `include_str!("...")` calls of `code`.
fn included_files(code: &str) -> Vec<String> {
    code.split("include_str!(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The modules `code` refers to as `crate::<name>`, also inside a group
/// (`use crate::{a, b::c};`, nested groups too).
fn imports(code: &str, all: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            // The group's items at its top level: each starts a path.
            Some(group) => {
                let mut depth = 0;
                let end = group
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => return true,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        false
                    })
                    .map_or(group.len(), |(i, _)| i);
                let mut items = Vec::new();
                let (mut depth, mut start) = (0, 0);
                for (i, c) in group[..end].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            items.push(&group[start..i]);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                items.push(&group[start..end]);
                items
            }
            None => vec![rest],
        };
        for name in names {
            let name = name.trim_start();
            let first: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if all.contains_key(&first) {
                out.insert(first);
            }
        }
    }
    out
}

/// The modules whose code (outside `module` itself) contains any of `needles`.
fn naming(module: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (m, code) in modules() {
        if m == module {
            continue;
        }
        for n in needles {
            if code.contains(n) {
                found.push(format!("{m} names `{n}`"));
            }
        }
    }
    found
}

#[test]
fn only_the_journal_names_its_tables() {
    let tables = [
        "plans",
        "tables",
        "ranges",
        "events",
        "parity_runs",
        "parity_ranges",
        "catch_up",
    ];
    let needles: Vec<String> = tables.iter().map(|t| format!("hyperswap.{t}")).collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let found = naming("journal", &needles);
    assert!(
        found.is_empty(),
        "journal access belongs in src/journal/: {found:?}"
    );
    let inside = naming(
        "journal",
        &[
            "journal::schema::",
            "journal::lock::",
            "journal::plans::",
            "journal::ranges::",
            "journal::parity::",
            "journal::definitions::",
            "journal::status::",
            "journal::catch_up::",
        ],
    );
    assert!(
        inside.is_empty(),
        "the journal is used through crate::journal::<item>: {inside:?}"
    );
}

#[test]
fn only_capture_names_the_change_log_and_the_trigger_functions() {
    let found = naming(
        "capture",
        &[
            "change_log",
            "changes__",
            "changes\\_\\_",
            "copy_function",
            "reverse_function",
            "guard_function",
            "columns_view",
            "hyperswap_copy",
            "hyperswap_reverse",
            "hyperswap_guard",
            "hyperswap_old_time",
            "capture::log",
            "capture::triggers",
            "capture::names",
        ],
    );
    assert!(
        found.is_empty(),
        "change capture belongs behind src/capture/: {found:?}"
    );
}

#[test]
fn only_a_step_moves_a_plans_phase() {
    let found = naming("journal", &["set_phase("])
        .into_iter()
        .filter(|f| !f.starts_with("steps ") && !f.starts_with("runner "))
        .collect::<Vec<_>>();
    assert!(
        found.is_empty(),
        "a plan's phase is moved by its steps (src/steps/), through the runner or with their last write: {found:?}"
    );
}

#[test]
fn show_does_not_import_the_runner() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands/show.rs");
    let code: String = std::fs::read_to_string(src)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for name in ["runner", "apply::", "commands::apply", "super::apply"] {
        assert!(
            !code.contains(name),
            "plan show names `{name}`: it prints what the steps run, it runs nothing"
        );
    }
}

/// Every import cycle of `graph` (each once, from its smallest module), as paths.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        let here = path.last().unwrap().clone();
        for next in graph.get(&here).into_iter().flatten() {
            if next == start {
                let mut c = path.clone();
                c.push(start.to_string());
                found.push(c);
            } else if next.as_str() > start && !path.contains(next) {
                path.push(next.clone());
                walk(graph, start, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        walk(graph, start, &mut vec![start.clone()], &mut found);
    }
    found
}

#[test]
fn no_import_cycle_of_any_length() {
    let all = modules();
    let graph: BTreeMap<String, BTreeSet<String>> = all
        .iter()
        .map(|(m, code)| {
            let mut deps = imports(code, &all);
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect();
    let found: Vec<String> = cycles(&graph).iter().map(|c| c.join(" -> ")).collect();
    assert!(
        found.is_empty(),
        "import cycles between modules: {found:#?}"
    );
}

#[test]
fn imports_are_read_from_groups_too() {
    let all: BTreeMap<String, String> = ["target", "trigger", "journal", "model", "replay"]
        .iter()
        .map(|m| (m.to_string(), String::new()))
        .collect();
    let found = imports(
        "use crate::{target, trigger};\nuse crate::{journal::{self, X}, model::Job};\nlet x = crate::replay::drain(a);",
        &all,
    );
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["journal", "model", "replay", "target", "trigger"]);
}

#[test]
fn cycles_of_any_length_are_found() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    // The cycle issue 17 found: phases -> trigger -> replay -> phases.
    let three = cycles(&g(&[
        ("phases", "trigger"),
        ("trigger", "replay"),
        ("replay", "phases"),
        ("apply", "phases"),
    ]));
    assert_eq!(three, vec![vec!["phases", "trigger", "replay", "phases"]]);
    assert_eq!(cycles(&g(&[("a", "b"), ("b", "a")])).len(), 1);
    assert!(cycles(&g(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
}
