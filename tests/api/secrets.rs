//! `Debug` of every type that holds a password, token, secret or hash
//! prints none of them: one stray `?value` in a log line must leak nothing.

use tokend::config::{Config, Secret};
use tokend::core::credential::{
    issue, Caller, Credential, PasswordAttempt, SecondFactor, TokenKind, Via,
};
use tokend::core::model::*;
use tokend::core::password::PasswordInput;
use tokend::core::seed::AdminSeed;
use tokend::core::service::{
    CreatePat, CreateToken, Login, Minted, NewUser, OpenSession, UserChanges,
};
use tokend::core::twofactor::TotpSecret;
use tokend::core::{Plaintext, TokenHash};
use tokend::rocketchat::pat::PatOk;
use tokend::rocketchat::session::{
    LoginBody, LoginData, LoginOk, LoginPassword, LoginUser, PasswordDigest,
};
use tokend::rocketchat::tokens::{CreateTokenBody, CreateTokenOk, CreatedToken};
use tokend::rocketchat::twofactor::{CodeBody, CodesOk, TotpEnableOk};
use tokend::rocketchat::users::{
    CreateUserBody, OwnBasicInfoBody, OwnBasicInfoData, UpdateUserBody, UpdateUserData,
};
use tokend::rocketchat::view::MeView;
use tokend::saymon::session::{SessionCreated, SessionRequest};
use tokend::saymon::tokens::TokenCreated;
use tokend::saymon::users::{NewUserBody, UserPatchBody};

const SECRET: &str = "S3cret-Value-That-Must-Not-Leak";
const HASH: &str = "$2b$10$HashThatMustNotLeakEitherXXXXXXXXXXXXXXXXXXXXXXXXXXXX";

fn user() -> User {
    let now = chrono::Utc::now();
    User {
        id: "u1".into(),
        created_at: now,
        updated_at: now,
        kind: "user".into(),
        username: Some("bob".into()),
        name: None,
        emails: Vec::new(),
        roles: vec!["user".into()],
        permissions: Vec::new(),
        active: true,
        require_password_change: false,
        password_bcrypt: Some(PasswordHash(HASH.into())),
        last_login: None,
    }
}

fn caller() -> Caller {
    Caller {
        user: user(),
        via: Via::LoginToken(TokenHash::of(SECRET)),
    }
}

fn assert_hidden(what: &str, shown: String) {
    let hash = TokenHash::of(SECRET);
    for leaked in [SECRET, HASH, hash.as_str()] {
        assert!(!shown.contains(leaked), "{what} leaks {leaked:?}: {shown}");
    }
}

macro_rules! hidden {
    ($($value:expr),* $(,)?) => {
        $( assert_hidden(stringify!($value), format!("{:?}", $value)); )*
    };
}

#[test]
fn core_types_redact_their_secrets() {
    let plain = Plaintext::new(SECRET);
    let issued = issue(TokenKind::Personal);
    let issued_secret = issued.plaintext.expose().to_string();
    let shown = format!("{issued:?}");
    assert!(!shown.contains(&issued_secret) && !shown.contains(issued.hash.as_str()));
    let attempt = PasswordAttempt {
        user: UserKey::Username("bob".into()),
        password: PasswordInput::Plain(SECRET.into()),
        ip: None,
        second_factor: SecondFactor::new(Some(SECRET), Some("totp")),
    };
    let now = chrono::Utc::now();
    hidden!(
        plain,
        TokenHash::of(SECRET),
        user(),
        caller(),
        PasswordInput::Sha256Digest(SECRET.into()),
        Credential::UserToken {
            user_id: "u1".into(),
            token: Plaintext::new(SECRET)
        },
        Credential::Resume(Plaintext::new(SECRET)),
        Credential::ApiToken(Plaintext::new(SECRET)),
        Credential::Session(Plaintext::new(SECRET)),
        Credential::Password(attempt.clone()),
        SecondFactor::new(Some(SECRET), None),
        TotpSecret::from_stored(SECRET),
        tokend::core::twofactor::EmailCode {
            hash: SECRET.into(),
            expire: now,
            attempts: 0,
        },
        tokend::core::twofactor::TwoFactorState {
            totp: Some(tokend::core::twofactor::Totp {
                enabled: true,
                secret: Some(TotpSecret::from_stored(SECRET)),
                temp_secret: Some(TotpSecret::from_stored(SECRET)),
                hashed_backup: Vec::new(),
            }),
            email_enabled: true,
            email_code: None,
        },
        tokend::core::service::BackupCodes(vec![SECRET.into()]),
        tokend::core::service::TotpEnable::Started {
            secret: TotpSecret::from_stored(SECRET),
            url: format!("otpauth://totp/x?secret={SECRET}"),
        },
        tokend::config::SmtpConfig {
            host: "h".into(),
            port: 25,
            username: None,
            password: Some(Secret(SECRET.into())),
            from: "a@b".into(),
            tls: tokend::config::SmtpTls::None,
        },
        attempt,
        Minted {
            user_id: "u1".into(),
            token: Plaintext::new(SECRET)
        },
        CreateToken::Minted(Minted {
            user_id: "u1".into(),
            token: Plaintext::new(SECRET)
        }),
        CreatePat::Created(Plaintext::new(SECRET)),
        Login::Ok {
            caller: Box::new(caller()),
            token: Plaintext::new(SECRET)
        },
        OpenSession::Opened {
            sid: Plaintext::new(SECRET),
            caller: Box::new(caller())
        },
        NewUser {
            username: "bob".into(),
            password: Some(SECRET.into()),
            ..NewUser::default()
        },
        UserChanges {
            password: Some(SECRET.into()),
            ..UserChanges::default()
        },
        AdminSeed::Generated {
            username: "admin".into(),
            password: Plaintext::new(SECRET)
        },
        LoginToken::Resume(ResumeToken {
            when: now,
            hashed_token: TokenHash::of(SECRET)
        }),
        PersonalAccessToken {
            hashed_token: TokenHash::of(SECRET),
            created_at: now,
            last_token_part: "abcdef".into(),
            name: "ci".into(),
            bypass_two_factor: false,
            expires_at: None,
            last_used_at: None,
        },
        ApiToken {
            user_id: "u1".into(),
            hashed_token: TokenHash::of(SECRET),
            created_at: now,
            hint: "abcd".into(),
            last_used_at: None,
        },
        Session {
            hashed_id: TokenHash::of(SECRET),
            user_id: "u1".into(),
            created_at: now,
            last_seen_at: now,
            expires_at: now,
            absolute_expires_at: now,
        },
        Config {
            admin_pass: Some(Secret(SECRET.into())),
            create_tokens_secret: Some(Secret(SECRET.into())),
            mongo_url: Some(Secret(SECRET.into())),
            ..Config::default()
        },
    );
}

