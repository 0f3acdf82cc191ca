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

/// A crate's modules, each with the modules it names through `crate::...` paths (outside comments). A module is a
/// file: `a/b.rs` and `a/b/mod.rs` are `a::b`.
fn module_graph(
    src: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |file: &Path| -> String {
        let rel = file
            .strip_prefix(src)
            .expect("under src")
            .with_extension("");
        let parts: Vec<String> = rel
            .components()
            .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
            .filter(|c| c != "mod" && c != "lib" && c != "main")
            .collect();
        parts.join("::")
    };
    let modules: std::collections::BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = std::collections::BTreeMap::new();
    for file in &files {
        let me = module_of(file);
        let text = std::fs::read_to_string(file).expect("read");
        let mut names = std::collections::BTreeSet::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                let after = &rest[i + "crate::".len()..];
                let path: Vec<&str> = after
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default()
                    .split("::")
                    .collect();
                // The longest module the path starts with.
                let target = (1..=path.len())
                    .rev()
                    .map(|n| path[..n].join("::"))
                    .find(|m| modules.contains(m));
                if let Some(t) = target {
                    let related = t == me
                        || me.starts_with(&format!("{t}::"))
                        || t.starts_with(&format!("{me}::"));
                    if !related {
                        names.insert(t);
                    }
                }
                rest = after;
            }
        }
        graph.insert(me, names);
    }
    graph
}

/// Every circle of modules naming each other (each found once, from its smallest name).
fn circles(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in graph.keys() {
        // Paths from `start` back to it through modules named after it only (so each circle is found once).
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    found.push(path.clone());
                } else if next > start && !path.contains(next) && path.len() < 6 {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

#[test]
fn no_two_modules_name_each_other_in_any_crate() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crates = [
        here.join("domain/src"),
        here.join("app/src"),
        here.join("microsoft/src"),
        here.join("local/src"),
        here.join("aws/src"),
        here.join("src"),
        here.join("lambda/src"),
        here.join("../cli/src"),
        here.join("../sim/src"),
    ];
    let mut all = Vec::new();
    for src in &crates {
        for c in circles(&module_graph(src)) {
            all.push(format!("{}: {}", src.display(), c.join(" -> ")));
        }
    }
    assert!(
        all.is_empty(),
        "modules that name each other:\n{}",
        all.join("\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    let graph = std::collections::BTreeMap::from([
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
        ("d".to_string(), ["a".to_string()].into()),
    ]);
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}
