//! The etcd connection: one v3 client per endpoint on a private tokio
//! runtime, requests with deadlines and fail-over between members, and a
//! synchronous facade for the server's blocking threads.
//!
//! Why one client per endpoint and a pinned member, rather than one
//! client balancing over all endpoints: a member that hangs (stopped,
//! overloaded, cut off) still accepts TCP connections, so a balancer
//! keeps routing a share of requests to it and each of those waits for
//! its timeout. A pinned member is left at its first failure and every
//! later request goes to the next one, so one bad member costs one
//! attempt, once (etcd's Go client pins an endpoint for the same reason).
//!
//! Every request carries etcd's "require leader" flag: a member that lost
//! its leader (no quorum) refuses it at once instead of holding it until
//! its own internal timeout, so a lost quorum is seen within one attempt.
//!
//! Retries: a request refused before it reached the raft log (no leader,
//! connection refused, too many requests) is retried on the next member
//! until the deadline. A request whose outcome is unknown (a timeout, a
//! connection broken mid-request) is retried only if repeating it is
//! harmless (reads, puts, deletes); a transaction is not, and its caller
//! gets [`ClusterError::Unavailable`] and must read before deciding.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use tokio::runtime::Runtime;

use crate::config::ClusterConfig;
use crate::error::{ClusterError, Result};

/// Threads of the private runtime: etcd calls are I/O-bound and short.
const RUNTIME_THREADS: usize = 2;
/// Shortest single attempt; a request's deadline is split into attempts of
/// a third of it, but no shorter than this.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);
/// Pause between attempts that failed at once (refused connections), so
/// a dead cluster is not hammered; doubled per attempt up to the maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(200);
/// HTTP/2 pings on each connection: a member that stopped answering is
/// dropped after interval + timeout even with nothing in flight.
const PING_INTERVAL: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Extra wait of a synchronous caller beyond the request deadline before
/// it gives up on the runtime itself (a safety net; requests end at
/// their deadline).
const FACADE_SLACK: Duration = Duration::from_secs(1);
/// Largest response the client accepts. A scan page is at most
/// `kv::PAGE_KEYS` keys of at most `kv::MAX_KEY_LEN + kv::MAX_VALUE_LEN`.
pub(crate) const MAX_RESPONSE_BYTES: usize = 40 << 20;

/// Whether a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Sending it twice has the effect of sending it once.
    Idempotent,
    /// Retry only if it certainly did not reach etcd's log.
    IfNotSent,
}

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Refused before it could take effect: safe to send again.
    NotSent,
    /// It may or may not have taken effect.
    Ambiguous,
    /// etcd refused it for good (bad argument, compacted revision, …).
    Refused,
}

fn classify(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable => {
                let m = s.message();
                // "etcdserver: no leader" comes from the require-leader
                // check before the request is proposed; connection errors
                // from the transport never reached the server.
                if m.contains("no leader") || m.contains("connect") || m.contains("dns") {
                    Failure::NotSent
                } else {
                    Failure::Ambiguous
                }
            }
            Code::ResourceExhausted => Failure::NotSent,
            Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {
                Failure::Ambiguous
            }
            Code::Internal if s.message().contains("h2 protocol error") => Failure::Ambiguous,
            _ => Failure::Refused,
        },
        E::TransportError(_) => Failure::NotSent,
        E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) => Failure::Ambiguous,
        _ => Failure::Refused,
    }
}

/// How long a member that did not answer, or refused the connection, is
/// passed over when choosing the next one (unless all are).
const SUSPECT_FOR: Duration = Duration::from_secs(5);

/// One etcd member's client.
struct Member {
    url: String,
    client: Client,
    /// Milliseconds after `Caller::base` until which the member is passed
    /// over.
    suspect_until: AtomicU64,
}

/// Sends requests to the pinned member, failing over to the next one.
/// Cheap to clone; background tasks hold one (never the runtime).
#[derive(Clone)]
pub(crate) struct Caller {
    members: Arc<[Member]>,
    base: Instant,
    pinned: Arc<AtomicUsize>,
    request_timeout: Duration,
    attempt_timeout: Duration,
}

