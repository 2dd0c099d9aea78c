//! Re-reading the configuration while the server runs (`nfs4d ctl
//! reload`, SIGHUP): exports added, removed and changed, nothing else
//! disturbed (docs/operations.md).
//!
//! The new file is read, parsed and checked in full before anything
//! changes; a file that fails is refused with the line and the reason
//! and the running configuration stays. Then the exports are compared
//! by pseudo path (`nfs4d_core::namespace::exports::plan`): added ones
//! get their stores opened and their ids from the state directory,
//! removed ones stop being served (their handles answer NFS4ERR_STALE),
//! changed access rules apply to the next request. Clients, sessions and
//! state are not touched. Settings other than exports (listen address,
//! limits, lease time …) take effect at the next start; the answer says
//! which changed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nfs4d_core::config::Config;
use nfs4d_core::namespace::exports::{self, ExportIds, MigrationRecords};
use nfs4d_core::server::Server;

use crate::metered::StoreCounters;

/// The command line's settings applied over a re-read file; an error is
/// a setting that no longer fits the file (e.g. `--s3-endpoint` with no
/// export on S3 left).
pub type Overrides = Box<dyn Fn(&mut Config) -> Result<(), String> + Send + Sync>;

/// Re-reads one configuration file.
pub struct Reloader {
    path: Option<PathBuf>,
    overrides: Overrides,
    /// Wraps each new store (store-request metrics) when set.
    meter: Option<Arc<StoreCounters>>,
    one: Mutex<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish()
    }
}

impl Reloader {
    /// Reloads `path` (none: the server was configured by flags alone and
    /// has nothing to re-read), applying `overrides` (the command line's
    /// flags) over it as at start.
    pub fn new(
        path: Option<PathBuf>,
        overrides: Overrides,
        meter: Option<Arc<StoreCounters>>,
    ) -> Reloader {
        Reloader {
            path,
            overrides,
            meter,
            one: Mutex::new(()),
        }
    }

    /// Re-reads the file and applies its exports to `srv`. Blocking
    /// (stores and the handle map). Returns what changed, or why nothing did.
    pub fn reload(&self, srv: &Server) -> Result<String, String> {
        let _one = self.one.lock().unwrap_or_else(|p| p.into_inner());
        let Some(path) = &self.path else {
            return Err(
                "the server was started without --config: there is no file to re-read".into(),
            );
        };
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut cfg = Config::parse(&text).map_err(|e| {
            let at = e
                .span()
                .map(|r| text[..r.start.min(text.len())].lines().count().max(1));
            let msg = e.message().trim_end().replace('\n', "; ");
            match at {
                Some(line) => format!("{shown}:{line}: {msg}"),
                None => format!("{shown}: {msg}"),
            }
        })?;
        (self.overrides)(&mut cfg).map_err(|e| format!("{shown}: {e}"))?;
        cfg.validate()
            .map_err(|e| located(&shown.to_string(), &text, &cfg, &e.to_string()))?;
        let current = srv.vfs.exports();
        let plan = exports::plan(&current, &cfg.exports)
            .map_err(|e| located(&shown.to_string(), &text, &cfg, &e))?;
        let later = restart_only(&srv.cfg, &cfg);
        if plan.is_empty() {
            let mut msg = format!("{shown}: exports unchanged ({})", plan.unchanged);
            if !later.is_empty() {
                msg.push_str(&format!(
                    "; changed, applied at the next start: {}",
                    later.join(", ")
                ));
            }
            tracing::info!("reload: {msg}");
            return Ok(msg);
        }
        let ids_tree = srv
            .fhmap
            .open_tree(exports::IDS_TREE)
            .map_err(|e| e.to_string())?;
        let records = srv
            .fhmap
            .open_tree(exports::MIGRATIONS_TREE)
            .map(MigrationRecords::with_tree)
            .map_err(|e| e.to_string())?;
        let paths: Vec<&str> = plan.add.iter().map(|e| e.path.as_str()).collect();
        let ids = ExportIds::with_tree(ids_tree)
            .assign(&paths)
            .map_err(|e| format!("export ids: {e}"))?;
        let mut add = Vec::new();
        for (e, id) in plan.add.iter().zip(ids) {
            let dir = crate::startup::served_location(&records, e).map_err(|e| e.to_string())?;
            let store =
                crate::startup::open_export_store(e, &dir, &srv.cfg.limits, &srv.cfg.state_dir)
                    .map_err(|m| format!("export {}: {}: {m}", e.path, dir.display()))?;
            let store = match &self.meter {
                Some(c) => crate::metered::Metered::wrap(store, c.clone()),
                None => store,
            };
            add.push(Server::export(id, e.clone(), store, dir));
        }
        // An export whose configuration now names the directory it was
        // migrated to: the record is done with.
        for (id, e) in &plan.rules {
            if current.iter().any(|c| c.id == *id && c.cfg.dir != e.dir) {
                records.served(&e.path, &e.dir).map_err(|e| e.to_string())?;
            }
        }
        let removed: Vec<u32> = plan.remove.iter().map(|(id, _)| *id).collect();
        let names = |v: Vec<&str>| v.join(" ");
        let mut parts = Vec::new();
        if !plan.add.is_empty() {
            parts.push(format!(
                "added {}",
                names(plan.add.iter().map(|e| e.path.as_str()).collect())
            ));
        }
        if !plan.remove.is_empty() {
            parts.push(format!(
                "removed {}",
                names(plan.remove.iter().map(|(_, p)| p.as_str()).collect())
            ));
        }
        if !plan.rules.is_empty() {
            parts.push(format!(
                "new rules for {}",
                names(plan.rules.iter().map(|(_, e)| e.path.as_str()).collect())
            ));
        }
        parts.push(format!("{} unchanged", plan.unchanged));
        if !later.is_empty() {
            parts.push(format!(
                "changed, applied at the next start: {}",
                later.join(", ")
            ));
        }
        let summary = format!("{shown}: {}", parts.join("; "));
        srv.vfs
            .change(add, &removed, plan.rules)
            .map_err(|e| format!("{shown}: {e}"))?;
        if let Err(e) = srv.fhmap.make_durable(srv.fhmap.last_seq()) {
            tracing::error!(error = %e, "reload: flushing the handle map failed");
        }
        tracing::info!("reload: {summary}");
        Ok(summary)
    }
}

