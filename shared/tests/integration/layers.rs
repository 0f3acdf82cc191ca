//! The layering of the core, checked on its source: each layer names only the layers below it, so there is no
//! circle and each part can be read (and replaced) without the ones above. docs/ARCHITECTURE.md draws it.
//!
//! config (`config`, `policy`, `secret`, `cloud`, `time_zone`) and domain are the `licensewatch-domain` crate, error,
//! ports and use cases the `licensewatch-app` crate: cargo keeps each crate from naming the ones above it, so this
//! check walks only what cargo cannot see, the layers inside the app and the core: error ← ports ← use cases;
//! adapters implement ports; runtime wires everything.

use std::path::{Path, PathBuf};

/// The layer a module path (`crate::<first>`) belongs to.
fn layer_of(first: &str) -> Option<&'static str> {
    Some(match first {
        "config" | "policy" | "secret" | "cloud" | "time_zone" => "config",
        "error" => "error",
        "domain" => "domain",
        "ports" => "ports",
        "usecases" => "usecases",
        "adapters" => "adapters",
        "runtime" => "runtime",
        _ => return None,
    })
}

/// What each layer may name.
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "config" => &["config"],
        "error" => &["config", "error"],
        "domain" => &["config", "error", "domain"],
        "ports" => &["config", "error", "domain", "ports"],
        "usecases" => &["config", "error", "domain", "ports", "usecases"],
        "adapters" => &["config", "error", "domain", "ports", "adapters"],
        _ => &[
            "config", "error", "domain", "ports", "usecases", "adapters", "runtime",
        ],
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::<name>` paths a source names outside comments, with their line numbers.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((n + 1, name));
            rest = after;
        }
    }
    out
}

#[test]
fn each_layer_names_only_the_layers_below_it() {
    // The core (adapters, runtime) and the application crate (error, ports, use cases): cargo keeps the app from
    // naming the core, not its layers from naming each other.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for src in [here.join("src"), here.join("app").join("src")] {
        let mut found = Vec::new();
        rust_files(&src, &mut found);
        files.extend(found.into_iter().map(|f| (src.clone(), f)));
    }
    let mut wrong = Vec::new();
    for (src, file) in &files {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default();
        let Some(layer) = layer_of(first.trim_end_matches(".rs")) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        for (line, name) in named_modules(&text) {
            if let Some(target) = layer_of(&name)
                && !allowed(layer).contains(&target)
            {
                wrong.push(format!(
                    "{}:{line}: {layer} names {target} (crate::{name})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        files.len() > 40,
        "the walk found the sources ({})",
        files.len()
    );
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

/// The adapter crates depend on `licensewatch-app` for its ports; cargo cannot keep them from its use cases, so this
/// does: no adapter names a use case or the core (whose runtime wires them).
#[test]
fn no_adapter_crate_names_a_use_case_or_the_runtime() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    let mut seen = 0;
    for krate in ["microsoft", "local", "aws"] {
        let mut files = Vec::new();
        rust_files(&here.join(krate).join("src"), &mut files);
        seen += files.len();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if ["usecases", "licensewatch_core", "runtime::"]
                    .iter()
                    .any(|banned| code.contains(banned))
                {
                    wrong.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(seen > 20, "the walk found the adapter crates ({seen})");
    assert!(
        wrong.is_empty(),
        "an adapter names what is above it:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_a_wrong_reference() {
    let names =
        named_modules("use crate::adapters::graph::GraphClient; // crate::runtime in a comment");
    assert_eq!(names, vec![(1, "adapters".to_string())]);
    assert!(!allowed("usecases").contains(&layer_of("adapters").expect("layer")));
}
