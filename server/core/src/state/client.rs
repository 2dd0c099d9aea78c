//! Client records and their establishment: SETCLIENTID/SETCLIENTID_CONFIRM
//! (4.0, RFC 7530 §16.33–16.34) and EXCHANGE_ID (4.1, RFC 8881 §18.35).

use super::SessionId;
use super::{Inner, StateManager};
use crate::error::NfsError;

/// A client id (`clientid4`): the boot id in the high half, a counter in
/// the low half, so ids of an earlier server instance are recognisable.
pub type ClientId = u64;

pub use super::Principal;

/// SP4_MACH_CRED state protection of a 4.1 client (RFC 8881 §2.10.8.3,
/// §18.35.3): the machine credential that created the client ID, and the
/// operations that must come with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachCred {
    /// The Kerberos principal of the EXCHANGE_ID.
    pub principal: String,
    /// Operations (bit = operation number) that must be sent by that
    /// principal with integrity or privacy (`spo_must_enforce`).
    pub enforce: u64,
    /// Operations the client may send with it whoever owns the state
    /// (`spo_must_allow`).
    pub allow: u64,
}

/// Who sends a request, as SP4_MACH_CRED looks at it: the Kerberos
/// principal, and whether the call had integrity or privacy.
pub type MachCaller<'a> = Option<(&'a str, bool)>;

impl MachCred {
    /// Whether `caller` is the machine credential, protected as RFC 8881
    /// §18.35.3 asks (RPCSEC_GSS with integrity or privacy).
    pub fn matches(&self, caller: MachCaller<'_>) -> bool {
        caller.is_some_and(|(p, protected)| protected && p == self.principal)
    }
}

/// 4.0 callback location given in SETCLIENTID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Callback40 {
    /// Callback program number.
    pub program: u32,
    /// Network id ("tcp", "tcp6").
    pub netid: String,
    /// Universal address.
    pub addr: String,
    /// `callback_ident` to send in CB_COMPOUND.
    pub ident: u32,
    /// Address the SETCLIENTID came from: callbacks go only to this host
    /// (docs/delegations.md), never to an address a client merely names.
    pub peer: Option<std::net::IpAddr>,
}

/// One client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// The client-supplied owner id (`co_ownerid` / `nfs_client_id4.id`).
    pub owner: Vec<u8>,
    /// The client's boot verifier.
    pub verifier: [u8; 8],
    /// Who created it.
    pub principal: Principal,
    /// SP4_MACH_CRED protection (4.1), if the client asked for it.
    pub mach_cred: Option<MachCred>,
    /// Minor version family: 0 for SETCLIENTID clients, 1 for EXCHANGE_ID.
    pub minor: u32,
    /// Confirmed (SETCLIENTID_CONFIRM or first CREATE_SESSION done).
    pub confirmed: bool,
    /// 4.0: verifier the client must echo in SETCLIENTID_CONFIRM.
    pub confirm: [u8; 8],
    /// 4.0: callback location.
    pub callback: Callback40,
    /// 4.1: the CREATE_SESSION sequence id last processed.
    pub cs_seq: u32,
    /// 4.1: the cached result of that CREATE_SESSION, for a retransmission.
    pub cs_reply: Option<Vec<u8>>,
    /// Sessions of this client.
    pub sessions: Vec<SessionId>,
    /// When the lease runs out, in clock milliseconds.
    pub lease_expires_ms: u64,
    /// RECLAIM_COMPLETE received.
    pub reclaim_complete: bool,
    /// Implementation name from EXCHANGE_ID (e.g. "Linux …"), for logs.
    pub impl_name: String,
    /// 4.0: the callback address answered CB_NULL (RFC 7530 §10.2.1);
    /// delegations are granted only then.
    pub cb40_up: bool,
    /// 4.1: delegations revoked and not yet freed with FREE_STATEID
    /// (SEQ4_STATUS_RECALLABLE_STATE_REVOKED, RFC 8881 §18.46.3).
    pub revoked: u32,
    /// Lease ran out at this time, state kept while uncontested
    /// (`courtesy.rs`).
    pub courtesy_since: Option<u64>,
    /// When CB_RECALL_ANY was last sent to it.
    pub recall_any_ms: Option<u64>,
    /// Address of the connection that established it, or created its
    /// latest session (`ctl clients`).
    pub addr: Option<std::net::SocketAddr>,
}

