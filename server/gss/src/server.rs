//! The server side of RPCSEC_GSS version 1 (RFC 2203 §5) as a sans-IO
//! engine: no sockets, no runtime, no clock of its own. The transport
//! hands it one call at a time ([`GssCall`]: credential, verifier, the
//! header bytes the verifier's MIC covers, arguments, the client's
//! address) with the time in milliseconds of its monotonic clock, and
//! gets a [`Decision`]; for an accepted DATA call it later asks the
//! [`Accepted`] value to protect the results.
//!
//! The answers (RFC 2203 §5.2.3 and §5.3.3; pynfs `st_gss.py` GSS1–GSS8
//! checks the same ones):
//!
//! | input | answer |
//! |---|---|
//! | credential not version 1, unknown procedure or service, undecodable | AUTH_BADCRED |
//! | INIT / CONTINUE_INIT / DESTROY on a procedure other than NULL | AUTH_BADCRED |
//! | INIT with a handle; creation call without an AUTH_NONE verifier | AUTH_BADCRED, AUTH_BADVERF |
//! | creation arguments that do not decode, token over 64 KiB | GARBAGE_ARGS |
//! | token GSS-API refuses (corrupt, forged, wrong service) | `rpc_gss_init_res` with its major/minor status, no handle |
//! | unknown, destroyed, evicted or expired handle; seq_num above MAXSEQ | RPCSEC_GSS_CTXPROBLEM |
//! | DATA / DESTROY verifier not RPCSEC_GSS | AUTH_BADVERF |
//! | header MIC does not verify | RPCSEC_GSS_CREDPROBLEM |
//! | sequence number seen before or below the window | no reply (dropped) |
//! | integrity checksum wrong, privacy token does not unwrap or was not encrypted, body seq_num differs from the header's | GARBAGE_ARGS |
//! | reply verifier cannot be computed (GSS_GetMIC fails) | RPCSEC_GSS_CTXPROBLEM (§5.3.3.4.1) |
//! | results cannot be wrapped | SYSTEM_ERR (§5.3.3.4.4) |
//!
//! Unknown handles answer CTXPROBLEM ("the context is unknown or no
//! longer valid"); knfsd answers CREDPROBLEM there. Both make a client
//! discard the context and create a new one.

use std::net::IpAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::gssapi::{
    AcquireError, Buffer, Cred, Gss, GssError, LoadError, SecContext, GSS_C_INDEFINITE,
    GSS_S_CONTEXT_EXPIRED, GSS_S_CONTINUE_NEEDED,
};
use crate::mapping::{Identity, MapConfig, UserDb};
use crate::rpc::{self, AcceptStat, AuthStat, RawCall, Verifier};
use crate::table::{Entry, Gone, Handle, Limits, LimitsError, Lookup, Table};
use crate::window::{Seen, SeqWindow, SEQ_WINDOW};
use crate::wire::{self, GssProc, Service, MAXSEQ, RPCSEC_GSS};

/// How the engine finds its keys and maps principals.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// The GSS-API library; `None`: [`crate::gssapi::DEFAULT_LIBRARY`].
    pub library: Option<PathBuf>,
    /// The keytab; `None`: where MIT GSS-API looks by itself
    /// (`KRB5_KTNAME`, else `default_keytab_name` of krb5.conf, else
    /// `/etc/krb5.keytab`).
    pub keytab: Option<PathBuf>,
    /// The service principal, e.g. `nfs/server.example.com@EXAMPLE.COM`;
    /// `None`: any principal with a key in the keytab (MIT's behaviour
    /// with no acceptor name), including `host/` keys.
    pub principal: Option<String>,
    /// Context bounds and lifetimes.
    pub limits: Limits,
    /// Principal to uid/gid mapping.
    pub mapping: MapConfig,
}

