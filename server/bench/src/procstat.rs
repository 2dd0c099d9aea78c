//! Resource use of a process on this machine, from /proc: the server's
//! (given `--server-pid`) and the generator's own.

use std::fs;

/// Clock ticks per second of `utime`/`stime` in /proc/PID/stat.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds used so far by `pid` ("self" for this process).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may hold spaces:
    // count fields from the last ')'. utime and stime are fields 14 and 15,
    // i.e. the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: f64 = f.next()?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// A `kB` line of /proc/PID/status (VmRSS, VmHWM).
pub fn status_kb(pid: &str, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resets the peak-RSS mark (VmHWM) of `pid` to its current RSS, so that a
/// later VmHWM is the peak of the interval since. Needs the right to write
/// /proc/PID/clear_refs (same user or root); false when refused.
pub fn reset_peak(pid: &str) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Server usage over a measured interval.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub cpu_s: f64,
    /// Peak RSS during the interval (VmHWM after a reset, or the largest
    /// sampled VmRSS if the reset was refused and VmHWM is the lifetime peak).
    pub peak_rss_kb: u64,
    /// RSS at the end of the interval.
    pub rss_kb: u64,
}

/// Measures a process over an interval: [`Meter::start`], [`Meter::sample`]
/// now and then, [`Meter::finish`].
pub struct Meter {
    pid: String,
    cpu0: f64,
    peak_reset: bool,
    sampled_peak: u64,
}

impl Meter {
    pub fn start(pid: u32) -> Meter {
        let pid = pid.to_string();
        let peak_reset = reset_peak(&pid);
        let cpu0 = cpu_seconds(&pid).unwrap_or(0.0);
        let sampled_peak = status_kb(&pid, "VmRSS").unwrap_or(0);
        Meter {
            pid,
            cpu0,
            peak_reset,
            sampled_peak,
        }
    }

    pub fn sample(&mut self) {
        if let Some(rss) = status_kb(&self.pid, "VmRSS") {
            self.sampled_peak = self.sampled_peak.max(rss);
        }
    }

    pub fn finish(mut self) -> Usage {
        self.sample();
        let hwm = if self.peak_reset {
            status_kb(&self.pid, "VmHWM").unwrap_or(0)
        } else {
            0
        };
        Usage {
            cpu_s: cpu_seconds(&self.pid).map_or(0.0, |c| c - self.cpu0),
            peak_rss_kb: hwm.max(self.sampled_peak),
            rss_kb: status_kb(&self.pid, "VmRSS").unwrap_or(0),
        }
    }
}
