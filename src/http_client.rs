//! Outbound HTTP: the one way this program builds a `reqwest` client, so
//! every client (Slack now, GitLab later) shares TLS setup, timeouts and
//! the user agent.
//!
//! TLS is rustls with the `ring` crypto provider, installed once for the
//! process: reqwest is built without a provider of its own so that no
//! second crypto backend (and no C toolchain for it) is pulled in.

use std::time::Duration;

/// How long one request may take, connection included, unless a client
/// says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A client builder with TLS ready, a connect and request timeout, and
/// `labelwarden/VERSION` as user agent.
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("labelwarden/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
}

/// Installs rustls's `ring` provider as the process default, once. A
/// provider installed earlier (by an embedding program) is kept.
pub fn install_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A request error in words, with its causes (`error sending request:
/// connection refused`), and without its URL: some URLs are secrets
/// (Slack incoming webhooks).
pub fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_builds_with_tls_ready() {
        super::builder().build().expect("client builds");
        // Twice is fine: the provider is installed once.
        super::builder().build().expect("client builds again");
    }
}