/// Result of SETCLIENTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetClientIdOk {
    /// The client id to confirm.
    pub clientid: ClientId,
    /// The verifier to echo.
    pub confirm: [u8; 8],
}

/// Result of EXCHANGE_ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeIdOk {
    /// The client id.
    pub clientid: ClientId,
    /// Sequence id to use in the first CREATE_SESSION.
    pub seq: u32,
    /// The record is already confirmed.
    pub confirmed: bool,
}

impl StateManager {
    fn new_client(
        &self,
        g: &mut Inner,
        owner: &[u8],
        verifier: [u8; 8],
        principal: Principal,
        minor: u32,
    ) -> Client {
        g.next_client = g.next_client.wrapping_add(1);
        let id = (u64::from(self.boot) << 32) | u64::from(g.next_client);
        let mut confirm = [0u8; 8];
        confirm[..4].copy_from_slice(&self.boot.to_be_bytes());
        confirm[4..].copy_from_slice(&g.next_client.to_be_bytes());
        Client {
            id,
            owner: owner.to_vec(),
            verifier,
            principal,
            mach_cred: None,
            minor,
            confirmed: false,
            confirm,
            callback: Callback40::default(),
            cs_seq: 0,
            cs_reply: None,
            sessions: Vec::new(),
            lease_expires_ms: self.now() + self.lease_ms,
            reclaim_complete: false,
            impl_name: String::new(),
            cb40_up: false,
            revoked: 0,
            courtesy_since: None,
            recall_any_ms: None,
            addr: None,
        }
    }

    /// Room for one more client record (`limits.max_clients`): a hostile
    /// peer can send SETCLIENTID / EXCHANGE_ID with fresh owner ids
    /// forever. At the limit the oldest unconfirmed record goes — it holds
    /// no state (RFC 7530 §16.33.5, RFC 8881 §18.35.5), so a flood of them
    /// only displaces other unconfirmed records, never a working client.
    /// With only confirmed clients the request is refused: NFS4ERR_RESOURCE
    /// (the COMPOUND loop answers NFS4ERR_DELAY in 4.1, which has no
    /// RESOURCE).
    fn admit_client(&self, g: &mut Inner) -> Result<(), NfsError> {
        if g.clients.len() < self.limits.max_clients as usize {
            return Ok(());
        }
        let oldest = g
            .clients
            .values()
            .filter(|c| !c.confirmed && c.sessions.is_empty())
            .min_by_key(|c| c.lease_expires_ms)
            .map(|c| c.id);
        match oldest {
            Some(id) => {
                tracing::info!(
                    client = format_args!("{id:#x}"),
                    "client table full; dropping the oldest unconfirmed client"
                );
                g.purge_client(id);
                Ok(())
            }
            None => {
                tracing::warn!(
                    limit = self.limits.max_clients,
                    "client table full of confirmed clients; refusing a new client"
                );
                Err(NfsError::Resource)
            }
        }
    }

    fn has_state(g: &Inner, id: ClientId) -> bool {
        g.states.client_holds(id)
    }