#[test]
fn rocketchat_wire_types_redact_their_secrets() {
    let me = MeView::from(&user());
    hidden!(
        LoginBody {
            user: Some(LoginUser::Name("bob".into())),
            username: None,
            email: None,
            password: Some(LoginPassword::Plain(SECRET.into())),
            resume: Some(SECRET.into()),
            code: Some(SECRET.into()),
        },
        LoginBody {
            user: None,
            username: Some("bob".into()),
            email: None,
            password: Some(LoginPassword::Digest(PasswordDigest {
                digest: SECRET.into(),
                algorithm: "sha-256".into(),
            })),
            resume: None,
            code: None,
        },
        LoginOk {
            status: "success".into(),
            data: LoginData {
                user_id: "u1".into(),
                auth_token: SECRET.into(),
                me: me.clone()
            },
            success: true,
        },
        CreateTokenBody {
            user_id: Some("u1".into()),
            username: None,
            user: None,
            secret: Some(SECRET.into()),
        },
        CreateTokenOk {
            data: CreatedToken {
                user_id: "u1".into(),
                auth_token: SECRET.into()
            },
            success: true,
        },
        PatOk {
            token: SECRET.into(),
            success: true
        },
        CodeBody {
            code: Some(SECRET.into())
        },
        TotpEnableOk {
            secret: SECRET.into(),
            url: SECRET.into(),
            success: true
        },
        CodesOk {
            codes: vec![SECRET.into()],
            success: true
        },
        CreateUserBody {
            password: Some(SECRET.into()),
            ..CreateUserBody::default()
        },
        UpdateUserBody {
            user_id: Some("u1".into()),
            data: Some(UpdateUserData {
                password: Some(SECRET.into()),
                ..UpdateUserData::default()
            }),
        },
        OwnBasicInfoBody {
            data: Some(OwnBasicInfoData {
                current_password: Some(SECRET.into()),
                new_password: Some(SECRET.into()),
                ..OwnBasicInfoData::default()
            }),
        },
        me,
    );
}

#[test]
fn saymon_wire_types_redact_their_secrets() {
    hidden!(
        SessionRequest {
            login: Some("bob".into()),
            password: Some(SECRET.into()),
            auth_token: Some(SECRET.into()),
        },
        SessionCreated::Ok(
            poem_openapi::payload::Json(SECRET.into()),
            format!("sid={SECRET}")
        ),
        TokenCreated::Ok(poem_openapi::payload::Json(SECRET.into())),
        NewUserBody {
            login: Some("bob".into()),
            email: None,
            password: Some(SECRET.into()),
            display_name: None,
            permissions: None,
            status: None,
        },
        UserPatchBody {
            login: None,
            email: None,
            password: Some(SECRET.into()),
            current_password: Some(SECRET.into()),
            display_name: None,
            permissions: None,
            status: None,
            active: None,
        },
    );
}
