//! Sending mail: the emailed two-factor codes. [`SmtpMailer`] speaks SMTP
//! through `lettre` (`SMTP_*`); the core holds no mailer when `SMTP_HOST` is
//! unset, and then says so instead of pretending a code was sent.

use crate::config::{SmtpConfig, SmtpTls};
use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a message was not sent. The text names the failure, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Something that sends a plain-text message.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `text` to `to` with `subject`.
    async fn send(&self, to: &str, subject: &str, text: &str) -> Result<(), MailError>;
}

/// SMTP through `lettre`: one connection per message (codes are rare).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for this configuration; no I/O until the first message.
    pub fn new(cfg: &SmtpConfig) -> Result<Self, MailError> {
        let bad = |e: &dyn std::fmt::Display| MailError(format!("SMTP configuration: {e}"));
        let builder = match cfg.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(|e| bad(&e))?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(|e| bad(&e))?
            }
        };
        let mut builder = builder
            .port(cfg.port)
            .timeout(Some(std::time::Duration::from_secs(10)));
        if let Some(user) = &cfg.username {
            let password = cfg
                .password
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from = cfg.from.parse::<Mailbox>().map_err(|e| bad(&e))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, to: &str, subject: &str, text: &str) -> Result<(), MailError> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| MailError(format!("bad recipient address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_string())
            .map_err(|e| MailError(format!("building the message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError(format!("SMTP: {e}")))
    }
}
