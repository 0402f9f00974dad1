//! The documentation checked against the code: every setting `--help` lists is
//! in `docs/`, the README stays a front door that keeps the run and test
//! commands, the module layout lives only in the crate doc of `src/lib.rs`,
//! and relative links between the Markdown files resolve.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// Longest README accepted: a front door, not a manual (reference goes to `docs/`).
const README_MAX_LINES: usize = 200;

/// A guide with this many list or table entries keyed by module names copies
/// the layout of `src/lib.rs` (a passing mention of one or two is fine).
const LAYOUT_ENTRIES: usize = 3;

const SETTING_PREFIX: &str = "LETTA_BRIDGE_";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every Markdown file under `docs/`, sorted.
fn docs_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("docs"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "docs/ holds no Markdown files");
    files
}

/// What users and contributors read: the README, `CONTRIBUTING.md` and `docs/`.
fn guides() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md"), repo().join("CONTRIBUTING.md")];
    files.extend(docs_files());
    files
}

/// The path relative to the repository, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap_or(path).display().to_string()
}

fn help() -> String {
    let mut cmd = Command::new(BIN);
    // Values set in the test's environment would show up in `--help`.
    for (key, _) in std::env::vars() {
        if key.starts_with(SETTING_PREFIX) {
            cmd.env_remove(key);
        }
    }
    let out = cmd.arg("--help").output().unwrap();
    assert!(out.status.success(), "letta-bridge --help failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

/// Every whole `LETTA_BRIDGE_[A-Z0-9_]+` name in `text`: `LETTA_BRIDGE_WAIT_TIMEOUT`
/// is not found inside `LETTA_BRIDGE_MAX_WAIT_TIMEOUT`, and `LETTA_BRIDGE_*` is no name.
fn setting_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(SETTING_PREFIX) {
        let start = from + at;
        let rest = start + SETTING_PREFIX.len();
        let end = rest + bytes[rest..].iter().take_while(|&&b| is_name_byte(b)).count();
        let inside_longer_name = start > 0 && is_name_byte(bytes[start - 1]);
        if !inside_longer_name && end > rest {
            names.insert(text[start..end].to_owned());
        }
        from = end;
    }
    names
}

/// The lines of a Markdown file outside fenced code blocks, with their numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((i + 1, line));
        }
    }
    lines
}

#[test]
fn every_setting_in_help_is_documented_in_docs() {
    let help = help();
    let in_help = setting_names(&help);
    assert!(in_help.len() >= 20, "found only {in_help:?} in --help; did its format change?\n{help}");
    let documented: BTreeSet<String> = docs_files().iter().flat_map(|p| setting_names(&read(p))).collect();
    let missing: Vec<&String> = in_help.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "settings that `letta-bridge --help` lists but no file under docs/ mentions \
         (add each to the settings tables of docs/operations.md): {missing:?}"
    );
}

#[test]
fn every_setting_the_docs_name_exists_in_help() {
    let in_help = setting_names(&help());
    let mut unknown = Vec::new();
    for path in guides() {
        for name in setting_names(&read(&path)) {
            if !in_help.contains(&name) {
                unknown.push(format!("{name} in {}", shown(&path)));
            }
        }
    }
    assert!(unknown.is_empty(), "settings named in the docs that `letta-bridge --help` does not know: {unknown:?}");
}

#[test]
fn the_readme_is_a_front_door_of_at_most_200_lines() {
    let lines = read(&repo().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (at most {README_MAX_LINES}): move reference material into docs/"
    );
}

#[test]
fn the_readme_keeps_the_run_command_and_the_test_command_that_ci_runs() {
    let readme = read(&repo().join("README.md"));
    assert!(
        readme.contains("```sh\ncargo run --release\n```"),
        "README.md lost the command that runs the service on its embedded defaults"
    );
    assert!(
        readme.contains("Run the whole test suite: `.ci/test`"),
        "README.md lost the command that runs the whole test suite"
    );
    let ci = read(&repo().join(".ci/run"));
    assert!(ci.lines().any(|l| l.trim() == ".ci/test"), ".ci/run no longer runs .ci/test, the README's test command");
}