/// The engine could not start; the server still serves AUTH_SYS and
/// AUTH_NONE, but no export with `sec` krb5, krb5i or krb5p.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No usable GSS-API library.
    #[error("RPCSEC_GSS disabled, krb5/krb5i/krb5p exports cannot be served: {0}")]
    Unavailable(#[from] LoadError),
    /// The configured principal is not a principal name.
    #[error("RPCSEC_GSS disabled, krb5/krb5i/krb5p exports cannot be served: service principal {principal:?}: {source}")]
    Principal {
        /// As configured.
        principal: String,
        /// Why GSS-API refused it.
        source: GssError,
    },
    /// No keys for the principal (missing or unreadable keytab, no entry).
    #[error("RPCSEC_GSS disabled, krb5/krb5i/krb5p exports cannot be served: no acceptor credentials for {principal} in {keytab}: {source}")]
    Keytab {
        /// The principal looked for.
        principal: String,
        /// The keytab looked in.
        keytab: String,
        /// Why.
        source: AcquireError,
    },
    /// Limits that cannot work.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// No randomness for context handles.
    #[error("RPCSEC_GSS disabled: no random bytes for context handles: {0}")]
    Random(String),
}

/// What a context holds.
struct Ctx {
    sec: Mutex<SecContext>,
    window: Mutex<SeqWindow>,
    /// Set once the context is established.
    identity: OnceLock<Arc<Identity>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves GSS state no worse
    // than any other failed call: keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One call as the engine needs it (see [`GssCall::from_raw`]).
#[derive(Debug, Clone, Copy)]
pub struct GssCall<'a> {
    /// The client's address (contexts are counted per address).
    pub client: IpAddr,
    /// The RPC procedure number.
    pub proc_: u32,
    /// The credential body (flavor RPCSEC_GSS).
    pub cred: &'a [u8],
    /// The verifier's flavor.
    pub verf_flavor: u32,
    /// The verifier's body.
    pub verf: &'a [u8],
    /// The message from the xid through the credential (RFC 2203 §5.3.1).
    pub header: &'a [u8],
    /// The arguments as sent.
    pub args: &'a [u8],
}

impl<'a> GssCall<'a> {
    /// From a call split by [`rpc::parse_call`].
    pub fn from_raw(raw: &RawCall<'a>, client: IpAddr) -> GssCall<'a> {
        GssCall {
            client,
            proc_: raw.proc_,
            cred: raw.cred,
            verf_flavor: raw.verf_flavor,
            verf: raw.verf,
            header: raw.header,
            args: raw.args,
        }
    }
}

/// The reply to a control procedure: SUCCESS with this verifier and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlReply {
    /// RPCSEC_GSS with the MIC of `seq_window` (completed creation) or of
    /// the sequence number (DESTROY); AUTH_NONE otherwise.
    pub verifier: Verifier,
    /// `rpc_gss_init_res` for INIT and CONTINUE_INIT; empty for DESTROY.
    pub results: Vec<u8>,
}

/// What to do with a call.
#[derive(Debug)]
pub enum Decision<'a> {
    /// Answer SUCCESS with this verifier and body (INIT, CONTINUE_INIT,
    /// DESTROY).
    Control(ControlReply),
    /// Run the procedure with these arguments and identity, then answer
    /// with [`Accepted::reply_record`] (or its parts).
    Data(Accepted<'a>),
    /// Answer MSG_DENIED / AUTH_ERROR.
    AuthError(AuthStat),
    /// Answer GARBAGE_ARGS with this verifier.
    GarbageArgs(Verifier),
    /// Send nothing (RFC 2203 §5.3.3.1: a replayed or too old sequence
    /// number).
    Drop,
}

impl Decision<'_> {
    /// The complete reply record for every decision but [`Decision::Data`]
    /// (which needs the results) and [`Decision::Drop`].
    pub fn reply_record(&self, xid: u32) -> Option<Vec<u8>> {
        match self {
            Decision::Control(c) => Some(rpc::accepted_record(
                xid,
                &c.verifier,
                AcceptStat::Success,
                &c.results,
            )),
            Decision::AuthError(stat) => Some(rpc::auth_error_record(xid, *stat)),
            Decision::GarbageArgs(v) => {
                Some(rpc::accepted_record(xid, v, AcceptStat::GarbageArgs, &[]))
            }
            Decision::Data(_) | Decision::Drop => None,
        }
    }
}

