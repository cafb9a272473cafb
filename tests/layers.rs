//! The layers of lib.rs's table, bottom to top: a module may use only the
//! layers below it, so there is no import cycle between layers. Read from the
//! source (comments aside), no GPU needed.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom to top.
const LAYERS: &[&str] = &[
    "error",
    "gpu",
    "kernels",
    "reference",
    "autodiff",
    "nn",
    "mtl",
    "optim",
    "task",
    "data",
    "train",
    "model",
    "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable src/") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = BTreeSet::new();
    let mut seen_layers = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs");
        if top == "lib" || top == "bin" {
            continue;
        }
        let rank = LAYERS
            .iter()
            .position(|l| *l == top)
            .unwrap_or_else(|| panic!("src/{top} is in no layer of LAYERS (and lib.rs's table)"));
        seen_layers.insert(top.to_string());
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if let Some(r) = LAYERS.iter().position(|l| *l == used) {
                    if r > rank {
                        bad.insert(format!("{} uses {used}", rel.display()));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "a layer uses one above it: {bad:?}");
    assert!(seen_layers.len() >= 10, "found only {seen_layers:?}");
}
