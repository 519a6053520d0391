//! The GitLab adapter: what GitLab sends us (webhook payloads, [`webhook`])
//! turned into the core's types, and the REST API: the client with its
//! limits and retries ([`client`]), and issues with their histories read
//! into the core's [`crate::issue::Issue`] ([`history`]).

pub mod client;
pub mod history;
pub mod webhook;
