//! Two-factor authentication, on both stores: TOTP users written in
//! Rocket.Chat's layout, REST enrolment, backup codes, protected actions,
//! SAYMON, and emailed codes through a real SMTP sink.
//!
//! The email tests need the sink `scripts/test` starts
//! (`tests/python/smtp_sink.py`): `TOKEND_TEST_SMTP_PORT` and
//! `TOKEND_TEST_SMTP_DIR`. Without them they say so and skip, except under
//! `CI=true`, where they fail.

use crate::common::*;
use base64::{engine::general_purpose::STANDARD, Engine};
use poem::test::TestResponse;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokend::config::{Config, SmtpConfig, SmtpTls};
use tokend::core::twofactor::{hash_backup_code, totp_code, TotpSecret};
use tokend::core::Clock;

/// A base32 secret as an authenticator app would be given it.
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// Backup codes in Rocket.Chat's format (8 characters of `Random.id`).
const BACKUP: [&str; 2] = ["a2B3c4D5", "Z9y8X7w6"];

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The code an authenticator app shows now, computed from the secret.
fn code_now(app: &TestApp, secret: &str) -> String {
    totp_code(&TotpSecret::from_stored(secret), app.clock.now()).expect("code")
}

/// Gives a user TOTP as Rocket.Chat stores it: on MongoDB written straight
/// into the user document (`services.totp`), on SQLite through the store.
async fn give_totp(app: &TestApp, kind: &StoreKind, user_id: &str) {
    let hashed: Vec<String> = BACKUP.iter().map(|c| sha256_hex(c)).collect();
    match kind {
        StoreKind::Mongo(url) => {
            let client = mongodb::Client::with_uri_str(url).await.expect("client");
            let db = client.default_database().expect("database");
            let result = db
                .collection::<mongodb::bson::Document>("users")
                .update_one(
                    mongodb::bson::doc! { "_id": user_id },
                    mongodb::bson::doc! { "$set": { "services.totp": {
                        "enabled": true, "secret": SECRET, "hashedBackup": &hashed,
                    } } },
                )
                .await
                .expect("update");
            assert_eq!(result.matched_count, 1);
        }
        _ => {
            let secret = TotpSecret::from_stored(SECRET);
            assert!(app.store.begin_totp(user_id, &secret).await.unwrap());
            assert!(app
                .store
                .enable_totp(user_id, &secret, &hashed)
                .await
                .unwrap());
        }
    }
}

async fn login_with(app: &TestApp, user: &str, password: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({ "user": user, "password": password });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    status_json(
        app.client
            .post("/api/v1/login")
            .body_json(&body)
            .send()
            .await,
    )
    .await
}

fn creds_of(body: &Value) -> Creds {
    Creds {
        user_id: body["data"]["userId"].as_str().expect("userId").to_string(),
        token: body["data"]["authToken"]
            .as_str()
            .expect("authToken")
            .to_string(),
    }
}

/// `POST` with Rocket.Chat credentials and `X-2FA-*` headers.
async fn post_2fa(
    app: &TestApp,
    path: &str,
    creds: &Creds,
    body: Value,
    code: Option<&str>,
    method: Option<&str>,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(path)
        .header("X-User-Id", &creds.user_id)
        .header("X-Auth-Token", &creds.token);
    if let Some(code) = code {
        req = req.header("X-2FA-Code", code);
    }
    if let Some(method) = method {
        req = req.header("X-2FA-Method", method);
    }
    let resp: TestResponse = req.body_json(&body).send().await;
    status_json(resp).await
}

/// A user with TOTP, logged in with a code.
async fn totp_user(app: &TestApp, kind: &StoreKind, name: &str) -> Creds {
    let user = app.user(name, &[]).await;
    give_totp(app, kind, &user.id).await;
    let code = code_now(app, SECRET);
    let (status, body) = login_with(app, name, USER_PASS, json!({ "code": code })).await;
    assert_eq!(status, 200, "{body}");
    creds_of(&body)
}

fn fallback_config() -> Config {
    let mut config = test_config();
    config.two_factor.password_fallback = true;
    config
}

