//! A raw HTTP/1.1 keep-alive client on one TCP connection: the command
//! clients' and the start-up probe's transport, cheap enough not to dominate
//! a shared 2-core machine.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::chunked::{BodyLength, Dechunker, parse_head};

/// One keep-alive connection.
pub struct HttpConn {
    tcp: TcpStream,
    host: String,
    buf: Vec<u8>,
}

/// A response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Connects to `addr` (host:port), optionally from a given local address.
pub async fn connect_tcp(addr: &str, source: Option<std::net::IpAddr>) -> anyhow::Result<TcpStream> {
    let tcp = match source {
        None => TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?,
        Some(ip) => {
            let remote: SocketAddr = tokio::net::lookup_host(addr).await?.next().context("no address")?;
            let socket = if remote.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("bind {ip}"))?;
            socket.connect(remote).await.with_context(|| format!("connect {addr} from {ip}"))?
        }
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

impl HttpConn {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        Ok(Self { tcp: connect_tcp(addr, None).await?, host: addr.to_owned(), buf: Vec::with_capacity(8192) })
    }

    /// Sends one request and reads its response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        let mut req = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
        req.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host).as_bytes());
        if let Some(token) = token {
            req.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        if let Some(body) = body {
            req.extend_from_slice(
                format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()).as_bytes(),
            );
        }
        req.extend_from_slice(b"\r\n");
        if let Some(body) = body {
            req.extend_from_slice(body);
        }
        self.tcp.write_all(&req).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<Response> {
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            self.fill().await?;
        };
        self.buf.drain(..head.len);
        let body = match head.body {
            BodyLength::Exactly(n) => {
                while self.buf.len() < n {
                    self.fill().await?;
                }
                self.buf.drain(..n).collect()
            }
            BodyLength::Chunked => {
                let mut d = Dechunker::default();
                let mut out = Vec::new();
                loop {
                    let used = d.feed(&self.buf, &mut out)?;
                    self.buf.drain(..used);
                    if d.is_done() {
                        break out;
                    }
                    self.fill().await?;
                }
            }
            BodyLength::UntilClose => bail!("response without a length on a keep-alive connection"),
        };
        Ok(Response { status: head.status, body })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + 8192, 0);
        let n = self.tcp.read(&mut self.buf[len..]).await?;
        self.buf.truncate(len + n);
        if n == 0 {
            bail!("connection closed mid-response");
        }
        Ok(())
    }
}
