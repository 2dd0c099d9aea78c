//! Metrics in the Prometheus text format on the admin HTTP listener
//! (`[admin] metrics_listen`, `--metrics-listen`; off by default; see
//! docs/operations.md for every series).
//!
//! Nothing is computed per request here: the core counts operations
//! (`nfs4d_core::metrics`), the transport counts connections
//! ([`ConnCounters`]), the store wrapper counts store requests
//! ([`crate::metered`]); a scrape reads them all, plus the state table's
//! totals, through one `prometheus-client` collector.
//!
//! The listener speaks just enough HTTP/1.x for a scraper: `GET /metrics`
//! (anything else is 404), one request per connection, bounded in size,
//! time and number of connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use nfs4d_core::metrics::HistogramSnapshot;
use nfs4d_core::server::Server;

use crate::metered::StoreCounters;

/// Scrape connections served at once; more wait in the listen queue.
const MAX_SCRAPERS: usize = 8;
/// Longest request head read.
const MAX_REQUEST: usize = 8 << 10;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the handle map's records are counted (a full scan).
const FHMAP_COUNT_EVERY: Duration = Duration::from_secs(300);

/// Connections, counted by the transport.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Accepted since start.
    pub accepted: AtomicU64,
    /// Refused at the connection limit.
    pub refused: AtomicU64,
    /// Open now.
    pub open: AtomicU64,
    /// Requests refused before reaching the COMPOUND processor (RPC
    /// errors, hosts no export admits).
    pub rpc_refused: AtomicU64,
    /// WRITEs whose data was spliced from the socket into a pipe.
    pub writes_spliced: AtomicU64,
    /// WRITEs whose splice was given up part-way (a full pipe) and whose
    /// data was read into the record after all.
    pub splice_fallbacks: AtomicU64,
}

/// The transport's counters (one server per process).
pub static CONNECTIONS: ConnCounters = ConnCounters {
    accepted: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    open: AtomicU64::new(0),
    rpc_refused: AtomicU64::new(0),
    writes_spliced: AtomicU64::new(0),
    splice_fallbacks: AtomicU64::new(0),
};

/// Reads everything a scrape shows.
#[derive(Debug)]
pub struct Collect {
    srv: Arc<Server>,
    stores: Arc<StoreCounters>,
    started: Instant,
    fhmap_records: Mutex<Option<(Instant, u64)>>,
}

impl Collect {
    /// A collector over `srv` and the store counters of its exports.
    pub fn new(srv: Arc<Server>, stores: Arc<StoreCounters>) -> Collect {
        Collect {
            srv,
            stores,
            started: Instant::now(),
            fhmap_records: Mutex::new(None),
        }
    }

    /// Handle-map records, counted at most every [`FHMAP_COUNT_EVERY`].
    fn fhmap_records(&self) -> Option<u64> {
        let mut g = self.fhmap_records.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, n)) = *g {
            if at.elapsed() < FHMAP_COUNT_EVERY {
                return Some(n);
            }
        }
        let tree = self.srv.fhmap.open_tree("objects").ok()?;
        let mut n = 0u64;
        for r in tree.scan_prefix(b"") {
            r.ok()?;
            n += 1;
        }
        *g = Some((Instant::now(), n));
        Some(n)
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// The format's buckets: per-bucket counts, the last one +Inf (the
/// encoder accumulates them).
fn buckets(h: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(h.buckets.len() + 1);
    let mut prev = 0;
    for (le, cum) in &h.buckets {
        out.push((*le, cum - prev));
        prev = *cum;
    }
    out.push((f64::MAX, h.count - prev));
    out
}

impl Collector for Collect {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let srv = &self.srv;
        let m = &srv.metrics;
        gauge(
            &mut enc,
            "nfs4d_uptime_seconds",
            "Seconds since the server started",
            self.started.elapsed().as_secs() as i64,
        )?;
        counter(
            &mut enc,
            "nfs4d_compounds",
            "COMPOUND requests processed",
            m.compounds(),
        )?;

