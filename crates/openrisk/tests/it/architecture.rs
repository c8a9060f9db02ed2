//! ARCHITECTURE.md stays true to the tree: it names every source file, and every source file it
//! names exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn source_files(dir: &Path, crate_dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, crate_dir, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(crate_dir).expect("under the crate");
            found.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Every `src/….rs` path the document names.
fn named_paths(document: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (start, _) in document.match_indices("src/") {
        let rest = &document[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-')))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches('.');
        if path.ends_with(".rs") {
            named.insert(path.to_owned());
        }
    }
    named
}

#[test]
fn the_architecture_document_names_every_source_file_and_no_other() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let document = std::fs::read_to_string(crate_dir.join("../../ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut files = BTreeSet::new();
    source_files(&crate_dir.join("src"), &crate_dir, &mut files);
    let named = named_paths(&document);
    let missing: Vec<_> = files.difference(&named).collect();
    let gone: Vec<_> = named.difference(&files).collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md does not name {missing:?}");
    assert!(
        gone.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {gone:?}"
    );
}

#[test]
fn paths_are_read_whole_from_the_text() {
    let named = named_paths("see `src/cache/tiers.rs`, then src/http/state.rs. Not src/ alone or src/x.rsx");
    let expected: BTreeSet<String> = ["src/cache/tiers.rs", "src/http/state.rs"]
        .map(String::from)
        .into();
    assert_eq!(named, expected);
}
