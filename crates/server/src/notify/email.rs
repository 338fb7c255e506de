//! Notification email over SMTP, with the server's mail settings.
//!
//! One message per notification, addressed to all its recipients, with a plain-text body
//! ([`NotifyMessage::text`]). The whole conversation is bounded by a timeout so a mail
//! server that stops answering cannot hold a notification task forever.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::message::{NotifyError, NotifyMessage};

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on loopback or a trusted network).
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// The server's SMTP settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SmtpSettings {
    /// Mail server host name (also the name its certificate must carry).
    pub host: String,
    /// Port (25, 465, 587, …).
    pub port: u16,
    /// Sender, e.g. `gantry <ci@example.com>`.
    pub from: String,
    /// Login, when the server requires one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Connection security.
    #[serde(default)]
    pub tls: SmtpTls,
}

/// How long one email may take, from connecting to the final answer.
pub const TIMEOUT: Duration = Duration::from_secs(30);

fn mailbox(address: &str) -> Result<Mailbox, NotifyError> {
    address
        .trim()
        .parse()
        .map_err(|e: lettre::address::AddressError| NotifyError::Address {
            address: address.to_string(),
            message: e.to_string(),
        })
}

/// Builds the email for `msg` (exposed for tests and previews).
pub fn build(
    settings: &SmtpSettings,
    to: &[String],
    msg: &NotifyMessage,
) -> Result<Message, NotifyError> {
    let mut builder = Message::builder()
        .from(mailbox(&settings.from)?)
        .subject(msg.subject())
        .header(ContentType::TEXT_PLAIN);
    if to.is_empty() {
        return Err(NotifyError::Address {
            address: String::new(),
            message: "no recipients".into(),
        });
    }
    for address in to {
        builder = builder.to(mailbox(address)?);
    }
    builder.body(msg.text()).map_err(NotifyError::Email)
}

fn transport(
    settings: &SmtpSettings,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
    let server = format!("{}:{}", settings.host, settings.port);
    let smtp = |source| NotifyError::Smtp {
        server: server.clone(),
        source,
    };
    let builder = match settings.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host),
        SmtpTls::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host).map_err(smtp)?
        }
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host).map_err(smtp)?
        }
    };
    let mut builder = builder.port(settings.port).timeout(Some(timeout));
    if let Some(user) = &settings.username {
        let password = settings.password.clone().unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

/// Sends `msg` to the addresses `to` through the mail server of `settings`, within
/// [`TIMEOUT`].
pub async fn send(
    settings: &SmtpSettings,
    to: &[String],
    msg: &NotifyMessage,
) -> Result<(), NotifyError> {
    send_with_timeout(settings, to, msg, TIMEOUT).await
}

/// [`send`] with another time limit for the whole conversation.
pub async fn send_with_timeout(
    settings: &SmtpSettings,
    to: &[String],
    msg: &NotifyMessage,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let email = build(settings, to, msg)?;
    let mailer = transport(settings, timeout)?;
    let server = format!("{}:{}", settings.host, settings.port);
    let timed_out = || NotifyError::Timeout {
        target: server.clone(),
        timeout,
    };
    match tokio::time::timeout(timeout, mailer.send(email)).await {
        Ok(Ok(_response)) => Ok(()),
        Ok(Err(source)) if source.is_timeout() => Err(timed_out()),
        Ok(Err(source)) => Err(NotifyError::Smtp {
            server: server.clone(),
            source,
        }),
        Err(_) => Err(timed_out()),
    }
}