/// A call's arguments after RPCSEC_GSS: borrowed from the record (none,
/// integrity) or decrypted (privacy).
pub enum Args<'a> {
    /// Part of the record.
    Borrowed(&'a [u8]),
    /// Decrypted by GSS_Unwrap; the arguments start at `at`.
    Unwrapped {
        /// The plaintext `rpc_gss_data_t`.
        buf: Buffer,
        /// Offset of the arguments (after the sequence number).
        at: usize,
    },
}

impl Deref for Args<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Args::Borrowed(b) => b,
            Args::Unwrapped { buf, at } => buf.get(*at..).unwrap_or(&[]),
        }
    }
}

impl std::fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Args({} bytes)", self.len())
    }
}

/// An accepted DATA call.
pub struct Accepted<'a> {
    /// Who the call runs as.
    pub identity: Arc<Identity>,
    /// The protection used; an export's `sec` list decides whether it is
    /// enough ([`Service::pseudo_flavor`]).
    pub service: Service,
    /// The call's sequence number.
    pub seq: u32,
    /// The procedure's arguments, unwrapped.
    pub args: Args<'a>,
    /// The context's handle.
    pub handle: Handle,
    ctx: Arc<Entry<Ctx>>,
}

impl std::fmt::Debug for Accepted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("principal", &self.identity.principal)
            .field("service", &self.service)
            .field("seq", &self.seq)
            .field("args", &self.args)
            .finish()
    }
}

/// The reply to an accepted call cannot be protected.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// GSS_GetMIC failed for the verifier: answer RPCSEC_GSS_CTXPROBLEM
    /// (RFC 2203 §5.3.3.4.1).
    #[error("cannot compute the reply verifier: {0}")]
    Verifier(GssError),
    /// Protecting the results failed: answer SYSTEM_ERR (RFC 2203
    /// §5.3.3.4.4), with this verifier.
    #[error("cannot protect the results: {error}")]
    Body {
        /// The failure.
        error: GssError,
        /// The reply verifier, computed before the failure.
        verifier: Verifier,
    },
}

impl ReplyError {
    /// The reply record that reports the failure.
    pub fn record(&self, xid: u32) -> Vec<u8> {
        match self {
            ReplyError::Verifier(_) => rpc::auth_error_record(xid, AuthStat::CtxProblem),
            ReplyError::Body { verifier, .. } => {
                rpc::accepted_record(xid, verifier, AcceptStat::SystemErr, &[])
            }
        }
    }
}

fn seq_verifier(sec: &mut SecContext, seq: u32) -> Result<Verifier, GssError> {
    let mic = sec.get_mic(&seq.to_be_bytes())?;
    Ok(Verifier {
        flavor: RPCSEC_GSS,
        body: mic.to_vec(),
    })
}

impl Accepted<'_> {
    /// The reply verifier: the MIC of the sequence number (RFC 2203
    /// §5.3.3.2).
    pub fn reply_verifier(&self) -> Result<Verifier, ReplyError> {
        seq_verifier(&mut lock(&self.ctx.value.sec), self.seq).map_err(ReplyError::Verifier)
    }

    /// Appends the results to `out` as the service requires: unchanged
    /// (none), as `rpc_gss_integ_data` (integrity) or `rpc_gss_priv_data`
    /// (privacy), each protecting the sequence number and the results
    /// (RFC 2203 §5.3.3.4). With service none the transport may instead
    /// send the results directly after the header.
    pub fn wrap_results(&self, results: &[u8], out: &mut Vec<u8>) -> Result<(), GssError> {
        match self.service {
            Service::None => {
                out.extend_from_slice(results);
                Ok(())
            }
            Service::Integrity => {
                let mut sec = lock(&self.ctx.value.sec);
                wire::encode_integ_into(out, self.seq, results, |data| sec.get_mic(data))
            }
            Service::Privacy => {
                let plain = wire::data_body(self.seq, results);
                let wrapped = lock(&self.ctx.value.sec).wrap(&plain, true)?;
                wire::encode_priv_into(out, &wrapped);
                Ok(())
            }
        }
    }

    /// The complete reply record carrying `results` (a failure to protect
    /// them gives the RFC's error reply instead, with a log line).
    pub fn reply_record(&self, xid: u32, results: &[u8]) -> Vec<u8> {
        let verifier = match self.reply_verifier() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(principal = %self.identity.principal, error = %e, "RPCSEC_GSS reply not sent");
                return e.record(xid);
            }
        };
        let mut out = Vec::with_capacity(64 + verifier.body.len() + results.len() + 128);
        rpc::begin_accepted(&mut out, xid, &verifier, AcceptStat::Success);
        if let Err(error) = self.wrap_results(results, &mut out) {
            let e = ReplyError::Body { error, verifier };
            tracing::warn!(principal = %self.identity.principal, error = %e, "RPCSEC_GSS reply not sent");
            return e.record(xid);
        }
        rpc::finish_record(&mut out);
        out
    }
}

