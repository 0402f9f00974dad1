//! Frames without their `event:` line, for SSE clients that listen only to
//! unnamed events: n8n's SSE Trigger sets `onmessage` and nothing else, and
//! `onmessage` sees only events without a name. Each event's `data` still
//! names its `type`, so nothing is lost but the routing by name.

use axum::body::Bytes;

/// `chunk` without its `event: …` lines. A chunk holds whole frames or
/// comments, every line ending in `\n`; a data line starts with `data: `
/// (one line of JSON), so only a frame's name line starts with `event: `.
pub(super) fn without_names(chunk: Bytes) -> Bytes {
    if !chunk.starts_with(b"event: ") && !chunk.windows(8).any(|w| w == b"\nevent: ") {
        return chunk;
    }
    let mut out = Vec::with_capacity(chunk.len());
    for line in chunk.split_inclusive(|b| *b == b'\n') {
        if !line.starts_with(b"event: ") {
            out.extend_from_slice(line);
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_of_frames_loses_only_its_name_lines() {
        let chunk = Bytes::from_static(
            b"retry: 3000\n: connected\n\nid: e-1\nevent: turn_finished\ndata: {\"type\":\"turn_finished\",\"x\":\"\\nevent: no\"}\n\nid: e-2\nevent: lagged\ndata: {}\n\n",
        );
        assert_eq!(
            &without_names(chunk)[..],
            b"retry: 3000\n: connected\n\nid: e-1\ndata: {\"type\":\"turn_finished\",\"x\":\"\\nevent: no\"}\n\nid: e-2\ndata: {}\n\n"
        );
        let keepalive = Bytes::from_static(b": keepalive\n\n");
        assert_eq!(without_names(keepalive.clone()), keepalive);
    }
}
