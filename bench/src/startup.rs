//! Start-up: from spawning the bridge to its first `200` on `GET /healthz`,
//! probed with loopback connect attempts in a tight loop; and the size of the
//! binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::figure::{Figure, Goal};
use crate::stats::median;
use crate::target::{Launch, free_port, terminate};
use crate::tokens::Tokens;

/// Pause between refused connect attempts.
const PROBE_GAP: Duration = Duration::from_micros(50);

/// One spawn: milliseconds to the first 200.
fn once(launch: &Launch) -> anyhow::Result<f64> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let tokens = Tokens::generate()?;
    let started = Instant::now();
    let mut child = launch
        .command(&addr.to_string(), &tokens)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", launch.binary.display()))?;
    let result = loop {
        if started.elapsed() > Duration::from_secs(10) {
            break Err(anyhow::anyhow!("no 200 from GET /healthz within 10 s"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(anyhow::anyhow!("the bridge exited during start-up: {status}"));
        }
        match probe(addr) {
            Ok(true) => break Ok(started.elapsed().as_secs_f64() * 1e3),
            Ok(false) | Err(_) => std::thread::sleep(PROBE_GAP),
        }
    };
    terminate(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the bridge did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    result
}

/// True when `GET /healthz` answers 200 on a fresh connection.
fn probe(addr: SocketAddr) -> std::io::Result<bool> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
    tcp.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head)?;
    Ok(&head[9..12] == b"200")
}

/// One repetition: the median of `runs` spawns of what `launch` starts.
pub async fn measure(launch: &Launch, runs: usize) -> anyhow::Result<Vec<Figure>> {
    let launch = launch.clone();
    let times = tokio::task::spawn_blocking(move || (0..runs.max(1)).map(|_| once(&launch)).collect::<Vec<_>>());
    let times: Vec<f64> = times.await?.into_iter().collect::<anyhow::Result<_>>()?;
    Ok(vec![Figure::new("start-up to first /healthz 200", median(&times), "ms").goal(Goal::AtMost(50.0)).note(
        format!("median of {} spawns; min {:.1} ms", times.len(), times.iter().copied().fold(f64::INFINITY, f64::min)),
    )])
}

/// The binary's size figure.
pub fn binary_size(binary: &Path) -> anyhow::Result<Figure> {
    let len = std::fs::metadata(binary).with_context(|| format!("{}", binary.display()))?.len();
    Ok(Figure::new("release binary size", len as f64 / 1e6, "MB")
        .goal(Goal::AtMost(15.0))
        .note(binary.display().to_string()))
}
