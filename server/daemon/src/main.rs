//! The `nfs4d` binary: `nfs4d serve …`, `nfs4d ctl …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use nfs4d::metered::StoreCounters;
use nfs4d_core::config::{
    Config, Durability, ExpireOn, ExpiredError, ExportConfig, HandleMode, StoreKind,
};

/// A user-space NFSv4.0/4.1/4.2 server for path-based stores.
#[derive(Parser, Debug)]
#[command(name = "nfs4d", version, about, long_about = None)]
struct Cli {
    /// Log lines as text (coloured only on a terminal) or as JSON objects,
    /// one per line, for log shippers.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve NFSv4 over TCP.
    ///
    /// With no options it serves ./nfs4d-data/export on 127.0.0.1:2049 with
    /// state in ./nfs4d-data/state, creating both. Options override the
    /// configuration file.
    Serve(ServeArgs),
    /// Administer a running server through its socket STATE_DIR/ctl.sock
    /// (mode 0600: run as the server's user).
    Ctl {
        #[command(subcommand)]
        cmd: CtlCmd,
    },
}

#[derive(Subcommand, Debug)]
enum CtlCmd {
    /// Serve an export from another directory from now on, for example a
    /// copy made with `cp -a` or `rsync -a`. Objects found at the same path
    /// with the same type keep their handles; volatile handles expire if
    /// the export's expire_on lists "migration". The move is recorded in
    /// the state directory and kept across restarts until the
    /// configuration names another directory: write the new one there.
    Migrate {
        /// The server's state directory.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// The export's path in the pseudo filesystem ("/" for the root).
        #[arg(long, value_name = "PATH")]
        export: String,
        /// The new backing directory.
        #[arg(long, value_name = "NEWDIR", required_unless_present = "to_head")]
        to: Option<PathBuf>,
        /// A head of a cluster: move the export to head HEAD instead; the
        /// other heads answer NFS4ERR_MOVED with fs_locations naming it
        /// (docs/cluster.md).
        #[arg(long, value_name = "HEAD", conflicts_with = "to")]
        to_head: Option<String>,
    },
    /// Check that the server answers on its admin socket.
    Ping {
        /// The server's state directory.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// Version, uptime, exports, grace period, counts of clients and state.
    Status(CtlCommon),
    /// Clients with their address, owner, minor version, lease age, opens,
    /// locks and delegations.
    Clients(CtlCommon),
    /// The exports in force.
    Exports(CtlCommon),
    /// Revoke a client's state (opens, locks, delegations, sessions) and
    /// forget it; it starts over with a new client id and may not reclaim.
    Evict {
        #[command(flatten)]
        common: CtlCommon,
        /// The client's id, as `nfs4d ctl clients` shows it (hex).
        #[arg(value_name = "CLIENT")]
        client: String,
    },
    /// Re-read the configuration file: added exports appear, removed ones
    /// answer NFS4ERR_STALE, changed access rules apply to the next
    /// request; clients keep their sessions and state. An invalid file is
    /// refused with the line and the reason. Same as SIGHUP.
    Reload(CtlCommon),
}

/// What every structured `ctl` subcommand takes.
#[derive(clap::Args, Debug)]
struct CtlCommon {
    /// The server's state directory.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Print the server's answer as JSON instead of for people.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug, Clone)]
struct ServeArgs {
    /// TOML configuration file (see etc/nfs4d.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Export this directory, or the S3 bucket prefix `s3://BUCKET/PREFIX`,
    /// at the pseudo root "/" (replaces configured exports). Credentials
    /// for S3 come from the AWS environment, profile or instance metadata.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    export: Option<PathBuf>,
    /// Endpoint URL of the S3 service (e.g. http://127.0.0.1:3900) for
    /// S3 exports; AWS when absent.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Signing region of the S3 service for S3 exports.
    #[arg(long, value_name = "REGION")]
    s3_region: Option<String>,
    /// Any other setting of S3 exports' `[export.s3]` table, as KEY=VALUE
    /// with VALUE in TOML syntax, bare words as strings (repeatable; e.g.
    /// `--s3-set attr_ttl_ms=500 --s3-set list_markers=false`). See
    /// docs/objectstore.md.
    #[arg(long, value_name = "KEY=VALUE")]
    s3_set: Vec<String>,
    /// Directory for the handle map and client records.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Filehandle mode of the exports.
    #[arg(long, value_enum, value_name = "MODE")]
    filehandles: Option<HandleMode>,
    /// Events that expire volatile handles (comma-separated).
    #[arg(long, value_enum, value_name = "EVENTS", value_delimiter = ',')]
    expire_on: Option<Vec<ExpireOn>>,
    /// Whether an open file's volatile handle outlives a rename until its
    /// last close (FH4_NOEXPIRE_WITH_OPEN).
    #[arg(long, value_name = "BOOL")]
    noexpire_with_open: Option<bool>,
    /// What expired volatile handles answer: fhexpired, stale, or auto
    /// (STALE to Linux clients, FHEXPIRED to others).
    #[arg(long, value_enum, value_name = "MODE")]
    expired_error: Option<ExpiredError>,
    /// Delegations handed out on every export: none, read or readwrite
    /// (docs/delegations.md).
    #[arg(long, value_enum, value_name = "POLICY")]
    delegations: Option<nfs4d_core::state::deleg::Policy>,
    /// Security flavors every export accepts, in the order SECINFO lists
    /// them (comma-separated: krb5p, krb5i, krb5, sys, none). Kerberos
    /// needs a keytab (see the [gss] section of etc/nfs4d.toml).
    #[arg(long, value_enum, value_name = "FLAVORS", value_delimiter = ',')]
    sec: Option<Vec<nfs4d_core::export_access::SecFlavor>>,
    /// When namespace changes of every export become durable: sync
    /// (before the reply) or async (in the background; docs/durability.md).
    #[arg(long, value_enum, value_name = "MODE")]
    durability: Option<Durability>,
    /// Longest delay of an async export's background flush, in milliseconds.
    #[arg(long, value_name = "MS")]
    async_flush_ms: Option<u32>,
    /// Lease period in seconds.
    #[arg(long, value_name = "SECS")]
    lease_time: Option<u32>,
    /// Upper bound of the grace period after a restart, in seconds.
    #[arg(long, value_name = "SECS")]
    grace_time: Option<u32>,
    /// Serve metrics in the Prometheus text format at http://ADDR:PORT/metrics
    /// (a loopback address; see docs/operations.md).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// How long requests in flight may take to finish after SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    shutdown_timeout: u64,
}

fn build_config(a: &ServeArgs) -> Result<Config, String> {
    let mut cfg = match &a.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    apply_flags(a, &mut cfg)?;
    cfg.validate().map_err(|e| e.to_string())?;
    nfs4d::gss::engine_config(&cfg.gss).map_err(|e| format!("invalid configuration: {e}"))?;
    Ok(cfg)
}

/// The command line's settings over the file's (at start and at reload).
fn apply_flags(a: &ServeArgs, cfg: &mut Config) -> Result<(), String> {
    let default_dir = a.config.is_none() && a.export.is_none();
    if let Some(dir) = &a.export {
        cfg.exports = vec![match dir.to_str().and_then(|d| d.strip_prefix("s3://")) {
            Some(loc) => s3_export_at_root(loc)?,
            None => export_at_root(dir.clone()),
        }];
    } else if default_dir && cfg.exports.is_empty() {
        cfg.exports = vec![export_at_root(PathBuf::from("nfs4d-data/export"))];
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(s) = &a.state_dir {
        cfg.state_dir = s.clone();
    }
    for e in &mut cfg.exports {
        if let Some(m) = a.filehandles {
            e.filehandles = m;
        }
        if let Some(v) = &a.expire_on {
            e.expire_on = v.clone();
        }
        if let Some(v) = a.noexpire_with_open {
            e.noexpire_with_open = v;
        }
        if let Some(v) = a.expired_error {
            e.expired_error = v;
        }
        if let Some(v) = a.delegations {
            e.delegations = v;
        }
        if let Some(v) = &a.sec {
            e.sec = v.clone();
        }
        if let Some(v) = a.durability {
            e.durability = v;
        }
    }
    let mut s3_settings: Vec<(String, toml::Value)> = Vec::new();
    for (key, v) in [("endpoint", &a.s3_endpoint), ("region", &a.s3_region)] {
        if let Some(v) = v {
            s3_settings.push((key.into(), toml::Value::String(v.clone())));
        }
    }
    for kv in &a.s3_set {
        s3_settings.push(s3_setting(kv)?);
    }
    if !s3_settings.is_empty() {
        let mut any = false;
        for e in cfg.exports.iter_mut().filter(|e| e.store == StoreKind::S3) {
            let t = e.s3.get_or_insert_with(Default::default);
            for (k, v) in &s3_settings {
                t.insert(k.clone(), v.clone());
            }
            any = true;
        }
        if !any {
            return Err(
                "--s3-endpoint, --s3-region or --s3-set given, but no export is on S3".into(),
            );
        }
    }
    if let Some(v) = a.async_flush_ms {
        cfg.async_flush_ms = v;
    }
    if let Some(l) = a.lease_time {
        cfg.lease_time = l;
    }
    if let Some(g) = a.grace_time {
        cfg.grace_time = g;
    }
    if let Some(m) = a.metrics_listen {
        cfg.admin.metrics_listen = Some(m);
    }
    Ok(())
}

/// One `--s3-set KEY=VALUE`: VALUE as a TOML value (`500`, `false`,
/// `"text"`), or as a string when it is not one (`/var/spool/nfs4d`).
fn s3_setting(kv: &str) -> Result<(String, toml::Value), String> {
    let Some((k, v)) = kv.split_once('=') else {
        return Err(format!("--s3-set {kv:?}: expected KEY=VALUE"));
    };
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("--s3-set {kv:?}: the key is empty"));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// The export of `--export s3://BUCKET/PREFIX` (given without the
/// scheme), with the object-store defaults of a configured one.
fn s3_export_at_root(loc: &str) -> Result<ExportConfig, String> {
    let (bucket, prefix) = loc.split_once('/').unwrap_or((loc, ""));
    if bucket.is_empty() {
        return Err("--export s3://BUCKET/PREFIX: the bucket is missing".into());
    }
    let mut s3 = toml::Table::new();
    s3.insert("bucket".into(), toml::Value::String(bucket.into()));
    s3.insert("prefix".into(), toml::Value::String(prefix.into()));
    let mut e = export_at_root(PathBuf::new());
    e.store = StoreKind::S3;
    e.s3 = Some(s3);
    e.store_defaults(|_| false);
    Ok(e)
}

fn export_at_root(dir: PathBuf) -> ExportConfig {
    ExportConfig {
        path: "/".into(),
        store: StoreKind::Local,
        dir,
        s3: None,
        filehandles: HandleMode::Persistent,
        expire_on: vec![
            nfs4d_core::config::ExpireOn::Rename,
            nfs4d_core::config::ExpireOn::Migration,
            nfs4d_core::config::ExpireOn::Reboot,
        ],
        noexpire_with_open: true,
        expired_error: ExpiredError::Auto,
        read_only: false,
        durability: Durability::Sync,
        clients: None,
        squash: Default::default(),
        anonuid: nfs4d_core::export_access::NOBODY,
        anongid: nfs4d_core::export_access::NOBODY,
        sec: vec![
            nfs4d_core::export_access::SecFlavor::Sys,
            nfs4d_core::export_access::SecFlavor::None,
        ],
        privileged_port: false,
        delegations: Default::default(),
    }
}

/// The server allocates from jemalloc rather than glibc's malloc.
///
/// Requests run on many threads (runners of the blocking pool and the
/// tokio workers), and most allocations are small and short-lived: a
/// request's decoded arguments, its reply, the handle map's keys and
/// records. glibc serves such a mix badly both ways it can be set. With an
/// arena per thread (its default, up to eight per core) each arena kept
/// its own peak of freed I/O buffers, and a streaming read held four to
/// six times Ganesha's RSS. With two arenas the threads contend for their
/// locks (waits on the arena locks were 3.7 % of the server's samples
/// under openhold, malloc and free another 14 %), and with one the CPU per
/// operation rose by a fifth. jemalloc gives each thread a cache of small
/// objects, spreads threads over a few arenas, and returns freed pages to
/// the kernel after a delay (10 s by default), so freed 1 MiB READ and WRITE
/// buffers are reused rather than faulted in again. The cost is memory
/// when many threads run: each keeps its own cache, so at 32 clients × 64
/// slots on a sync export, with some 500 runners, the peak RSS is 1.6 to
/// 2 times what it was on glibc's two arenas even though a runner that
/// retires empties its cache ([`flush_thread_cache`]). docs/performance.md
/// has the runs (History and "On f3da785", 2026-12-07).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`malloc_conf`, jemalloc(3));
/// the `_RJEM_MALLOC_CONF` environment variable overrides them.
///
/// `tcache_max`: a thread keeps freed blocks of up to 1 MiB in its cache
/// (jemalloc's default stops at 32 KiB). A READDIR reply, a WRITE's record
/// and the encode buffers of a large COMPOUND are larger than that, and
/// each went back through its arena's lock and extent bookkeeping: with
/// the default, READDIR took 8-10 % more CPU than on glibc's heap; with
/// 1 MiB, 6 % less (History, 2026-12-07).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf = MallocConf(c"tcache_max:1048576".as_ptr());

/// A C string pointer jemalloc reads as `const char *malloc_conf`.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal: 'static and never written.
unsafe impl Sync for MallocConf {}

/// Hands this thread's cache of freed blocks back to jemalloc's arenas
/// (`thread.tcache.flush`, jemalloc(3)). A runner calls it when it retires
/// to the blocking pool, at most every 100 ms per thread (`nfs4d::exec`):
/// the thread may then allocate nothing for seconds, and jemalloc's own
/// collection, which runs as a thread allocates, would never empty its
/// cache. With 1 MiB blocks cached, about 0.4 MiB sat in each of hundreds
/// of threads at 32 clients × 64 slots (docs/performance.md, History,
/// 2026-12-07).
fn flush_thread_cache() {
    // SAFETY: the name is a NUL-terminated string; this control reads and
    // writes no value, so all four pointers and the length are null/zero.
    // It fails only on a thread without a cache (`tcache:false` in
    // _RJEM_MALLOC_CONF), which has nothing to flush.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"thread.tcache.flush".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    nfs4d::exec::set_release(flush_thread_cache);
    init_logging(cli.log_format);
    let args = match cli.cmd {
        Cmd::Serve(args) => args,
        Cmd::Ctl { cmd } => return ctl(cmd),
    };
    let cfg = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nfs4d: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(512)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nfs4d: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(cfg, args));
    // Requests still running past the drain timeout are not waited for:
    // their replies could not be sent anyway, and what they acknowledged
    // is durable already.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// Log lines go to stderr: text, coloured only when stderr is a terminal
/// (a file, a pipe or the journal gets no escape codes), or JSON.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => b.json().with_ansi(false).init(),
    }
}

async fn run(cfg: Config, args: ServeArgs) -> std::process::ExitCode {
    let listen = cfg.listen;
    let admin_cfg = cfg.admin.clone();
    let exports: Vec<(String, String)> = cfg
        .exports
        .iter()
        .map(|e| (e.path.clone(), e.location()))
        .collect();
    // Metrics: bound before anything else starts, so a bad address fails
    // the start instead of leaving a server without them.
    let (meter, metrics_listener) = match admin_cfg.metrics_listen {
        Some(addr) => match nfs4d::metrics::bind(addr, admin_cfg.metrics_public).await {
            Ok(l) => (Some(Arc::new(StoreCounters::default())), Some(l)),
            Err(e) => {
                eprintln!("nfs4d: metrics listener {addr}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => (None, None),
    };
    let m = meter.clone();
    let (srv, queue, gss, cluster) =
        match tokio::task::spawn_blocking(move || nfs4d::startup::open(cfg, m)).await {
            Ok(Ok(s)) => (Arc::new(s.srv), s.callbacks, s.gss, s.cluster),
            Ok(Err(e)) => {
                eprintln!("nfs4d: {e}");
                return std::process::ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("nfs4d: startup failed: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nfs4d: cannot listen on {listen}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(listen);
    for (pseudo, dir) in &exports {
        tracing::info!(export = %pseudo, location = %dir, "exporting");
    }
    let metrics_at = match metrics_listener {
        Some(l) => {
            srv.metrics.enable();
            let at = l.local_addr().ok();
            let c = nfs4d::metrics::Collect::new(srv.clone(), meter.clone().unwrap_or_default());
            tokio::spawn(nfs4d::metrics::serve(
                l,
                Arc::new(nfs4d::metrics::registry(c)),
            ));
            if let Some(a) = at {
                tracing::info!(url = %format!("http://{a}/metrics"), "serving metrics");
            }
            at
        }
        None => None,
    };
    let flags = args.clone();
    let admin = Arc::new(nfs4d::ctl::Admin {
        srv: srv.clone(),
        started: std::time::SystemTime::now(),
        reloader: nfs4d::reload::Reloader::new(
            // Messages name the file as the administrator would find it.
            args.config
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            Box::new(move |c| apply_flags(&flags, c)),
            meter.clone(),
        ),
        meter,
        metrics: metrics_at,
        listen: bound,
    });
    // The admin socket (nfs4d ctl); the server works without it.
    let state_dir = srv.cfg.state_dir.clone();
    let ctl_task = match nfs4d::ctl::bind(&state_dir) {
        Ok(l) => {
            tracing::info!(socket = %nfs4d::ctl::socket_path(&state_dir).display(), "admin socket ready");
            Some(tokio::spawn(nfs4d::ctl::serve(
                admin.clone(),
                l,
                std::future::pending(),
            )))
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %state_dir.display(), "cannot create the admin socket; `nfs4d ctl` will not work");
            None
        }
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    if let Err(e) = watch_signals(admin.clone(), stop.clone()) {
        eprintln!("nfs4d: cannot handle signals: {e}");
        return std::process::ExitCode::FAILURE;
    }
    tracing::info!(%bound, "serving NFSv4.0/4.1/4.2");
    // One write, and no panic if nobody reads standard output any more.
    let banner = format!(
        "nfs4d listening on {bound}; mount with:\n  mount -t nfs4 -o vers=4.1,port={},addr={} {}:/ /mnt\n",
        bound.port(),
        bound.ip(),
        bound.ip()
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    if let Some(head) = cluster {
        nfs4d::cluster::run_head(head, srv.clone(), gss.clone());
    }
    let drain = std::time::Duration::from_secs(args.shutdown_timeout);
    let stopped = stop.clone();
    nfs4d::net::serve(
        srv.clone(),
        &queue,
        listener,
        gss,
        async move { stopped.notified().await },
        drain,
    )
    .await;
    if let Some(t) = ctl_task {
        t.abort();
        let _ = std::fs::remove_file(nfs4d::ctl::socket_path(&state_dir));
    }
    let s = srv.clone();
    let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    tracing::info!("handle map flushed; exiting");
    std::process::ExitCode::SUCCESS
}

/// SIGTERM and SIGINT stop the server (`stop` is notified): it stops
/// accepting, lets requests in flight finish, flushes the handle map and
/// exits 0. A second one exits at once. SIGHUP re-reads the configuration
/// (as `nfs4d ctl reload`).
fn watch_signals(
    admin: Arc<nfs4d::ctl::Admin>,
    stop: Arc<tokio::sync::Notify>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            seen += 1;
            if seen == 1 {
                tracing::info!(
                    signal = which,
                    "stopping: no new connections or requests; waiting for requests in flight"
                );
                stop.notify_one();
            } else {
                tracing::warn!(signal = which, "second stop signal: exiting at once");
                std::process::exit(1);
            }
        }
    });
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading the configuration");
            let a = admin.clone();
            match tokio::task::spawn_blocking(move || a.reloader.reload(&a.srv)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reload refused; the running configuration stays")
                }
                Err(e) => tracing::error!(error = %e, "reload failed"),
            }
        }
    });
    Ok(())
}

/// `nfs4d ctl …`: one request to a running server's admin socket. Exit
/// status 0 on success, 1 when the server refused, 2 when it could not be
/// reached.
fn ctl(cmd: CtlCmd) -> std::process::ExitCode {
    let structured = |common: &CtlCommon, fields: &[&str]| {
        let name = fields[0].to_string();
        (
            nfs4d::ctl::request(&common.state_dir, fields),
            Some((name, common.json)),
        )
    };
    let (answer, shape) = match &cmd {
        CtlCmd::Status(c) => structured(c, &["status"]),
        CtlCmd::Clients(c) => structured(c, &["clients"]),
        CtlCmd::Exports(c) => structured(c, &["exports"]),
        CtlCmd::Reload(c) => structured(c, &["reload"]),
        CtlCmd::Evict { common, client } => structured(common, &["evict", client]),
        _ => (plain(cmd), None),
    };
    match answer {
        Ok(Ok(text)) => {
            match shape {
                Some((_, true)) => println!("{text}"),
                Some((name, false)) => match serde_json::from_str(&text) {
                    Ok(v) => println!("{}", nfs4d::ctl::render(&name, &v)),
                    Err(_) => println!("{text}"),
                },
                None => println!("{text}"),
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(Err(text)) => {
            eprintln!("nfs4d ctl: {text}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("nfs4d ctl: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The subcommands that answer plain text.
fn plain(cmd: CtlCmd) -> std::io::Result<Result<String, String>> {
    use std::io::{Error, ErrorKind};
    match cmd {
        CtlCmd::Ping { state_dir } => nfs4d::ctl::request(&state_dir, &["ping"]),
        CtlCmd::Migrate {
            state_dir,
            export,
            to_head: Some(head),
            ..
        } => nfs4d::ctl::request(&state_dir, &["migrate-head", &export, &head]),
        CtlCmd::Migrate {
            state_dir,
            export,
            to: Some(to),
            ..
        } => {
            // The server's working directory is not ours: send an absolute path.
            let to = std::path::absolute(&to)
                .map_err(|e| Error::new(e.kind(), format!("{}: {e}", to.display())))?;
            let t = to.to_str().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("{} is not valid UTF-8", to.display()),
                )
            })?;
            nfs4d::ctl::request(&state_dir, &["migrate", &export, t])
        }
        CtlCmd::Migrate { .. } => Err(Error::new(
            ErrorKind::InvalidInput,
            "migrate wants --to NEWDIR or --to-head HEAD",
        )),
        other => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{other:?} answers JSON"),
        )),
    }
}
