//! Standard Webhooks v1 signing: a `whsec_` secret (32 random bytes,
//! base64) and the `v1,<base64>` signature, HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}` keyed with the secret's bytes.
//! The HMAC is jsonwebtoken's HS256 (ring, already built for user tokens);
//! its base64url is turned into the spec's standard base64.

use jsonwebtoken::{Algorithm, EncodingKey};

/// How a secret starts.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret's bytes: two v4 UUIDs' (244 random bits; the spec asks
/// for 24 to 64 bytes).
pub fn new_secret() -> Vec<u8> {
    let mut bytes = uuid::Uuid::new_v4().into_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}

/// `whsec_<base64 of the bytes>`, as the spec writes a secret.
pub fn secret_text(secret: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", base64(secret))
}

/// The `webhook-signature` header's value: `v1,<base64>`.
pub fn signature(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let url = jsonwebtoken::crypto::sign(&content, &EncodingKey::from_secret(secret), Algorithm::HS256)
        .expect("HS256 signs any bytes");
    let mut standard: String = url
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !standard.len().is_multiple_of(4) {
        standard.push('=');
    }
    format!("v1,{standard}")
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648s_test_vectors() {
        let vectors =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn the_signature_matches_the_specs_example() {
        // standard-webhooks' own test vector (libraries/python tests):
        // secret MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
        // timestamp 1614265330, body {"test": 2432232314}.
        let secret = b"1\xf2\x90\xf6\xbf\x06)\x8a\xabO\x08\xd4<?\x08,\xf6H\xa3b\xda-\xa4\xb0";
        assert_eq!(base64(secret), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signed = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
