//! `nfs4d-bench`: an NFSv4.1 load generator that speaks to any server.
//!
//! ```text
//! nfs4d-bench --server 127.0.0.1:2049 --export / --workload metadata \
//!     [--connections N] [--slots M] [--duration SECS | --ops COUNT] [--warmup SECS] [--json]
//! ```
//!
//! N connections, each with its own 4.1 session of M slots and M COMPOUNDs
//! in flight (see `pipeline.rs`). Reports operations (COMPOUNDs) per
//! second, MiB/s, latency percentiles from a histogram, errors, and with
//! `--server-pid` the server's CPU time and RSS over the measured window.
//! Every run is bounded by `--duration` (default 10 s) or `--ops`.
//!
//! `--smoke` is the CI mode: every workload, small inputs, 200 operations
//! each (unless given), exit status 1 on any error.

// A binary's root looks for modules beside itself (src/bin/), so the
// modules of this one name their directory explicitly.
mod ceiling;
mod hist;
mod jobs;
mod ops;
mod pipeline;
mod procstat;
mod workloads;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nfs4d_xdr::nfs4::stable_how4;

use workloads::{Params, Report, Workload};

/// NFSv4.1 load generator: pipelined sessions against any NFSv4.1 server.
#[derive(Parser, Debug)]
#[command(
    name = "nfs4d-bench",
    version,
    about = "NFSv4.1 load generator: pipelined sessions against any NFSv4.1 server"
)]
struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:2049")]
    server: SocketAddr,
    /// Export path on the server ("/" for nfs4d, "/export" for the Ganesha baseline).
    #[arg(long, default_value = "/")]
    export: String,
    /// Workloads to run, comma-separated, or "all".
    #[arg(long, value_delimiter = ',', default_value = "all")]
    workload: Vec<WorkloadArg>,
    /// TCP connections, each with its own client and session [default: 4, 2 with --smoke].
    #[arg(long)]
    connections: Option<usize>,
    /// Fore-channel slots per session = requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    slots: u32,
    /// Length of each measured phase in seconds [default: 10].
    #[arg(long, conflicts_with = "ops")]
    duration: Option<f64>,
    /// Stop each measured phase after this many COMPOUNDs instead.
    #[arg(long)]
    ops: Option<u64>,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Print one JSON object per workload (JSON Lines) instead of text.
    #[arg(long)]
    json: bool,
    /// Label of the server in the output (e.g. nfs4d, ganesha).
    #[arg(long, default_value = "server")]
    label: String,
    /// PID of the server, when local: report its CPU time and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// metadata: directories the files are spread over.
    #[arg(long, default_value_t = 8)]
    dirs: usize,
    /// readdir: entries of the listed directory [default: 10000].
    #[arg(long)]
    dir_entries: Option<u64>,
    /// readdir: bytes per READDIR reply (dircount and maxcount).
    #[arg(long, default_value_t = 65536)]
    readdir_bytes: u32,
    /// tcp-ceiling: also stream into files and from a file in this
    /// directory (best on the exports' file system): the seqwrite and
    /// seqread ceilings without NFS.
    #[arg(long, value_name = "DIR")]
    ceiling_dir: Option<std::path::PathBuf>,
    /// Size of the file of the streaming and random workloads (K, M, G suffixes) [default: 1G].
    #[arg(long, value_parser = parse_size)]
    file_size: Option<u64>,
    /// seqread/seqwrite: bytes per READ/WRITE (capped by the server).
    #[arg(long, value_parser = parse_size, default_value = "1M")]
    seq_size: u64,
    /// randread/randwrite: bytes per READ/WRITE.
    #[arg(long, value_parser = parse_size, default_value = "4K")]
    rand_size: u64,
    /// smallfile: bytes written and read back per file.
    #[arg(long, value_parser = parse_size, default_value = "4K")]
    small_size: u64,
    /// smallfile: WRITE stability (file-sync is what the Linux client sends
    /// for a small file flushed at close).
    #[arg(long, value_enum, default_value = "file-sync")]
    small_stable: Stable,
    /// openhold: files opened and held [default: 10000].
    #[arg(long)]
    open_files: Option<u64>,
    /// openhold: seconds the files stay open [default: 8].
    #[arg(long)]
    hold: Option<f64>,
    /// Security flavor: sys (AUTH_SYS as root), or Kerberos krb5, krb5i,
    /// krb5p (RPCSEC_GSS, one context per connection).
    #[arg(long, value_enum, default_value = "sys")]
    sec: Sec,
    /// Kerberos: the credential cache with the tickets to use [default:
    /// KRB5CCNAME, else the default cache].
    #[arg(long, value_name = "CCACHE")]
    krb5_ccache: Option<String>,
    /// Kerberos: the server's principal, `nfs/HOST@REALM` or `nfs@HOST`.
    #[arg(long, value_name = "PRINCIPAL", default_value = "nfs@localhost")]
    krb5_target: String,
    /// bigdir: files created in the one directory, then listed [default: 1000000].
    #[arg(long)]
    bigdir_entries: Option<u64>,
    /// Serve the workload in this process (the core over a memory store,
    /// no socket) instead of connecting to --server: for counting the
    /// core's instructions per COMPOUND under callgrind, not for timing.
    #[arg(long)]
    inproc: bool,
    /// CI smoke test: all workloads (unless --workload), small inputs,
    /// --ops 200 (unless given); exit status 1 on any error.
    #[arg(long)]
    smoke: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum WorkloadArg {
    All,
    Metadata,
    Readdir,
    Smallfile,
    Seqread,
    Seqwrite,
    Randread,
    Randwrite,
    Openhold,
    Bigdir,
    TcpCeiling,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Sec {
    Sys,
    Krb5,
    Krb5i,
    Krb5p,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Stable {
    Unstable,
    DataSync,
    FileSync,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s}"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("bad size: {s}"))
}

fn workloads(args: &[WorkloadArg]) -> Vec<Workload> {
    let mut out = Vec::new();
    for a in args {
        let w = match a {
            WorkloadArg::All => {
                out.extend(
                    Workload::ALL
                        .iter()
                        .filter(|w| !out.contains(*w))
                        .collect::<Vec<_>>(),
                );
                continue;
            }
            WorkloadArg::Metadata => Workload::Metadata,
            WorkloadArg::Readdir => Workload::Readdir,
            WorkloadArg::Smallfile => Workload::Smallfile,
            WorkloadArg::Seqread => Workload::Seqread,
            WorkloadArg::Seqwrite => Workload::Seqwrite,
            WorkloadArg::Randread => Workload::Randread,
            WorkloadArg::Randwrite => Workload::Randwrite,
            WorkloadArg::Openhold => Workload::Openhold,
            WorkloadArg::Bigdir => Workload::Bigdir,
            WorkloadArg::TcpCeiling => Workload::TcpCeiling,
        };
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// The Kerberos settings, or why they cannot be used.
fn krb5(cli: &Cli) -> Result<Option<workloads::Krb5>, String> {
    let service = match cli.sec {
        Sec::Sys => return Ok(None),
        Sec::Krb5 => nfs4d_gss::Service::None,
        Sec::Krb5i => nfs4d_gss::Service::Integrity,
        Sec::Krb5p => nfs4d_gss::Service::Privacy,
    };
    let gss = nfs4d_gss::Gss::load(None).map_err(|e| e.to_string())?;
    Ok(Some(workloads::Krb5 {
        gss,
        ccache: cli.krb5_ccache.clone(),
        target: cli.krb5_target.clone(),
        service,
    }))
}

fn params(cli: &Cli, krb5: Option<workloads::Krb5>) -> Params {
    let smoke = cli.smoke;
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let ops = cli.ops.or(smoke.then_some(200));
    Params {
        server: cli.server,
        export: cli.export.clone(),
        connections: cli.connections.unwrap_or(if smoke { 2 } else { 4 }).max(1),
        slots: cli.slots.max(1),
        warmup: secs(cli.warmup),
        duration: if ops.is_some() {
            None
        } else {
            Some(secs(cli.duration.unwrap_or(10.0)))
        },
        ops,
        dirs: cli.dirs,
        dir_entries: cli.dir_entries.unwrap_or(if smoke { 200 } else { 10_000 }),
        readdir_bytes: cli.readdir_bytes,
        file_size: cli
            .file_size
            .unwrap_or(if smoke { 8 << 20 } else { 1 << 30 }),
        seq_size: cli.seq_size.min(u64::from(u32::MAX)) as u32,
        rand_size: cli.rand_size.min(u64::from(u32::MAX)) as u32,
        small_size: cli.small_size.min(1 << 20) as u32,
        small_stable: match cli.small_stable {
            Stable::Unstable => stable_how4::UNSTABLE4,
            Stable::DataSync => stable_how4::DATA_SYNC4,
            Stable::FileSync => stable_how4::FILE_SYNC4,
        },
        open_files: cli.open_files.unwrap_or(if smoke { 200 } else { 10_000 }),
        hold: secs(cli.hold.unwrap_or(if smoke { 1.0 } else { 8.0 })),
        bigdir_entries: cli
            .bigdir_entries
            .unwrap_or(if smoke { 200 } else { 1_000_000 }),
        server_pid: cli.server_pid,
        ceiling_dir: cli.ceiling_dir.clone(),
        krb5,
        inproc: cli
            .inproc
            .then(|| workloads::InProc(std::sync::Arc::new(nfs4d_testkit::inproc::Harness::new()))),
    }
}

const MIB: f64 = (1u64 << 20) as f64;

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// The security flavor of the run, as `--sec` names it.
fn sec_name(p: &Params) -> &'static str {
    p.krb5.as_ref().map_or("sys", |k| k.service.name())
}

fn text(label: &str, p: &Params, r: &Report) -> String {
    let t = &r.tally;
    let secs = r.secs();
    let mut s = String::new();
    let setup = if r.workload == Workload::TcpCeiling {
        "loopback".to_string()
    } else {
        let at = match &p.inproc {
            Some(_) => "in process".to_string(),
            None => format!("{}{}", p.server, p.export),
        };
        format!(
            "{label} ({at}), {} conn x {} slots, sec={}",
            p.connections,
            p.slots,
            sec_name(p)
        )
    };
    let _ = writeln!(s, "== {} @ {setup}, {secs:.2} s", r.workload.name());
    let _ = write!(
        s,
        "   ops/s {:>12.1}   ({} COMPOUNDs)",
        t.ops as f64 / secs,
        t.ops
    );
    if r.items != "bytes" && t.items > 0 {
        let _ = write!(s, "   {}/s {:.1}", r.items, t.items as f64 / secs);
    }
    if t.bytes > 0 {
        let _ = write!(s, "   MiB/s {:.1}", t.bytes as f64 / MIB / secs);
    }
    let _ = writeln!(s);
    if t.latency.count() > 0 {
        let _ = writeln!(
            s,
            "   latency p50 {:.3} ms  p99 {:.3} ms  mean {:.3} ms  max {:.3} ms",
            ms(t.latency.quantile(0.5)),
            ms(t.latency.quantile(0.99)),
            t.latency.mean() / 1e6,
            ms(t.latency.max())
        );
    }
    let _ = writeln!(
        s,
        "   errors {}   retries (DELAY/GRACE) {}",
        t.errors, t.retries
    );
    for m in &t.messages {
        let _ = writeln!(s, "     error: {m}");
    }
    if let Some(u) = &r.server {
        let _ = writeln!(
            s,
            "   server cpu {:.2} s ({:.4} s per 1000 ops)  peak RSS {:.1} MiB  RSS at end {:.1} MiB",
            u.cpu_s,
            u.cpu_s * 1000.0 / t.ops.max(1) as f64,
            u.peak_rss_kb as f64 / 1024.0,
            u.rss_kb as f64 / 1024.0
        );
    }
    let _ = writeln!(s, "   generator cpu {:.2} s", r.client_cpu_s);
    for (k, v) in &r.extra {
        let _ = writeln!(s, "   {k} {v:.1}");
    }
    for n in &r.notes {
        let _ = writeln!(s, "   note: {n}");
    }
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (JSON has no NaN or infinity).
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        "null".into()
    }
}

fn json(label: &str, p: &Params, r: &Report) -> String {
    let t = &r.tally;
    let secs = r.secs();
    let mut f: Vec<(String, String)> = vec![
        ("workload".into(), json_str(r.workload.name())),
        ("label".into(), json_str(label)),
        ("server".into(), json_str(&p.server.to_string())),
        ("connections".into(), p.connections.to_string()),
        ("slots".into(), p.slots.to_string()),
        ("sec".into(), json_str(sec_name(p))),
        ("elapsed_s".into(), num(secs)),
        ("ops".into(), t.ops.to_string()),
        ("ops_per_s".into(), num(t.ops as f64 / secs)),
        ("items".into(), t.items.to_string()),
        ("item_unit".into(), json_str(r.items)),
        ("items_per_s".into(), num(t.items as f64 / secs)),
        ("bytes".into(), t.bytes.to_string()),
        ("mib_per_s".into(), num(t.bytes as f64 / MIB / secs)),
        ("io_size".into(), r.io_size.to_string()),
        ("p50_ms".into(), num(ms(t.latency.quantile(0.5)))),
        ("p99_ms".into(), num(ms(t.latency.quantile(0.99)))),
        ("mean_ms".into(), num(t.latency.mean() / 1e6)),
        ("max_ms".into(), num(ms(t.latency.max()))),
        ("errors".into(), t.errors.to_string()),
        ("retries".into(), t.retries.to_string()),
        ("client_cpu_s".into(), num(r.client_cpu_s)),
    ];
    if let Some(u) = &r.server {
        f.push(("server_cpu_s".into(), num(u.cpu_s)));
        f.push((
            "server_cpu_s_per_kop".into(),
            num(u.cpu_s * 1000.0 / t.ops.max(1) as f64),
        ));
        f.push(("server_peak_rss_kb".into(), u.peak_rss_kb.to_string()));
        f.push(("server_rss_kb".into(), u.rss_kb.to_string()));
    }
    for (k, v) in &r.extra {
        f.push(((*k).into(), num(*v)));
    }
    let msgs: Vec<String> = t
        .messages
        .iter()
        .chain(&r.notes)
        .map(|m| json_str(m))
        .collect();
    f.push(("messages".into(), format!("[{}]", msgs.join(","))));
    let body: Vec<String> = f
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let krb5 = match krb5(&cli) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("nfs4d-bench: --sec {:?}: {e}", cli.sec);
            return ExitCode::from(2);
        }
    };
    let p = params(&cli, krb5);
    let list = workloads(&cli.workload);
    let mut failed = false;
    for w in list {
        match workloads::run(w, &p) {
            Ok(r) => {
                failed |= r.tally.errors > 0;
                if cli.json {
                    println!("{}", json(&cli.label, &p, &r));
                } else {
                    print!("{}", text(&cli.label, &p, &r));
                }
            }
            Err(e) => {
                failed = true;
                if cli.json {
                    println!(
                        "{{\"workload\":{},\"label\":{},\"failed\":{}}}",
                        json_str(w.name()),
                        json_str(&cli.label),
                        json_str(&e.to_string())
                    );
                }
                eprintln!("nfs4d-bench: {} failed: {e}", w.name());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
