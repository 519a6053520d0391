//! The GitLab adapter: what GitLab sends us (webhook payloads) turned into
//! the core's types. The REST API client for `audit` and actions joins it.

pub mod webhook;
