//! What an administrator may see of the state table, and the one thing
//! they may do to it: evict a client (`nfs4d ctl clients`, `ctl evict`,
//! docs/operations.md). knfsd offers the same through
//! `/proc/fs/nfsd/clients/*/{info,states,ctl}`.
//!
//! Snapshots are copied out under the state lock in one pass, so a view
//! is consistent; nothing here is on the request path.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{deleg, ClientId, StateKind, StateManager};

/// Counters of events in the state table (monotonic, since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Delegations granted (reclaims included).
    pub delegations_granted: u64,
    /// Delegations recalled (each recall counts once, however often the
    /// callback is retried).
    pub delegations_recalled: u64,
    /// Delegations revoked: not returned within a lease period of their
    /// recall (RFC 8881 §10.4.6).
    pub delegations_revoked: u64,
    /// Clients that lost their state because their lease ran out.
    pub leases_expired: u64,
    /// Clients evicted by the administrator.
    pub clients_evicted: u64,
}

/// One client as `ctl clients` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    /// Client id (`clientid4`).
    pub id: ClientId,
    /// Address of the connection that established it (or, for a 4.1
    /// client, created its latest session).
    pub addr: Option<SocketAddr>,
    /// The owner string the client chose (`co_ownerid` / `nfs_client_id4.id`).
    pub owner: Vec<u8>,
    /// Minor version: 0 for SETCLIENTID clients, else the highest minor
    /// version of its sessions (1 without a session).
    pub minor: u32,
    /// Confirmed (4.0 SETCLIENTID_CONFIRM, 4.1 first CREATE_SESSION).
    pub confirmed: bool,
    /// Implementation name sent in EXCHANGE_ID.
    pub implementation: String,
    /// Milliseconds since the lease was last renewed.
    pub lease_age_ms: u64,
    /// A courtesy client (lease expired, state kept while uncontested).
    pub courtesy: bool,
    /// Sessions.
    pub sessions: usize,
    /// Open stateids.
    pub opens: usize,
    /// Byte-range locks held (ranges).
    pub locks: usize,
    /// Delegations held or being recalled.
    pub delegations: usize,
    /// Delegations revoked and not yet freed.
    pub revoked: u32,
}

/// Totals over the whole table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Client records, confirmed or not.
    pub clients: usize,
    /// Of which courtesy clients.
    pub courtesy: usize,
    /// Sessions.
    pub sessions: usize,
    /// Open stateids.
    pub opens: usize,
    /// Lock stateids (one per lock owner and file).
    pub lock_states: usize,
    /// Byte-range locks held (ranges).
    pub locks: usize,
    /// Delegations held or being recalled.
    pub delegations: usize,
    /// Of which being recalled.
    pub recalling: usize,
    /// Event counters.
    pub stats: StateStats,
}

/// Why an eviction did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvictError {
    /// No client has that id.
    #[error("no client {0:#x}")]
    NoSuchClient(ClientId),
}

/// What an eviction released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted {
    /// The client as it was.
    pub client: ClientView,
}

impl StateManager {
    /// Every client, ordered by id.
    pub fn clients(&self) -> Vec<ClientView> {
        let now = self.now();
        let g = self.lock();
        let mut per: HashMap<ClientId, (usize, usize)> = HashMap::new();
        for e in g.states.values() {
            let c = per.entry(e.client).or_default();
            match &e.kind {
                StateKind::Open(_) => c.0 += 1,
                StateKind::Deleg(d) if d.recall != deleg::Recall::Revoked => c.1 += 1,
                _ => {}
            }
        }
        let mut locks: HashMap<ClientId, usize> = HashMap::new();
        for r in g.locks.values().flatten() {
            *locks.entry(r.owner.0).or_default() += 1;
        }
        let mut out: Vec<ClientView> = g
            .clients
            .values()
            .map(|c| {
                let minor = c
                    .sessions
                    .iter()
                    .filter_map(|s| g.sessions.get(s))
                    .map(|s| s.minor)
                    .max()
                    .unwrap_or(c.minor);
                let (opens, delegations) = per.get(&c.id).copied().unwrap_or_default();
                let renewed = c.lease_expires_ms.saturating_sub(self.lease_ms);
                ClientView {
                    id: c.id,
                    addr: c.addr,
                    owner: c.owner.clone(),
                    minor,
                    confirmed: c.confirmed,
                    implementation: c.impl_name.clone(),
                    lease_age_ms: now.saturating_sub(renewed),
                    courtesy: c.courtesy_since.is_some(),
                    sessions: c.sessions.len(),
                    opens,
                    locks: locks.get(&c.id).copied().unwrap_or(0),
                    delegations,
                    revoked: c.revoked,
                }
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Totals, for `ctl status` and the metrics gauges.
    pub fn counts(&self) -> StateCounts {
        let g = self.lock();
        let mut n = StateCounts {
            clients: g.clients.len(),
            courtesy: g
                .clients
                .values()
                .filter(|c| c.courtesy_since.is_some())
                .count(),
            sessions: g.sessions.len(),
            locks: g.locks.values().map(Vec::len).sum(),
            stats: g.stats,
            ..Default::default()
        };
        for e in g.states.values() {
            match &e.kind {
                StateKind::Open(_) => n.opens += 1,
                StateKind::Lock { .. } => n.lock_states += 1,
                StateKind::Deleg(d) => match d.recall {
                    deleg::Recall::Held => n.delegations += 1,
                    deleg::Recall::Recalling { .. } => {
                        n.delegations += 1;
                        n.recalling += 1;
                    }
                    deleg::Recall::Revoked => {}
                },
            }
        }
        n
    }

    /// Evicts a client as if its lease had run out and it could not be
    /// kept as a courtesy client: its sessions, opens, locks and
    /// delegations go at once, and its stable record too, so it may not
    /// reclaim them after a restart (RFC 8881 §8.4.3). Its next request
    /// gets NFS4ERR_BADSESSION / NFS4ERR_EXPIRED / NFS4ERR_STALE_CLIENTID
    /// and it starts over with a new client id. The local leases that
    /// stood for its delegations are released by the next lease
    /// reconciliation (`Server::sync_leases`, once a second).
    pub fn evict(&self, id: ClientId) -> Result<Evicted, EvictError> {
        let client = self
            .clients()
            .into_iter()
            .find(|c| c.id == id)
            .ok_or(EvictError::NoSuchClient(id))?;
        {
            let mut g = self.lock();
            if !g.clients.contains_key(&id) {
                return Err(EvictError::NoSuchClient(id));
            }
            g.expire_with_record(id);
            g.stats.clients_evicted += 1;
        }
        self.flush_record_removals();
        tracing::warn!(
            client = format_args!("{id:#x}"),
            addr = ?client.addr,
            opens = client.opens,
            locks = client.locks,
            delegations = client.delegations,
            "client evicted by the administrator; its state is released"
        );
        Ok(Evicted { client })
    }

    /// Notes the address a client's latest establishing request came from.
    pub fn note_client_addr(&self, id: ClientId, addr: SocketAddr) {
        if let Some(c) = self.lock().clients.get_mut(&id) {
            c.addr = Some(addr);
        }
    }
}
