//! `bench hold`: a child process holding idle SSE subscriptions open, so the
//! memory scenario can reach more subscribers than one process's open-file
//! limit allows. Each connection binds a source address in 127.0.0.2.., which
//! keeps clear of the ephemeral-port limit of a single source address.

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};

use futures_util::StreamExt;

use crate::sse;
use crate::target::{Target, raise_nofile_limit};

/// Connections per child process (under the 20,000 open-file hard limit,
/// with room to spare).
pub const PER_PROCESS: usize = 9_000;

/// Connections per source address.
const PER_SOURCE: usize = 5_000;

/// Handshakes in flight per child (the bridge's listen backlog is 1,024).
const PARALLEL: usize = 128;

/// The source address of the `i`th held connection over all children.
pub fn source(i: usize) -> IpAddr {
    let k = i / PER_SOURCE;
    IpAddr::V4(Ipv4Addr::new(127, 0, (k / 250) as u8, (2 + k % 250) as u8))
}

/// Opens `count` subscriptions, prints `ready <opened> <failed> [first error]`,
/// then holds them until stdin closes.
pub fn hold(addr: String, token: String, count: usize, first: usize) -> anyhow::Result<()> {
    raise_nofile_limit();
    let target = Target {
        addr,
        base: String::new(),
        ws_url: String::new(),
        runtime_token: String::new(),
        client_token: token,
        register: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (held, failed, first_error) = rt.block_on(async {
        let mut opened = futures_util::stream::iter(0..count)
            .map(|i| {
                let target = &target;
                async move { sse::open(target, Some(source(first + i)), "bench").await }
            })
            .buffer_unordered(PARALLEL);
        let mut held = Vec::with_capacity(count);
        let (mut failed, mut first_error) = (0, None);
        while let Some(r) = opened.next().await {
            match r {
                Ok(s) => held.push(s.into_idle()),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        (held, failed, first_error)
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {} {failed} {}", held.len(), first_error.unwrap_or_default().replace('\n', " "))?;
    out.flush()?;
    drop(out);
    // Hold until the parent closes our stdin.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    drop(held);
    Ok(())
}