    /// SETCLIENTID (RFC 7530 §16.33.5).
    pub fn setclientid(
        &self,
        owner: &[u8],
        verifier: [u8; 8],
        principal: Principal,
        callback: Callback40,
    ) -> Result<SetClientIdOk, NfsError> {
        let now = self.now();
        let mut g = self.lock();
        let same_owner = |c: &&Client| c.owner == owner && c.minor == 0;
        let confirmed = g
            .clients
            .values()
            .find(|c| same_owner(c) && c.confirmed)
            .cloned();
        let unconfirmed: Vec<ClientId> = g
            .clients
            .values()
            .filter(|c| same_owner(c) && !c.confirmed)
            .map(|c| c.id)
            .collect();
        if let Some(c) = &confirmed {
            // RFC 7530 §16.33.5: another principal is refused only while
            // the record holds state (pynfs CID2/CID2a).
            let _ = now;
            if c.principal != principal && Self::has_state(&g, c.id) {
                return Err(NfsError::ClidInUse);
            }
        }
        for id in unconfirmed {
            g.purge_client(id);
        }
        self.admit_client(&mut g)?;
        let mut rec = self.new_client(&mut g, owner, verifier, principal, 0);
        rec.callback = callback;
        if let Some(c) = confirmed.filter(|c| c.verifier == verifier) {
            // Same incarnation of the client: a callback update. It keeps
            // its client id; the new record is confirmed in place later.
            rec.id = c.id;
        }
        let ok = SetClientIdOk {
            clientid: rec.id,
            confirm: rec.confirm,
        };
        if g.clients.get(&rec.id).is_some_and(|c| c.confirmed) {
            // Park the callback update beside the confirmed record.
            g.pending_updates.insert(rec.id, rec);
        } else {
            g.clients.insert(rec.id, rec);
        }
        Ok(ok)
    }

    /// SETCLIENTID_CONFIRM (RFC 7530 §16.34.5).
    pub fn setclientid_confirm(
        &self,
        id: ClientId,
        confirm: [u8; 8],
        principal: &Principal,
    ) -> Result<(), NfsError> {
        let now = self.now();
        let mut g = self.lock();
        if let Some(upd) = g.pending_updates.get(&id) {
            if upd.confirm == confirm {
                if &upd.principal != principal {
                    return Err(NfsError::ClidInUse);
                }
                let upd = g.pending_updates.remove(&id).expect("checked above");
                if let Some(c) = g.clients.get_mut(&id) {
                    c.callback = upd.callback;
                    c.cb40_up = false;
                    c.lease_expires_ms = now + self.lease_ms;
                }
                drop(g);
                // The new callback address is checked before delegations
                // use it (RFC 7530 §16.33.5).
                self.callbacks
                    .push(super::deleg::CbWork::Probe40 { client: id });
                return Ok(());
            }
        }
        let Some(c) = g.clients.get(&id) else {
            return Err(NfsError::StaleClientid);
        };
        if c.confirm != confirm {
            return Err(NfsError::StaleClientid);
        }
        if &c.principal != principal {
            return Err(NfsError::ClidInUse);
        }
        if c.confirmed {
            return Ok(()); // retransmission
        }
        let owner = c.owner.clone();
        // A confirmed record of an earlier incarnation of this client loses
        // its state now that the new one is confirmed.
        let old: Vec<ClientId> = g
            .clients
            .values()
            .filter(|o| o.owner == owner && o.minor == 0 && o.confirmed && o.id != id)
            .map(|o| o.id)
            .collect();
        for o in old {
            g.expire_client(o);
        }
        let mut record = None;
        if let Some(c) = g.clients.get_mut(&id) {
            c.confirmed = true;
            c.lease_expires_ms = now + self.lease_ms;
            record = Some((
                super::recovery::record_key(0, &c.owner),
                c.principal.clone(),
            ));
        }
        drop(g);
        // Durable before the reply confirms the client (RFC 7530 §9.6.3.4).
        if let Some((key, principal)) = record {
            self.recovery.put(&key, &principal, false);
        }
        // Delegations wait until CB_NULL proves the callback path (RFC
        // 7530 §10.2.1).
        self.callbacks
            .push(super::deleg::CbWork::Probe40 { client: id });
        Ok(())
    }

