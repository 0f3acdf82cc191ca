//! Compresses Microsoft's licensing CSV (1 MB) into the build: every binary embeds it, so its size is paid in each
//! Lambda package and on each cold start's download. The core decompresses and parses it on first use.

use std::io::Write;

fn main() {
    let source = "resources/licensing.csv";
    println!("cargo:rerun-if-changed={source}");
    let csv = std::fs::read(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&csv)
        .unwrap_or_else(|e| panic!("compressing {source}: {e}"));
    let bytes = gz
        .finish()
        .unwrap_or_else(|e| panic!("compressing {source}: {e}"));
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}")))
            .join("licensing.csv.gz");
    std::fs::write(&out, bytes).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
