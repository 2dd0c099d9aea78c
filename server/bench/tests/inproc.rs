//! The generator's workloads end to end against the core in the
//! generator's own process (`--inproc`): every workload runs, does work and
//! sees no error (wrong data, a short read and a listing with the wrong
//! entry count are errors). This is what callgrind profiles of the core
//! run, so it must keep working; it also checks the workloads themselves
//! without a server or a socket.

use std::process::Command;
use std::time::Duration;

/// Every workload that talks NFS (the TCP ceiling measures no server).
const WORKLOADS: [&str; 9] = [
    "metadata",
    "readdir",
    "smallfile",
    "seqread",
    "seqwrite",
    "randread",
    "randwrite",
    "openhold",
    "bigdir",
];

/// The number `key` of one JSON line (the generator's flat output).
fn field(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[test]
fn every_workload_runs_in_process_without_errors() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nfs4d-bench"))
        .args(["--inproc", "--smoke", "--json", "--workload"])
        .arg(WORKLOADS.join(","))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start nfs4d-bench");
    // Bounded: the smoke run takes a few seconds; a hang fails the test.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("nfs4d-bench --inproc did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "exit status {}", out.status);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    for w in WORKLOADS {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("\"workload\":\"{w}\"")))
            .unwrap_or_else(|| panic!("no result for {w} in:\n{text}"));
        assert_eq!(field(line, "errors"), Some(0.0), "{w}: {line}");
        let ops = field(line, "ops").unwrap_or(0.0);
        assert!(ops > 0.0, "{w} did no work: {line}");
        assert!(!line.contains("\"failed\""), "{w}: {line}");
    }
}
