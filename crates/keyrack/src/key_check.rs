//! `keyrack key check`: tells, offline, whether strings are well-formed Keyrack keys (prefix,
//! length, alphabet and CRC32 checksum), so a secret scanner can drop look-alikes (a Stripe
//! key, a random `sk_live_` string) before reporting a leak. It needs no server, database or
//! pepper, and never prints a key: a well-formed one is shown redacted, anything else by its
//! position only.

use std::io::BufRead;

use key_core::ApiKey;

/// Checks each of `keys`, or each line of stdin when none is given; prints one verdict per
/// input on stdout. Returns whether every input was a well-formed key.
pub(crate) fn check(keys: Vec<String>) -> anyhow::Result<bool> {
    let inputs: Vec<String> = if keys.is_empty() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>()?
    } else {
        keys
    };
    let mut all_valid = true;
    for (n, input) in inputs.iter().enumerate() {
        match ApiKey::parse(input.trim()) {
            Ok(key) => println!(
                "{}: well-formed {} key {}",
                n + 1,
                key.environment().as_str(),
                key.redacted()
            ),
            Err(_) => {
                all_valid = false;
                println!("{}: not a Keyrack key (prefix, length or checksum)", n + 1);
            }
        }
    }
    Ok(all_valid)
}
