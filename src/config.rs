//! Configuration from environment variables (and `.env` when present).
//! Every variable is listed in `.env.example` and the README. A bad value
//! stops start-up with one line naming the variable.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A configuration value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Failed-login blocking (Rocket.Chat's `Block_Multiple_Failed_Logins_*` defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginBlockConfig {
    pub enabled: bool,
    pub user_attempts: u32,
    pub user_block: Duration,
    pub ip_attempts: u32,
    pub ip_block: Duration,
}

/// Rocket.Chat's REST rate limiter (`API_Enable_Rate_Limiter*` defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Calls allowed per window, per client address and route.
    pub calls: u32,
    pub window: Duration,
}

/// Bounds on every HTTP connection (issue 10); see `src/server.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// `HTTP_HEADER_TIMEOUT_SECONDS`: time to receive a request's head.
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT_SECONDS`: time to receive a request's body, once
    /// its head is in (408 and the connection closed after it).
    pub body_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_SECONDS`: a connection without any I/O for this
    /// long is closed (an idle keep-alive connection, a silent HTTP/2 one).
    pub idle_timeout: Duration,
    /// `HTTP2_MAX_CONCURRENT_STREAMS`: streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_IP`
    pub bind_ip: IpAddr,
    /// `PORT`
    pub port: u16,
    /// `MONGO_URL`; `None`: the embedded SQLite store.
    pub mongo_url: Option<Secret>,
    /// `DATABASE_PATH`: the SQLite store's file when `MONGO_URL` is unset
    /// (`:memory:`: a throwaway store).
    pub database_path: String,
    /// `STORE_TIMEOUT_SECONDS`: bound on any store call before answering 503.
    pub store_timeout: Duration,
    /// `LOG_FORMAT`
    pub log_format: LogFormat,
    /// `ADMIN_USERNAME`
    pub admin_username: Option<String>,
    /// `ADMIN_PASS`
    pub admin_pass: Option<Secret>,
    /// `ADMIN_EMAIL`
    pub admin_email: Option<String>,
    /// `ADMIN_NAME`: the first admin's display name (default `Administrator`).
    pub admin_name: Option<String>,
    /// `ADMIN_EMAIL_VERIFIED`: the first admin's email address is verified.
    pub admin_email_verified: bool,
    /// `CREATE_TOKENS_FOR_USERS` is `yes` or `true`.
    pub create_tokens_for_users: bool,
    /// `ACCOUNTS_REGISTRATION_FORM` is `Public` (Rocket.Chat's
    /// `Accounts_RegistrationForm`): `users.register` is open.
    pub registration_public: bool,
    /// `CREATE_TOKENS_FOR_USERS_SECRET`
    pub create_tokens_secret: Option<Secret>,
    /// `LOGIN_EXPIRATION_DAYS`
    pub login_expiration: Duration,
    /// Whether `LOGIN_EXPIRATION_DAYS` was set: if not, a shared Rocket.Chat
    /// database's `Accounts_LoginExpiration` setting decides.
    pub login_expiration_set: bool,
    /// `MAX_RESUME_LOGIN_TOKENS`
    pub max_resume_login_tokens: usize,
    /// `PERMISSIONS_CACHE_SECONDS`
    pub permissions_cache: Duration,
    /// `LOGIN_BLOCK_*`
    pub login_block: LoginBlockConfig,
    /// `RATE_LIMIT_*`
    pub rate_limit: RateLimitConfig,
    /// `TRUST_PROXY`: take the client address from `X-Forwarded-For`.
    pub trust_proxy: bool,
    /// `TRUSTED_PROXY_HOPS`: how many proxies in front of tokend append to
    /// `X-Forwarded-For`; the client address is that many entries from the right.
    pub trusted_proxy_hops: usize,
    /// `PASSWORD_CHECKS_MAX`: bcrypt computations at once (default: one per core).
    pub password_checks_max: usize,
    /// `SAYMON_SESSION_IDLE_MINUTES`
    pub saymon_session_idle: Duration,
    /// `SAYMON_SESSION_MAX_HOURS`
    pub saymon_session_max: Duration,
    /// `COOKIE_SECURE`: tokend is served over HTTPS, so cookies get `Secure`.
    pub cookie_secure: bool,
    /// `RC_COMPAT_VERSION`: the Rocket.Chat release `/api/info` reports.
    pub rc_compat_version: String,
    /// `HTTP_*`: connection bounds.
    pub http: HttpConfig,
    /// `MAX_SESSIONS_PER_USER`: open SAYMON sessions a user may have; a
    /// new one beyond it ends the oldest.
    pub max_sessions_per_user: usize,
    /// `MAX_PERSONAL_ACCESS_TOKENS`: personal access tokens a user may have.
    pub max_personal_access_tokens: usize,
    /// `SHUTDOWN_DRAIN_SECONDS`: after SIGTERM, how long tokend keeps
    /// serving with `/readyz` answering 503 (so a load balancer takes it out
    /// of rotation) before it stops accepting connections (default 0).
    pub shutdown_drain: Duration,
    /// `AUDIT_RETENTION_DAYS`: how long audit events are kept (default 90).
    pub audit_retention: Duration,
    /// `LAST_USED_RESOLUTION_SECONDS`: a PAT's or API token's `lastUsedAt`
    /// is written at most once per this window (default 60; 0: every use;
    /// `off`: never, `None`).
    pub last_used_resolution: Option<Duration>,
    /// `PAT_MAX_LIFETIME_DAYS`: the longest lifetime a personal access
    /// token may get (`None`: no maximum, and PATs without expiry allowed).
    pub pat_max_lifetime: Option<Duration>,
    /// Two-factor authentication (`TWO_FACTOR_*`).
    pub two_factor: TwoFactorConfig,
    /// `SMTP_*`: where emailed two-factor codes go; `None` without `SMTP_HOST`.
    pub smtp: Option<SmtpConfig>,
}