/// `src/…` paths in `text` other than `src/lib.rs` (paths such as `bench/src/…`
/// belong to other crates and are not counted).
fn source_paths(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let path_byte = |b: u8| b.is_ascii_alphanumeric() || b"_./*{},-".contains(&b);
    let mut found = Vec::new();
    for (at, _) in text.match_indices("src/") {
        if at > 0 && (path_byte(bytes[at - 1]) || bytes[at - 1] == b'/') {
            continue;
        }
        let len = bytes[at..].iter().take_while(|&&b| path_byte(b) || b == b'/').count();
        let path = text[at..at + len].trim_end_matches(['.', ',']);
        if path.len() > "src/".len() && path != "src/lib.rs" {
            found.push(path.to_owned());
        }
    }
    found
}

/// The module names `src/lib.rs` declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn modules() -> Vec<String> {
    let lib = read(&repo().join("src/lib.rs"));
    let declared = |line: &str| {
        let line = line.trim();
        let line = line.strip_prefix("pub(crate) ").or_else(|| line.strip_prefix("pub ")).unwrap_or(line);
        Some(line.strip_prefix("mod ")?.strip_suffix(';')?.to_owned())
    };
    let names: Vec<String> = lib.lines().filter_map(declared).collect();
    assert!(names.len() >= 3, "found only {names:?} in src/lib.rs");
    names
}

#[test]
fn the_module_layout_lives_only_in_the_crate_doc() {
    let modules = modules();
    let mut copies = Vec::new();
    for path in guides() {
        let text = read(&path);
        for (n, line) in text.lines().enumerate() {
            for src in source_paths(line) {
                copies.push(format!("{}:{}: names {src}", shown(&path), n + 1));
            }
        }
        // A table row or list item keyed by a module name, e.g. "| `hub` |" or "- [`hub`]: …".
        let entries: Vec<usize> = prose_lines(&text)
            .into_iter()
            .filter(|(_, line)| {
                let line = line.trim_start();
                let key = ["| ", "- ", "* "].iter().find_map(|p| line.strip_prefix(p));
                key.is_some_and(|k| {
                    let k = k.trim_start_matches('[');
                    modules.iter().any(|m| k.starts_with(&format!("`{m}`")))
                })
            })
            .map(|(n, _)| n)
            .collect();
        if entries.len() >= LAYOUT_ENTRIES {
            copies.push(format!("{}: lines {entries:?} list modules", shown(&path)));
        }
    }
    assert!(
        copies.is_empty(),
        "the module layout is described only in the crate doc of src/lib.rs; link to it instead:\n{}",
        copies.join("\n")
    );
}

/// GitHub's anchors for the headings of a Markdown file: lower case, spaces to
/// hyphens, punctuation dropped, `-1`, `-2`… for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else { continue };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while anchors.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        anchors.insert(unique);
    }
    anchors
}

/// The targets of the inline links `[text](target)` outside code blocks.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (n, line) in prose_lines(text) {
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push((n, rest[..end].to_owned()));
            }
        }
    }
    targets
}

#[test]
fn relative_links_between_the_guides_resolve() {
    let mut files = guides();
    files.push(repo().join("BENCHMARKS.md"));
    let mut broken = Vec::new();
    for path in &files {
        for (n, target) in link_targets(&read(path)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if file.is_empty() { path.clone() } else { path.parent().unwrap().join(file) };
            if !linked.exists() {
                broken.push(format!("{}:{n}: {target} (no such file)", shown(path)));
            } else if !anchor.is_empty() && !anchors(&read(&linked)).contains(anchor) {
                broken.push(format!("{}:{n}: {target} (no such heading)", shown(path)));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn setting_names_are_whole_names() {
    let names = setting_names("LETTA_BRIDGE_MAX_WAIT_TIMEOUT, `LETTA_BRIDGE_*`, [env: LETTA_BRIDGE_LISTEN=]");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["LETTA_BRIDGE_LISTEN", "LETTA_BRIDGE_MAX_WAIT_TIMEOUT"]);
}

#[test]
fn every_metric_the_bridge_records_is_documented_for_operators() {
    let names = read(&repo().join("src/metrics.rs"));
    let docs = read(&repo().join("docs/operations.md")) + &read(&repo().join("docs/cluster.md"));
    let recorded: Vec<&str> = names.split('"').filter(|s| s.starts_with("letta_bridge_")).collect();
    assert!(recorded.len() > 20, "src/metrics.rs lists the metrics: {recorded:?}");
    let missing: Vec<&&str> = recorded.iter().filter(|name| !docs.contains(**name)).collect();
    assert!(missing.is_empty(), "metrics missing from docs/operations.md and docs/cluster.md: {missing:?}");
}
