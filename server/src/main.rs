//! The `nfs4d` binary: `nfs4d serve …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use nfs4d::clock::SystemClock;
use nfs4d::config::{Config, ExportConfig, HandleMode};
use nfs4d::server::Server;

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
    /// Lease period in seconds.
    #[arg(long, value_name = "SECS")]
    lease_time: Option<u32>,
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
    if let Some(m) = a.filehandles {
        for e in &mut cfg.exports {
            e.filehandles = m;
        }
    }
    if let Some(l) = a.lease_time {
        cfg.lease_time = l;
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
            nfs4d::config::ExpireOn::Rename,
            nfs4d::config::ExpireOn::Migration,
            nfs4d::config::ExpireOn::Reboot,
        ],
        noexpire_with_open: true,
        read_only: false,
        clients: None,
        squash: Default::default(),
        anonuid: nfs4d::export_access::NOBODY,
        anongid: nfs4d::export_access::NOBODY,
        sec: vec![nfs4d::export_access::SecFlavor::Sys, nfs4d::export_access::SecFlavor::None],
        privileged_port: false,
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
    let Cmd::Serve(args) = cli.cmd;
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
    rt.block_on(run(cfg))
}

async fn run(cfg: Config) -> std::process::ExitCode {
    let listen = cfg.listen;
    let exports: Vec<(String, PathBuf)> = cfg.exports.iter().map(|e| (e.path.clone(), e.dir.clone())).collect();
    let srv = match tokio::task::spawn_blocking(move || Server::open(cfg, Arc::new(SystemClock::default()))).await {
        Ok(Ok(s)) => Arc::new(s),
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
    tracing::info!(%bound, "serving NFSv4.0/4.1/4.2");
    println!(
        "nfs4d listening on {bound}; mount with:\n  mount -t nfs4 -o vers=4.1,port={},addr={} {}:/ /mnt",
        bound.port(),
        bound.ip(),
        bound.ip()
    );
    nfs4d::net::serve(srv.clone(), listener, shutdown_signal()).await;
    tracing::info!("shutting down");
    let s = srv.clone();
    let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
    std::process::ExitCode::SUCCESS
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
