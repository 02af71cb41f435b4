//! The source tree is layered as `src/lib.rs` draws it: a top-level module uses only modules
//! drawn below it (so there are no import cycles), and no file of a folder uses a sibling file
//! that uses it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its comments (line comments and doc comments) and its unit
/// tests (from the first `#[cfg(test)]` on: tests may reach anywhere).
fn code_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| l.split("//").next().unwrap_or("").to_string())
        .collect()
}

/// Names that follow `prefix` in `line` (e.g. `crate::` -> the top-level module).
fn names_after<'a>(line: &'a str, prefix: &str) -> Vec<&'a str> {
    line.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &line[i + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// The rows of the drawing in lib.rs's crate doc, top first: the module names at the start of
/// each line of the `text` block after "# Layers".
fn drawing() -> Vec<Vec<String>> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let start = lib.find("//! # Layers").expect("lib.rs draws its layers under \"# Layers\"");
    let block = &lib[start..];
    let open = block.find("//! ```text").expect("a text block") + "//! ```text".len();
    let close = open + block[open..].find("//! ```").expect("the block ends");
    block[open..close]
        .lines()
        .map(|l| l.trim_start_matches("//!").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_whitespace()
                .take_while(|w| w.ends_with('/') || w.ends_with(".rs"))
                .map(|w| w.trim_end_matches('/').trim_end_matches(".rs").to_string())
                .collect::<Vec<_>>()
        })
        .filter(|row| !row.is_empty())
        .collect()
}

#[test]
fn top_level_modules_only_use_the_layers_below_them() {
    let rows = drawing();
    let mut level = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        for m in row {
            assert!(level.insert(m.clone(), rows.len() - i).is_none(), "{m} is drawn twice");
        }
    }
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut modules = BTreeSet::new();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap();
        let top = rel.iter().next().unwrap().to_str().unwrap().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        modules.insert(top.clone());
        let Some(&mine) = level.get(&top) else { continue };
        for (n, line) in code_lines(f).iter().enumerate() {
            for used in names_after(line, "crate::") {
                if used == top || used == "Error" || used == "Result" {
                    continue;
                }
                match level.get(used) {
                    Some(&theirs) if theirs < mine => {}
                    Some(_) => {
                        wrong.push(format!("{}:{}: {top} uses {used}, drawn at or above it", rel.display(), n + 1))
                    }
                    None => wrong.push(format!("{}:{}: {used} is not drawn", rel.display(), n + 1)),
                }
            }
        }
    }
    let drawn: BTreeSet<String> = level.keys().cloned().collect();
    assert_eq!(drawn, modules, "lib.rs's drawing and the top-level modules of src/ differ");
    assert!(wrong.is_empty(), "upward or unknown imports:\n{}", wrong.join("\n"));
}

#[test]
fn no_file_uses_a_sibling_that_uses_it_back() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    // Per folder: which sibling files each file (other than mod.rs) uses through `super::`.
    let mut uses: BTreeMap<(PathBuf, String), BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_str().unwrap().to_string();
        let dir = f.parent().unwrap().to_path_buf();
        if name == "mod" || dir == src() {
            continue;
        }
        let siblings: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
            .filter(|s| s != "mod" && *s != name)
            .collect();
        let parent = dir.strip_prefix(src()).unwrap().to_str().unwrap().replace('/', "::");
        let mut used = BTreeSet::new();
        for line in code_lines(f) {
            for prefix in ["super::".to_string(), format!("crate::{parent}::")] {
                for n in names_after(&line, &prefix) {
                    if siblings.contains(n) {
                        used.insert(n.to_string());
                    }
                }
            }
        }
        uses.insert((dir, name), used);
    }
    let mut cycles = Vec::new();
    for ((dir, a), used) in &uses {
        for b in used {
            if uses.get(&(dir.clone(), b.clone())).is_some_and(|u| u.contains(a)) && a < b {
                cycles.push(format!("{}: {a}.rs <-> {b}.rs", dir.strip_prefix(src()).unwrap().display()));
            }
        }
    }
    assert!(cycles.is_empty(), "sibling files that use each other:\n{}", cycles.join("\n"));
}

/// The checks above find what they should: an upward import in a made-up line is seen.
#[test]
fn the_checks_see_imports() {
    assert_eq!(names_after("use crate::pipeline::{a, b}; crate::score::x()", "crate::"), ["pipeline", "score"]);
    assert_eq!(names_after("use super::score::Args;", "super::"), ["score"]);
    let rows = drawing();
    assert!(rows.len() > 5 && rows[0].contains(&"cli".to_string()), "{rows:?}");
}
