//! A filtered, sorted page of users: Rocket.Chat's `users.list` `query` and
//! `sort` parameters, parsed into a typed, validated [`UserQuery`] that the
//! stores translate (SQLite: SQL with bound parameters; MongoDB: a filter
//! document). No part of the client's JSON reaches a database: only this AST,
//! built over an allow-list.
//!
//! **Fields** ([`Field`]): `_id`, `username`, `name`, `type`, `active`,
//! `roles`, and `emails.address` only for a caller who sees email addresses
//! (oneself aside, permission `view-full-other-user-info`); for anyone else it
//! is refused like an unknown field (Rocket.Chat refuses it the same way: it
//! allows querying only the fields the caller may read), so a filter cannot
//! probe whose address is whose. Every other field (`services.*`, `lastLogin`,
//! `customFields`, ...) is refused.
//!
//! **Operators**: `$and`, `$or` (non-empty arrays of filters), and on a field
//! a value (equality) or an object of `$eq`, `$ne`, `$in`, `$nin` (at most
//! [`MAX_IN`] values), `$exists`, `$regex` with `$options` `""` or `"i"`.
//! Values are strings (`active`: booleans); `null`, arrays, objects as values
//! and every other operator (`$where`, `$expr`, `$function`, `$gt`, ...) are
//! refused. At most [`MAX_DEPTH`] nested `$and`/`$or` and [`MAX_CONDITIONS`]
//! conditions in all.
//!
//! **Regular expressions** ([`SafeRegex`]) are evaluated by MongoDB's PCRE,
//! which backtracks, and on SQLite by the `regex` crate (linear time). So a
//! pattern must mean the same to both and cost little to either: at most
//! [`MAX_REGEX_LEN`] characters; no groups with `(?` (lookaround, inline
//! flags, named groups), no backreferences, no counted repetition `{}`, no
//! escapes but of punctuation (`\d`, `\w`, `\b`, `\p` differ between the two
//! engines: write `[0-9]`), no quantifier on a group, and at most
//! [`MAX_QUANTIFIERS`] quantifiers. Without a repeated group PCRE cannot
//! backtrack exponentially; with few quantifiers over short fields
//! (usernames, names) the polynomial worst case stays small, and every store
//! call has its timeout besides. Case folding of `i` is the same for ASCII
//! letters; beyond ASCII the two engines may differ, and PCRE's `$` also
//! matches before a value's final newline.
//!
//! **Sort** ([`SortField`]): `username`, `name`, `type`, `active`,
//! `createdAt`, `_id`, each `1` or `-1`, at most [`MAX_SORT_KEYS`]; ties go by
//! `_id`. Strings compare by their bytes (case matters), as MongoDB's default;
//! a missing value sorts first ascending. Default: `username`.

use serde_json::{Map, Value};
use std::fmt;

/// Longest `query` parameter accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 4096;
/// Deepest nesting of `$and` / `$or`.
pub const MAX_DEPTH: usize = 4;
/// Most field conditions in one filter.
pub const MAX_CONDITIONS: usize = 32;
/// Most values of one `$in` / `$nin`.
pub const MAX_IN: usize = 100;
/// Longest regular expression, in characters.
pub const MAX_REGEX_LEN: usize = 128;
/// Most quantifiers (`*`, `+`, `?`) in one regular expression.
pub const MAX_QUANTIFIERS: usize = 3;
/// Most keys of `sort`.
pub const MAX_SORT_KEYS: usize = 3;
/// Longest field or operator name echoed in an error.
const MAX_ECHO: usize = 64;

/// A user field a filter may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `_id` (string).
    Id,
    /// `username` (string, case-sensitive here, as in MongoDB).
    Username,
    /// `name` (string).
    Name,
    /// `type` (string: `user`, `bot`, `app`).
    Kind,
    /// `active` (boolean).
    Active,
    /// `roles` (array of strings: a condition holds if it holds for one role).
    Roles,
    /// `emails.address` (array: a condition holds if it holds for one address).
    EmailAddress,
}