store_tests! {
    async fn a_totp_user_needs_a_code_to_log_in(kind) {
        let app = TestApp::start(&kind).await;
        let user = app.user("tina", &[]).await;
        give_totp(&app, &kind, &user.id).await;

        // The attack: the password alone used to be enough.
        let (status, body) = login_with(&app, "tina", USER_PASS, json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "totp-required");
        assert_eq!(body["message"], "TOTP Required");
        assert_eq!(
            body["details"],
            json!({"method": "totp", "codeGenerated": false, "availableMethods": ["totp"]})
        );

        let (status, body) = login_with(&app, "tina", USER_PASS, json!({"code": "000000"})).await;
        assert_eq!((status, body["error"].clone()), (401, json!("totp-invalid")), "{body}");

        // A right code with a wrong password is still a wrong password.
        let code = code_now(&app, SECRET);
        let (status, body) = login_with(&app, "tina", "nope", json!({"code": code})).await;
        assert_eq!((status, body["error"].clone()), (401, json!("Unauthorized")), "{body}");

        let (status, body) = login_with(&app, "tina", USER_PASS, json!({"code": code})).await;
        assert_eq!(status, 200, "{body}");
        let creds = creds_of(&body);

        // The header works as well as the body field.
        let resp = app.client.post("/api/v1/login")
            .header("X-2FA-Code", &code).header("X-2FA-Method", "totp")
            .body_json(&json!({"user": "tina", "password": USER_PASS})).send().await;
        assert_eq!(resp.0.status().as_u16(), 200);

        // A code from 30 s ago is within Rocket.Chat's window; from 2 minutes ago, not.
        let old = totp_code(&TotpSecret::from_stored(SECRET),
            app.clock.now() - chrono::Duration::seconds(30)).unwrap();
        let (status, _) = login_with(&app, "tina", USER_PASS, json!({"code": old})).await;
        assert_eq!(status, 200);
        let stale = totp_code(&TotpSecret::from_stored(SECRET),
            app.clock.now() - chrono::Duration::seconds(120)).unwrap();
        if stale != code && stale != old {
            let (status, _) = login_with(&app, "tina", USER_PASS, json!({"code": stale})).await;
            assert_eq!(status, 401);
        }

        // `resume` is not asked again.
        let resp = app.client.post("/api/v1/login")
            .body_json(&json!({"resume": creds.token})).send().await;
        assert_eq!(resp.0.status().as_u16(), 200);
        assert_eq!(app.me_status(&creds).await, 200);
    }

    async fn a_backup_code_works_exactly_once(kind) {
        let app = TestApp::start(&kind).await;
        let user = app.user("bea", &[]).await;
        give_totp(&app, &kind, &user.id).await;
        let (status, body) = login_with(&app, "bea", USER_PASS, json!({"code": BACKUP[0]})).await;
        assert_eq!(status, 200, "{body}");
        let creds = creds_of(&body);
        let (status, body) = login_with(&app, "bea", USER_PASS, json!({"code": BACKUP[0]})).await;
        assert_eq!((status, body["error"].clone()), (401, json!("totp-invalid")), "{body}");
        let (status, body) = status_json(app.rc_get("/api/v1/users.totp.codesRemaining", &creds).await).await;
        assert_eq!((status, body["remaining"].clone()), (200, json!(1)), "{body}");
        // The other one still works, once.
        let (status, _) = login_with(&app, "bea", USER_PASS, json!({"code": BACKUP[1]})).await;
        assert_eq!(status, 200);
        let state = app.store.two_factor(&user.id).await.unwrap();
        assert!(state.totp.unwrap().hashed_backup.is_empty());
    }

    async fn wrong_codes_count_toward_the_login_block(kind) {
        let mut config = test_config();
        config.login_block.user_attempts = 3;
        let app = TestApp::with_config(&kind, config).await;
        let user = app.user("gus", &[]).await;
        give_totp(&app, &kind, &user.id).await;
        // The attack: an attacker who has the password guesses codes.
        for guess in ["111111", "222222", "333333"] {
            let (status, body) = login_with(&app, "gus", USER_PASS, json!({"code": guess})).await;
            assert_eq!((status, body["error"].clone()), (401, json!("totp-invalid")), "{body}");
        }
        let code = code_now(&app, SECRET);
        let (status, body) = login_with(&app, "gus", USER_PASS, json!({"code": code})).await;
        assert_eq!((status, body["error"].clone()), (401, json!("error-login-blocked-for-user")), "{body}");
        // Asking for the code (no code sent) is not a failure.
        app.clock.advance(chrono::Duration::seconds(6 * 60));
        for _ in 0..5 {
            let (_, body) = login_with(&app, "gus", USER_PASS, json!({})).await;
            assert_eq!(body["error"], "totp-required");
        }
        let code = code_now(&app, SECRET);
        let (status, _) = login_with(&app, "gus", USER_PASS, json!({"code": code})).await;
        assert_eq!(status, 200);
    }

    async fn rest_enrolment_turns_totp_on_and_off(kind) {
        let app = TestApp::start(&kind).await;
        app.user("ed", &[]).await;
        let creds = app.login("ed", USER_PASS).await;
        let other = app.login("ed", USER_PASS).await;
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.enable", &creds, json!({}), None, None).await;
        assert_eq!(status, 200, "{body}");
        let secret = body["secret"].as_str().unwrap().to_string();
        assert_eq!(body["url"], format!("otpauth://totp/Rocket.Chat%3Aed?secret={secret}"));
        // Not on until validated.
        let (status, _) = login_with(&app, "ed", USER_PASS, json!({})).await;
        assert_eq!(status, 200);

        let (status, body) = post_2fa(&app, "/api/v1/users.totp.validate", &creds, json!({"code": "000000"}), None, None).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("invalid-totp")), "{body}");
        let code = code_now(&app, &secret);
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.validate", &creds, json!({"code": code}), None, None).await;
        assert_eq!(status, 200, "{body}");
        let codes: Vec<String> = body["codes"].as_array().unwrap().iter()
            .map(|c| c.as_str().unwrap().to_string()).collect();
        assert_eq!(codes.len(), 12);
        assert!(codes.iter().all(|c| c.len() == 8));
        // Stored as Rocket.Chat stores them: SHA-256 hex, never in clear.
        let state = app.store.two_factor(&creds.user_id).await.unwrap();
        let totp = state.totp.unwrap();
        assert!(totp.enabled && totp.temp_secret.is_none());
        assert_eq!(totp.hashed_backup.len(), 12);
        assert!(totp.hashed_backup.contains(&hash_backup_code(&codes[0])));
        // Shown once: validating again finds no pending enrolment.
        let (status, _) = post_2fa(&app, "/api/v1/users.totp.validate", &creds, json!({"code": code}), None, None).await;
        assert_eq!(status, 400);
        // The caller's other login tokens ended; its own works.
        assert_eq!(app.me_status(&other).await, 401);
        assert_eq!(app.me_status(&creds).await, 200);
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.enable", &creds, json!({}), None, None).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("error-2fa-already-enabled")));

        // Now the login needs a code, TOTP or backup.
        let (status, body) = login_with(&app, "ed", USER_PASS, json!({})).await;
        assert_eq!((status, body["error"].clone()), (401, json!("totp-required")));
        let (status, _) = login_with(&app, "ed", USER_PASS, json!({"code": code_now(&app, &secret)})).await;
        assert_eq!(status, 200);
        let (status, _) = login_with(&app, "ed", USER_PASS, json!({"code": codes[0]})).await;
        assert_eq!(status, 200);
        let (status, _) = login_with(&app, "ed", USER_PASS, json!({"code": codes[0]})).await;
        assert_eq!(status, 401);

        // Regenerating needs a code, and retires the old backup codes.
        let (status, _) = post_2fa(&app, "/api/v1/users.totp.regenerateCodes", &creds, json!({"code": "123456"}), None, None).await;
        assert_eq!(status, 400);
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.regenerateCodes", &creds, json!({"code": code_now(&app, &secret)}), None, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["codes"].as_array().unwrap().len(), 12);
        let (status, _) = login_with(&app, "ed", USER_PASS, json!({"code": codes[1]})).await;
        assert_eq!(status, 401);
        let (_, body) = status_json(app.rc_get("/api/v1/users.totp.codesRemaining", &creds).await).await;
        assert_eq!(body["remaining"], 12);

        // Disabling needs a right code.
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.disable", &creds, json!({"code": "000000"}), None, None).await;
        assert_eq!((status, body["disabled"].clone()), (200, json!(false)), "{body}");
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.disable", &creds, json!({"code": code_now(&app, &secret)}), None, None).await;
        assert_eq!((status, body["disabled"].clone()), (200, json!(true)), "{body}");
        let (status, _) = login_with(&app, "ed", USER_PASS, json!({})).await;
        assert_eq!(status, 200);
        let (status, _) = status_json(app.rc_get("/api/v1/users.totp.codesRemaining", &creds).await).await;
        assert_eq!(status, 400);
    }

    async fn switching_second_factors_on_and_off_is_audited(kind) {
        // Email codes need the SMTP sink; without it (outside CI) only TOTP is checked.
        let sink = Sink::from_env();
        let mut config = test_config();
        config.smtp = sink.as_ref().map(Sink::config);
        let app = TestApp::with_config(&kind, config).await;
        let name = format!("audit{}", tokend::core::ids::new_user_id().to_lowercase());
        let user = app.user(&name, &[]).await;
        let creds = app.login(&name, USER_PASS).await;
        let (_, body) = post_2fa(&app, "/api/v1/users.totp.enable", &creds, json!({}), None, None).await;
        let secret = body["secret"].as_str().unwrap().to_string();
        // A wrong code enables nothing, so records nothing.
        let (status, _) = post_2fa(&app, "/api/v1/users.totp.validate", &creds, json!({"code": "000000"}), None, None).await;
        assert_eq!(status, 400);
        let code = code_now(&app, &secret);
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.validate", &creds, json!({"code": code}), None, None).await;
        assert_eq!(status, 200, "{body}");
        let backup: Vec<String> = body["codes"].as_array().unwrap().iter()
            .map(|c| c.as_str().unwrap().to_string()).collect();
        // A wrong code disables nothing.
        let (_, body) = post_2fa(&app, "/api/v1/users.totp.disable", &creds, json!({"code": "000000"}), None, None).await;
        assert_eq!(body["disabled"], false, "{body}");
        let (status, body) = post_2fa(&app, "/api/v1/users.totp.disable", &creds, json!({"code": backup[0]}), None, None).await;
        assert_eq!((status, body["disabled"].clone()), (200, json!(true)), "{body}");
        let mut expected = vec![("2fa.enabled", "totp"), ("2fa.disabled", "totp")];
        let mut secrets = vec![secret.clone(), code.clone(), backup[0].clone(), USER_PASS.to_string()];
        if let Some(sink) = &sink {
            let (status, _) = post_2fa(&app, "/api/v1/users.2fa.enableEmail", &creds, json!({}), None, None).await;
            assert_eq!(status, 200);
            let (status, body) = post_2fa(&app, "/api/v1/users.2fa.disableEmail", &creds, json!({}), None, None).await;
            assert_eq!(status, 400, "{body}");
            let emailed = sink.last_code_to(&format!("{name}@example.com"));
            let (status, body) = post_2fa(&app, "/api/v1/users.2fa.disableEmail", &creds, json!({}), Some(&emailed), Some("email")).await;
            assert_eq!(status, 200, "{body}");
            expected.extend([("2fa.enabled", "email"), ("2fa.disabled", "email")]);
            secrets.push(emailed);
        }
        let (status, body) = status_json(
            app.rc_get(&format!("/api/v1/tokend.auditEvents?userId={}", user.id), &app.admin).await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let events: Vec<&Value> = body["events"].as_array().unwrap().iter()
            .filter(|e| e["kind"].as_str().unwrap().starts_with("2fa."))
            .collect();
        let mut found: Vec<(&str, &str)> = events.iter()
            .map(|e| (e["kind"].as_str().unwrap(), e["detail"].as_str().unwrap_or_default()))
            .collect();
        // The test clock stands still: the events share one timestamp, so
        // the listing's order among them is its id tie-break; compare as sets.
        found.sort_unstable();
        expected.sort_unstable();
        assert_eq!(found, expected, "{body:#}");
        assert!(events.iter().all(|e| e["actorId"] == json!(user.id) && e["outcome"] == "succeeded"), "{body:#}");
        // No secret in the trail: not the TOTP secret, not a code, not the password.
        let text = body.to_string();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
    }

    async fn protected_routes_ask_a_totp_user_for_a_code(kind) {
        let app = TestApp::start(&kind).await;
        let creds = totp_user(&app, &kind, "pat").await;
        for (path, body) in [
            ("/api/v1/users.generatePersonalAccessToken", json!({"tokenName": "t1"})),
            ("/api/v1/users.createToken", json!({"userId": creds.user_id})),
            ("/api/v1/users.updateOwnBasicInfo", json!({"data": {"newPassword": "new-pass-123", "currentPassword": sha256_hex(USER_PASS)}})),
            ("/api/v1/users.update", json!({"userId": creds.user_id, "data": {"email": "pat2@example.com"}})),
        ] {
            let (status, got) = post_2fa(&app, path, &creds, body.clone(), None, None).await;
            assert_eq!(status, 400, "{path}: {got}");
            assert_eq!(got["errorType"], "totp-required", "{path}");
            assert_eq!(got["error"], "TOTP Required [totp-required]");
            assert_eq!(got["details"]["method"], "totp");
            let (status, got) = post_2fa(&app, path, &creds, body.clone(), Some("999999"), Some("totp")).await;
            assert_eq!((status, got["errorType"].clone()), (400, json!("totp-invalid")), "{path}: {got}");
            // The password is no second factor for a user who has one.
            let (status, _) = post_2fa(&app, path, &creds, body, Some(&sha256_hex(USER_PASS)), Some("password")).await;
            assert_eq!(status, 400, "{path}");
        }
        // Other changes of oneself are not protected.
        let (status, _) = post_2fa(&app, "/api/v1/users.update", &creds,
            json!({"userId": creds.user_id, "data": {"name": "Pat"}}), None, None).await;
        assert_eq!(status, 200);

        let code = code_now(&app, SECRET);
        let (status, body) = post_2fa(&app, "/api/v1/users.generatePersonalAccessToken", &creds,
            json!({"tokenName": "plain"}), Some(&code), Some("totp")).await;
        assert_eq!(status, 200, "{body}");
        let plain = Creds { user_id: creds.user_id.clone(), token: body["token"].as_str().unwrap().into() };
        let (status, body) = post_2fa(&app, "/api/v1/users.generatePersonalAccessToken", &creds,
            json!({"tokenName": "bypass", "bypassTwoFactor": true}), Some(&code), None).await;
        assert_eq!(status, 200, "{body}");
        let bypass = Creds { user_id: creds.user_id.clone(), token: body["token"].as_str().unwrap().into() };

        // A PAT made with bypassTwoFactor skips the check; another PAT does not.
        let (status, body) = post_2fa(&app, "/api/v1/users.regeneratePersonalAccessToken", &bypass,
            json!({"tokenName": "plain"}), None, None).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post_2fa(&app, "/api/v1/users.removePersonalAccessToken", &plain,
            json!({"tokenName": "bypass"}), None, None).await;
        assert_eq!(status, 401, "the regenerated PAT ended: {body}");
        let (status, body) = post_2fa(&app, "/api/v1/users.createToken", &creds,
            json!({"userId": creds.user_id}), Some(&code), None).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post_2fa(&app, "/api/v1/users.updateOwnBasicInfo", &creds,
            json!({"data": {"newPassword": "new-pass-123", "currentPassword": sha256_hex(USER_PASS)}}), Some(&code), None).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post_2fa(&app, "/api/v1/users.removePersonalAccessToken", &creds,
            json!({"tokenName": "plain"}), Some(BACKUP[0]), None).await;
        assert_eq!(status, 200, "a backup code works too: {body}");
    }

    async fn without_a_second_factor_the_password_confirms(kind) {
        let app = TestApp::with_config(&kind, fallback_config()).await;
        app.user("nora", &[]).await;
        let creds = app.login("nora", USER_PASS).await;
        let path = "/api/v1/users.generatePersonalAccessToken";
        let (status, body) = post_2fa(&app, path, &creds, json!({"tokenName": "a"}), None, None).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("totp-required")), "{body}");
        assert_eq!(body["details"], json!({"method": "password", "codeGenerated": false, "availableMethods": []}));
        // The attack: a stolen token alone cannot mint lasting credentials.
        let (status, body) = post_2fa(&app, path, &creds, json!({"tokenName": "a"}), Some("wrong"), Some("password")).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("totp-invalid")), "{body}");
        let (status, body) = post_2fa(&app, path, &creds, json!({"tokenName": "a"}), Some(&sha256_hex(USER_PASS)), Some("password")).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post_2fa(&app, path, &creds, json!({"tokenName": "b"}), Some(USER_PASS), Some("password")).await;
        assert_eq!(status, 200, "{body}");
        // Logging in never asks a user without a second factor.
        let (status, _) = login_with(&app, "nora", USER_PASS, json!({})).await;
        assert_eq!(status, 200);

        // Switched off, a user without a second factor is not asked.
        let app = TestApp::start(&kind.fresh()).await;
        app.user("nora", &[]).await;
        let creds = app.login("nora", USER_PASS).await;
        let (status, _) = post_2fa(&app, path, &creds, json!({"tokenName": "a"}), None, None).await;
        assert_eq!(status, 200);
    }

    async fn saymon_password_logins_need_the_code(kind) {
        let app = TestApp::start(&kind).await;
        let user = app.user("sam", &[]).await;
        give_totp(&app, &kind, &user.id).await;
        let basic = format!("Basic {}", STANDARD.encode(format!("sam:{USER_PASS}")));
        let current = |code: Option<String>| {
            let mut req = app.client.get("/node/api/users/current").header("Authorization", &basic);
            if let Some(code) = code {
                req = req.header("X-2FA-Code", code);
            }
            req.send()
        };
        let (status, body) = status_json(current(None).await).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["message"].as_str().unwrap().contains("Two-factor authentication code required"), "{body}");
        let (status, _) = status_json(current(Some("000000".into())).await).await;
        assert_eq!(status, 401);
        let (status, body) = status_json(current(Some(code_now(&app, SECRET))).await).await;
        assert_eq!(status, 200, "{body}");

        let session = |code: Option<String>| {
            let mut req = app.client.post("/node/api/users/session");
            if let Some(code) = code {
                req = req.header("X-2FA-Code", code);
            }
            req.body_json(&json!({"login": "sam", "password": USER_PASS})).send()
        };
        assert_eq!(session(None).await.0.status().as_u16(), 401);
        let (status, sid) = status_json(session(Some(code_now(&app, SECRET))).await).await;
        assert_eq!(status, 200, "{sid}");
        let sid = sid.as_str().unwrap().to_string();
        // An open session and an API token keep working without a code.
        let resp = app.client.get("/node/api/users/current")
            .header("Cookie", format!("sid={sid}")).send().await;
        assert_eq!(resp.0.status().as_u16(), 200);
        let admin = format!("Basic {}", STANDARD.encode(format!("admin:{ADMIN_PASS}")));
        let (status, token) = status_json(app.client
            .post(format!("/node/api/users/{}/auth-token", user.id))
            .header("Authorization", &admin).send().await).await;
        assert_eq!(status, 200, "{token}");
        let resp = app.client.get("/node/api/users/current")
            .query("api-token", &token.as_str().unwrap()).send().await;
        assert_eq!(resp.0.status().as_u16(), 200);
    }

    async fn email_only_without_smtp_is_refused_and_says_why(kind) {
        let app = TestApp::start(&kind).await;
        app.user("eve", &[]).await;
        let creds = app.login("eve", USER_PASS).await;
        let (status, _) = post_2fa(&app, "/api/v1/users.2fa.enableEmail", &creds, json!({}), None, None).await;
        assert_eq!(status, 200);
        // Never a silent bypass: the password alone does not log in.
        let (status, body) = login_with(&app, "eve", USER_PASS, json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "error-email-send-failed");
        assert!(body["message"].as_str().unwrap().contains("SMTP"), "{body}");
        assert_eq!(body["details"]["method"], "email");
        let (status, _) = login_with(&app, "eve", USER_PASS, json!({"code": "123456"})).await;
        assert_eq!(status, 401);
        let (status, body) = status_json(app.client.post("/api/v1/users.2fa.sendEmailCode")
            .body_json(&json!({"emailOrUsername": "eve"})).send().await).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("error-email-send-failed")), "{body}");
        let (status, body) = status_json(app.client.post("/api/v1/users.2fa.sendEmailCode")
            .body_json(&json!({})).send().await).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("error-parameter-required")), "{body}");
    }

    async fn emailed_codes_log_in_once_and_expire(kind) {
        let Some(sink) = Sink::from_env() else { return };
        let mut config = test_config();
        config.smtp = Some(sink.config());
        let app = TestApp::with_config(&kind, config).await;
        let name = format!("mail{}", tokend::core::ids::new_user_id().to_lowercase());
        app.user(&name, &[]).await;
        let address = format!("{name}@example.com");
        let creds = app.login(&name, USER_PASS).await;
        let (status, _) = post_2fa(&app, "/api/v1/users.2fa.enableEmail", &creds, json!({}), None, None).await;
        assert_eq!(status, 200);

        let (status, body) = login_with(&app, &name, USER_PASS, json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "totp-required");
        assert_eq!(body["details"]["method"], "email");
        assert_eq!(body["details"]["codeGenerated"], true);
        assert_eq!(body["details"]["emailOrUsername"], name);
        assert_eq!(body["details"]["availableMethods"], json!(["email"]));
        let code = sink.last_code_to(&address);
        // Kept only hashed (bcrypt), with its expiry.
        let stored = app.store.two_factor(&creds.user_id).await.unwrap().email_code.unwrap();
        assert!(stored.hash.starts_with("$2"));
        assert!(!stored.hash.contains(&code.replace('-', "")));
        // Asking again while it lives sends nothing new.
        let (_, body) = login_with(&app, &name, USER_PASS, json!({})).await;
        assert_eq!(body["details"]["codeGenerated"], false);
        assert_eq!(sink.codes_to(&address).len(), 1);

        let (status, body) = login_with(&app, &name, USER_PASS, json!({"code": code})).await;
        assert_eq!(status, 200, "{body}");
        // Used once.
        let (status, body) = login_with(&app, &name, USER_PASS, json!({"code": code})).await;
        assert_eq!((status, body["error"].clone()), (401, json!("totp-invalid")), "{body}");

        // An expired code fails (a new one is mailed instead).
        let (status, _) = status_json(app.client.post("/api/v1/users.2fa.sendEmailCode")
            .body_json(&json!({"emailOrUsername": address})).send().await).await;
        assert_eq!(status, 200);
        let fresh = sink.last_code_to(&address);
        app.clock.advance(chrono::Duration::seconds(3601));
        let (status, body) = login_with(&app, &name, USER_PASS, json!({"code": fresh})).await;
        assert_eq!((status, body["error"].clone()), (401, json!("totp-invalid")), "{body}");
        assert_eq!(body["details"]["codeGenerated"], true);

        // Turning email codes off is protected: it needs an emailed code.
        let (status, body) = post_2fa(&app, "/api/v1/users.2fa.disableEmail", &creds, json!({}), None, None).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("totp-required")), "{body}");
        let latest = sink.last_code_to(&address);
        let (status, body) = post_2fa(&app, "/api/v1/users.2fa.disableEmail", &creds, json!({}), Some(&latest), Some("email")).await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = login_with(&app, &name, USER_PASS, json!({})).await;
        assert_eq!(status, 200);
    }
}