/// Two-factor authentication, as Rocket.Chat's
/// `Accounts_TwoFactorAuthentication_*` settings.
#[derive(Debug, Clone)]
pub struct TwoFactorConfig {
    /// `TWO_FACTOR_PASSWORD_FALLBACK` (`..._Enforce_Password_Fallback`): a
    /// user without a second factor confirms protected actions with the password.
    pub password_fallback: bool,
    /// `TWO_FACTOR_TOTP_WINDOW` (`..._MaxDelta`): 30-second steps accepted
    /// either side of now.
    pub totp_window: u32,
    /// `TWO_FACTOR_EMAIL_CODE_SECONDS` (`..._By_Email_Code_Expiration`).
    pub email_code_lifetime: Duration,
    /// `TWO_FACTOR_EMAIL_MAX_ATTEMPTS` (`..._Max_Invalid_Email_Code_Attempts`).
    pub email_max_attempts: u32,
}

/// How a TLS-less, STARTTLS or TLS SMTP connection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `none`: plain text (a local relay or a test sink).
    None,
    /// `starttls`: upgrade after connecting (required).
    StartTls,
    /// `tls`: TLS from the first byte (SMTPS).
    Tls,
}

/// `SMTP_HOST`, `SMTP_PORT`, `SMTP_USERNAME`, `SMTP_PASSWORD`, `SMTP_FROM`, `SMTP_TLS`.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The `From` address of emailed codes.
    pub from: String,
    pub tls: SmtpTls,
}