/// Settings a reload does not apply, by name.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen != new.listen {
        out.push("listen");
    }
    if old.state_dir != new.state_dir {
        out.push("state_dir");
    }
    if old.lease_time != new.lease_time {
        out.push("lease_time");
    }
    if old.grace_time != new.grace_time {
        out.push("grace_time");
    }
    if old.courtesy_time != new.courtesy_time {
        out.push("courtesy_time");
    }
    if format!("{:?}", old.limits) != format!("{:?}", new.limits) {
        out.push("limits");
    }
    if old.admin != new.admin {
        out.push("admin");
    }
    out
}

/// Prefixes `msg` with the file and, when it can be told, the line it is
/// about: an export's `[[export]]` header when the message names the
/// export's path, else the first line setting a key the message names.
pub fn located(file: &str, text: &str, cfg: &Config, msg: &str) -> String {
    match line_of(text, cfg, msg) {
        Some(n) => format!("{file}:{n}: {msg}"),
        None => format!("{file}: {msg}"),
    }
}

fn line_of(text: &str, cfg: &Config, msg: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[export]]")
        .map(|(i, _)| i + 1)
        .collect();
    // Exports in the order of the file (flags may have replaced them).
    if headers.len() == cfg.exports.len() {
        for (i, e) in cfg.exports.iter().enumerate() {
            let quoted = format!("{:?}", e.path);
            let plain = format!("export {} ", e.path);
            let plain_colon = format!("export {}:", e.path);
            if msg.contains(&quoted) || msg.contains(&plain) || msg.contains(&plain_colon) {
                // Of an export used twice, the second is the culprit.
                let last = cfg
                    .exports
                    .iter()
                    .rposition(|o| {
                        nfs4d_core::config::normalize_pseudo(&o.path)
                            == nfs4d_core::config::normalize_pseudo(&e.path)
                    })
                    .unwrap_or(i);
                return Some(headers[last]);
            }
        }
    }
    // "limits.max_ops must …", "lease_time must …": the key's line.
    let word = msg
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .find(|w| w.contains('_'))?;
    let key = word.rsplit('.').next()?;
    lines
        .iter()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line_of_what_they_are_about() {
        let text = "listen = \"127.0.0.1:2049\"\n\n[[export]]\npath = \"/a\"\ndir = \"/x\"\n\n[[export]]\npath = \"/a\"\ndir = \"/y\"\n\n[limits]\nmax_ops = 1\n";
        let cfg = Config::parse(text).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("limits.max_ops"), "{e}");
        assert_eq!(located("f", text, &cfg, &e), format!("f:12: {e}"));
        let msg = "export path \"/a\" used twice";
        assert_eq!(located("f", text, &cfg, msg), format!("f:7: {msg}"));
        assert_eq!(
            located("f", text, &cfg, "something else"),
            "f: something else"
        );
    }
}
