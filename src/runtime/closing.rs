//! Why a WebSocket read failed, as the close code the peer reads (RFC 6455
//! §7.4.1): a message over the size limit is `1009`, a text message that is
//! not UTF-8 `1007`, any other violation of the protocol `1002`. Without
//! it the socket was dropped and the peer saw `1006` with no reason.

/// The close code and reason for a read error, when the peer broke a rule
/// (an I/O error or a reset gets none: the connection is gone).
pub fn close_for(error: &axum::Error) -> Option<(u16, String)> {
    use tungstenite::error::{CapacityError, Error, ProtocolError};
    let inner = std::error::Error::source(error)?;
    let error = inner.downcast_ref::<Error>()?;
    Some(match error {
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            (1009, format!("message of {size} bytes is over the limit of {max_size}"))
        }
        Error::Capacity(other) => (1009, other.to_string()),
        Error::Utf8(_) => (1007, "text message is not valid UTF-8".to_owned()),
        // The peer went without a close frame: nobody left to tell.
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        Error::Protocol(e) => (1002, e.to_string()),
        _ => return None,
    })
}

/// A close reason fits in a control frame: at most 123 bytes of UTF-8.
pub fn fit_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_encodings_map_to_their_close_codes() {
        let too_long =
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { size: 20, max_size: 10 });
        let (code, reason) = close_for(&axum::Error::new(too_long)).unwrap();
        assert_eq!((code, reason.as_str()), (1009, "message of 20 bytes is over the limit of 10"));
        let utf8 = axum::Error::new(tungstenite::Error::Utf8("bad".into()));
        assert_eq!(close_for(&utf8).map(|(c, _)| c), Some(1007));
        let io = axum::Error::new(tungstenite::Error::ConnectionClosed);
        assert_eq!(close_for(&io), None);
        let reset = tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(close_for(&axum::Error::new(reset)), None, "a dropped connection is not a violation");
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = fit_reason(&long);
        assert!(cut.len() <= 123 && cut.chars().all(|c| c == 'é'));
    }
}
