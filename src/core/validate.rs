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

/// Rocket.Chat's default username rule (`UTF8_Names_Validation` = `[0-9a-zA-Z-_.]+`),
/// at most 64 characters.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A plausible email address: one `@`, a non-empty local part, a dotted
/// domain, no whitespace, at most 254 characters.
pub fn is_plausible_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(char::is_whitespace) {
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
