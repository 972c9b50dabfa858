//! What reaches the database: nothing for a malformed key, never the plaintext.

use key_core::{ApiKey, Environment};
use ring::rand::SystemRandom;

use crate::helpers::{Backend, backends, spawn_app};

#[tokio::test]
async fn malformed_keys_are_rejected_without_a_database_query() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let good = app.create_key("good", &["chat"], "").await.key;
        let mut typo = good.clone().into_bytes();
        typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
        let malformed = [
            String::new(),
            "sk_live_abc123...".to_owned(),
            String::from_utf8(typo).unwrap(),
            good[..good.len() - 1].to_owned(),
            good.replacen("sk_live_", "sk_prod_", 1),
            "x".repeat(10_000),
        ];
        let before = app.keyrack.store.query_count();
        for key in &malformed {
            assert!(!app.verify(key, &["chat"]).await.valid);
        }
        assert_eq!(
            app.keyrack.store.query_count(),
            before,
            "malformed keys must not reach the database"
        );

        // The counter does count: a well-formed key is looked up.
        let stranger = ApiKey::generate(Environment::Live, &SystemRandom::new()).unwrap();
        assert!(!app.verify(stranger.expose(), &[]).await.valid);
        assert!(app.keyrack.store.query_count() > before);
    }
}

#[tokio::test]
async fn the_plaintext_key_never_reaches_the_sqlite_file() {
    let mut app = spawn_app(&Backend::Sqlite).await;
    let mut keys = vec![app.admin_key.clone()];
    for i in 0..5 {
        let key = app.create_key(&format!("key {i}"), &["chat"], "").await.key;
        assert!(app.verify(&key, &["chat"]).await.valid);
        keys.push(key);
    }
    app.stop().await;

    // Read the database and its write-ahead log, whatever SQLite has or has not checkpointed.
    let path = app.sqlite_path.clone().unwrap();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if let Ok(content) = std::fs::read(&file) {
            bytes.extend(content);
        }
    }
    assert!(bytes.len() > 4096, "the database was read");
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
    for key in &keys {
        assert!(
            !contains(key.as_bytes()),
            "plaintext key found in the database"
        );
        // Not even the secret part alone.
        assert!(
            !contains(&key.as_bytes()[8..51]),
            "secret found in the database"
        );
    }
    // The redacted form is stored, as it should be: the check above can find strings.
    let last4 = &keys[1][keys[1].len() - 4..];
    assert!(contains(last4.as_bytes()));
}