/// The RPCSEC_GSS server engine. Shared between threads (`&self`
/// methods); each context serialises its own GSS-API calls.
pub struct GssServer {
    gss: Gss,
    cred: Cred,
    principal: String,
    table: Mutex<Table<Ctx>>,
    mapping: MapConfig,
    users: Arc<dyn UserDb>,
}

impl std::fmt::Debug for GssServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GssServer")
            .field("principal", &self.principal)
            .finish()
    }
}

fn init_res_reply(
    handle: &[u8],
    major: u32,
    minor: u32,
    token: &[u8],
    verifier: Verifier,
) -> ControlReply {
    ControlReply {
        verifier,
        results: wire::encode_init_res(&wire::InitRes {
            handle,
            major,
            minor,
            seq_window: if handle.is_empty() { 0 } else { SEQ_WINDOW },
            token,
        }),
    }
}

impl GssServer {
    /// Loads GSS-API, acquires the acceptor credentials and checks the
    /// limits. Any failure means no krb5 export can be served; log it and
    /// go on with AUTH_SYS.
    pub fn new(cfg: &ServerConfig, users: Arc<dyn UserDb>) -> Result<GssServer, StartError> {
        cfg.limits.validate()?;
        let gss = Gss::load(cfg.library.as_deref())?;
        let name = match &cfg.principal {
            Some(p) => Some(gss.principal(p).map_err(|source| StartError::Principal {
                principal: p.clone(),
                source,
            })?),
            None => None,
        };
        let keytab = cfg.keytab.as_ref().map(|k| k.display().to_string());
        let principal = cfg
            .principal
            .clone()
            .unwrap_or_else(|| "any principal".to_string());
        let cred = gss
            .acceptor_cred(name.as_ref(), keytab.as_deref())
            .map_err(|source| StartError::Keytab {
                principal: principal.clone(),
                keytab: keytab.clone().unwrap_or_else(|| {
                    "the default keytab (KRB5_KTNAME, else /etc/krb5.keytab)".to_string()
                }),
                source,
            })?;
        let mut prefix = [0u8; 8];
        getrandom::fill(&mut prefix).map_err(|e| StartError::Random(e.to_string()))?;
        tracing::info!(%principal, keytab = keytab.as_deref().unwrap_or("default"), "RPCSEC_GSS (Kerberos 5) enabled");
        Ok(GssServer {
            gss,
            cred,
            principal,
            table: Mutex::new(Table::new(cfg.limits, prefix)),
            mapping: cfg.mapping.clone(),
            users,
        })
    }

    /// The loaded library (e.g. for a client in the same process).
    pub fn gss(&self) -> &Gss {
        &self.gss
    }

    /// Contexts held (established or being created).
    pub fn contexts(&self) -> usize {
        lock(&self.table).len()
    }

    /// Contexts held for one client address.
    pub fn client_contexts(&self, client: IpAddr) -> usize {
        lock(&self.table).client_len(client)
    }

