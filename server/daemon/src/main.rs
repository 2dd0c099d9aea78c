//! The `nfs4d` binary: `nfs4d serve …`, `nfs4d ctl …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use nfs4d_core::config::{Config, ExpireOn, ExpiredError, ExportConfig, HandleMode};

/// A user-space NFSv4.0/4.1/4.2 server for path-based stores.
#[derive(Parser, Debug)]
#[command(name = "nfs4d", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
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
    /// the export's expire_on lists "migration". Update the configuration
    /// file too: the move lasts until the server restarts.
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
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML configuration file (see etc/nfs4d.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Export this directory at the pseudo root "/" (replaces configured exports).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
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
    /// Lease period in seconds.
    #[arg(long, value_name = "SECS")]
    lease_time: Option<u32>,
    /// Upper bound of the grace period after a restart, in seconds.
    #[arg(long, value_name = "SECS")]
    grace_time: Option<u32>,
}

fn build_config(a: &ServeArgs) -> Result<Config, String> {
    let mut cfg = match &a.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let default_dir = a.config.is_none() && a.export.is_none();
    if let Some(dir) = &a.export {
        cfg.exports = vec![export_at_root(dir.clone())];
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
    }
    if let Some(l) = a.lease_time {
        cfg.lease_time = l;
    }
    if let Some(g) = a.grace_time {
        cfg.grace_time = g;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn export_at_root(dir: PathBuf) -> ExportConfig {
    ExportConfig {
        path: "/".into(),
        dir,
        filehandles: HandleMode::Persistent,
        expire_on: vec![
            nfs4d_core::config::ExpireOn::Rename,
            nfs4d_core::config::ExpireOn::Migration,
            nfs4d_core::config::ExpireOn::Reboot,
        ],
        noexpire_with_open: true,
        expired_error: ExpiredError::Auto,
        read_only: false,
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

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
    keep_io_buffers();
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
    rt.block_on(run(cfg))
}

/// READ and WRITE move buffers of up to `MAX_IO` (1 MiB) per request.
/// With glibc's defaults such a buffer is mmap'ed, or the heap top holding
/// it is trimmed once freed, so every request faulted in and zeroed fresh
/// pages: a fifth of the server's CPU when streaming. Serving allocations
/// below 32 MiB from the heap and trimming only past 64 MiB of free top
/// lets freed I/O buffers be reused; the memory kept is what the peak of
/// requests in flight (bounded per connection) needed anyway.
fn keep_io_buffers() {
    // SAFETY: mallopt only changes allocator tunables; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

async fn run(cfg: Config) -> std::process::ExitCode {
    let listen = cfg.listen;
    let exports: Vec<(String, PathBuf)> = cfg
        .exports
        .iter()
        .map(|e| (e.path.clone(), e.dir.clone()))
        .collect();
    let (srv, queue, cluster) =
        match tokio::task::spawn_blocking(move || nfs4d::startup::open(cfg)).await {
            Ok(Ok(s)) => (Arc::new(s.srv), s.callbacks, s.cluster),
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
        tracing::info!(export = %pseudo, dir = %dir.display(), "exporting");
    }
    // The admin socket (nfs4d ctl); the server works without it.
    let state_dir = srv.cfg.state_dir.clone();
    let ctl_task = match nfs4d::ctl::bind(&state_dir) {
        Ok(l) => {
            tracing::info!(socket = %nfs4d::ctl::socket_path(&state_dir).display(), "admin socket ready");
            Some(tokio::spawn(nfs4d::ctl::serve(
                srv.clone(),
                l,
                std::future::pending(),
            )))
        }
        Err(e) => {
            tracing::warn!(error = %e, dir = %state_dir.display(), "cannot create the admin socket; `nfs4d ctl` will not work");
            None
        }
    };
    tracing::info!(%bound, "serving NFSv4.0/4.1/4.2");
    println!(
        "nfs4d listening on {bound}; mount with:\n  mount -t nfs4 -o vers=4.1,port={},addr={} {}:/ /mnt",
        bound.port(),
        bound.ip(),
        bound.ip()
    );
    if let Some(head) = cluster {
        nfs4d::cluster::run_head(head, srv.clone());
    }
    nfs4d::net::serve(srv.clone(), &queue, listener, shutdown_signal()).await;
    tracing::info!("shutting down");
    if let Some(t) = ctl_task {
        t.abort();
        let _ = std::fs::remove_file(nfs4d::ctl::socket_path(&state_dir));
    }
    let s = srv.clone();
    let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    std::process::ExitCode::SUCCESS
}

/// `nfs4d ctl …`: one request to a running server's admin socket. Exit
/// status 0 on success, 1 when the server refused, 2 when it could not be
/// reached.
fn ctl(cmd: CtlCmd) -> std::process::ExitCode {
    let answer = match cmd {
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
            let to = match std::path::absolute(&to) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("nfs4d ctl: {}: {e}", to.display());
                    return std::process::ExitCode::from(2);
                }
            };
            match to.to_str() {
                Some(t) => nfs4d::ctl::request(&state_dir, &["migrate", &export, t]),
                None => {
                    eprintln!("nfs4d ctl: {} is not valid UTF-8", to.display());
                    return std::process::ExitCode::from(2);
                }
            }
        }
        CtlCmd::Migrate { .. } => {
            eprintln!("nfs4d ctl: migrate wants --to NEWDIR or --to-head HEAD");
            return std::process::ExitCode::from(2);
        }
    };
    match answer {
        Ok(Ok(text)) => {
            println!("{text}");
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
