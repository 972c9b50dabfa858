//! People sign in to the console; scripts use keys. A signed-in person holds a session, an
//! opaque bearer token the console keeps in a cookie and sends to the service as its
//! credential; a sign-in link carries a one-time token that becomes a session. Both are stored
//! as keyed digests under the pepper, like keys, and their plaintext exists only in the
//! response that creates them.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::{Error, KeyDigest, Pepper, RandomSource};

/// How long a session lasts without a request: a console left open over lunch still works, one
/// forgotten overnight does not.
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::hours(2);

/// How long a session lasts at most, however busy: a working day. Sign in again after it.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);

/// How long a sign-in link can be used (once).
pub const SIGN_IN_LINK_LIFETIME: Duration = Duration::hours(24);

/// How stale a session's last-seen time may be before a request records a new one: bounds the
/// writes a busy console makes to one a minute, at the cost of an idle timeout a minute late.
pub const SESSION_TOUCH_INTERVAL: Duration = Duration::minutes(1);

/// The random bytes of a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// What a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A console session.
    Session,
    /// A one-time sign-in link.
    SignInLink,
    /// An OAuth client's secret.
    ClientSecret,
    /// An OAuth authorization code: one-time, a minute.
    AuthorizationCode,
}

impl TokenKind {
    /// The token's prefix: unlike a key's (`sk_`), so a scanner, a log reader and `ApiKey::parse`
    /// tell them apart, and a session is never mistaken for a key.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "krs_",
            TokenKind::SignInLink => "krl_",
            TokenKind::ClientSecret => "krc_",
            TokenKind::AuthorizationCode => "kac_",
        }
    }

    /// The kind's name in the store.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::SignInLink => "sign_in_link",
            TokenKind::ClientSecret => "client_secret",
            TokenKind::AuthorizationCode => "authorization_code",
        }
    }
}

/// A session or sign-in token: its prefix and 64 lowercase hex digits. `Debug` and `Display`
/// print the prefix only.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    kind: TokenKind,
    text: String,
}

impl SessionToken {
    /// Draws a new token of `kind`.
    pub fn generate(kind: TokenKind, random: &dyn RandomSource) -> Result<SessionToken, Error> {
        let mut bytes = [0_u8; TOKEN_BYTES];
        random.fill(&mut bytes)?;
        let mut text = String::with_capacity(kind.prefix().len() + 2 * TOKEN_BYTES);
        text.push_str(kind.prefix());
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        Ok(SessionToken { kind, text })
    }

    /// Reads a presented token of `kind`; `None` unless it is exactly one (surrounding
    /// whitespace aside).
    pub fn parse(kind: TokenKind, input: &str) -> Option<SessionToken> {
        let text = input.trim();
        let digits = text.strip_prefix(kind.prefix())?;
        let well_formed = digits.len() == 2 * TOKEN_BYTES
            && digits
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        well_formed.then(|| SessionToken {
            kind,
            text: text.to_owned(),
        })
    }

    /// Whether `input` looks like a token of `kind` (its prefix), well formed or not: such a
    /// credential is judged as a token, never as a key.
    pub fn claims(kind: TokenKind, input: &str) -> bool {
        input.trim_start().starts_with(kind.prefix())
    }

    /// The token's kind.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The plaintext, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({}…)", self.kind.prefix())
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.kind.prefix())
    }
}

impl Pepper {
    /// The digest under which `token` is stored and looked up (the same HMAC as keys'; the
    /// prefixes keep the two apart).
    pub fn token_digest(&self, token: &SessionToken) -> KeyDigest {
        self.digest_text(token.expose())
    }

    /// Whether `token` has the stored `digest`, compared in constant time.
    pub fn token_matches(&self, token: &SessionToken, digest: &KeyDigest) -> bool {
        self.matches_text(token.expose(), digest)
    }
}

/// When a session created at `created_at` and last seen at `last_seen_at` ends: at the idle
/// timeout after its last request, or at its absolute lifetime, whichever comes first.
pub fn session_ends_at(created_at: DateTime<Utc>, last_seen_at: DateTime<Utc>) -> DateTime<Utc> {
    (last_seen_at + SESSION_IDLE_TIMEOUT).min(created_at + SESSION_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(u8);

    impl RandomSource for Fixed {
        fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
            dest.fill(self.0);
            Ok(())
        }
    }

    #[test]
    fn tokens_have_their_prefix_and_parse_back() {
        let token = SessionToken::generate(TokenKind::Session, &Fixed(0xab)).unwrap();
        assert_eq!(token.expose(), format!("krs_{}", "ab".repeat(32)));
        assert_eq!(
            SessionToken::parse(TokenKind::Session, &format!(" {} ", token.expose())),
            Some(token.clone())
        );
        // Another kind, another length, upper case: none is a token.
        assert_eq!(
            SessionToken::parse(TokenKind::SignInLink, token.expose()),
            None
        );
        assert_eq!(
            SessionToken::parse(TokenKind::Session, &token.expose()[..60]),
            None
        );
        assert_eq!(
            SessionToken::parse(TokenKind::Session, &token.expose().to_uppercase()),
            None
        );
        assert!(SessionToken::claims(TokenKind::Session, "krs_junk"));
    }

    #[test]
    fn tokens_print_redacted() {
        let token = SessionToken::generate(TokenKind::SignInLink, &Fixed(7)).unwrap();
        assert_eq!(format!("{token}"), "krl_…");
        assert_eq!(format!("{token:?}"), "SessionToken(krl_…)");
    }

    #[test]
    fn a_session_ends_at_its_idle_timeout_or_its_lifetime() {
        let start = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(session_ends_at(start, start), start + SESSION_IDLE_TIMEOUT);
        let late = start + Duration::hours(11);
        assert_eq!(session_ends_at(start, late), start + SESSION_LIFETIME);
    }

    #[test]
    fn a_token_matches_only_its_digest() {
        let pepper = Pepper::new(&[9; 32]).unwrap();
        let one = SessionToken::generate(TokenKind::Session, &Fixed(1)).unwrap();
        let two = SessionToken::generate(TokenKind::Session, &Fixed(2)).unwrap();
        let digest = pepper.token_digest(&one);
        assert!(pepper.token_matches(&one, &digest));
        assert!(!pepper.token_matches(&two, &digest));
    }
}
