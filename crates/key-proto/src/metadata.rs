//! How a key's metadata travels in a header: forward-auth's response and ext_authz's OK both
//! carry it to the protected service as `X-Keyrack-Metadata`, the JSON object's bytes in
//! base64url without padding (RFC 4648 §5), so any JSON (quotes, commas, non-ASCII) is one
//! header-safe token.

/// The header that carries a valid key's metadata; absent when the key has none.
pub const METADATA_HEADER: &str = "x-keyrack-metadata";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The header value for metadata `json`: base64url of its bytes, without padding.
pub fn metadata_header_value(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        // One more character than whole bytes in the chunk: 2, 3 or 4.
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_without_padding() {
        // RFC 4648's test vectors, unpadded.
        for (text, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(metadata_header_value(text), encoded);
        }
        // The URL-safe alphabet: `_` where standard base64 has `/`.
        assert_eq!(metadata_header_value(r#"{"a":"ÿ?>"}"#), "eyJhIjoiw78_PiJ9");
    }
}