/// The Rocket.Chat release whose REST API tokend follows, reported by
/// `/api/info` unless `RC_COMPAT_VERSION` says otherwise: the last 7.x
/// release line, whose `users.createToken` switch (`CREATE_TOKENS_FOR_USERS`)
/// is tokend's default mode. Reporting 8.x would make clients expect what
/// only Rocket.Chat 8 does; below 7 they turn off features tokend has.
pub const RC_COMPAT_VERSION: &str = "7.10.0";

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            port: 3000,
            mongo_url: None,
            database_path: crate::store::sqlite::DEFAULT_PATH.to_string(),
            store_timeout: Duration::from_secs(5),
            log_format: LogFormat::Pretty,
            admin_username: None,
            admin_pass: None,
            admin_email: None,
            admin_name: None,
            admin_email_verified: false,
            create_tokens_for_users: false,
            registration_public: false,
            create_tokens_secret: None,
            login_expiration: days(90),
            login_expiration_set: false,
            max_resume_login_tokens: 50,
            permissions_cache: Duration::from_secs(5),
            shutdown_drain: Duration::ZERO,
            login_block: LoginBlockConfig {
                enabled: true,
                user_attempts: 10,
                user_block: Duration::from_secs(5 * 60),
                ip_attempts: 50,
                ip_block: Duration::from_secs(5 * 60),
            },
            rate_limit: RateLimitConfig {
                enabled: true,
                calls: 10,
                window: Duration::from_secs(60),
            },
            trust_proxy: false,
            trusted_proxy_hops: 1,
            password_checks_max: default_password_checks(),
            saymon_session_idle: Duration::from_secs(60 * 60),
            saymon_session_max: Duration::from_secs(24 * 60 * 60),
            cookie_secure: false,
            rc_compat_version: RC_COMPAT_VERSION.into(),
            two_factor: TwoFactorConfig {
                password_fallback: true,
                totp_window: 1,
                email_code_lifetime: Duration::from_secs(HOUR),
                email_max_attempts: 5,
            },
            smtp: None,
            http: HttpConfig {
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                http2_max_concurrent_streams: 100,
            },
            max_sessions_per_user: 100,
            max_personal_access_tokens: 50,
            audit_retention: days(90),
            last_used_resolution: Some(Duration::from_secs(60)),
            pat_max_lifetime: None,
        }
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn days(n: u64) -> Duration {
    Duration::from_secs(n * DAY)
}

/// The longest duration any variable may give: far enough for any real
/// setting, near enough that "now + it" stays on the clock's calendar.
pub const MAX_DURATION: Duration = Duration::from_secs(1000 * 365 * DAY);

/// One bcrypt computation per core.
fn default_password_checks() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The variable's value, `None` when unset or blank.
    fn get(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
        what: &str,
        ok: impl Fn(&T) -> bool,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => match raw.trim().parse::<T>() {
                Ok(v) if ok(&v) => Ok(v),
                _ => Err(ConfigError {
                    var,
                    message: format!("expected {what}, got {raw:?}"),
                }),
            },
        }
    }

    fn positive<T: std::str::FromStr + PartialOrd + Default>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        self.parse(var, default, "a positive integer", |v| *v > T::default())
    }

    /// A positive whole number of `unit` seconds; `default` is a whole number of them.
    fn duration(
        &self,
        var: &'static str,
        unit: u64,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let n = self.positive(var, default.as_secs() / unit)?;
        n.checked_mul(unit)
            .map(Duration::from_secs)
            .filter(|d| *d <= MAX_DURATION)
            .ok_or_else(|| ConfigError {
                var,
                message: format!(
                    "{n} is too large (at most {})",
                    MAX_DURATION.as_secs() / unit
                ),
            })
    }

    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).as_deref().map(str::trim) {
            None => Ok(default),
            Some("true" | "yes" | "1") => Ok(true),
            Some("false" | "no" | "0") => Ok(false),
            Some(raw) => Err(ConfigError {
                var,
                message: format!("expected true or false, got {raw:?}"),
            }),
        }
    }
}

