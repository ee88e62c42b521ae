//! Input rules shared by both dialects.

/// A parameter that is present and not blank, trimmed: both dialects read
/// optional string fields this way (a blank one counts as absent).
pub fn nonblank(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// The largest `offset` or `count` of a page of users: a store's skip and
/// limit are signed 64-bit numbers (MongoDB), so anything beyond is refused.
pub const MAX_PAGE_NUMBER: u64 = i64::MAX as u64;

/// Whether a page offset or count can be served.
pub fn is_page_number(n: u64) -> bool {
    n <= MAX_PAGE_NUMBER
}

/// The longest personal access token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

/// The longest username (Rocket.Chat's rule below, SAYMON's `login`).
pub const MAX_USERNAME_LEN: usize = 64;

/// The longest email address.
pub const MAX_EMAIL_LEN: usize = 254;

/// The longest name a password login may present (a username or an email
/// address): nothing longer can match an account, so it is refused before
/// any lookup.
pub const MAX_LOGIN_NAME_LEN: usize = MAX_EMAIL_LEN;

/// Whether a name presented to log in (username or email address) is no
/// longer than [`MAX_LOGIN_NAME_LEN`] bytes; a longer one is refused as a
/// bad request before any lookup.
pub fn is_login_name_length(name: &str) -> bool {
    name.len() <= MAX_LOGIN_NAME_LEN
}

/// The SAYMON users listing: entries per page when `limit` is not given,
/// and the most a `limit` may ask for.
pub const USERS_PAGE_DEFAULT: u64 = 100;
/// See [`USERS_PAGE_DEFAULT`].
pub const USERS_PAGE_MAX: u64 = 500;

/// The page size of the SAYMON users listing for a requested `limit`:
/// [`USERS_PAGE_DEFAULT`] when absent, at most [`USERS_PAGE_MAX`]; `None`
/// for 0, which asks for nothing.
pub fn users_page_limit(requested: Option<u64>) -> Option<u64> {
    match requested {
        None => Some(USERS_PAGE_DEFAULT),
        Some(0) => None,
        Some(n) => Some(n.min(USERS_PAGE_MAX)),
    }
}

/// Rocket.Chat's default username rule (`UTF8_Names_Validation` = `[0-9a-zA-Z-_.]+`),
/// at most 64 characters.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A plausible email address: one `@`, a non-empty local part, a dotted
/// domain, no whitespace, at most 254 characters.
pub fn is_plausible_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_LEN || email.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(is_valid_username("john.doe-1_x"));
        assert!(!is_valid_username(""));
        assert!(!is_valid_username("john doe"));
        assert!(!is_valid_username("jöhn"));
        assert!(!is_valid_username(&"a".repeat(65)));
    }

    #[test]
    fn emails() {
        assert!(is_plausible_email("a@b.co"));
        assert!(!is_plausible_email("a@b"));
        assert!(!is_plausible_email("@b.co"));
        assert!(!is_plausible_email("a@@b.co"));
        assert!(!is_plausible_email("a b@c.co"));
        assert!(!is_plausible_email("a@b..co"));
    }
}