impl Field {
    /// Rocket.Chat's name of the field.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "_id",
            Field::Username => "username",
            Field::Name => "name",
            Field::Kind => "type",
            Field::Active => "active",
            Field::Roles => "roles",
            Field::EmailAddress => "emails.address",
        }
    }

    /// Whether the field holds several values (an array in MongoDB).
    pub fn is_array(self) -> bool {
        matches!(self, Field::Roles | Field::EmailAddress)
    }

    fn is_bool(self) -> bool {
        self == Field::Active
    }

    fn parse(name: &str, sees_emails: bool) -> Option<Self> {
        Some(match name {
            "_id" => Field::Id,
            "username" => Field::Username,
            "name" => Field::Name,
            "type" => Field::Kind,
            "active" => Field::Active,
            "roles" => Field::Roles,
            "emails.address" if sees_emails => Field::EmailAddress,
            _ => return None,
        })
    }
}

/// A value compared with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Str(String),
    Bool(bool),
}

/// A regular expression that passed [`SafeRegex::new`]'s rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeRegex {
    pattern: String,
    case_insensitive: bool,
}

impl SafeRegex {
    /// Checks `pattern` against the rules in the module documentation (and
    /// that the `regex` crate compiles it); `Err` says why not.
    pub fn new(pattern: &str, case_insensitive: bool) -> Result<Self, &'static str> {
        if pattern.chars().count() > MAX_REGEX_LEN {
            return Err("too long");
        }
        let mut quantifiers = 0;
        let mut in_class = false;
        let mut prev_close_group = false;
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let after_group = std::mem::take(&mut prev_close_group);
            match c {
                '\\' => match chars.next() {
                    Some(e) if e.is_ascii_punctuation() => {}
                    _ => return Err("escape"),
                },
                '[' if in_class => return Err("nested class"),
                '[' => {
                    in_class = true;
                    if chars.peek() == Some(&'^') {
                        chars.next();
                    }
                    // A leading `]` is a literal to PCRE, an error to Rust: refuse.
                    if chars.peek() == Some(&']') {
                        return Err("empty class");
                    }
                }
                ']' if in_class => in_class = false,
                '&' | '-' | '~' if in_class && chars.peek() == Some(&c) => {
                    return Err("class operator")
                }
                _ if in_class => {}
                '{' | '}' => return Err("counted repetition"),
                '(' if chars.peek() == Some(&'?') => return Err("group syntax"),
                ')' => prev_close_group = true,
                '*' | '+' | '?' => {
                    if after_group {
                        return Err("quantified group");
                    }
                    quantifiers += 1;
                    if quantifiers > MAX_QUANTIFIERS {
                        return Err("too many quantifiers");
                    }
                }
                _ => {}
            }
        }
        if in_class {
            return Err("unclosed class");
        }
        let re = Self {
            pattern: pattern.to_string(),
            case_insensitive,
        };
        re.compile().map_err(|_| "syntax")?;
        Ok(re)
    }

    /// The pattern, as the client gave it (for MongoDB's `$regex`).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether it ignores case (MongoDB's `$options: "i"`).
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The pattern for the `regex` crate, flags inline.
    pub fn rust_pattern(&self) -> String {
        if self.case_insensitive {
            format!("(?i){}", self.pattern)
        } else {
            self.pattern.clone()
        }
    }

    /// Compiled by the `regex` crate, with a small size limit.
    pub fn compile(&self) -> Result<regex::Regex, regex::Error> {
        compile_rust(&self.rust_pattern())
    }
}

/// Compiles a pattern made by [`SafeRegex::rust_pattern`] (the SQLite
/// store's function), with a small size limit.
pub fn compile_rust(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 18)
        .nest_limit(16)
        .build()
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Equal (for an array field: one element equal).
    Eq(Scalar),
    /// Not equal, also when missing (array: no element equal).
    Ne(Scalar),
    /// Equal to one of (array: one element in); empty matches nothing.
    In(Vec<Scalar>),
    /// Equal to none of, also when missing (array: no element in).
    Nin(Vec<Scalar>),
    /// Present (array: at least one element) or not.
    Exists(bool),
    /// Matches (array: one element matches); a missing value never does.
    Regex(SafeRegex),
}

/// A filter over users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every one holds (empty: every user).
    And(Vec<Filter>),
    /// One holds.
    Or(Vec<Filter>),
    /// A condition on a field.
    Test(Field, Condition),
}