/// `MAJOR.MINOR.PATCH`, optionally `-suffix` (`7.10.0`, `8.0.0-rc.1`): what
/// Rocket.Chat clients parse as the server version.
fn is_release(v: &str) -> bool {
    let (core, suffix) = match v.split_once('-') {
        Some((core, suffix)) => (core, Some(suffix)),
        None => (v, None),
    };
    let number = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit());
    v.len() <= 40
        && core.split('.').count() == 3
        && core.split('.').all(number)
        && suffix.is_none_or(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        })
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let d = Config::default();
        let create_tokens_for_users = match env.get("CREATE_TOKENS_FOR_USERS").as_deref() {
            None => false,
            // Rocket.Chat accepts exactly these two strings.
            Some("yes" | "true") => true,
            Some("no" | "false") => false,
            Some(other) => {
                return Err(ConfigError {
                    var: "CREATE_TOKENS_FOR_USERS",
                    message: format!(
                        "expected yes or true (on) or no or false (off), got {other:?}"
                    ),
                })
            }
        };
        let log_format = match env.get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "LOG_FORMAT",
                    message: format!("expected json or pretty, got {other:?}"),
                })
            }
        };
        let admin_email = env.get("ADMIN_EMAIL");
        if let Some(email) = &admin_email {
            if !crate::core::validate::is_plausible_email(email) {
                return Err(ConfigError {
                    var: "ADMIN_EMAIL",
                    message: format!("not an email address: {email:?}"),
                });
            }
        }
        let admin_username = env.get("ADMIN_USERNAME");
        if let Some(name) = &admin_username {
            if !crate::core::validate::is_valid_username(name) {
                return Err(ConfigError {
                    var: "ADMIN_USERNAME",
                    message: format!("not a valid username (letters, digits, - _ .): {name:?}"),
                });
            }
        }
        let rc_compat_version = env
            .get("RC_COMPAT_VERSION")
            .map(|v| v.trim().to_string())
            .unwrap_or(d.rc_compat_version);
        if !is_release(&rc_compat_version) {
            return Err(ConfigError {
                var: "RC_COMPAT_VERSION",
                message: format!("expected a release such as 7.10.0, got {rc_compat_version:?}"),
            });
        }
        let smtp = Self::smtp_from(&env)?;
        let mongo_url = env.get("MONGO_URL");
        if let Some(url) = &mongo_url {
            if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
                return Err(ConfigError {
                    var: "MONGO_URL",
                    message: "expected a mongodb:// or mongodb+srv:// URI".into(),
                });
            }
        }
        Ok(Config {
            bind_ip: env.parse("BIND_IP", d.bind_ip, "an IP address", |_| true)?,
            port: env.parse("PORT", d.port, "a port number (0-65535)", |_| true)?,
            mongo_url: mongo_url.map(Secret),
            database_path: env
                .get("DATABASE_PATH")
                .map(|p| p.trim().to_string())
                .unwrap_or(d.database_path),
            store_timeout: env.duration("STORE_TIMEOUT_SECONDS", 1, d.store_timeout)?,
            log_format,
            admin_username,
            admin_pass: env.get("ADMIN_PASS").map(Secret),
            admin_email,
            admin_name: env.get("ADMIN_NAME").map(|n| n.trim().to_string()),
            admin_email_verified: env.flag("ADMIN_EMAIL_VERIFIED", d.admin_email_verified)?,
            create_tokens_for_users,
            registration_public: match env
                .get("ACCOUNTS_REGISTRATION_FORM")
                .as_deref()
                .map(str::trim)
            {
                None | Some("Disabled") => false,
                Some("Public") => true,
                Some(other) => {
                    return Err(ConfigError {
                        var: "ACCOUNTS_REGISTRATION_FORM",
                        message: format!("expected Public or Disabled, got {other:?}"),
                    })
                }
            },
            create_tokens_secret: env.get("CREATE_TOKENS_FOR_USERS_SECRET").map(Secret),
            login_expiration: env.duration("LOGIN_EXPIRATION_DAYS", DAY, d.login_expiration)?,
            login_expiration_set: env.get("LOGIN_EXPIRATION_DAYS").is_some(),
            max_resume_login_tokens: env
                .positive("MAX_RESUME_LOGIN_TOKENS", d.max_resume_login_tokens)?,
            shutdown_drain: Duration::from_secs(env.parse(
                "SHUTDOWN_DRAIN_SECONDS",
                d.shutdown_drain.as_secs(),
                "a number of seconds (at most 3600)",
                |s| *s <= 3600,
            )?),
            permissions_cache: Duration::from_secs(env.parse(
                "PERMISSIONS_CACHE_SECONDS",
                d.permissions_cache.as_secs(),
                "a number of seconds (at most 1000 years)",
                |s| *s <= MAX_DURATION.as_secs(),
            )?),
            login_block: LoginBlockConfig {
                enabled: env.flag("LOGIN_BLOCK_ENABLED", d.login_block.enabled)?,
                user_attempts: env
                    .positive("LOGIN_BLOCK_USER_ATTEMPTS", d.login_block.user_attempts)?,
                user_block: env.duration(
                    "LOGIN_BLOCK_USER_MINUTES",
                    MINUTE,
                    d.login_block.user_block,
                )?,
                ip_attempts: env.positive("LOGIN_BLOCK_IP_ATTEMPTS", d.login_block.ip_attempts)?,
                ip_block: env.duration("LOGIN_BLOCK_IP_MINUTES", MINUTE, d.login_block.ip_block)?,
            },
            rate_limit: RateLimitConfig {
                enabled: env.flag("RATE_LIMIT_ENABLED", d.rate_limit.enabled)?,
                calls: env.positive("RATE_LIMIT_CALLS", d.rate_limit.calls)?,
                window: env.duration("RATE_LIMIT_WINDOW_SECONDS", 1, d.rate_limit.window)?,
            },
            trust_proxy: env.flag("TRUST_PROXY", d.trust_proxy)?,
            trusted_proxy_hops: env.parse(
                "TRUSTED_PROXY_HOPS",
                d.trusted_proxy_hops,
                "a number of proxies from 1 to 32",
                |n| (1..=32).contains(n),
            )?,
            password_checks_max: env.parse(
                "PASSWORD_CHECKS_MAX",
                d.password_checks_max,
                "a number of concurrent checks from 1 to 1024",
                |n| (1..=1024).contains(n),
            )?,
            saymon_session_idle: env.duration(
                "SAYMON_SESSION_IDLE_MINUTES",
                MINUTE,
                d.saymon_session_idle,
            )?,
            saymon_session_max: env.duration(
                "SAYMON_SESSION_MAX_HOURS",
                HOUR,
                d.saymon_session_max,
            )?,
            cookie_secure: env.flag("COOKIE_SECURE", d.cookie_secure)?,
            rc_compat_version,
            two_factor: TwoFactorConfig {
                password_fallback: env.flag(
                    "TWO_FACTOR_PASSWORD_FALLBACK",
                    d.two_factor.password_fallback,
                )?,
                totp_window: env.parse(
                    "TWO_FACTOR_TOTP_WINDOW",
                    d.two_factor.totp_window,
                    "a number of 30-second steps from 0 to 10",
                    |n| *n <= 10,
                )?,
                email_code_lifetime: env.duration(
                    "TWO_FACTOR_EMAIL_CODE_SECONDS",
                    1,
                    d.two_factor.email_code_lifetime,
                )?,
                email_max_attempts: env.positive(
                    "TWO_FACTOR_EMAIL_MAX_ATTEMPTS",
                    d.two_factor.email_max_attempts,
                )?,
            },
            smtp,
            http: HttpConfig {
                header_timeout: env.duration(
                    "HTTP_HEADER_TIMEOUT_SECONDS",
                    1,
                    d.http.header_timeout,
                )?,
                body_timeout: env.duration("HTTP_BODY_TIMEOUT_SECONDS", 1, d.http.body_timeout)?,
                idle_timeout: env.duration("HTTP_IDLE_TIMEOUT_SECONDS", 1, d.http.idle_timeout)?,
                http2_max_concurrent_streams: env.parse(
                    "HTTP2_MAX_CONCURRENT_STREAMS",
                    d.http.http2_max_concurrent_streams,
                    "a number of streams from 1 to 10000",
                    |n| (1..=10_000).contains(n),
                )?,
            },
            max_sessions_per_user: env.parse(
                "MAX_SESSIONS_PER_USER",
                d.max_sessions_per_user,
                "a number of sessions from 1 to 100000",
                |n| (1..=100_000).contains(n),
            )?,
            max_personal_access_tokens: env.parse(
                "MAX_PERSONAL_ACCESS_TOKENS",
                d.max_personal_access_tokens,
                "a number of tokens from 1 to 100000",
                |n| (1..=100_000).contains(n),
            )?,
            audit_retention: env.duration("AUDIT_RETENTION_DAYS", DAY, d.audit_retention)?,
            last_used_resolution: match env
                .get("LAST_USED_RESOLUTION_SECONDS")
                .as_deref()
                .map(str::trim)
            {
                Some("off") => None,
                _ => Some(Duration::from_secs(env.parse(
                    "LAST_USED_RESOLUTION_SECONDS",
                    60,
                    "a number of seconds (at most one day) or off",
                    |s| *s <= DAY,
                )?)),
            },
            pat_max_lifetime: match env.get("PAT_MAX_LIFETIME_DAYS") {
                None => None,
                Some(_) => Some(env.duration("PAT_MAX_LIFETIME_DAYS", DAY, days(1))?),
            },
        })
    }

    /// `SMTP_*`: nothing without `SMTP_HOST`; with it, `SMTP_FROM` is required.
    fn smtp_from<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<SmtpConfig>, ConfigError> {
        let Some(host) = env.get("SMTP_HOST").map(|h| h.trim().to_string()) else {
            return Ok(None);
        };
        let tls = match env.get("SMTP_TLS").as_deref().map(str::trim) {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("none") => SmtpTls::None,
            Some("tls") => SmtpTls::Tls,
            Some(raw) => {
                return Err(ConfigError {
                    var: "SMTP_TLS",
                    message: format!("expected none, starttls or tls, got {raw:?}"),
                })
            }
        };
        let default_port = match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        };
        let from = env.get("SMTP_FROM").ok_or_else(|| ConfigError {
            var: "SMTP_FROM",
            message: "required with SMTP_HOST (the From address of emailed codes)".into(),
        })?;
        if !from.contains('@') {
            return Err(ConfigError {
                var: "SMTP_FROM",
                message: format!("expected an email address, got {from:?}"),
            });
        }
        Ok(Some(SmtpConfig {
            host,
            port: env.parse("SMTP_PORT", default_port, "a port number (1-65535)", |p| {
                *p > 0
            })?,
            username: env.get("SMTP_USERNAME"),
            password: env.get("SMTP_PASSWORD").map(Secret),
            from: from.trim().to_string(),
            tls,
        }))
    }

    /// Whether `users.createToken` is switched on at all.
    pub fn create_tokens_enabled(&self) -> bool {
        self.create_tokens_for_users || self.create_tokens_secret.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.max_resume_login_tokens, 50);
        assert_eq!(c.login_expiration, days(90));
        assert!(!c.create_tokens_enabled());
        // Unset variables give exactly `Config::default()`.
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
        assert_eq!(c.rc_compat_version, RC_COMPAT_VERSION);
        let c = cfg(&[("RC_COMPAT_VERSION", " 8.0.0-rc.1 ")]).unwrap();
        assert_eq!(c.rc_compat_version, "8.0.0-rc.1");
    }

    #[test]
    fn smtp_and_two_factor_settings() {
        let c = cfg(&[]).unwrap();
        assert!(c.smtp.is_none() && c.two_factor.password_fallback);
        assert_eq!(c.two_factor.totp_window, 1);
        let c = cfg(&[
            ("SMTP_HOST", "mail.example.com"),
            ("SMTP_FROM", "tokend@example.com"),
            ("SMTP_PASSWORD", "pw"),
        ])
        .unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, SmtpTls::StartTls));
        assert!(!format!("{smtp:?}").contains("pw"));
        let c = cfg(&[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_FROM", "a@b"),
            ("SMTP_TLS", "none"),
        ])
        .unwrap();
        assert_eq!(c.smtp.unwrap().port, 25);
        assert_eq!(cfg(&[("SMTP_HOST", "h")]).unwrap_err().var, "SMTP_FROM");
        let bad = cfg(&[
            ("SMTP_HOST", "h"),
            ("SMTP_FROM", "a@b"),
            ("SMTP_TLS", "ssl"),
        ]);
        assert_eq!(bad.unwrap_err().var, "SMTP_TLS");
        let off = cfg(&[("TWO_FACTOR_PASSWORD_FALLBACK", "false")]).unwrap();
        assert!(!off.two_factor.password_fallback);
        assert_eq!(
            cfg(&[("TWO_FACTOR_TOTP_WINDOW", "11")]).unwrap_err().var,
            "TWO_FACTOR_TOTP_WINDOW"
        );
    }

    #[test]
    fn audit_and_token_governance_variables() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.audit_retention, days(90));
        assert_eq!(c.last_used_resolution, Some(Duration::from_secs(60)));
        assert_eq!(c.pat_max_lifetime, None);
        let c = cfg(&[
            ("AUDIT_RETENTION_DAYS", "7"),
            ("LAST_USED_RESOLUTION_SECONDS", "0"),
            ("PAT_MAX_LIFETIME_DAYS", "30"),
        ])
        .unwrap();
        assert_eq!(c.audit_retention, days(7));
        assert_eq!(c.last_used_resolution, Some(Duration::ZERO));
        assert_eq!(c.pat_max_lifetime, Some(days(30)));
        let c = cfg(&[("LAST_USED_RESOLUTION_SECONDS", "off")]).unwrap();
        assert_eq!(c.last_used_resolution, None);
        for (var, bad) in [
            ("AUDIT_RETENTION_DAYS", "0"),
            ("LAST_USED_RESOLUTION_SECONDS", "86401"),
            ("LAST_USED_RESOLUTION_SECONDS", "soon"),
            ("PAT_MAX_LIFETIME_DAYS", "0"),
            ("PAT_MAX_LIFETIME_DAYS", "-3"),
        ] {
            assert_eq!(cfg(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }

    #[test]
    fn create_tokens_accepts_yes_and_true_only() {
        assert!(
            cfg(&[("CREATE_TOKENS_FOR_USERS", "yes")])
                .unwrap()
                .create_tokens_for_users
        );
        assert!(
            cfg(&[("CREATE_TOKENS_FOR_USERS", "true")])
                .unwrap()
                .create_tokens_for_users
        );
        assert!(
            !cfg(&[("CREATE_TOKENS_FOR_USERS", "no")])
                .unwrap()
                .create_tokens_for_users
        );
        let err = cfg(&[("CREATE_TOKENS_FOR_USERS", "TRUE")]).unwrap_err();
        assert_eq!(err.var, "CREATE_TOKENS_FOR_USERS");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("BIND_IP", "localhost"),
            ("LOGIN_EXPIRATION_DAYS", "0"),
            ("MAX_RESUME_LOGIN_TOKENS", "-1"),
            ("LOG_FORMAT", "xml"),
            ("MONGO_URL", "postgres://x"),
            ("ADMIN_EMAIL", "nope"),
            ("COOKIE_SECURE", "maybe"),
            ("LOGIN_EXPIRATION_DAYS", "300000000000000"),
            ("SAYMON_SESSION_MAX_HOURS", "18446744073709551615"),
            // Past what the clock can represent (they panicked on requests).
            ("RATE_LIMIT_WINDOW_SECONDS", "9000000000000"),
            ("LOGIN_BLOCK_USER_MINUTES", "200000000000"),
            ("PERMISSIONS_CACHE_SECONDS", "9000000000000"),
            ("TRUSTED_PROXY_HOPS", "0"),
            ("PASSWORD_CHECKS_MAX", "0"),
            ("ADMIN_EMAIL_VERIFIED", "maybe"),
            ("RC_COMPAT_VERSION", "seven"),
            ("RC_COMPAT_VERSION", "7.10"),
            ("RC_COMPAT_VERSION", "7.10.0-"),
            ("HTTP_HEADER_TIMEOUT_SECONDS", "0"),
            ("HTTP_BODY_TIMEOUT_SECONDS", "9000000000000"),
            ("HTTP_IDLE_TIMEOUT_SECONDS", "soon"),
            ("HTTP2_MAX_CONCURRENT_STREAMS", "0"),
            ("MAX_SESSIONS_PER_USER", "0"),
            ("MAX_PERSONAL_ACCESS_TOKENS", "-5"),
        ] {
            let err = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err
                .to_string()
                .starts_with(&format!("invalid configuration: {var}:")));
        }
    }

    #[test]
    fn database_path_defaults_to_the_data_folder() {
        assert_eq!(cfg(&[]).unwrap().database_path, "data/tokend.db");
        let c = cfg(&[("DATABASE_PATH", " /var/lib/tokend/tokend.db ")]).unwrap();
        assert_eq!(c.database_path, "/var/lib/tokend/tokend.db");
        assert_eq!(
            cfg(&[("DATABASE_PATH", ":memory:")]).unwrap().database_path,
            ":memory:"
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = cfg(&[
            ("CREATE_TOKENS_FOR_USERS_SECRET", "hunter2"),
            ("ADMIN_PASS", "pw123456"),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("pw123456"));
    }
}