    /// Drops expired contexts now (the table also does it when it needs
    /// room, and on lookup); returns how many went.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let n = lock(&self.table).sweep(now_ms).len();
        if n > 0 {
            tracing::debug!(expired = n, "RPCSEC_GSS contexts expired");
        }
        n
    }

    /// Decides what to do with `call` at time `now_ms`.
    pub fn accept<'a>(&self, call: &GssCall<'a>, now_ms: u64) -> Decision<'a> {
        let cred = match wire::decode_cred(call.cred) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(client = %call.client, error = %e, "RPCSEC_GSS credential refused (AUTH_BADCRED)");
                return Decision::AuthError(AuthStat::BadCred);
            }
        };
        if cred.proc_ != GssProc::Data && call.proc_ != 0 {
            // RFC 2203 §5.2.2, §5.4: control procedures use the NULL procedure.
            tracing::warn!(client = %call.client, gss_proc = ?cred.proc_, proc_ = call.proc_, "RPCSEC_GSS control call on a procedure other than NULL (AUTH_BADCRED)");
            return Decision::AuthError(AuthStat::BadCred);
        }
        match cred.proc_ {
            GssProc::Init | GssProc::ContinueInit => self.create(call, &cred, now_ms),
            GssProc::Data | GssProc::Destroy => self.use_context(call, &cred, now_ms),
        }
    }

    /// INIT and CONTINUE_INIT (RFC 2203 §5.2). A context enters the table
    /// only once GSS-API has accepted a token, so tokens that fail evict
    /// nothing.
    fn create<'a>(&self, call: &GssCall<'a>, cred: &wire::Cred<'_>, now: u64) -> Decision<'a> {
        let client = call.client;
        if call.verf_flavor != rpc::AUTH_NONE || !call.verf.is_empty() {
            tracing::warn!(%client, flavor = call.verf_flavor, "RPCSEC_GSS creation call without an AUTH_NONE verifier (AUTH_BADVERF)");
            return Decision::AuthError(AuthStat::BadVerf);
        }
        let token = match wire::decode_init_arg(call.args) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%client, error = %e, "RPCSEC_GSS creation arguments refused (GARBAGE_ARGS)");
                return Decision::GarbageArgs(Verifier::none());
            }
        };
        if cred.proc_ == GssProc::Init {
            if !cred.handle.is_empty() {
                tracing::warn!(%client, "RPCSEC_GSS_INIT with a context handle (AUTH_BADCRED)");
                return Decision::AuthError(AuthStat::BadCred);
            }
            let mut sec = SecContext::new(&self.gss);
            let step = match sec.accept(&self.cred, token) {
                Ok(s) => s,
                Err(e) => return refused(client, &e.error, &e.token),
            };
            let done = if step.complete {
                match self.finish(&mut sec, client, now) {
                    Ok(d) => Some(d),
                    Err(e) => return refused(client, &e, &[]),
                }
            } else {
                None
            };
            let identity = OnceLock::new();
            if let Some((id, _, _)) = &done {
                let _ = identity.set(id.clone());
            }
            let ctx = Ctx {
                sec: Mutex::new(sec),
                window: Mutex::new(SeqWindow::new()),
                identity,
            };
            let mut table = lock(&self.table);
            let (handle, gone) = table.insert(client, ctx, now);
            log_gone(&gone, client);
            return match done {
                None => Decision::Control(init_res_reply(
                    &handle,
                    GSS_S_CONTINUE_NEEDED,
                    0,
                    &step.token,
                    Verifier::none(),
                )),
                Some((_, expiry, verifier)) => {
                    table.established(&handle, expiry, now);
                    Decision::Control(init_res_reply(&handle, 0, 0, &step.token, verifier))
                }
            };
        }
        let found = lock(&self.table).get(cred.handle, now);
        let (handle, entry) = match (found, Handle::try_from(cred.handle)) {
            (Lookup::Found(e), Ok(h)) if e.value.identity.get().is_none() => (h, e),
            _ => {
                tracing::warn!(%client, "RPCSEC_GSS_CONTINUE_INIT for no context being created (RPCSEC_GSS_CTXPROBLEM)");
                return Decision::AuthError(AuthStat::CtxProblem);
            }
        };
        let mut sec = lock(&entry.value.sec);
        let result = sec
            .accept(&self.cred, token)
            .map_err(|e| (e.error, Some(e.token)))
            .and_then(|step| {
                if !step.complete {
                    return Ok((step, None));
                }
                match self.finish(&mut sec, client, now) {
                    Ok(d) => Ok((step, Some(d))),
                    Err(e) => Err((e, None)),
                }
            });
        drop(sec);
        match result {
            Err((e, token)) => {
                lock(&self.table).remove(&handle);
                refused(client, &e, token.as_deref().unwrap_or(&[]))
            }
            Ok((step, None)) => Decision::Control(init_res_reply(
                &handle,
                GSS_S_CONTINUE_NEEDED,
                0,
                &step.token,
                Verifier::none(),
            )),
            Ok((step, Some((identity, expiry, verifier)))) => {
                let _ = entry.value.identity.set(identity);
                lock(&self.table).established(&handle, expiry, now);
                Decision::Control(init_res_reply(&handle, 0, 0, &step.token, verifier))
            }
        }
    }

    /// For a context just established: its identity, its expiry (ms) and
    /// the creation reply's verifier, the MIC of the window (§5.2.3.1).
    fn finish(
        &self,
        sec: &mut SecContext,
        client: IpAddr,
        now: u64,
    ) -> Result<(Arc<Identity>, u64, Verifier), GssError> {
        let info = sec.info()?;
        let mic = sec.get_mic(&SEQ_WINDOW.to_be_bytes())?;
        let identity = Arc::new(
            self.mapping
                .map(&info.source, &info.target, self.users.as_ref()),
        );
        let expiry = if info.lifetime_secs == GSS_C_INDEFINITE {
            u64::MAX
        } else {
            now.saturating_add(u64::from(info.lifetime_secs) * 1000)
        };
        tracing::info!(%client, principal = %identity.principal, kind = ?identity.kind, uid = identity.uid, gid = identity.gid, lifetime_s = info.lifetime_secs, "RPCSEC_GSS context established");
        Ok((
            identity,
            expiry,
            Verifier {
                flavor: RPCSEC_GSS,
                body: mic.to_vec(),
            },
        ))
    }

    /// DATA and DESTROY (RFC 2203 §5.3, §5.4).
    fn use_context<'a>(&self, call: &GssCall<'a>, cred: &wire::Cred<'_>, now: u64) -> Decision<'a> {
        let client = call.client;
        let found = lock(&self.table).get(cred.handle, now);
        let established = match (found, Handle::try_from(cred.handle)) {
            (Lookup::Found(e), Ok(h)) => e.value.identity.get().cloned().map(|id| (e, h, id)),
            _ => None,
        };
        let Some((entry, handle, identity)) = established else {
            tracing::warn!(%client, "RPCSEC_GSS call on an unknown or expired context (RPCSEC_GSS_CTXPROBLEM)");
            return Decision::AuthError(AuthStat::CtxProblem);
        };
        if cred.seq > MAXSEQ {
            tracing::warn!(%client, seq = cred.seq, "RPCSEC_GSS sequence number above MAXSEQ (RPCSEC_GSS_CTXPROBLEM)");
            return Decision::AuthError(AuthStat::CtxProblem);
        }
        if call.verf_flavor != RPCSEC_GSS {
            tracing::warn!(%client, flavor = call.verf_flavor, "RPCSEC_GSS call without an RPCSEC_GSS verifier (AUTH_BADVERF)");
            return Decision::AuthError(AuthStat::BadVerf);
        }
        let mut sec = lock(&entry.value.sec);
        if let Err(e) = sec.verify_mic(call.header, call.verf) {
            if e.routine() == GSS_S_CONTEXT_EXPIRED {
                drop(sec);
                lock(&self.table).remove(&handle);
                tracing::info!(%client, principal = %identity.principal, "RPCSEC_GSS context expired (RPCSEC_GSS_CTXPROBLEM)");
                return Decision::AuthError(AuthStat::CtxProblem);
            }
            tracing::warn!(%client, principal = %identity.principal, error = %e, "RPCSEC_GSS header checksum does not verify (RPCSEC_GSS_CREDPROBLEM)");
            return Decision::AuthError(AuthStat::CredProblem);
        }
        let mut window = lock(&entry.value.window);
        match window.check(cred.seq) {
            Seen::Fresh => drop(window),
            seen => {
                let highest = window.top();
                drop(window);
                tracing::info!(%client, principal = %identity.principal, seq = cred.seq, ?highest, ?seen, "RPCSEC_GSS call dropped: sequence number replayed or outside the window");
                return Decision::Drop;
            }
        }
        entry.touch(now);
        if cred.proc_ == GssProc::Destroy {
            let v = seq_verifier(&mut sec, cred.seq);
            drop(sec);
            lock(&self.table).remove(&handle);
            tracing::info!(%client, principal = %identity.principal, "RPCSEC_GSS context destroyed");
            return match v {
                // RFC 2203 §5.4: SUCCESS, the verifier of a data reply, no
                // results (not wrapped, as knfsd does).
                Ok(verifier) => Decision::Control(ControlReply {
                    verifier,
                    results: Vec::new(),
                }),
                Err(_) => Decision::AuthError(AuthStat::CtxProblem),
            };
        }
        let args = match unprotect(&mut sec, cred.service, cred.seq, call.args) {
            Ok(a) => a,
            Err(why) => {
                tracing::warn!(%client, principal = %identity.principal, service = ?cred.service, reason = why, "RPCSEC_GSS arguments refused (GARBAGE_ARGS)");
                return match seq_verifier(&mut sec, cred.seq) {
                    Ok(v) => Decision::GarbageArgs(v),
                    Err(_) => Decision::AuthError(AuthStat::CtxProblem),
                };
            }
        };
        drop(sec);
        Decision::Data(Accepted {
            identity,
            service: cred.service,
            seq: cred.seq,
            args,
            handle,
            ctx: entry,
        })
    }
}

