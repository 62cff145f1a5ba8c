//! Issue 10, acceptance 1: the layout shows the architecture, checked over the sources.
//! `journal` is the only module whose code names the journal's tables; `show` (which
//! prints the SQL) does not import the runner (which runs it); no two modules import
//! each other. No database: comments are left out, code is read as text.

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
            let mut code: String = std::fs::read_to_string(&path)
                .unwrap()
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

/// The modules `code` refers to as `crate::<name>`.
fn imports(code: &str, all: &BTreeMap<String, String>) -> BTreeSet<String> {
    all.keys()
        .filter(|m| {
            code.contains(&format!("crate::{m}::"))
                || code.contains(&format!("crate::{m};"))
                || code.contains(&format!("crate::{m},"))
                || code.contains(&format!("crate::{{{m}"))
                || code.contains(&format!("crate::{m}}}"))
        })
        .cloned()
        .collect()
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
    ];
    for (module, code) in modules() {
        if module == "journal" {
            continue;
        }
        for t in tables {
            assert!(
                !code.contains(&format!("hyperswap.{t}")),
                "module {module} names hyperswap.{t}: journal access belongs in journal.rs"
            );
        }
    }
}

#[test]
fn show_does_not_import_the_runner() {
    let all = modules();
    let used = imports(&all["show"], &all);
    assert!(!used.contains("runner"), "show imports the runner");
    assert!(
        !used.contains("apply"),
        "show imports apply (the state machine)"
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let all = modules();
    let graph: BTreeMap<&String, BTreeSet<String>> = all
        .iter()
        .map(|(m, code)| {
            let mut deps = imports(code, &all);
            deps.remove(m);
            (m, deps)
        })
        .collect();
    let mut cycles = Vec::new();
    for (a, deps) in &graph {
        for b in deps {
            if a.as_str() < b.as_str() && graph[b].contains(a.as_str()) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules importing each other: {cycles:?}"
    );
}
