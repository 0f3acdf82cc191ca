//! `licensewatch serve` at the connection level, as a hostile or broken client meets it: silent and idle
//! connections, partial heads, slow and malformed bodies, more connections than it serves. Real sockets to a real
//! process; each test bounds its own loops and time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` with 1-second timeouts, against no tenant at all (these requests never reach Microsoft).
fn serve(max_connections: u32) -> Serve {
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("licensewatch.toml");
    std::fs::write(
        &policy,
        "[webhook]\nsecrets_env = [\"LW_WEBHOOK_SECRET\"]\n",
    )
    .expect("policy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_licensewatch"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .args([
            "serve",
            "--port",
            "0",
            "--no-worker",
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
        ])
        .args(["--max-connections", &max_connections.to_string()])
        .env(
            "LICENSEWATCH_TENANT_ID",
            "11111111-2222-3333-4444-555555555555",
        )
        .env(
            "LICENSEWATCH_CLIENT_ID",
            "66666666-7777-8888-9999-000000000000",
        )
        .env("LICENSEWATCH_CLIENT_SECRET", "unused")
        .env("LICENSEWATCH_GRAPH_URL", "http://127.0.0.1:9")
        .env("LICENSEWATCH_LOGIN_URL", "http://127.0.0.1:9")
        .env("LICENSEWATCH_MANAGE_URL", "http://127.0.0.1:9")
        .env(
            "LICENSEWATCH_STATE",
            format!("sqlite:{}", dir.path().join("lw.db").display()),
        )
        .env("LICENSEWATCH_CONFIG", &policy)
        .env(
            "LW_WEBHOOK_SECRET",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    let addr = v["base_url"]
        .as_str()
        .expect("url")
        .trim_start_matches("http://")
        .to_string();
    Serve {
        child,
        addr,
        _dir: dir,
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Reads until the server closes; returns what it sent and how long it took.
fn until_closed(mut s: TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    (String::from_utf8_lossy(&out).to_string(), start.elapsed())
}

/// One request on a fresh connection; an empty answer when the server closed it first (over its cap).
fn get(addr: &str, method: &str, path: &str) -> String {
    let mut s = connect(addr);
    if write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn silent_idle_and_half_sent_connections_are_closed() {
    let srv = serve(64);
    // Says nothing at all.
    let (_, silent) = until_closed(connect(&srv.addr));
    // Sends half a head and stops.
    let mut partial = connect(&srv.addr);
    partial
        .write_all(b"POST /remediations HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .expect("write");
    let (_, half) = until_closed(partial);
    // Finishes one request, then idles on the kept-alive connection.
    let mut idle = connect(&srv.addr);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let (answer, kept) = until_closed(idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for (what, took) in [
        ("silent", silent),
        ("half a head", half),
        ("idle keep-alive", kept),
    ] {
        assert!(took < Duration::from_secs(5), "{what} held for {took:?}");
    }
}

#[test]
fn a_slow_body_times_out_and_a_malformed_chunked_body_is_a_bad_request() {
    let srv = serve(64);
    let mut slow = connect(&srv.addr);
    slow.write_all(
        b"POST /remediations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\"",
    )
    .expect("write");
    let (answer, took) = until_closed(slow);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    let mut chunked = connect(&srv.addr);
    chunked
        .write_all(b"POST /remediations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n")
        .expect("write");
    let (answer, _) = until_closed(chunked);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[test]
fn more_connections_than_served_never_take_healthz_down_for_long() {
    let srv = serve(8);
    // 200 clients connect and say nothing.
    let held: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(&srv.addr).ok())
        .collect();
    assert!(held.len() > 8);
    // Within a few header timeouts the endpoint answers again, while those sockets are still open on our side.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut healthy = false;
    while Instant::now() < deadline {
        if get(&srv.addr, "GET", "/healthz").starts_with("HTTP/1.1 200") {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        healthy,
        "/healthz never answered while 200 idle clients were connected"
    );
    assert!(get(&srv.addr, "HEAD", "/healthz").starts_with("HTTP/1.1 200"));
    // The server holds no more descriptors than its cap (plus its own few).
    let fds = std::fs::read_dir(format!("/proc/{}/fd", srv.child.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(fds < 8 + 40, "{fds} descriptors open");
    drop(held);
}
