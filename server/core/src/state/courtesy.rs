//! Courtesy clients: a client whose lease ran out keeps its opens, locks
//! and delegations for as long as nobody else wants them (RFC 8881 §8.3
//! allows a server to hold on to an expired client's state "if no
//! conflicting lock requests are received"; knfsd calls this the
//! courteous server). A laptop that slept through its lease finds its
//! files still open and locked; the first conflicting request from
//! another client expires the courtesy client on the spot and proceeds.
//!
//! Not for byte-range locks: they are kernel locks on the backing files
//! (docs/locking.md), and a local process that conflicts with one cannot
//! tell the server, so a courtesy client's locks could hold local
//! processes off for as long as it is kept. A client holding byte-range
//! locks loses its state when its lease runs out, as without courtesy.
//! Opens (share reservations are the server's alone) and delegations (a
//! local open breaks their lease, and the server then expires the
//! courtesy holder) are kept.
//!
//! Bounded twice: at most `limits.max_courtesy_clients` are kept (the
//! oldest go first) and none longer than `courtesy_time` seconds. A
//! courtesy client that renews (RENEW, SEQUENCE or a 4.0 stateful
//! operation) is an ordinary client again.

use super::{ClientId, FileKey, Inner, StateManager};

impl Inner {
    /// Expires the courtesy clients holding state on `file`, so a
    /// conflicting request can proceed. Returns whether any was expired.
    pub fn expire_courtesy_on(&mut self, file: FileKey) -> bool {
        let mut victims: Vec<ClientId> = self
            .states
            .of_file(file)
            .map(|(_, e)| e.client)
            .filter(|c| self.is_courtesy(*c))
            .collect();
        victims.sort_unstable();
        victims.dedup();
        for &v in &victims {
            tracing::info!(
                client = format_args!("{v:#x}"),
                ?file,
                "courtesy client's state conflicts with a new request; expiring it"
            );
            self.expire_with_record(v);
        }
        !victims.is_empty()
    }

    /// Whether `client` is a courtesy client.
    pub fn is_courtesy(&self, client: ClientId) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| c.courtesy_since.is_some())
    }

    /// Expires a client now, its lease run out; its stable record goes
    /// with the next [`StateManager::flush_record_removals`] (it may not
    /// reclaim after a restart what it lost here, RFC 8881 §8.4.3).
    pub fn expire_with_record(&mut self, client: ClientId) {
        if let Some(c) = self.clients.get(&client).filter(|c| c.confirmed) {
            self.record_removals
                .push(super::recovery::record_key(c.minor, &c.owner));
        }
        self.expire_client(client);
    }
}

impl StateManager {
    /// Removes the stable records of clients expired under the lock,
    /// unless another incarnation of the same owner has been confirmed
    /// meanwhile (its record has the same key and stays).
    pub fn flush_record_removals(&self) {
        let keys = std::mem::take(&mut self.lock().record_removals);
        for key in keys {
            let live = self
                .lock()
                .clients
                .values()
                .any(|c| c.confirmed && super::recovery::record_key(c.minor, &c.owner) == key);
            if !live {
                self.recovery.remove(&key);
            }
        }
    }

    /// Decides, for clients whose lease has run out, which become (or
    /// stay) courtesy clients; returns the others, to be expired. A client
    /// holding no state has nothing to keep.
    pub(super) fn courtesy_triage(
        &self,
        g: &mut Inner,
        dead: Vec<ClientId>,
        now: u64,
    ) -> Vec<ClientId> {
        let max = self.limits.max_courtesy_clients as usize;
        let mut expire = Vec::new();
        for id in dead {
            let holds = g.states.client_holds(id);
            let locks = g.locks.values().flatten().any(|r| r.owner.0 == id);
            let Some(c) = g.clients.get_mut(&id) else {
                continue;
            };
            match c.courtesy_since {
                Some(since) if since + self.courtesy_ms <= now => expire.push(id),
                Some(_) => {}
                None if holds && !locks && max > 0 => {
                    c.courtesy_since = Some(now);
                    tracing::info!(
                        client = format_args!("{id:#x}"),
                        "lease expired; state kept while uncontested (courtesy client)"
                    );
                }
                None => expire.push(id),
            }
        }
        // Over the bound: the longest-expired go first.
        let mut kept: Vec<(u64, ClientId)> = g
            .clients
            .values()
            .filter(|c| !expire.contains(&c.id))
            .filter_map(|c| c.courtesy_since.map(|s| (s, c.id)))
            .collect();
        if kept.len() > max {
            kept.sort_unstable();
            let excess = kept.len() - max;
            expire.extend(kept.into_iter().take(excess).map(|(_, id)| id));
        }
        expire
    }
}