    /// Renews a client's lease (RENEW, SEQUENCE, or any 4.0 stateful op).
    pub fn renew(&self, id: ClientId) -> Result<(), NfsError> {
        let now = self.now();
        let mut g = self.lock();
        match g.clients.get_mut(&id) {
            Some(c) if c.confirmed => {
                c.lease_expires_ms = now + self.lease_ms;
                c.courtesy_since = None;
                Ok(())
            }
            Some(_) => Err(NfsError::StaleClientid),
            None if id >> 32 == u64::from(self.boot) => Err(NfsError::Expired),
            None => Err(NfsError::StaleClientid),
        }
    }

    /// EXCHANGE_ID (RFC 8881 §18.35.5).
    pub fn exchange_id(
        &self,
        owner: &[u8],
        verifier: [u8; 8],
        principal: Principal,
        update: bool,
        impl_name: String,
    ) -> Result<ExchangeIdOk, NfsError> {
        let now = self.now();
        let mut g = self.lock();
        let confirmed = g
            .clients
            .values()
            .find(|c| c.owner == owner && c.minor >= 1 && c.confirmed)
            .cloned();
        if update {
            let c = confirmed.ok_or(NfsError::NoEnt)?;
            if c.verifier != verifier {
                return Err(NfsError::NotSame);
            }
            if c.principal != principal {
                return Err(NfsError::Perm);
            }
            return Ok(ExchangeIdOk {
                clientid: c.id,
                seq: c.cs_seq.wrapping_add(1),
                confirmed: true,
            });
        }
        if let Some(c) = &confirmed {
            if c.principal != principal {
                // RFC 8881 §18.35.5: another principal may take over the
                // owner id only while the record holds no state.
                let _ = now;
                if !c.sessions.is_empty() || Self::has_state(&g, c.id) {
                    return Err(NfsError::ClidInUse);
                }
                // The other principal's stateless record is replaced now.
                g.purge_client(c.id);
            } else if c.verifier == verifier {
                let c = g.clients.get_mut(&c.id).expect("found above");
                c.impl_name = impl_name;
                return Ok(ExchangeIdOk {
                    clientid: c.id,
                    seq: c.cs_seq.wrapping_add(1),
                    confirmed: true,
                });
            }
        }
        // New client or a new incarnation: a fresh unconfirmed record
        // replaces any earlier unconfirmed one; a confirmed record of the
        // old incarnation is purged when this one is confirmed.
        let stale: Vec<ClientId> = g
            .clients
            .values()
            .filter(|c| c.owner == owner && c.minor >= 1 && !c.confirmed)
            .map(|c| c.id)
            .collect();
        for id in stale {
            g.purge_client(id);
        }
        self.admit_client(&mut g)?;
        let mut rec = self.new_client(&mut g, owner, verifier, principal, 1);
        rec.impl_name = impl_name;
        let ok = ExchangeIdOk {
            clientid: rec.id,
            seq: 1,
            confirmed: false,
        };
        rec.cs_seq = 0;
        g.clients.insert(rec.id, rec);
        Ok(ok)
    }

    /// Confirms a 4.1 client on its first CREATE_SESSION, purging an
    /// earlier incarnation (RFC 8881 §18.36.4).
    pub fn confirm41(g: &mut Inner, id: ClientId) {
        let Some(owner) = g.clients.get(&id).map(|c| c.owner.clone()) else {
            return;
        };
        let old: Vec<ClientId> = g
            .clients
            .values()
            .filter(|o| o.owner == owner && o.minor >= 1 && o.confirmed && o.id != id)
            .map(|o| o.id)
            .collect();
        for o in old {
            g.expire_client(o);
        }
        if let Some(c) = g.clients.get_mut(&id) {
            c.confirmed = true;
        }
    }

    /// The SP4_MACH_CRED protection of client `id`.
    pub fn mach_cred(&self, id: ClientId) -> Option<MachCred> {
        self.lock()
            .clients
            .get(&id)
            .and_then(|c| c.mach_cred.clone())
    }