impl Filter {
    /// The filter that every user passes.
    pub fn all() -> Self {
        Filter::And(Vec::new())
    }
}

/// A field a page may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Username,
    Name,
    Kind,
    Active,
    CreatedAt,
    Id,
}

impl SortField {
    /// Rocket.Chat's (MongoDB's) name of the field.
    pub fn name(self) -> &'static str {
        match self {
            SortField::Username => "username",
            SortField::Name => "name",
            SortField::Kind => "type",
            SortField::Active => "active",
            SortField::CreatedAt => "createdAt",
            SortField::Id => "_id",
        }
    }
}

/// One sort key: the field, and whether descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub descending: bool,
}

/// What a store answers a page for: the filter, the order (ties by `_id`,
/// which the stores add), and the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub filter: Filter,
    /// Never empty (default: `username` ascending).
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub count: u64,
}

impl UserQuery {
    /// Every user, by username.
    pub fn all(offset: u64, count: u64) -> Self {
        Self {
            filter: Filter::all(),
            sort: default_sort(),
            offset,
            count,
        }
    }
}

/// `username` ascending.
pub fn default_sort() -> Vec<SortKey> {
    vec![SortKey {
        field: SortField::Username,
        descending: false,
    }]
}

/// Why a `query` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Not JSON, not an object, or over [`MAX_QUERY_LEN`].
    Malformed,
    /// A field outside the allow-list (Rocket.Chat's `Invalid attribute`).
    Attribute(String),
    /// An operator outside the allow-list (Rocket.Chat's `Invalid operation`).
    Operation(String),
    /// A value of the wrong kind for its field or operator.
    Value(String),
    /// A regular expression refused by [`SafeRegex::new`] (field, reason).
    Regex(String, &'static str),
    /// Nested deeper than [`MAX_DEPTH`] or more than [`MAX_CONDITIONS`] conditions.
    TooComplex,
}

/// An echo of a client-named key: at most [`MAX_ECHO`] characters.
fn echo(key: &str) -> String {
    key.chars().take(MAX_ECHO).collect()
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Malformed => f.write_str("Invalid query parameter provided"),
            QueryError::Attribute(k) => write!(f, "Invalid attribute: {k}"),
            QueryError::Operation(k) => write!(f, "Invalid operation: {k}"),
            QueryError::Value(k) => write!(f, "Invalid value: {k}"),
            QueryError::Regex(k, why) => write!(f, "Invalid regular expression ({why}): {k}"),
            QueryError::TooComplex => f.write_str("Query too complex"),
        }
    }
}

/// Parses Rocket.Chat's `query` parameter (a JSON object). `sees_emails`:
/// whether the caller may see other users' email addresses (else
/// `emails.address` is refused). A blank parameter is every user.
pub fn parse_filter(raw: &str, sees_emails: bool) -> Result<Filter, QueryError> {
    if raw.trim().is_empty() {
        return Ok(Filter::all());
    }
    if raw.len() > MAX_QUERY_LEN {
        return Err(QueryError::Malformed);
    }
    let value: Value = serde_json::from_str(raw).map_err(|_| QueryError::Malformed)?;
    let Value::Object(map) = value else {
        return Err(QueryError::Malformed);
    };
    let mut parser = Parser {
        sees_emails,
        conditions: 0,
    };
    parser.object(&map, 0)
}

struct Parser {
    sees_emails: bool,
    conditions: usize,
}

