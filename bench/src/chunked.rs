//! HTTP/1.1 response framing for the raw-TCP clients: finding the end of the
//! head, reading the status and body length, and undoing `Transfer-Encoding:
//! chunked` incrementally (SSE responses are chunked and chunk boundaries fall
//! anywhere in the event stream).

use anyhow::{Context, bail};
use memchr::memmem;

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    Exactly(usize),
    Chunked,
    /// Until the connection closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub body: BodyLength,
    /// Bytes of the head including the blank line.
    pub len: usize,
}

/// Parses the head at the start of `buf`, or `None` when it is not complete yet.
pub fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            bail!("response head over 64 KiB");
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP/1.x status line: {status_line:?}"))?;
    let mut body = BodyLength::UntilClose;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body = BodyLength::Exactly(value.parse().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            body = BodyLength::Chunked;
        }
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        body = BodyLength::Exactly(0);
    }
    Ok(Some(Head { status, body, len: end + 4 }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// After the size: skipping an extension up to the LF.
    SizeLine,
    /// Inside chunk data, this many bytes left.
    Data(usize),
    /// The CRLF after chunk data.
    DataEnd,
    /// After the last (zero) chunk: the trailer section.
    Trailer {
        line_empty: bool,
    },
    Done,
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug)]
pub struct Dechunker {
    state: State,
    size: usize,
}

impl Default for Dechunker {
    fn default() -> Self {
        Self { state: State::Size, size: 0 }
    }
}

impl Dechunker {
    /// True once the terminating chunk and trailer were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending body bytes to `out`; returns how many input
    /// bytes were consumed (all of them unless the body ended).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Size => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = (b as char).to_digit(16).expect("hex digit") as usize;
                            self.size = self.size.checked_mul(16).context("chunk size overflow")? + digit;
                        }
                        b';' | b'\r' | b' ' | b'\t' => self.state = State::SizeLine,
                        b'\n' => self.end_size_line(),
                        _ => bail!("bad chunk size byte {b:#04x}"),
                    }
                }
                State::SizeLine => {
                    let rest = &input[i..];
                    match memchr::memchr(b'\n', rest) {
                        Some(at) => {
                            i += at + 1;
                            self.end_size_line();
                        }
                        None => i = input.len(),
                    }
                }
                State::Data(left) => {
                    let take = left.min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.state = if take == left { State::DataEnd } else { State::Data(left - take) };
                }
                State::DataEnd => {
                    let b = input[i];
                    i += 1;
                    if b == b'\n' {
                        self.state = State::Size;
                    } else if b != b'\r' {
                        bail!("missing CRLF after chunk data");
                    }
                }
                State::Trailer { line_empty } => {
                    let b = input[i];
                    i += 1;
                    self.state = match b {
                        b'\n' if line_empty => State::Done,
                        b'\n' => State::Trailer { line_empty: true },
                        b'\r' => State::Trailer { line_empty },
                        _ => State::Trailer { line_empty: false },
                    };
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 { State::Trailer { line_empty: true } } else { State::Data(self.size) };
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_arbitrary_splits() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            d.feed(&wire[..split], &mut out).unwrap();
            d.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(d.is_done());
        }
    }

    #[test]
    fn parses_heads() {
        let h = parse_head(b"HTTP/1.1 202 Accepted\r\ncontent-length: 12\r\n\r\n{}").unwrap().unwrap();
        assert_eq!((h.status, h.body, h.len), (202, BodyLength::Exactly(12), 45));
        let h = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body, BodyLength::Chunked);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
    }
}
