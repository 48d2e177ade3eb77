//! API keys: `API-` and 32 characters from A-Z0-9 (about 165 bits from the
//! operating system's random source). Only their SHA-256 is ever stored.
//!
//! A fast hash is right here: the keys are random, so there is no dictionary
//! to slow down, unlike with passwords.

use sha2::{Digest, Sha256};

use crate::config::Secret;

const PREFIX: &str = "API-";
const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const KEY_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct RandomnessError(#[source] pub getrandom::Error);

/// A new key: its text (shown once) and the hash to store.
pub fn generate() -> Result<(Secret, String), RandomnessError> {
    let mut key = String::with_capacity(PREFIX.len() + KEY_CHARS);
    key.push_str(PREFIX);
    let mut buffer = [0u8; 64];
    while key.len() < PREFIX.len() + KEY_CHARS {
        getrandom::fill(&mut buffer).map_err(RandomnessError)?;
        for byte in buffer {
            // 252 = 7 * 36: rejecting the rest keeps every character equally likely.
            if byte < 252 && key.len() < PREFIX.len() + KEY_CHARS {
                key.push(char::from(ALPHABET[usize::from(byte % 36)]));
            }
        }
    }
    let hash = hash(&key);
    Ok((Secret::new(key), hash))
}

/// The stored form of a key: lowercase hex SHA-256 of its exact text.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether text has the shape of a key; anything else cannot be valid.
pub fn looks_like_key(text: &str) -> bool {
    text.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.len() == KEY_CHARS && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_have_the_documented_shape_and_differ() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let (key, stored) = generate().unwrap();
            assert!(looks_like_key(key.expose()), "{}", key.expose());
            assert_eq!(stored, hash(key.expose()));
            assert!(seen.insert(key.expose().to_owned()));
        }
    }

    #[test]
    fn keys_carry_at_least_128_bits() {
        let bits = KEY_CHARS as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits >= 128.0, "{bits}");
    }

    #[test]
    fn every_character_is_used() {
        let mut counts = [0usize; 36];
        for _ in 0..400 {
            let (key, _) = generate().unwrap();
            for byte in key.expose()[PREFIX.len()..].bytes() {
                let index = ALPHABET.iter().position(|c| *c == byte).unwrap();
                counts[index] += 1;
            }
        }
        // 12,800 draws, about 356 per character: none may be missing or dominant.
        assert!(counts.iter().all(|&n| n > 200 && n < 520), "{counts:?}");
    }
}
