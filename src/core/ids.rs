//! Random identifiers and tokens from the operating system's CSPRNG.

use rand::Rng;

/// Alphabet of Meteor's `Random.id()` (no look-alike characters).
const ID_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";
/// Alphabet of Meteor's `Random.secret()` (URL-safe base64 alphabet).
const SECRET_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// Length of a user id.
pub const ID_LEN: usize = 17;
/// Length of every token tokend issues (43 × 6 bits ≈ 256 bits).
pub const TOKEN_LEN: usize = 43;

fn draw(alphabet: &[u8], len: usize) -> String {
    // `rand::rng()` is a ChaCha CSPRNG seeded and periodically reseeded from the OS.
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new 17-character user id, as Rocket.Chat makes them.
pub fn new_user_id() -> String {
    draw(ID_ALPHABET, ID_LEN)
}

/// A new 43-character secret token (`[A-Za-z0-9_-]`).
pub fn new_token() -> String {
    draw(SECRET_ALPHABET, TOKEN_LEN)
}

/// A new random password for the generated first admin.
pub fn new_password() -> String {
    draw(ID_ALPHABET, 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_have_the_documented_shape_and_differ() {
        let tokens: HashSet<String> = (0..1000).map(|_| new_token()).collect();
        assert_eq!(tokens.len(), 1000);
        for t in &tokens {
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn user_ids_use_meteors_alphabet() {
        let id = new_user_id();
        assert_eq!(id.len(), ID_LEN);
        assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)));
    }
}
