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

/// A new 17-character id in the alphabet of [`new_user_id`] whose first
/// eight characters spell `at_ms` (milliseconds since the epoch, clamped at
/// zero), so ids sort by time: inserting one appends to an index instead of
/// writing a random page of it. The other nine are random (55^9 values per
/// millisecond). For records that carry their time anyway (audit and login
/// events), never for users.
pub fn new_time_ordered_id(at_ms: i64) -> String {
    const TIME_LEN: usize = 8;
    let base = ID_ALPHABET.len() as u64;
    let mut t = u64::try_from(at_ms).unwrap_or(0);
    let mut time = [0u8; TIME_LEN];
    for slot in time.iter_mut().rev() {
        *slot = ID_ALPHABET[(t % base) as usize];
        t /= base;
    }
    let mut id: String = time.iter().map(|&b| b as char).collect();
    id.push_str(&draw(ID_ALPHABET, ID_LEN - TIME_LEN));
    id
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
    fn time_ordered_ids_sort_by_time_and_look_like_user_ids() {
        let times = [
            0,
            1,
            54,
            55,
            1_700_000_000_000,
            1_700_000_000_001,
            4_102_444_800_000,
        ];
        let ids: Vec<String> = times.iter().map(|&t| new_time_ordered_id(t)).collect();
        for id in &ids {
            assert_eq!(id.len(), ID_LEN);
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)));
        }
        assert!(ids.windows(2).all(|w| w[0][..8] < w[1][..8]), "{ids:?}");
        // Same millisecond: same prefix, different ids.
        let (a, b) = (new_time_ordered_id(42), new_time_ordered_id(42));
        assert_eq!(a[..8], b[..8]);
        assert_ne!(a, b);
        assert_eq!(new_time_ordered_id(-5)[..8], new_time_ordered_id(0)[..8]);
    }

    #[test]
    fn user_ids_use_meteors_alphabet() {
        let id = new_user_id();
        assert_eq!(id.len(), ID_LEN);
        assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)));
    }
}