impl Parser {
    fn object(&mut self, map: &Map<String, Value>, depth: usize) -> Result<Filter, QueryError> {
        let mut all = Vec::with_capacity(map.len());
        for (key, value) in map {
            match key.as_str() {
                "$and" | "$or" => {
                    if depth >= MAX_DEPTH {
                        return Err(QueryError::TooComplex);
                    }
                    let Value::Array(items) = value else {
                        return Err(QueryError::Value(key.clone()));
                    };
                    if items.is_empty() {
                        return Err(QueryError::Value(key.clone()));
                    }
                    let mut parts = Vec::with_capacity(items.len());
                    for item in items {
                        let Value::Object(m) = item else {
                            return Err(QueryError::Value(key.clone()));
                        };
                        parts.push(self.object(m, depth + 1)?);
                    }
                    all.push(if key == "$and" {
                        Filter::And(parts)
                    } else {
                        Filter::Or(parts)
                    });
                }
                op if op.starts_with('$') => return Err(QueryError::Operation(echo(op))),
                name => {
                    let field = Field::parse(name, self.sees_emails)
                        .ok_or_else(|| QueryError::Attribute(echo(name)))?;
                    all.extend(self.field(field, value)?);
                }
            }
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Filter::And(all)
        })
    }

    fn count(&mut self) -> Result<(), QueryError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(QueryError::TooComplex);
        }
        Ok(())
    }

    fn scalar(field: Field, value: &Value) -> Result<Scalar, QueryError> {
        match (value, field.is_bool()) {
            (Value::String(s), false) => Ok(Scalar::Str(s.clone())),
            (Value::Bool(b), true) => Ok(Scalar::Bool(*b)),
            _ => Err(QueryError::Value(field.name().into())),
        }
    }

    fn scalars(field: Field, value: &Value) -> Result<Vec<Scalar>, QueryError> {
        let Value::Array(items) = value else {
            return Err(QueryError::Value(field.name().into()));
        };
        if items.len() > MAX_IN {
            return Err(QueryError::TooComplex);
        }
        items.iter().map(|v| Self::scalar(field, v)).collect()
    }

    /// The conditions of `field: value`.
    fn field(&mut self, field: Field, value: &Value) -> Result<Vec<Filter>, QueryError> {
        let Value::Object(ops) = value else {
            self.count()?;
            return Ok(vec![Filter::Test(
                field,
                Condition::Eq(Self::scalar(field, value)?),
            )]);
        };
        let options = match ops.get("$options") {
            None => false,
            Some(Value::String(o)) if o.is_empty() => false,
            Some(Value::String(o)) if o == "i" => true,
            Some(_) => return Err(QueryError::Value("$options".into())),
        };
        if ops.contains_key("$options") && !ops.contains_key("$regex") {
            return Err(QueryError::Value("$options".into()));
        }
        if ops.is_empty() {
            return Err(QueryError::Value(field.name().into()));
        }
        let mut out = Vec::with_capacity(ops.len());
        for (op, v) in ops {
            let condition = match op.as_str() {
                "$options" => continue,
                "$eq" => Condition::Eq(Self::scalar(field, v)?),
                "$ne" => Condition::Ne(Self::scalar(field, v)?),
                "$in" => Condition::In(Self::scalars(field, v)?),
                "$nin" => Condition::Nin(Self::scalars(field, v)?),
                "$exists" => match v {
                    Value::Bool(b) => Condition::Exists(*b),
                    _ => return Err(QueryError::Value(op.clone())),
                },
                "$regex" => {
                    let Value::String(p) = v else {
                        return Err(QueryError::Value(op.clone()));
                    };
                    if field.is_bool() {
                        return Err(QueryError::Value(field.name().into()));
                    }
                    let re = SafeRegex::new(p, options)
                        .map_err(|why| QueryError::Regex(field.name().into(), why))?;
                    Condition::Regex(re)
                }
                other if other.starts_with('$') => {
                    return Err(QueryError::Operation(echo(other)));
                }
                // `{"username": {"a": 1}}`: MongoDB would compare with a
                // document; tokend's fields hold none.
                _ => return Err(QueryError::Value(field.name().into())),
            };
            self.count()?;
            out.push(Filter::Test(field, condition));
        }
        Ok(out)
    }
}

/// Why a `sort` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortError;