/// A creation token GSS-API refused: `rpc_gss_init_res` with its status
/// and any token it produced, no handle (RFC 2203 §5.2.3.2).
fn refused<'a>(client: IpAddr, e: &GssError, token: &[u8]) -> Decision<'a> {
    tracing::warn!(%client, error = %e, "RPCSEC_GSS context creation refused by GSS-API");
    Decision::Control(init_res_reply(
        &[],
        e.major,
        e.minor,
        token,
        Verifier::none(),
    ))
}

/// Undoes the service's protection of the arguments (RFC 2203 §5.3.2).
fn unprotect<'a>(
    sec: &mut SecContext,
    service: Service,
    seq: u32,
    body: &'a [u8],
) -> Result<Args<'a>, &'static str> {
    match service {
        Service::None => Ok(Args::Borrowed(body)),
        Service::Integrity => {
            let (data, checksum) =
                wire::decode_integ(body).map_err(|_| "undecodable rpc_gss_integ_data")?;
            sec.verify_mic(data, checksum)
                .map_err(|_| "integrity checksum does not verify")?;
            let (body_seq, args) =
                wire::split_data_body(data).map_err(|_| "integrity body too short")?;
            if body_seq != seq {
                return Err("sequence number in the body differs from the credential's");
            }
            Ok(Args::Borrowed(args))
        }
        Service::Privacy => {
            let token = wire::decode_priv(body).map_err(|_| "undecodable rpc_gss_priv_data")?;
            let (plain, confidential) = sec
                .unwrap(token)
                .map_err(|_| "privacy body does not unwrap")?;
            if !confidential {
                return Err("privacy body was not encrypted");
            }
            let (body_seq, _) =
                wire::split_data_body(&plain).map_err(|_| "privacy body too short")?;
            if body_seq != seq {
                return Err("sequence number in the body differs from the credential's");
            }
            Ok(Args::Unwrapped { buf: plain, at: 4 })
        }
    }
}

fn log_gone(gone: &[(Handle, Gone)], client: IpAddr) {
    for (_, why) in gone {
        match why {
            Gone::Expired => tracing::debug!(%client, "RPCSEC_GSS context expired"),
            Gone::ClientLimit => {
                tracing::info!(%client, "RPCSEC_GSS context limit of this client reached: its least recently used context is dropped")
            }
            Gone::TableLimit => {
                tracing::warn!(%client, "RPCSEC_GSS context table full: the least recently used context of the busiest client is dropped")
            }
        }
    }
}

/// The transport shares one engine between connections and may run an
/// accepted call (and protect its reply) on another thread.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<GssServer>();
    send_sync::<Accepted<'static>>();
};
