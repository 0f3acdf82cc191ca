//! Writes each target's seeds to `DIR/<target>/seed-N` (AFL++'s input directories).

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "seeds".into());
    for (name, _) in licensewatch_app::fuzz_targets::TARGETS {
        let target_dir = std::path::Path::new(&dir).join(name);
        if let Err(e) = std::fs::create_dir_all(&target_dir) {
            eprintln!("{}: {e}", target_dir.display());
            std::process::exit(1);
        }
        for (i, seed) in licensewatch_app::fuzz_targets::seeds(name).iter().enumerate() {
            let path = target_dir.join(format!("seed-{i}"));
            if let Err(e) = std::fs::write(&path, seed) {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
}