/// Parses Rocket.Chat's `sort` parameter (`{"username": 1, "createdAt": -1}`);
/// blank: [`default_sort`].
pub fn parse_sort(raw: &str) -> Result<Vec<SortKey>, SortError> {
    if raw.trim().is_empty() {
        return Ok(default_sort());
    }
    if raw.len() > MAX_QUERY_LEN {
        return Err(SortError);
    }
    // In the order given (a JSON object's keys, kept in order).
    let Ok(Ordered(map)) = serde_json::from_str::<Ordered>(raw) else {
        return Err(SortError);
    };
    if map.is_empty() {
        return Ok(default_sort());
    }
    if map.len() > MAX_SORT_KEYS {
        return Err(SortError);
    }
    let keys = map
        .iter()
        .map(|(k, v)| {
            let field = match k.as_str() {
                "username" => SortField::Username,
                "name" => SortField::Name,
                "type" => SortField::Kind,
                "active" => SortField::Active,
                "createdAt" => SortField::CreatedAt,
                "_id" => SortField::Id,
                _ => return Err(SortError),
            };
            let descending = match v.as_i64() {
                Some(1) => false,
                Some(-1) => true,
                _ => return Err(SortError),
            };
            Ok(SortKey { field, descending })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = Vec::with_capacity(keys.len());
    for key in &keys {
        if seen.contains(&key.field) {
            return Err(SortError);
        }
        seen.push(key.field);
    }
    Ok(keys)
}

/// A JSON object's entries in their order.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, Value>()? {
                    if out.len() > MAX_SORT_KEYS {
                        return Err(serde::de::Error::custom("too many keys"));
                    }
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(q: &str) -> Filter {
        parse_filter(q, true).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    #[test]
    fn equality_and_operators() {
        assert_eq!(
            ok(r#"{"username":"bob"}"#),
            Filter::Test(Field::Username, Condition::Eq(Scalar::Str("bob".into())))
        );
        assert_eq!(
            ok(r#"{"active":{"$ne":true}}"#),
            Filter::Test(Field::Active, Condition::Ne(Scalar::Bool(true)))
        );
        let f = ok(r#"{"$or":[{"roles":"admin"},{"name":{"$regex":"^b","$options":"i"}}]}"#);
        let Filter::Or(parts) = f else { panic!() };
        assert_eq!(parts.len(), 2);
        assert_eq!(ok("  "), Filter::all());
    }

    #[test]
    fn refusals() {
        let err = |q: &str, emails| parse_filter(q, emails).unwrap_err();
        assert_eq!(
            err(r#"{"$where":"1"}"#, true),
            QueryError::Operation("$where".into())
        );
        assert_eq!(
            err(r#"{"services.password.bcrypt":{"$regex":"^\\$2"}}"#, true),
            QueryError::Attribute("services.password.bcrypt".into())
        );
        assert_eq!(
            err(r#"{"emails.address":{"$regex":"^a"}}"#, false),
            QueryError::Attribute("emails.address".into())
        );
        assert_eq!(
            err(r#"{"username":{"$gt":""}}"#, true),
            QueryError::Operation("$gt".into())
        );
        assert!(matches!(
            err(r#"{"username":{"$eq":{"$gt":""}}}"#, true),
            QueryError::Value(_)
        ));
        assert!(matches!(
            err(r#"{"username":null}"#, true),
            QueryError::Value(_)
        ));
        assert!(matches!(err("[1]", true), QueryError::Malformed));
        assert!(matches!(err("{", true), QueryError::Malformed));
        let deep = r#"{"$and":[{"$and":[{"$and":[{"$and":[{"$and":[{"name":"a"}]}]}]}]}]}"#;
        assert_eq!(err(deep, true), QueryError::TooComplex);
    }

    #[test]
    fn regex_rules() {
        for good in ["^bo", "b.b$", "[a-z]+x", "a|b", "(ab|cd)", r"\.", "a*b?c+"] {
            assert!(SafeRegex::new(good, false).is_ok(), "{good}");
        }
        for bad in [
            "(a+)+$",
            "(a|aa)*",
            "(?=a)",
            "(?i)a",
            r"(a)\1",
            r"\d",
            "a{1,99}",
            "a*a*a*a*",
            "[[a]]",
            "[a&&b]",
            "(",
            &"a".repeat(MAX_REGEX_LEN + 1),
        ] {
            assert!(SafeRegex::new(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn sorts() {
        assert_eq!(parse_sort("").unwrap(), default_sort());
        let keys = parse_sort(r#"{"createdAt":-1,"name":1}"#).unwrap();
        assert_eq!(keys[0].field, SortField::CreatedAt);
        assert!(keys[0].descending);
        assert!(parse_sort(r#"{"services":1}"#).is_err());
        assert!(parse_sort(r#"{"username":2}"#).is_err());
        assert!(parse_sort("x").is_err());
        let keys = parse_sort(r#"{"name":1,"createdAt":-1}"#).unwrap();
        assert_eq!(keys[0].field, SortField::Name);
    }
}