        // Per operation: count and latency (one histogram), errors by status.
        let ops = m.ops();
        let mut fam = enc.encode_descriptor(
            "nfs4d_op_duration_seconds",
            "Time each NFSv4 operation took, by operation (count: operations run or refused)",
            None,
            MetricType::Histogram,
        )?;
        for op in &ops {
            let name = op_name(op.opnum);
            let labels = [("op", name)];
            let e = fam.encode_family(&labels)?;
            encode_histogram(e, &op.latency)?;
        }
        let mut fam = enc.encode_descriptor(
            "nfs4d_op_errors",
            "NFSv4 operations that failed, by operation and nfsstat4",
            None,
            MetricType::Counter,
        )?;
        for op in &ops {
            for (st, n) in &op.errors {
                let status = format!("{st:?}");
                let labels = [("op", op_name(op.opnum).to_string()), ("status", status)];
                ConstCounter::new(*n).encode(fam.encode_family(&labels)?)?;
            }
        }
        let (read, written) = m.bytes();
        counter(
            &mut enc,
            "nfs4d_read_bytes",
            "Bytes returned by READ and READ_PLUS",
            read,
        )?;
        counter(
            &mut enc,
            "nfs4d_written_bytes",
            "Bytes stored by WRITE",
            written,
        )?;

        // Connections.
        let c = &CONNECTIONS;
        gauge(
            &mut enc,
            "nfs4d_connections",
            "TCP connections open",
            c.open.load(Relaxed) as i64,
        )?;
        counter(
            &mut enc,
            "nfs4d_connections_accepted",
            "TCP connections accepted",
            c.accepted.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "nfs4d_connections_refused",
            "TCP connections closed at once: limits.max_connections reached",
            c.refused.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "nfs4d_rpc_refused",
            "RPC calls refused before the COMPOUND (RPC errors, hosts no export admits)",
            c.rpc_refused.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "nfs4d_writes_spliced",
            "WRITEs whose data went from the socket into a pipe, not into the request",
            c.writes_spliced.load(Relaxed),
        )?;
        counter(
            &mut enc,
            "nfs4d_write_splice_fallbacks",
            "WRITEs whose splice was given up part-way (a full pipe): read as before",
            c.splice_fallbacks.load(Relaxed),
        )?;

        // State.
        let n = srv.state.counts();
        gauge(
            &mut enc,
            "nfs4d_clients",
            "Client records (confirmed or not)",
            n.clients as i64,
        )?;
        gauge(
            &mut enc,
            "nfs4d_courtesy_clients",
            "Clients whose lease ran out, kept while uncontested",
            n.courtesy as i64,
        )?;
        gauge(
            &mut enc,
            "nfs4d_sessions",
            "NFSv4.1+ sessions",
            n.sessions as i64,
        )?;
        gauge(&mut enc, "nfs4d_opens", "Open stateids", n.opens as i64)?;
        gauge(
            &mut enc,
            "nfs4d_lock_stateids",
            "Lock stateids (lock owner and file)",
            n.lock_states as i64,
        )?;
        gauge(
            &mut enc,
            "nfs4d_locks",
            "Byte-range locks held",
            n.locks as i64,
        )?;
        gauge(
            &mut enc,
            "nfs4d_delegations",
            "Delegations held or being recalled",
            n.delegations as i64,
        )?;
        gauge(
            &mut enc,
            "nfs4d_delegations_recalling",
            "Delegations being recalled",
            n.recalling as i64,
        )?;
        let s = n.stats;
        counter(
            &mut enc,
            "nfs4d_delegations_granted",
            "Delegations granted",
            s.delegations_granted,
        )?;
        counter(
            &mut enc,
            "nfs4d_delegations_recalled",
            "Delegations recalled",
            s.delegations_recalled,
        )?;
        counter(
            &mut enc,
            "nfs4d_delegations_revoked",
            "Delegations revoked: not returned within a lease period of their recall",
            s.delegations_revoked,
        )?;
        counter(
            &mut enc,
            "nfs4d_leases_expired",
            "Clients that lost their state to lease expiry",
            s.leases_expired,
        )?;
        counter(
            &mut enc,
            "nfs4d_clients_evicted",
            "Clients evicted with nfs4d ctl evict",
            s.clients_evicted,
        )?;
        let grace = srv.state.recovery.in_grace(srv.clock.now_ms());
        gauge(
            &mut enc,
            "nfs4d_grace",
            "1 while the grace period after a restart lasts",
            i64::from(grace),
        )?;
        gauge(
            &mut enc,
            "nfs4d_exports",
            "Exports served",
            srv.vfs.exports().len() as i64,
        )?;

