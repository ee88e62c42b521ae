//! Rocket.Chat `users.list` (operation `get-api-v1-users.list` of
//! Rocket.Chat's OpenAPI, `user-management.yaml`) with its `query`, `sort`
//! and `fields` parameters, through the real router on both stores: the
//! filters work and `total` counts them; the attacks a client-written
//! MongoDB filter invites (operator injection, probing hidden fields,
//! catastrophic regular expressions) are refused and leak nothing.

use crate::common::*;
use serde_json::{json, Value};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn list(app: &TestApp, params: &[(&str, &str)], creds: &Creds) -> (u16, Value) {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    let path = format!("/api/v1/users.list?{}", query.join("&"));
    status_json(app.rc_get(&path, creds).await).await
}

fn names(body: &Value) -> Vec<String> {
    body["users"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|u| u["username"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The 200 shape of `get-api-v1-users.list`: `users`, `count`, `offset`,
/// `total`, `success`, and nothing secret in any user.
fn assert_page_shape(body: &Value) {
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["count", "offset", "success", "total", "users"],
        "{body}"
    );
    assert_eq!(body["success"], true);
    assert_eq!(
        body["count"].as_u64(),
        Some(body["users"].as_array().unwrap().len() as u64)
    );
    for user in body["users"].as_array().unwrap() {
        assert!(user["_id"].is_string(), "{user}");
        for hidden in ["services", "password", "bcrypt", "loginTokens", "importIds"] {
            assert!(!user.to_string().contains(hidden), "{user}");
        }
    }
}

/// A refusal of `parseJsonQuery` / the query check: 400, Rocket.Chat's
/// error shape with `errorType`, and no users.
fn assert_refused(status: u16, body: &Value, error_type: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["errorType"], error_type, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.ends_with(&format!("[{error_type}]")), "{body}");
    assert!(
        body.get("users").is_none() && body.get("total").is_none(),
        "{body}"
    );
}

store_tests! {
    /// `get-api-v1-users.list`: `query` filters, `total` counts the filtered
    /// users, `count`/`offset` page them, `sort` orders them.
    async fn users_list_query_filters_pages_and_sorts(kind) {
        let app = TestApp::start(&kind).await;
        for (name, roles) in [("alice", &["user"][..]), ("bob", &["user", "bot"]), ("carol", &["bot"]), ("dave", &["user"])] {
            app.clock.advance(chrono::Duration::seconds(60));
            app.user(name, roles).await;
        }
        let (status, body) = list(&app, &[("query", r#"{"roles":"bot"}"#)], &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_page_shape(&body);
        assert_eq!(names(&body), ["bob", "carol"]);
        assert_eq!(body["total"], 2);

        let q = r#"{"$or":[{"roles":"bot"},{"username":{"$regex":"^D","$options":"i"}}],"active":true}"#;
        let (_, body) = list(&app, &[("query", q), ("count", "2"), ("offset", "1")], &app.admin).await;
        assert_page_shape(&body);
        assert_eq!(names(&body), ["carol", "dave"]);
        assert_eq!((body["count"].as_u64(), body["offset"].as_u64(), body["total"].as_u64()), (Some(2), Some(1), Some(3)));

        let (_, body) = list(&app, &[("query", r#"{"roles":{"$nin":["bot"]}}"#), ("sort", r#"{"username":-1}"#)], &app.admin).await;
        assert_eq!(names(&body), ["dave", "alice", "admin"]);
        let (_, body) = list(&app, &[("sort", r#"{"createdAt":-1}"#), ("count", "3")], &app.admin).await;
        assert_eq!(names(&body), ["dave", "carol", "bob"]);
        assert_eq!(body["total"], 5);
        // A filter nobody passes: an empty page, total 0.
        let (status, body) = list(&app, &[("query", r#"{"username":"nobody"}"#)], &app.admin).await;
        assert_eq!((status, names(&body), body["total"].as_u64()), (200, vec![], Some(0)));
        // An empty filter, sort or projection is no filter, sort or projection.
        let (_, body) = list(&app, &[("query", "{}"), ("sort", "{}"), ("fields", "{}")], &app.admin).await;
        assert_eq!(names(&body), ["admin", "alice", "bob", "carol", "dave"]);
    }

    /// Operator injection: every operator and field outside the allow-list is
    /// refused with 400 `error-invalid-query`, before any store read, and the
    /// answer holds no user. Attacks that would read hashes or tokens through
    /// a filter (`services.*`), run code (`$where`, `$function`, `$expr`), or
    /// compare where only equality is allowed (`$gt`).
    async fn users_list_refuses_operator_injection(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        for (q, error) in [
            (r#"{"$where":"this.services.password.bcrypt.length > 0"}"#, "Invalid operation: $where [error-invalid-query]"),
            (r#"{"$expr":{"$gt":["$createdAt",0]}}"#, "Invalid operation: $expr [error-invalid-query]"),
            (r#"{"$function":{"body":"return true","args":[],"lang":"js"}}"#, "Invalid operation: $function [error-invalid-query]"),
            (r#"{"services.password.bcrypt":{"$regex":"^\\$2"}}"#, "Invalid attribute: services.password.bcrypt [error-invalid-query]"),
            (r#"{"services.resume.loginTokens.hashedToken":{"$exists":true}}"#, "Invalid attribute: services.resume.loginTokens.hashedToken [error-invalid-query]"),
            (r#"{"services":{"$exists":true}}"#, "Invalid attribute: services [error-invalid-query]"),
            (r#"{"$or":[{"username":"bob"},{"services.totp.secret":{"$exists":true}}]}"#, "Invalid attribute: services.totp.secret [error-invalid-query]"),
            (r#"{"username":{"$gt":""}}"#, "Invalid operation: $gt [error-invalid-query]"),
            (r#"{"username":{"$where":"1"}}"#, "Invalid operation: $where [error-invalid-query]"),
            (r#"{"username":{"$eq":{"$gt":""}}}"#, "Invalid value: username [error-invalid-query]"),
            (r#"{"username":{"$in":[{"$gt":""}]}}"#, "Invalid value: username [error-invalid-query]"),
            (r#"{"username":{"a":1}}"#, "Invalid value: username [error-invalid-query]"),
            (r#"{"username":null}"#, "Invalid value: username [error-invalid-query]"),
            (r#"{"active":"true"}"#, "Invalid value: active [error-invalid-query]"),
            (r#"{"username":{"$regex":"b","$options":"s"}}"#, "Invalid value: $options [error-invalid-query]"),
            (r#"{"$and":[{"$and":[{"$and":[{"$and":[{"$and":[{"username":"bob"}]}]}]}]}]}"#, "Query too complex [error-invalid-query]"),
        ] {
            let (status, body) = list(&app, &[("query", q)], &app.admin).await;
            assert_refused(status, &body, "error-invalid-query");
            assert_eq!(body["error"], error, "{q}");
        }
        // Not JSON, or not an object: parseJsonQuery's refusal, echoing nothing.
        for q in ["{", "[1]", "\"username\"", "{\"username\":\"bob\"}}"] {
            let (status, body) = list(&app, &[("query", q)], &app.admin).await;
            assert_refused(status, &body, "error-invalid-query");
            assert_eq!(
                body,
                json!({
                    "success": false,
                    "error": "Invalid query parameter provided [error-invalid-query]",
                    "errorType": "error-invalid-query",
                    "details": { "helperMethod": "parseJsonQuery" },
                }),
                "{q}"
            );
        }
        // SQL in a value is a value (every value a bound parameter).
        for q in [
            r#"{"username":"x' OR '1'='1"}"#,
            r#"{"username":{"$in":["bob') OR 1=1 --"]}}"#,
            r#"{"name":{"$regex":"'\\) OR 1=1 --"}}"#,
        ] {
            let (status, body) = list(&app, &[("query", q)], &app.admin).await;
            assert_eq!((status, body["total"].as_u64()), (200, Some(0)), "{q}: {body}");
        }
        // A field name is echoed only in part.
        let long = format!(r#"{{"{}":1}}"#, "x".repeat(500));
        let (status, body) = list(&app, &[("query", &long)], &app.admin).await;
        assert_refused(status, &body, "error-invalid-query");
        assert!(body["error"].as_str().unwrap().len() < 120, "{body}");
    }

    /// Probing addresses through a filter: without
    /// `view-full-other-user-info` (a plain user), `emails.address` is refused
    /// outright, the same answer whether an address matches or not, so the
    /// filter is no oracle; with it (admin), it filters.
    async fn users_list_emails_filter_needs_view_full_other_user_info(kind) {
        let app = TestApp::start(&kind).await;
        app.user("alice", &[]).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        let mut answers = Vec::new();
        for q in [
            r#"{"emails.address":{"$regex":"^a"}}"#,
            r#"{"emails.address":{"$regex":"^zzz"}}"#,
            r#"{"emails.address":"alice@example.com"}"#,
            r#"{"$or":[{"username":"nobody"},{"emails.address":"alice@example.com"}]}"#,
        ] {
            let (status, body) = list(&app, &[("query", q)], &bob).await;
            assert_refused(status, &body, "error-invalid-query");
            assert_eq!(body["error"], "Invalid attribute: emails.address [error-invalid-query]");
            assert!(!body.to_string().contains("alice"), "{body}");
            answers.push((status, body));
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]));
        // The public fields filter for bob as for anyone.
        let (status, body) = list(&app, &[("query", r#"{"username":"alice"}"#)], &bob).await;
        assert_eq!((status, names(&body)), (200, vec!["alice".to_string()]), "{body}");
        assert!(body["users"][0].get("emails").is_none(), "{body}");
        // The admin holds view-full-other-user-info.
        let (status, body) = list(&app, &[("query", r#"{"emails.address":{"$regex":"^a"}}"#)], &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(names(&body), ["admin", "alice"]);
        assert_eq!(body["users"][1]["emails"][0]["address"], "alice@example.com");
    }

    /// Regular-expression injection: patterns that make a backtracking
    /// engine (MongoDB's PCRE) run exponentially or that it reads differently
    /// (lookaround, backreferences, counted repetition, class escapes), and
    /// over-long ones, are refused with 400 `error-invalid-query`; plain ones work.
    async fn users_list_bounds_regular_expressions(kind) {
        let app = TestApp::start(&kind).await;
        app.user(&format!("{}b", "a".repeat(30)), &[]).await;
        app.user("alice", &[]).await;
        let long = "a".repeat(129);
        for pattern in [
            "^(a+)+$",
            "^(a|aa)*$",
            "(a*)*b",
            "^(?=a)",
            "(?i)alice",
            "(a)\\1",
            "a{1,30}b",
            "\\d",
            "a*a*a*a*b",
            "[[:alpha:]]",
            long.as_str(),
        ] {
            let q = json!({ "username": { "$regex": pattern } }).to_string();
            let (status, body) = list(&app, &[("query", &q)], &app.admin).await;
            assert_refused(status, &body, "error-invalid-query");
            assert!(body["error"].as_str().unwrap().starts_with("Invalid regular expression"), "{pattern}: {body}");
        }
        let q = json!({ "username": { "$regex": "^AL", "$options": "i" } }).to_string();
        let (_, body) = list(&app, &[("query", &q)], &app.admin).await;
        assert_eq!(names(&body), ["alice"]);
        let q = json!({ "username": { "$regex": "^a+b$" } }).to_string();
        let (_, body) = list(&app, &[("query", &q)], &app.admin).await;
        assert_eq!(names(&body), [format!("{}b", "a".repeat(30))]);
    }

    /// `fields` only removes: `0` hides a field, `1` adds nothing (not
    /// `services`, not others' emails without the permission); values
    /// other than 0 and 1 are 400 `error-invalid-fields`.
    async fn users_list_fields_can_only_remove(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        let (status, body) = list(&app, &[("fields", r#"{"emails":0,"roles":0,"createdAt":0}"#)], &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_page_shape(&body);
        for user in body["users"].as_array().unwrap() {
            for gone in ["emails", "roles", "createdAt"] {
                assert!(user.get(gone).is_none(), "{user}");
            }
            assert!(user["username"].is_string() && user["_updatedAt"].is_string(), "{user}");
        }
        let (_, body) = list(&app, &[("fields", r#"{"_id":0,"username":0}"#)], &app.admin).await;
        assert!(body["users"][0]["_id"].is_string() && body["users"][0].get("username").is_none(), "{body}");
        // Asking for hidden fields shows nothing more.
        let ask = r#"{"services":1,"services.password.bcrypt":1,"emails":1,"importIds":1,"lastLogin":1}"#;
        let (status, body) = list(&app, &[("fields", ask)], &bob).await;
        assert_eq!(status, 200, "{body}");
        assert_page_shape(&body);
        for user in body["users"].as_array().unwrap() {
            assert_eq!(user.get("emails").is_some(), user["username"] == "bob", "{user}");
            assert!(user.get("lastLogin").is_none(), "{user}");
        }
        for fields in [r#"{"name":2}"#, r#"{"name":true}"#, r#"{"name":"1"}"#, "{", "[]"] {
            let (status, body) = list(&app, &[("fields", fields)], &app.admin).await;
            assert_refused(status, &body, "error-invalid-fields");
            assert_eq!(body["error"], "Invalid fields parameter provided [error-invalid-fields]", "{fields}");
            assert_eq!(body["details"], json!({ "helperMethod": "parseJsonQuery" }));
        }
    }

    /// `sort` over the allow-listed fields with 1 or -1 only, else 400
    /// `error-invalid-sort` (an unknown field is not silently ignored).
    async fn users_list_sort_refuses_unknown_fields(kind) {
        let app = TestApp::start(&kind).await;
        for sort in [
            r#"{"services.password.bcrypt":1}"#,
            r#"{"lastLogin":-1}"#,
            r#"{"username":0}"#,
            r#"{"username":"asc"}"#,
            r#"{"a":1,"b":1,"c":1,"d":1}"#,
            "username",
        ] {
            let (status, body) = list(&app, &[("sort", sort)], &app.admin).await;
            assert_refused(status, &body, "error-invalid-sort");
            assert_eq!(body["error"], "Invalid sort parameter provided [error-invalid-sort]", "{sort}");
        }
        // The permission check comes first: a guest (no view-d-room) gets
        // Rocket.Chat's 403, not a verdict on its filter.
        app.user("visitor", &["guest"]).await;
        let guest = app.login("visitor", USER_PASS).await;
        let (status, body) = list(&app, &[("query", r#"{"$where":"1"}"#), ("sort", "x")], &guest).await;
        assert_eq!((status, body), (403, json!({ "success": false, "error": "unauthorized" })));
    }
}
