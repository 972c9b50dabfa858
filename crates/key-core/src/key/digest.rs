//! Keys are stored as HMAC-SHA-256 digests under a server-wide secret, the pepper. A stolen
//! database alone does not let anyone test guesses against it.

use std::fmt;

use ring::{hkdf, hmac};

use crate::{ApiKey, Error};

/// The shortest pepper accepted, in bytes.
pub const MIN_PEPPER_BYTES: usize = 32;

/// The server's HMAC key for key digests, and the root of the keys derived from the pepper
/// for other purposes (each with its own HKDF label).
pub struct Pepper(hmac::Key, hkdf::Prk);

/// The HKDF salt of keys derived from the pepper; it only separates them from the digest key.
const SUBKEY_SALT: &[u8] = b"keyrack pepper subkeys";

impl Pepper {
    /// Accepts pepper material of at least [`MIN_PEPPER_BYTES`] bytes.
    pub fn new(material: &[u8]) -> Result<Pepper, Error> {
        if material.len() < MIN_PEPPER_BYTES {
            return Err(Error::InvalidArgument {
                field: "pepper",
                message: format!(
                    "the pepper is {} bytes long; at least {MIN_PEPPER_BYTES} are required",
                    material.len()
                ),
            });
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SUBKEY_SALT).extract(material);
        Ok(Pepper(hmac::Key::new(hmac::HMAC_SHA256, material), prk))
    }

    /// A 256-bit key derived from the pepper with HKDF-SHA-256 under the label `info`, for a
    /// purpose other than key digests (e.g. sealing webhook secrets). The pepper's own bytes
    /// never leave this type, and one purpose's key tells nothing about another's.
    pub(crate) fn derive_subkey(&self, info: &[u8]) -> Result<[u8; 32], Error> {
        let info = [info];
        let mut key = [0_u8; 32];
        self.1
            .expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| Error::Internal("cannot derive a key from the pepper".to_owned()))?;
        Ok(key)
    }

    /// A fingerprint of this pepper (64 hex characters) for the database to keep, so a start
    /// with another pepper can be refused: a key derived from the pepper under its own label,
    /// which tells nothing about the pepper or any other key derived from it.
    pub fn fingerprint(&self) -> Result<String, Error> {
        let derived = self.derive_subkey(b"keyrack pepper fingerprint v1")?;
        Ok(derived.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// The digest under which `key` is stored and looked up.
    pub fn digest(&self, key: &ApiKey) -> KeyDigest {
        self.digest_text(key.expose())
    }

    /// Whether `key` has the stored `digest`, compared in constant time. A lookup by digest
    /// already found the row; this check makes the final decision independent of how the
    /// database compares.
    pub fn matches(&self, key: &ApiKey, digest: &KeyDigest) -> bool {
        self.matches_text(key.expose(), digest)
    }

    /// HMAC-SHA-256 of a credential's text under the pepper.
    pub(crate) fn digest_text(&self, text: &str) -> KeyDigest {
        let tag = hmac::sign(&self.0, text.as_bytes());
        let mut bytes = [0_u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        KeyDigest(bytes)
    }

    /// Whether `text` has `digest`, in constant time.
    pub(crate) fn matches_text(&self, text: &str, digest: &KeyDigest) -> bool {
        hmac::verify(&self.0, text.as_bytes(), &digest.0).is_ok()
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(..)")
    }
}

/// HMAC-SHA-256 of a whole key under the pepper.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The raw digest, as stored.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a digest read from the store; `None` if it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyDigest> {
        <[u8; 32]>::try_from(bytes).ok().map(KeyDigest)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Digests stay out of logs too: with the pepper they identify a key.
        f.write_str("KeyDigest(..)")
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;
    use crate::Environment;

    #[test]
    fn a_fingerprint_tells_peppers_apart_and_nothing_else() {
        let material = [7_u8; 32];
        let one = Pepper::new(&material).unwrap().fingerprint().unwrap();
        assert_eq!(one, Pepper::new(&material).unwrap().fingerprint().unwrap());
        assert_ne!(one, Pepper::new(&[8; 32]).unwrap().fingerprint().unwrap());
        assert_eq!(one.len(), 64);
        assert!(
            !one.contains("0707"),
            "the pepper's bytes show through: {one}"
        );
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(Pepper::new(&[7; 31]).is_err());
        assert!(Pepper::new(&[7; 32]).is_ok());
    }

    #[test]
    fn digest_depends_on_key_and_pepper() {
        let rng = SystemRandom::new();
        let a = ApiKey::generate(Environment::Live, &rng).unwrap();
        let b = ApiKey::generate(Environment::Live, &rng).unwrap();
        let pepper = Pepper::new(&[1; 32]).unwrap();
        let other = Pepper::new(&[2; 32]).unwrap();
        assert_eq!(pepper.digest(&a), pepper.digest(&a));
        assert_ne!(pepper.digest(&a), pepper.digest(&b));
        assert_ne!(pepper.digest(&a), other.digest(&a));
        assert!(pepper.matches(&a, &pepper.digest(&a)));
        assert!(!pepper.matches(&b, &pepper.digest(&a)));
    }
}