    /// The SP4_MACH_CRED protection of the confirmed 4.1 client with this
    /// owner id: a new EXCHANGE_ID for it must come from the same machine
    /// credential (RFC 8881 §18.35.3).
    pub fn mach_cred_of_owner(&self, owner: &[u8]) -> Option<MachCred> {
        self.lock()
            .clients
            .values()
            .find(|c| c.owner == owner && c.minor >= 1 && c.confirmed)
            .and_then(|c| c.mach_cred.clone())
    }

    /// Sets the protection of a client not yet confirmed (its EXCHANGE_ID
    /// just created it); a confirmed client keeps the protection it was
    /// confirmed with.
    pub fn set_mach_cred(&self, id: ClientId, m: Option<MachCred>) {
        if let Some(c) = self.lock().clients.get_mut(&id) {
            if !c.confirmed {
                c.mach_cred = m;
            }
        }
    }

    /// NFS4ERR_WRONG_CRED when client `id` is under SP4_MACH_CRED, lists
    /// operation `op` in `spo_must_enforce`, and `caller` is not its
    /// machine credential with integrity or privacy (RFC 8881 §2.10.8.3).
    /// Unknown clients pass: the operation reports them itself.
    pub fn check_mach_cred(
        &self,
        id: ClientId,
        op: u32,
        caller: MachCaller<'_>,
    ) -> Result<(), NfsError> {
        let g = self.lock();
        match g.clients.get(&id).and_then(|c| c.mach_cred.as_ref()) {
            Some(m) if op < 64 && m.enforce & (1 << op) != 0 && !m.matches(caller) => {
                tracing::warn!(
                    client = format_args!("{id:#x}"),
                    op,
                    machine = %m.principal,
                    caller = caller.map_or("(not Kerberos)", |c| c.0),
                    "operation needs the client's machine credential (SP4_MACH_CRED): NFS4ERR_WRONG_CRED"
                );
                Err(NfsError::WrongCred)
            }
            _ => Ok(()),
        }
    }

    /// [`Self::check_mach_cred`] for the client of session `sid`.
    pub fn check_mach_cred_session(
        &self,
        sid: &SessionId,
        op: u32,
        caller: MachCaller<'_>,
    ) -> Result<(), NfsError> {
        let id = self.lock().session_client(sid);
        match id {
            Some(id) => self.check_mach_cred(id, op, caller),
            None => Ok(()),
        }
    }

    /// DESTROY_CLIENTID (RFC 8881 §18.50).
    pub fn destroy_clientid(&self, id: ClientId, principal: &Principal) -> Result<(), NfsError> {
        self.destroy_clientid_with(id, principal, &|_| false)
    }

