//! The brute-force guard (README "Brute-force guard"): failures count by client network and by
//! key prefix, a success does not wash them out, a block spares the keys a blocked address was
//! using, and admin callers and direct VerifyKey callers are guarded too.

use chrono::TimeDelta;
use key_core::{ApiKey, Environment, RandomSource};
use key_proto::v1;
use key_service::BruteForceSettings;
use ring::rand::SystemRandom;
use tonic::Code;

use crate::{
    helpers::{TestApp, authed, backends, spawn_app_configured},
    ratelimit::verify_from,
};

const THRESHOLD: u32 = 5;

async fn spawn_guarded(backend: &crate::helpers::Backend, max_tracked: usize) -> TestApp {
    spawn_app_configured(backend, |setup| {
        setup.settings.brute_force = BruteForceSettings {
            threshold: THRESHOLD,
            max_tracked,
            ..BruteForceSettings::default()
        };
    })
    .await
}

/// A well-formed key (checksum and all) this deployment never issued.
fn unknown_key() -> String {
    ApiKey::generate(Environment::Live, &SystemRandom::new())
        .unwrap()
        .expose()
        .to_owned()
}

/// Random bytes, except that every draw starts with the same eight: the keys it makes share
/// their first eight characters and differ after, as guesses at one partly known key do.
#[derive(Debug)]
struct KnownStart;

impl RandomSource for KnownStart {
    fn fill(&self, dest: &mut [u8]) -> Result<(), key_core::Error> {
        SystemRandom::new().fill(dest)?;
        dest[..8].copy_from_slice(b"\x07\x08\x09\x0a\x0b\x0c\x0d\x0e");
        Ok(())
    }
}

fn guess_at_known_start() -> String {
    ApiKey::generate(Environment::Live, &KnownStart)
        .unwrap()
        .expose()
        .to_owned()
}

#[tokio::test]
async fn a_block_spares_the_keys_a_shared_address_was_using() {
    for backend in backends() {
        let app = spawn_guarded(&backend, 1_000).await;
        let nat = "203.0.113.10";
        let good = app.create_key("behind the nat", &["chat"], "").await.key;
        assert!(verify_from(&app, &good, nat).await.valid);
        // Someone else behind the same address guesses.
        for _ in 0..THRESHOLD {
            let verdict = verify_from(&app, &unknown_key(), nat).await;
            assert_eq!(verdict.reason, "invalid_api_key");
        }
        let guess = verify_from(&app, &unknown_key(), nat).await;
        assert_eq!(guess.reason, "rate_limited", "{guess:?}");
        // The user whose key was in use keeps working, from the blocked address.
        for _ in 0..3 {
            assert!(verify_from(&app, &good, nat).await.valid);
        }
    }
}

#[tokio::test]
async fn one_valid_key_does_not_wash_out_a_guessers_failures() {
    for backend in backends() {
        let app = spawn_guarded(&backend, 1_000).await;
        let ip = "198.51.100.20";
        let own = app.create_key("the guesser's own", &["chat"], "").await.key;
        for _ in 0..THRESHOLD - 1 {
            assert!(!verify_from(&app, &unknown_key(), ip).await.valid);
            assert!(verify_from(&app, &own, ip).await.valid);
        }
        assert_eq!(
            verify_from(&app, &unknown_key(), ip).await.reason,
            "invalid_api_key"
        );
        assert_eq!(
            verify_from(&app, &unknown_key(), ip).await.reason,
            "rate_limited"
        );
    }
}

#[tokio::test]
async fn an_ipv6_client_cannot_escape_by_changing_addresses_within_its_slash_64() {
    for backend in backends() {
        let app = spawn_guarded(&backend, 1_000).await;
        for host in 1..=THRESHOLD {
            let ip = format!("2001:db8:7:7::{host:x}");
            assert!(!verify_from(&app, &unknown_key(), &ip).await.valid);
        }
        let fresh = verify_from(&app, &unknown_key(), "2001:db8:7:7:dead:beef::1").await;
        assert_eq!(fresh.reason, "rate_limited");
        // The next /64 is someone else.
        let neighbour = verify_from(&app, &unknown_key(), "2001:db8:7:8::1").await;
        assert_eq!(neighbour.reason, "invalid_api_key");
    }
}

#[tokio::test]
async fn many_addresses_guessing_at_one_key_are_stopped_by_its_prefix() {
    for backend in backends() {
        let app = spawn_guarded(&backend, 1_000).await;
        for n in 1..=THRESHOLD {
            let ip = format!("192.0.2.{n}");
            let verdict = verify_from(&app, &guess_at_known_start(), &ip).await;
            assert_eq!(verdict.reason, "invalid_api_key");
        }
        let from_fresh_address = verify_from(&app, &guess_at_known_start(), "192.0.2.200").await;
        assert_eq!(from_fresh_address.reason, "rate_limited");
        // That address is not blocked: a key with another beginning is judged as usual.
        let other = verify_from(&app, &unknown_key(), "192.0.2.200").await;
        assert_eq!(other.reason, "invalid_api_key");
    }
}

#[tokio::test]
async fn a_flood_of_fresh_addresses_does_not_switch_the_guard_off() {
    for backend in backends() {
        let app = spawn_guarded(&backend, 50).await;
        for n in 0..400_u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string();
            assert!(!verify_from(&app, "sk_live_not_a_key", &ip).await.valid);
        }
        assert!(
            app.keyrack.verifier.guard_entries() <= 50 + 64,
            "{}",
            app.keyrack.verifier.guard_entries()
        );
        // A new address is still counted, and blocked.
        let ip = "198.51.100.99";
        for _ in 0..THRESHOLD {
            assert_eq!(
                verify_from(&app, &unknown_key(), ip).await.reason,
                "invalid_api_key"
            );
        }
        assert_eq!(
            verify_from(&app, &unknown_key(), ip).await.reason,
            "rate_limited"
        );
    }
}

#[tokio::test]
async fn a_verify_call_naming_no_client_is_guarded_by_its_callers_address() {
    for backend in backends() {
        let app = spawn_guarded(&backend, 1_000).await;
        let good = app.create_key("in use", &["chat"], "").await.key;
        assert!(app.verify(&good, &[]).await.valid);
        for _ in 0..THRESHOLD {
            assert_eq!(
                app.verify(&unknown_key(), &[]).await.reason,
                "invalid_api_key"
            );
        }
        assert_eq!(app.verify(&unknown_key(), &[]).await.reason, "rate_limited");
        assert!(app.verify(&good, &[]).await.valid);
    }
}

#[tokio::test]
async fn admin_authentication_is_guarded_and_spares_the_admins_own_key() {
    for backend in backends() {
        let app = spawn_guarded(&backend, 1_000).await;
        let list = |key: String| {
            let mut client = app.client.clone();
            async move {
                client
                    .list_keys(authed(&key, v1::ListKeysRequest::default()))
                    .await
            }
        };
        list(app.admin_key.clone()).await.unwrap();
        for _ in 0..THRESHOLD {
            let refused = list(unknown_key()).await.unwrap_err();
            assert_eq!(refused.code(), Code::Unauthenticated);
        }
        let blocked = list(unknown_key()).await.unwrap_err();
        assert_eq!(blocked.code(), Code::ResourceExhausted, "{blocked:?}");
        // The operator at the same address still gets in to revoke what needs revoking.
        list(app.admin_key.clone()).await.unwrap();
        // The block ends after its cooling period.
        app.clock.advance(TimeDelta::seconds(60));
        let after = list(unknown_key()).await.unwrap_err();
        assert_eq!(after.code(), Code::Unauthenticated);
    }
}
