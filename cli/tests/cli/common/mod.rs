//! What the command-line tests share: the `licensewatch` process with a clean environment, and the simulated
//! tenant as a child process.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `licensewatch` with none of the developer's configuration.
pub(crate) fn licensewatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_licensewatch"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c.current_dir(std::env::temp_dir());
    c
}

/// The first line a child prints, as JSON (`sim` and `serve` print their address that way).
pub(crate) fn first_json(child: &mut Child) -> serde_json::Value {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    serde_json::from_str(&line).expect("the first line is JSON")
}

/// `licensewatch sim` on a free port, stopped when dropped.
pub(crate) struct Sim {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The simulated tenant's id.
    pub tenant: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the simulated tenant.
pub(crate) fn sim() -> Sim {
    let mut child = licensewatch()
        .args(["sim", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim starts");
    let info = first_json(&mut child);
    Sim {
        base: info["base_url"].as_str().expect("url").to_string(),
        tenant: info["tenant_id"].as_str().expect("tenant").to_string(),
        child,
    }
}

/// A command for `sim`'s tenant with a client secret, endpoints pointed at the simulator, the clock fixed at the
/// default story's "now", and state under `dir`.
pub(crate) fn against(sim: &Sim, dir: &std::path::Path) -> Command {
    let mut c = licensewatch();
    c.env("LICENSEWATCH_TENANT_ID", &sim.tenant)
        .env(
            "LICENSEWATCH_CLIENT_ID",
            "66666666-7777-8888-9999-000000000000",
        )
        .env("LICENSEWATCH_CLIENT_SECRET", "sim-accepts-any")
        .env("LICENSEWATCH_GRAPH_URL", &sim.base)
        .env("LICENSEWATCH_LOGIN_URL", &sim.base)
        .env("LICENSEWATCH_MANAGE_URL", &sim.base)
        .env("LICENSEWATCH_NOW", "2026-11-21T09:00:00Z")
        .env(
            "LICENSEWATCH_STATE",
            format!("sqlite:{}", dir.join("lw.db").display()),
        )
        .env(
            "LICENSEWATCH_ARCHIVE",
            format!("file:{}", dir.join("archive").display()),
        )
        .env("LICENSEWATCH_CONFIG", dir.join("licensewatch.toml"));
    c
}

/// The Chromium to render pages with (`LICENSEWATCH_CHROMIUM`, else the first on the PATH).
pub(crate) fn chromium() -> String {
    if let Ok(c) = std::env::var("LICENSEWATCH_CHROMIUM") {
        return c;
    }
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!(
        "no Chromium found: run the tests with ./scripts/test.sh (installs Debian's chromium) or set LICENSEWATCH_CHROMIUM"
    );
}

/// A full-page screenshot of `html` into `png` by headless Chromium.
pub(crate) fn screenshot(html: &Path, png: &Path, profile: &Path) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .env("HOME", profile)
        .output()
        .expect("chromium runs");
    assert!(
        png.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (share of pixels that are not near-white, distinct colours seen)
pub(crate) fn ink(png_path: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("png"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut inked = 0usize;
    let mut colours = std::collections::HashSet::new();
    let mut total = 0usize;
    for px in pixels.chunks(channels) {
        total += 1;
        let (r, g, b) = (px[0], px[1 % channels], px[2 % channels]);
        if r < 235 || g < 235 || b < 235 {
            inked += 1;
        }
        colours.insert((r >> 4, g >> 4, b >> 4));
    }
    (inked as f64 / total.max(1) as f64, colours.len())
}

/// Every archive object (gzip NDJSON) under `dir`, however deep.
pub(crate) fn archived_objects(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ndjson.gz") {
                out.push(p);
            }
        }
    }
    out
}
