//! The public keys secret-scanning reports are verified with (`keyrack serve
//! --secret-scanning-keys FILE`), and the verification: ECDSA over P-256 with SHA-256, the
//! signature DER-encoded and base64'd in `Github-Public-Key-Signature`, the key chosen by
//! `Github-Public-Key-Identifier`.
//!
//! The file is GitHub's own answer at `https://api.github.com/meta/public_keys/secret_scanning`,
//! saved as is: `{"public_keys": [{"key_identifier": "…", "key": "-----BEGIN PUBLIC KEY-----…",
//! "is_current": true}]}`. Every listed key is accepted (`is_current` is ignored): a report
//! signed just before GitHub rotated its key still verifies. Keyrack never fetches the file
//! itself; the operator refreshes it.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use key_core::Error;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;

/// The DER of a P-256 SubjectPublicKeyInfo before its 65-byte uncompressed point: SEQUENCE {
/// SEQUENCE { OID ecPublicKey, OID prime256v1 }, BIT STRING (66 bytes, no unused bits) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// An uncompressed P-256 point: 0x04, then X and Y.
const P256_POINT_BYTES: usize = 65;
/// The most keys a file may list (GitHub lists a handful).
const MAX_KEYS: usize = 64;
/// The longest key identifier accepted (GitHub's are 64 hex digits).
const MAX_IDENTIFIER_CHARS: usize = 128;
/// The longest signature header accepted (a DER P-256 signature is at most 72 bytes).
const MAX_SIGNATURE_CHARS: usize = 200;

/// Why a keys file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretScanningKeysError {
    /// Not JSON of GitHub's shape.
    #[error(
        "not GitHub's public keys JSON ({{\"public_keys\": [{{\"key_identifier\", \"key\"}}]}}): {0}"
    )]
    Syntax(#[from] serde_json::Error),
    /// A key that is not a P-256 public key in PEM, or a bad identifier.
    #[error("public key {index}: {message}")]
    Key {
        /// The key's position in the file, from 1.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// No key, or too many.
    #[error("the file must list between 1 and {MAX_KEYS} public keys")]
    Count,
}

#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

/// The public keys reports may be signed with, by identifier.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretScanningKeys {
    /// Identifier → uncompressed P-256 point.
    keys: HashMap<String, Vec<u8>>,
}

impl std::fmt::Debug for SecretScanningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretScanningKeys")
            .field("identifiers", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretScanningKeys {
    /// Reads a keys file's JSON (see the module's documentation).
    pub fn parse(text: &str) -> Result<SecretScanningKeys, SecretScanningKeysError> {
        let file: KeysFile = serde_json::from_str(text)?;
        if file.public_keys.is_empty() || file.public_keys.len() > MAX_KEYS {
            return Err(SecretScanningKeysError::Count);
        }
        let mut keys = HashMap::new();
        for (index, entry) in file.public_keys.into_iter().enumerate() {
            let refuse = |message: &str| SecretScanningKeysError::Key {
                index: index + 1,
                message: message.to_owned(),
            };
            let identifier = entry.key_identifier.trim().to_owned();
            if identifier.is_empty()
                || identifier.len() > MAX_IDENTIFIER_CHARS
                || !identifier.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(refuse(
                    "key_identifier must be 1 to 128 printable characters",
                ));
            }
            let point = p256_point_from_pem(&entry.key).map_err(refuse)?;
            if keys.insert(identifier, point).is_some() {
                return Err(refuse("its key_identifier is listed twice"));
            }
        }
        Ok(SecretScanningKeys { keys })
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none is (never true of a parsed file).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `signature` (the base64 DER header) is a signature of `payload` by the key
    /// `identifier`. An unknown identifier and a signature that does not verify are the same
    /// refusal to the caller.
    pub fn verify(&self, identifier: &str, signature: &str, payload: &[u8]) -> Result<(), Error> {
        let refused = Error::Unauthenticated(
            "the report's signature does not verify against a configured secret-scanning key",
        );
        let Some(point) = self.keys.get(identifier.trim()) else {
            return Err(refused);
        };
        if signature.len() > MAX_SIGNATURE_CHARS {
            return Err(refused);
        }
        let Ok(der) = BASE64.decode(signature.trim()) else {
            return Err(refused);
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(payload, &der)
            .map_err(|_| refused)
    }
}

/// The uncompressed point of a P-256 public key given as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
fn p256_point_from_pem(pem: &str) -> Result<Vec<u8>, &'static str> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let not_pem = "key must be a PEM PUBLIC KEY";
    let start = pem.find(BEGIN).ok_or(not_pem)? + BEGIN.len();
    let end = start + pem[start..].find(END).ok_or(not_pem)?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = BASE64
        .decode(body)
        .map_err(|_| "the PEM's base64 does not decode")?;
    match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(point) if point.len() == P256_POINT_BYTES && point[0] == 0x04 => Ok(point.to_vec()),
        _ => Err("not an uncompressed ECDSA P-256 public key"),
    }
}

#[cfg(test)]
mod tests {
    use ring::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
    };

    use super::*;

    /// A fresh key pair and its keys file entry, as GitHub's API would list it.
    fn key_pair(identifier: &str) -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            BASE64.encode(spki)
        );
        let entry =
            serde_json::json!({"key_identifier": identifier, "key": pem, "is_current": true});
        (pair, entry.to_string())
    }

    #[test]
    fn a_report_verifies_only_with_its_key_and_body() {
        let (pair, entry) = key_pair("abc123");
        let (other, other_entry) = key_pair("def456");
        let keys =
            SecretScanningKeys::parse(&format!(r#"{{"public_keys": [{entry}, {other_entry}]}}"#))
                .unwrap();
        assert_eq!(keys.len(), 2);
        let body = br#"[{"token":"x","type":"keyrack_api_key","url":"https://github.com/","source":"content"}]"#;
        let rng = SystemRandom::new();
        let signature = BASE64.encode(pair.sign(&rng, body).unwrap());
        assert!(keys.verify("abc123", &signature, body).is_ok());
        assert!(keys.verify("def456", &signature, body).is_err());
        assert!(keys.verify("unknown", &signature, body).is_err());
        assert!(keys.verify("abc123", &signature, b"[]").is_err());
        assert!(keys.verify("abc123", "not base64!", body).is_err());
        let by_other = BASE64.encode(other.sign(&rng, body).unwrap());
        assert!(keys.verify("def456", &by_other, body).is_ok());
    }

    #[test]
    fn files_of_another_shape_are_refused() {
        for bad in [
            "{}",
            r#"{"public_keys": []}"#,
            r#"{"public_keys": [{"key_identifier": "a", "key": "hello"}]}"#,
            r#"{"public_keys": [{"key_identifier": "", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}]}"#,
        ] {
            assert!(SecretScanningKeys::parse(bad).is_err(), "{bad}");
        }
        let (_, entry) = key_pair("same");
        assert!(
            SecretScanningKeys::parse(&format!(r#"{{"public_keys": [{entry}, {entry}]}}"#))
                .is_err()
        );
    }
}