impl Caller {
    /// The per-request deadline.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The client of the pinned member and its index.
    pub(crate) fn pinned(&self) -> (usize, Client) {
        let i = self.pinned.load(Ordering::Acquire) % self.members.len();
        (i, self.members[i].client.clone())
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves off member `i` after a failure (unless another request
    /// already did), so concurrent failures advance the pin only once.
    /// A `suspect` member (no answer, connection refused) is passed over
    /// for a while; one that answered "no leader" is not — during an
    /// election every member says so.
    pub(crate) fn fail_over(&self, i: usize, suspect: bool) {
        let n = self.members.len();
        let now = self.millis();
        if suspect {
            let until = now.saturating_add(u64::try_from(SUSPECT_FOR.as_millis()).unwrap_or(0));
            self.members[i]
                .suspect_until
                .store(until, Ordering::Release);
        }
        let next = (1..=n)
            .map(|k| (i + k) % n)
            .find(|&j| j != i && self.members[j].suspect_until.load(Ordering::Acquire) <= now)
            .unwrap_or((i + 1) % n);
        if self
            .pinned
            .compare_exchange(i, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && self.members.len() > 1
        {
            tracing::info!(
                from = %self.members[i].url,
                to = %self.members[next].url,
                "etcd: switching member"
            );
        }
    }

    /// Runs `op` against the pinned member until it succeeds, the failure
    /// is final, or the request deadline passes.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, retry: Retry, mut op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::from("no attempt");
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let budget = self.attempt_timeout.min(deadline - now);
            let (i, client) = self.pinned();
            let (failure, suspect) = match tokio::time::timeout(budget, op(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    last = format!("{}: {e}", self.members[i].url);
                    let f = classify(&e);
                    (f, f == Failure::NotSent && !last.contains("no leader"))
                }
                Err(_) => {
                    last = format!("{}: no answer within {budget:?}", self.members[i].url);
                    (Failure::Ambiguous, true)
                }
            };
            match failure {
                Failure::Refused => {
                    tracing::warn!(what, error = %last, "etcd refused a request");
                    return Err(ClusterError::Refused(last));
                }
                Failure::Ambiguous if retry == Retry::IfNotSent => {
                    self.fail_over(i, suspect);
                    break;
                }
                Failure::Ambiguous | Failure::NotSent => self.fail_over(i, suspect),
            }
            let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::warn!(what, error = %last, "etcd unavailable");
        Err(ClusterError::Unavailable(format!("{what}: {last}")))
    }
}

/// The connection to one etcd cluster. Cloning shares it.
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping.
    rt: Option<Runtime>,
    caller: Caller,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its threads stop, which tokio
        // forbids inside another runtime's async context; the last clone
        // may be dropped anywhere, so let the threads wind down on their
        // own.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Etcd {
    /// Connects to the endpoints of `cfg` (lazily: no member needs to be
    /// up yet; requests fail with [`ClusterError::Unavailable`] until one
    /// is). Callable from any thread, inside a runtime or not.
    pub fn connect(cfg: &ClusterConfig) -> Result<Etcd> {
        cfg.validate()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("nfs4d-etcd")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Config(format!("cannot start the etcd runtime: {e}")))?;
        let request_timeout = cfg.request_timeout();
        let attempt_timeout = (request_timeout / 3).max(MIN_ATTEMPT);
        let options = ConnectOptions::new()
            .with_require_leader(true)
            .with_connect_timeout(attempt_timeout)
            .with_keep_alive(PING_INTERVAL, PING_TIMEOUT)
            .with_keep_alive_while_idle(true);
        let urls = cfg.etcd.clone();
        let members = run_on(&rt, request_timeout, async move {
            let mut members = Vec::with_capacity(urls.len());
            for url in urls {
                let client = Client::connect([url.as_str()], Some(options.clone()))
                    .await
                    .map_err(|e| ClusterError::Config(format!("etcd endpoint {url}: {e}")))?;
                members.push(Member {
                    url,
                    client,
                    suspect_until: AtomicU64::new(0),
                });
            }
            Ok(members)
        })?;
        Ok(Etcd {
            inner: Arc::new(Inner {
                rt: Some(rt),
                caller: Caller {
                    members: members.into(),
                    base: Instant::now(),
                    pinned: Arc::new(AtomicUsize::new(0)),
                    request_timeout,
                    attempt_timeout,
                },
            }),
        })
    }

    pub(crate) fn caller(&self) -> &Caller {
        &self.inner.caller
    }

    /// The private runtime's handle, for background tasks.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        match &self.inner.rt {
            Some(rt) => rt.handle().clone(),
            // `rt` is only taken in `Drop`, when no `Etcd` is left.
            None => unreachable!("runtime taken before the last Etcd was dropped"),
        }
    }

    /// Runs `fut` on the private runtime and waits for it. Safe from any
    /// thread, including another runtime's blocking pool (the server's
    /// request threads); never from inside an async task, which it would
    /// block.
    pub(crate) fn block_on<T, F>(&self, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        match &self.inner.rt {
            // An etcd round trip at least (nfs4d_blocking).
            Some(rt) => {
                nfs4d_blocking::region(|| run_on(rt, self.inner.caller.request_timeout, fut))
            }
            None => Err(ClusterError::Unavailable("etcd connection closed".into())),
        }
    }

    /// The current revision of the etcd cluster (a linearizable read): a
    /// cheap "is etcd there and does it have quorum" check.
    pub fn revision(&self) -> Result<i64> {
        let caller = self.caller().clone();
        self.block_on(async move {
            let probe = b"\0".to_vec();
            let resp = caller
                .call("revision", Retry::Idempotent, |mut c| {
                    let key = probe.clone();
                    async move {
                        c.get(key, Some(etcd_client::GetOptions::new().with_count_only()))
                            .await
                    }
                })
                .await?;
            Ok(resp.header().map_or(0, |h| h.revision()))
        })
    }
}

/// Spawns `fut` on `rt` and waits for its result on this thread.
fn run_on<T, F>(rt: &Runtime, request_timeout: Duration, fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    // Not `Runtime::block_on`: it panics on a thread that is inside
    // another runtime's context, which the caller may well be.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        // The receiver may have given up; nothing to do then.
        let _ = tx.send(fut.await);
    });
    // Scans and leases make several requests under one call: allow a few
    // deadlines before declaring the runtime itself stuck.
    match rx.recv_timeout(request_timeout * 4 + FACADE_SLACK) {
        Ok(r) => r,
        Err(_) => Err(ClusterError::Unavailable(
            "etcd call did not complete in time".into(),
        )),
    }
}
