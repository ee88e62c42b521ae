//! A request body as Rocket.Chat parses one: JSON or
//! `application/x-www-form-urlencoded`, and an empty body (or none at all)
//! means "no fields".
//!
//! Form bodies follow Rocket.Chat's parser (`qs`, extended): `a[b]=c` nests,
//! `a[]=x` and repeated keys make arrays. Form values are strings; like
//! Rocket.Chat's validator (ajv with `coerceTypes`), they are coerced to the
//! type the body's schema states (`"true"` to a boolean, `"5"` to a number,
//! a single value to a one-element array). A string field stays a string.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::{Map, Value};

/// The form media type.
const FORM: &str = "application/x-www-form-urlencoded";

/// How deep a form key may nest (`a[b][c]...`), as `qs`'s default depth.
const MAX_DEPTH: usize = 5;

/// Largest index a form key may give an array element (`a[20]`), as `qs`'s
/// `arrayLimit`; a larger one makes an object key, so no client can make
/// tokend allocate a huge array.
const MAX_INDEX: usize = 20;

/// A request body, JSON or form-encoded: `None` when the body is empty.
pub struct RcBody<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Send> ApiExtractor<'a> for RcBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some("JSON or form-encoded (`a[b]=c` nests, `a[]=x` lists)."),
            content: vec![
                MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: T::schema_ref(),
                },
                MetaMediaType {
                    content_type: FORM,
                    schema: T::schema_ref(),
                },
            ],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let is_form = request
            .content_type()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(FORM));
        let value = if is_form {
            let mut registry = Registry::new();
            T::register(&mut registry);
            coerce(parse_form(&data), &T::schema_ref(), &registry, 0)
        } else {
            serde_json::from_slice(&data).map_err(|err| ParseRequestPayloadError {
                reason: err.to_string(),
            })?
        };
        let parsed = T::parse_from_json(Some(value)).map_err(|err| ParseRequestPayloadError {
            reason: err.into_message(),
        })?;
        Ok(Self(Some(parsed)))
    }
}

/// A form body as a JSON object of strings, nested as `qs` nests it.
pub fn parse_form(data: &[u8]) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(data) {
        let path = key_path(&key);
        if path.is_empty() {
            continue;
        }
        insert(&mut root, &path, Value::String(value.into_owned()));
    }
    arrays(root)
}

/// `a[b][]` → `["a", "b", ""]`; past [`MAX_DEPTH`] the rest stays one key.
fn key_path(key: &str) -> Vec<String> {
    let (base, mut rest) = match key.find('[') {
        Some(0) | None => return vec![key.to_string()],
        Some(i) => (&key[..i], &key[i..]),
    };
    let mut path = vec![base.to_string()];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(end) = inner.find(']') else { break };
        if path.len() > MAX_DEPTH {
            break;
        }
        path.push(inner[..end].to_string());
        rest = &inner[end + 1..];
    }
    if !rest.is_empty() {
        path.push(rest.to_string());
    }
    path
}

/// Puts `value` at `path`; `""` segments append; a repeated leaf becomes a list.
fn insert(node: &mut Value, path: &[String], value: Value) {
    let Some((head, tail)) = path.split_first() else {
        return;
    };
    let Value::Object(map) = node else {
        return;
    };
    // `[]` appends: store under the next free numeric key.
    let key = if head.is_empty() {
        map.len().to_string()
    } else {
        head.clone()
    };
    if tail.is_empty() {
        match map.get_mut(&key) {
            None => {
                map.insert(key, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
        return;
    }
    let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        // `a=1&a[b]=2`: the nested form wins, as in `qs`.
        *child = Value::Object(Map::new());
    }
    insert(child, tail, value);
}

/// Objects whose keys are all small indices become arrays (in index order).
fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let indexed = !map.is_empty()
                && map
                    .keys()
                    .all(|k| k.parse::<usize>().is_ok_and(|i| i <= MAX_INDEX));
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(arrays).collect()),
        other => other,
    }
}

/// The schema a reference names.
fn resolve<'r>(schema: &'r MetaSchemaRef, registry: &'r Registry) -> Option<&'r MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

/// Coerces form strings to the types `schema` states (ajv's `coerceTypes`).
fn coerce(value: Value, schema: &MetaSchemaRef, registry: &Registry, depth: usize) -> Value {
    let Some(schema) = resolve(schema, registry) else {
        return value;
    };
    if depth > MAX_DEPTH + 2 {
        return value;
    }
    if !schema.all_of.is_empty() {
        return schema
            .all_of
            .iter()
            .fold(value, |v, part| coerce(v, part, registry, depth + 1));
    }
    if !schema.one_of.is_empty() || !schema.any_of.is_empty() {
        // A union: coerce by the first alternative of the value's own kind
        // (an object by an object schema), or leave it as it is.
        let kind = |s: &MetaSchemaRef| resolve(s, registry).map(|s| s.ty);
        let wanted = if value.is_object() {
            "object"
        } else {
            "string"
        };
        let alternative = schema
            .one_of
            .iter()
            .chain(&schema.any_of)
            .find(|s| kind(s) == Some(wanted));
        return match alternative {
            Some(alt) => coerce(value, alt, registry, depth + 1),
            None => value,
        };
    }
    match (schema.ty, value) {
        ("boolean", Value::String(s)) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s),
        },
        ("integer", Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(s),
        },
        ("number", Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(n) => serde_json::Number::from_f64(n).map_or(Value::String(s), Value::Number),
            Err(_) => Value::String(s),
        },
        ("array", value) => {
            let items = match value {
                Value::Array(items) => items,
                single => vec![single],
            };
            Value::Array(match &schema.items {
                Some(item) => items
                    .into_iter()
                    .map(|v| coerce(v, item, registry, depth + 1))
                    .collect(),
                None => items,
            })
        }
        ("object", Value::Object(map)) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let property = schema.properties.iter().find(|(name, _)| *name == k);
                    let v = match property {
                        Some((_, s)) => coerce(v, s, registry, depth + 1),
                        None => v,
                    };
                    (k, v)
                })
                .collect(),
        ),
        (_, value) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_nest_as_rocket_chats_parser_does() {
        let v = parse_form(b"user=admin&password=p%40ss+word");
        assert_eq!(v, json!({"user": "admin", "password": "p@ss word"}));
        let v = parse_form(b"data[name]=N&data[roles][]=a&data[roles][]=b&userId=x");
        assert_eq!(
            v,
            json!({"data": {"name": "N", "roles": ["a", "b"]}, "userId": "x"})
        );
        assert_eq!(parse_form(b"r=a&r=b"), json!({"r": ["a", "b"]}));
        assert_eq!(parse_form(b"r[1]=b&r[0]=a"), json!({"r": ["a", "b"]}));
        // A huge index stays an object key: no huge allocation.
        assert_eq!(
            parse_form(b"r[99999999]=a"),
            json!({"r": {"99999999": "a"}})
        );
        // Nesting past the depth limit stays one key.
        let v = parse_form(b"a[b][c][d][e][f][g][h]=1");
        assert_eq!(v["a"]["b"]["c"]["d"]["e"]["f"], json!({"[g][h]": "1"}));
    }
}