/// The SMTP sink of `scripts/test` (`tests/python/smtp_sink.py`).
struct Sink {
    port: u16,
    dir: std::path::PathBuf,
}

impl Sink {
    /// The sink the environment names; without one, a loud skip (a failure under CI).
    fn from_env() -> Option<Sink> {
        let port = std::env::var("TOKEND_TEST_SMTP_PORT")
            .ok()
            .and_then(|p| p.parse().ok());
        let dir = std::env::var("TOKEND_TEST_SMTP_DIR")
            .ok()
            .filter(|d| !d.is_empty());
        match (port, dir) {
            (Some(port), Some(dir)) => Some(Sink {
                port,
                dir: dir.into(),
            }),
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but TOKEND_TEST_SMTP_PORT/TOKEND_TEST_SMTP_DIR are unset: the email 2FA tests would be skipped")
            }
            _ => {
                eprintln!("SKIPPED: email two-factor test needs the SMTP sink (TOKEND_TEST_SMTP_PORT, TOKEND_TEST_SMTP_DIR; scripts/test starts it)");
                None
            }
        }
    }

    fn config(&self) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            username: None,
            password: None,
            from: "tokend@example.com".into(),
            tls: SmtpTls::None,
        }
    }

    /// Every code mailed to `address`, oldest first.
    fn codes_to(&self, address: &str) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .expect("sink directory")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter(|m| m.lines().next().is_some_and(|l| l.contains(address)))
            .map(|m| {
                assert!(m.contains("Subject: Authentication code"), "{m}");
                m.lines()
                    .map(str::trim)
                    .find(|l| {
                        l.len() == 7
                            && l.as_bytes()[3] == b'-'
                            && l.bytes()
                                .enumerate()
                                .all(|(i, b)| i == 3 || b.is_ascii_digit())
                    })
                    .unwrap_or_else(|| panic!("no code in {m}"))
                    .to_string()
            })
            .collect()
    }

    fn last_code_to(&self, address: &str) -> String {
        self.codes_to(address)
            .pop()
            .unwrap_or_else(|| panic!("no mail to {address}"))
    }
}