    /// [`Self::destroy_clientid`], where state on files for which
    /// `gone(file)` holds does not keep the client busy: a file system
    /// that moved to another head of a cluster. A client that followed the
    /// move tears down its client ID here (RFC 8881 §11.14); its opens and
    /// locks here are of no use any more and would only hold the store's
    /// locks against its own relocking at the new head.
    pub fn destroy_clientid_with(
        &self,
        id: ClientId,
        principal: &Principal,
        gone: &dyn Fn(super::FileKey) -> bool,
    ) -> Result<(), NfsError> {
        let mut g = self.lock();
        let c = g.clients.get(&id).ok_or(NfsError::StaleClientid)?;
        if &c.principal != principal {
            return Err(NfsError::ClidInUse);
        }
        let busy = g.states.values().any(|e| e.client == id && !gone(e.file));
        if !c.sessions.is_empty() || busy {
            return Err(NfsError::ClientidBusy);
        }
        let key = c
            .confirmed
            .then(|| super::recovery::record_key(c.minor, &c.owner));
        g.purge_client(id);
        drop(g);
        // A destroyed client has nothing to reclaim (RFC 8881 §18.50.3).
        if let Some(key) = key {
            self.recovery.remove(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    fn sm() -> (Arc<ManualClock>, StateManager) {
        let clock = Arc::new(ManualClock::default());
        let sm = StateManager::new(
            clock.clone(),
            10,
            7,
            Default::default(),
            Arc::new(crate::state::deleg::NoCallbacks),
        );
        (clock, sm)
    }

    #[test]
    fn setclientid_confirm_and_renew() {
        let (clock, sm) = sm();
        let ok = sm
            .setclientid(b"c1", [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        assert_eq!(
            sm.renew(ok.clientid),
            Err(NfsError::StaleClientid),
            "unconfirmed"
        );
        assert_eq!(
            sm.setclientid_confirm(ok.clientid, [9; 8], &Principal::Uid(0)),
            Err(NfsError::StaleClientid)
        );
        sm.setclientid_confirm(ok.clientid, ok.confirm, &Principal::Uid(0))
            .unwrap();
        sm.setclientid_confirm(ok.clientid, ok.confirm, &Principal::Uid(0))
            .unwrap();
        sm.renew(ok.clientid).unwrap();
        clock.advance(Duration::from_secs(11));
        assert_eq!(sm.expire_leases(), 1);
        assert_eq!(sm.renew(ok.clientid), Err(NfsError::Expired));
    }

    #[test]
    fn other_principal_gets_clid_inuse() {
        let (_c, sm) = sm();
        let ok = sm
            .setclientid(b"c1", [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        sm.setclientid_confirm(ok.clientid, ok.confirm, &Principal::Uid(0))
            .unwrap();
        // Without state another principal may take the id over…
        let other = sm.setclientid(b"c1", [2; 8], Principal::Uid(5), Callback40::default());
        assert!(other.is_ok());
        // …but not while the record holds state.
        let share = crate::state::Share { access: 1, deny: 0 };
        sm.open(
            ok.clientid,
            (ok.clientid, b"o".to_vec()),
            (0, nfs4d_fhmap::ObjectId(9)),
            share,
            true,
        )
        .unwrap();
        assert_eq!(
            sm.setclientid(b"c1", [2; 8], Principal::Uid(5), Callback40::default()),
            Err(NfsError::ClidInUse)
        );
    }

    #[test]
    fn callback_update_keeps_clientid() {
        let (_c, sm) = sm();
        let ok = sm
            .setclientid(b"c1", [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        sm.setclientid_confirm(ok.clientid, ok.confirm, &Principal::Uid(0))
            .unwrap();
        let upd = sm
            .setclientid(b"c1", [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        assert_eq!(upd.clientid, ok.clientid);
        sm.setclientid_confirm(upd.clientid, upd.confirm, &Principal::Uid(0))
            .unwrap();
        sm.renew(ok.clientid).unwrap();
    }

    #[test]
    fn exchange_id_cases() {
        let (_c, sm) = sm();
        let a = sm
            .exchange_id(b"o", [1; 8], Principal::Uid(0), false, String::new())
            .unwrap();
        assert!(!a.confirmed);
        assert_eq!(a.seq, 1);
        assert_eq!(
            sm.exchange_id(b"o", [1; 8], Principal::Uid(0), true, String::new()),
            Err(NfsError::NoEnt)
        );
        StateManager::confirm41(&mut sm.lock(), a.clientid);
        let b = sm
            .exchange_id(b"o", [1; 8], Principal::Uid(0), false, String::new())
            .unwrap();
        assert!(b.confirmed);
        assert_eq!(b.clientid, a.clientid);
        let c = sm
            .exchange_id(b"o", [2; 8], Principal::Uid(0), false, String::new())
            .unwrap();
        assert_ne!(c.clientid, a.clientid, "new incarnation");
        assert_eq!(
            sm.exchange_id(b"o", [3; 8], Principal::Uid(0), true, String::new()),
            Err(NfsError::NotSame)
        );
    }
}
