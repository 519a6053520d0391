//! Fencing: the proof a write carries that its writer still holds what it
//! acts under. A process can freeze (a GC pause, a VM or container
//! stopped, a stalled host) past its enforcer lease or its outbox claim,
//! and then resume as if nothing happened while another replica has taken
//! over. Every write made under a lease or a claim therefore names it, and
//! the store checks it in the same transaction or statement as the write:
//!
//! - the enforcer's lease has an `epoch` that grows at each takeover; a
//!   pass commits only while the lease is still this process's, at the
//!   epoch it was taken at, and not run out ([`LeaseFence`]);
//! - an outbox claim has a token of its own; a sender confirms it (and
//!   stretches it to a full lease) right before each request that could
//!   make a notice visible, and records an outcome only under the token it
//!   claimed with ([`ClaimToken`]).

/// The enforcer lease as this process took it: a pass it commits under
/// this fence is refused once another process took the lease over, or the
/// lease ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFence {
    /// The lease's name (`enforcer`).
    pub name: String,
    /// Grows by one each time the lease changes hands or is taken again
    /// after running out.
    pub epoch: i64,
}

/// The token of one outbox claim: the rows a claim hands out carry it
/// until they are recorded or claimed again by someone else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(pub String);

impl std::fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
