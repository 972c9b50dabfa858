//! Forms that show a secret once (a new key, a rotated key's successor, a sign-in link) carry a
//! one-time nonce, so that reloading the answer (which re-posts the form) is refused instead of
//! making a second key: the secret cannot be shown again, and nothing is made twice. The nonces
//! used are remembered in memory, bounded in number and age (one replica's memory: a re-post
//! that lands on another replica is not caught).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ring::rand::{SecureRandom, SystemRandom};

/// How long a used nonce is remembered: longer than anyone leaves an answer open before
/// reloading it.
const REMEMBERED_FOR: Duration = Duration::from_secs(3600);

/// How many used nonces are remembered at most; past it the oldest are forgotten.
const MAX_REMEMBERED: usize = 10_000;

/// The used nonces.
#[derive(Debug, Default)]
pub(crate) struct Nonces {
    used: Mutex<HashMap<String, Instant>>,
}

impl Nonces {
    /// A fresh nonce for a form: 128 random bits, hex.
    pub(crate) fn issue() -> String {
        let mut bytes = [0_u8; 16];
        // Should the system's generator fail, the form gets no nonce and is refused when sent.
        if SystemRandom::new().fill(&mut bytes).is_err() {
            return String::new();
        }
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Whether `nonce` is well formed and not used before; it is used from now on.
    pub(crate) fn spend(&self, nonce: &str) -> bool {
        if nonce.len() != 32 || !nonce.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return false;
        }
        let now = Instant::now();
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() >= MAX_REMEMBERED {
            used.retain(|_, at| now.duration_since(*at) < REMEMBERED_FOR);
            if used.len() >= MAX_REMEMBERED
                && let Some(oldest) = used
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(n, _)| n.clone())
            {
                used.remove(&oldest);
            }
        }
        used.insert(nonce.to_owned(), now).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_spent_once() {
        let nonces = Nonces::default();
        let nonce = Nonces::issue();
        assert!(nonces.spend(&nonce));
        assert!(!nonces.spend(&nonce));
        assert!(!nonces.spend(""));
        assert!(!nonces.spend("not hex at all, and 32 long!!!!!"));
    }

    #[test]
    fn memory_stays_bounded() {
        let nonces = Nonces::default();
        for _ in 0..MAX_REMEMBERED + 10 {
            assert!(nonces.spend(&Nonces::issue()));
        }
        assert!(nonces.used.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