        // Handle map.
        if let Some(records) = self.fhmap_records() {
            gauge(
                &mut enc,
                "nfs4d_fhmap_records",
                "Objects in the handle map (counted at most every 5 minutes)",
                records as i64,
            )?;
        }
        counter(
            &mut enc,
            "nfs4d_fhmap_flushes",
            "Handle-map flushes (shared by the requests waiting)",
            srv.fhmap.flush_count(),
        )?;
        let e = enc.encode_descriptor(
            "nfs4d_fhmap_flush_wait_seconds",
            "Time requests waited for new handles to be durable",
            None,
            MetricType::Histogram,
        )?;
        encode_histogram(e, &m.flush_wait())?;

        // Store requests.
        let mut fam = enc.encode_descriptor(
            "nfs4d_store_requests",
            "Requests to the exports' stores, by kind",
            None,
            MetricType::Counter,
        )?;
        let stores = self.stores.snapshot();
        for (kind, calls, _) in &stores {
            ConstCounter::new(*calls).encode(fam.encode_family(&[("kind", *kind)])?)?;
        }
        let mut fam = enc.encode_descriptor(
            "nfs4d_store_errors",
            "Store requests that failed, by kind",
            None,
            MetricType::Counter,
        )?;
        for (kind, _, errors) in &stores {
            ConstCounter::new(*errors).encode(fam.encode_family(&[("kind", *kind)])?)?;
        }
        Ok(())
    }
}

fn encode_histogram(
    mut e: prometheus_client::encoding::MetricEncoder<'_>,
    h: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    e.encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &buckets(h), None)
}

/// An operation's name for labels.
pub fn op_name(opnum: u32) -> &'static str {
    nfs4d_core::ops::describe(opnum).map_or("ILLEGAL", |d| d.name)
}

/// The registry a scrape encodes.
pub fn registry(c: Collect) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(c));
    r
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPERS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let r = registry.clone();
                tokio::spawn(async move {
                    if let Err(e) = scrape(stream, &r).await {
                        tracing::debug!(%peer, error = %e, "metrics: request failed");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn scrape(mut s: TcpStream, registry: &Arc<Registry>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > MAX_REQUEST {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(REQUEST_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        )
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        let r = registry.clone();
        // The state lock and the handle-map count block: off the runtime.
        let text = tokio::task::spawn_blocking(move || {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &r).map(|()| out)
        })
        .await;
        match text {
            Ok(Ok(t)) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", t),
            _ => (
                "500 Internal Server Error",
                "text/plain",
                "encoding failed\n".into(),
            ),
        }
    } else {
        (
            "404 Not Found",
            "text/plain",
            "metrics are at /metrics\n".into(),
        )
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(reply.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}

/// Binds the metrics listener: refuses non-loopback addresses unless
/// `public` says the administrator meant it (the endpoint has no
/// authentication; docs/security.md).
pub async fn bind(addr: SocketAddr, public: bool) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() && !public {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{addr} is not a loopback address; set admin.metrics_public = true to serve metrics there"),
        ));
    }
    TcpListener::bind(addr).await
}
