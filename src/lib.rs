//! labelwarden: GitLab label policies with SLA clocks, escalated in Slack.
//!
//! The core is pure and synchronous: [`policy`] (what the files say),
//! [`issue`] (the facts and history of one issue), [`clock`] (where an SLA
//! stands at an instant) and [`engine`] (what must be sent now, and when to
//! look again). Adapters at the edge feed it and carry out its actions:
//! [`cli`], and [`gitlab`] for webhook payloads; the webhook server, the
//! GitLab and Slack clients and the store build on the same core.

pub mod audit;
pub mod cli;
pub mod clock;
pub mod diff;
pub mod doctor;
pub mod drill;
pub mod engine;
pub mod gitlab;
pub mod http_client;
pub mod inspect;
pub mod issue;
pub mod jobs;
pub mod notice;
pub mod notify;
pub mod policy;
pub mod scenario;
pub mod server;
pub mod slack;
pub mod status_page;
pub mod store;

#[cfg(test)]
mod test_support;
