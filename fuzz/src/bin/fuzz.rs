//! One AFL++ harness for every target: `LICENSEWATCH_FUZZ_TARGET` names which (`licensewatch_app::fuzz_targets`).

fn main() {
    let name = std::env::var("LICENSEWATCH_FUZZ_TARGET").unwrap_or_default();
    let Some((_, target)) = licensewatch_app::fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
    else {
        let names: Vec<&str> = licensewatch_app::fuzz_targets::TARGETS
            .iter()
            .map(|(n, _)| *n)
            .collect();
        eprintln!(
            "LICENSEWATCH_FUZZ_TARGET='{name}': not a target (one of {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
