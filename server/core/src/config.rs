//! Configuration: a TOML file (serde) whose values command-line flags override.
//!
//! Every resource the server holds on a client's behalf has a limit here;
//! relations between the defaults are checked at compile time below.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

/// Largest READ or WRITE payload offered to clients (maxread/maxwrite, and
/// the 4.1 channel attributes). 1 MiB is what the Linux client asks for.
pub const MAX_IO: u32 = 1 << 20;
/// Room for RPC header, credentials and the other operations of a
/// COMPOUND that carries one maximal READ or WRITE.
pub const COMPOUND_OVERHEAD: u32 = 64 << 10;
/// Default record size limit: one maximal I/O plus its overhead.
pub const DEFAULT_MAX_RECORD: u32 = MAX_IO + COMPOUND_OVERHEAD;
/// Hard ceiling for the configured record limit (the record-marking length
/// field has 31 bits; far below that, memory per connection matters).
pub const MAX_RECORD_CEILING: u32 = 64 << 20;

const _: () = assert!(DEFAULT_MAX_RECORD >= MAX_IO + COMPOUND_OVERHEAD);
const _: () = assert!(DEFAULT_MAX_RECORD <= MAX_RECORD_CEILING);
const _: () = assert!(MAX_RECORD_CEILING < (1 << 31));

/// Limits on everything a client can make the server hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest RPC record accepted, in bytes.
    pub max_record: u32,
    /// Operations per COMPOUND (4.0: NFS4ERR_RESOURCE past it; 4.1: TOO_MANY_OPS).
    pub max_ops: u32,
    /// Simultaneous TCP connections.
    pub max_connections: u32,
    /// Requests in flight per connection before the server stops reading it.
    pub max_in_flight: u32,
    /// Sessions per client (4.1).
    pub max_sessions_per_client: u32,
    /// Fore-channel slots per session (4.1).
    pub max_slots: u32,
    /// Open file descriptors kept by the local backend.
    pub max_open_files: u32,
    /// Open states the server holds across all clients.
    pub max_open_states: u32,
    /// Byte-range locks per lock owner.
    pub max_locks_per_owner: u32,
    /// Entries in one READDIR reply.
    pub max_readdir_entries: u32,
    /// Memory for sled's page cache, in bytes (sled's own accounting: its
    /// resident memory for the cache is several times this).
    pub sled_cache_bytes: u64,
    /// Client records, confirmed or not (4.0 SETCLIENTID and 4.1
    /// EXCHANGE_ID). At the limit the oldest unconfirmed record, which
    /// holds no state, makes room; with none, NFS4ERR_RESOURCE (4.0) or
    /// NFS4ERR_DELAY (4.1).
    pub max_clients: u32,
    /// Open and lock owners per client. At the limit an owner of the
    /// client that holds no state is forgotten; with none, the new owner is
    /// refused like a full state table.
    pub max_owners_per_client: u32,
    /// Delegations held across all clients. At the limit OPEN grants none
    /// (WND4_RESOURCE for 4.1 clients that asked for one).
    pub max_delegations: u32,
    /// Courtesy clients kept (0: none; every expired client loses its
    /// state at once).
    pub max_courtesy_clients: u32,
    /// Open file descriptions that carry NFS byte-range locks as kernel
    /// locks, one per lock owner and file with locks held
    /// (docs/locking.md). At the limit a lock that needs a new one is
    /// refused with NFS4ERR_RESOURCE (4.0) or NFS4ERR_DELAY (4.1).
    pub max_lock_files: u32,
    /// 1 MiB READ buffers kept for reuse once their reply is sent
    /// ([`crate::reply::ReadBuffers`]); 0 keeps none.
    pub read_buffers_kept: u32,
}

/// Default of `courtesy_time`: a day, as knfsd.
pub const DEFAULT_COURTESY_TIME: u32 = 24 * 3600;
/// Default of [`Limits::max_open_states`].
pub const DEFAULT_MAX_OPEN_STATES: u32 = 1 << 20;
/// Default of [`Limits::max_lock_files`].
pub const DEFAULT_MAX_LOCK_FILES: u32 = 1024;
// Each lock file belongs to one lock stateid, which counts as an open
// state: a larger default could never be reached.
const _: () = assert!(DEFAULT_MAX_LOCK_FILES <= DEFAULT_MAX_OPEN_STATES);

/// Largest [`Limits::read_buffers_kept`] accepted: 4 GiB of buffers.
pub const MAX_READ_BUFFERS_KEPT: u32 = 4096;
/// Default of [`Limits::read_buffers_kept`]: the READs in flight of four
/// connections with 16 slots each, 64 MiB.
pub const DEFAULT_READ_BUFFERS_KEPT: u32 = 64;
const _: () = assert!(DEFAULT_READ_BUFFERS_KEPT <= MAX_READ_BUFFERS_KEPT);
// What the default keeps stays modest whatever MAX_IO becomes.
const _: () = assert!(DEFAULT_READ_BUFFERS_KEPT as u64 * MAX_IO as u64 <= 256 << 20);

/// Smallest sled page cache accepted (sled needs a few pages per tree).
pub const MIN_SLED_CACHE: u64 = 1 << 20;
/// Largest sled page cache accepted.
pub const MAX_SLED_CACHE: u64 = 64 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record: DEFAULT_MAX_RECORD,
            max_ops: 64,
            max_connections: 1024,
            max_in_flight: 128,
            max_sessions_per_client: 16,
            max_slots: 64,
            max_open_files: 1024,
            max_open_states: DEFAULT_MAX_OPEN_STATES,
            max_locks_per_owner: 4096,
            max_readdir_entries: 4096,
            // 16 MiB: with 64 MiB nfs4d's RSS grew by 244 MiB over 500,000
            // new handles and still by about 400 bytes a handle at the end;
            // with 16 MiB by 103 MiB, levelling off at about 33 bytes a
            // handle, with no change in creates or `ls -l` of 100,000 files
            // (docs/performance.md, "Memory per handle").
            sled_cache_bytes: 16 << 20,
            max_clients: 4096,
            max_owners_per_client: 4096,
            max_delegations: 1 << 16,
            max_courtesy_clients: 1024,
            max_lock_files: DEFAULT_MAX_LOCK_FILES,
            read_buffers_kept: DEFAULT_READ_BUFFERS_KEPT,
        }
    }
}

/// How handles of an export behave (RFC 7530/8881 §4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum HandleMode {
    /// Handles stay valid for the life of the object, across restarts.
    #[default]
    Persistent,
    /// Handles may expire on the events of `expire_on`.
    Volatile,
}

/// Events that expire volatile handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ExpireOn {
    /// The object (or a directory above it) was renamed.
    Rename,
    /// The export moved to another backing directory.
    Migration,
    /// The server restarted.
    Reboot,
}

/// What a client is told when its volatile handle has expired
/// (docs/filehandles.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ExpiredError {
    /// NFS4ERR_FHEXPIRED, as RFC 7530/8881 §4.2.3 says, to every client.
    Fhexpired,
    /// NFS4ERR_STALE to every client: they re-walk the path (Linux's VFS
    /// retries a lookup once on ESTALE) but cannot tell expiry from removal.
    Stale,
    /// NFS4ERR_STALE to Linux clients (which turn FHEXPIRED into EIO),
    /// NFS4ERR_FHEXPIRED to everyone else.
    #[default]
    Auto,
}

/// When an export's namespace changes (create, remove, rename, link) and
/// the handles issued for them reach stable storage (docs/durability.md).
/// Data written FILE_SYNC4 or covered by a COMMIT is durable before the
/// reply in both modes (RFC 8881 §18.32.3, §18.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Before the reply, as knfsd's `sync` export option: a client that
    /// saw the reply keeps the name and its handle through a crash.
    #[default]
    Sync,
    /// Within `async_flush_ms` after the reply, as knfsd's `async` option
    /// and Ganesha's VFS back end: a crash may lose the names created,
    /// removed or renamed (and the handles first issued) in that window;
    /// what survives is consistent.
    Async,
}

/// Default of [`Config::async_flush_ms`].
pub const DEFAULT_ASYNC_FLUSH_MS: u32 = 1000;
/// Bounds of [`Config::async_flush_ms`].
pub const ASYNC_FLUSH_MS_RANGE: std::ops::RangeInclusive<u32> = 10..=60_000;
const _: () = assert!(
    DEFAULT_ASYNC_FLUSH_MS >= *ASYNC_FLUSH_MS_RANGE.start()
        && DEFAULT_ASYNC_FLUSH_MS <= *ASYNC_FLUSH_MS_RANGE.end()
);

/// What backs an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A local directory (`dir`).
    #[default]
    Local,
    /// A bucket or a prefix of one on an S3-compatible object store (the
    /// `[export.s3]` table; docs/objectstore.md).
    S3,
}

/// One export: a local directory or an object-store prefix.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Where the export appears in the pseudo filesystem ("/" for the root).
    #[serde(default = "default_pseudo")]
    pub path: String,
    /// What backs the export.
    #[serde(default)]
    pub store: StoreKind,
    /// The backing directory (`store = "local"`).
    #[serde(default)]
    pub dir: PathBuf,
    /// The object store's settings (`store = "s3"`): bucket, prefix,
    /// endpoint, region, path style and the store's bounds. The daemon
    /// types them (nfs4d-store-s3's `S3Config`, unknown keys refused);
    /// the core only carries them, so it depends on no store.
    #[serde(default)]
    pub s3: Option<toml::Table>,
    /// Persistent or volatile handles. Default: persistent for a local
    /// directory, volatile for an object store ([`ExportConfig::store_defaults`]).
    #[serde(default)]
    pub filehandles: HandleMode,
    /// For volatile handles: which events expire them.
    #[serde(default = "default_expire_on")]
    pub expire_on: Vec<ExpireOn>,
    /// For volatile handles: an open file's handle outlives a rename until
    /// its last close (FH4_NOEXPIRE_WITH_OPEN).
    #[serde(default = "default_true")]
    pub noexpire_with_open: bool,
    /// For volatile handles: the status of an expired handle.
    #[serde(default)]
    pub expired_error: ExpiredError,
    /// Refuse every modification.
    #[serde(default)]
    pub read_only: bool,
    /// When namespace changes become durable: "sync" (before the reply,
    /// the default) or "async" (in the background, within
    /// `async_flush_ms`).
    #[serde(default)]
    pub durability: Durability,
    /// Hosts that may use the export, first match wins (absent: every
    /// host, as `read_only` says). See docs/security.md.
    #[serde(default)]
    pub clients: Option<Vec<ClientRule>>,
    /// Identity squashing: none, root or all.
    #[serde(default)]
    pub squash: Squash,
    /// uid of squashed callers and of AUTH_NONE.
    #[serde(default = "default_anon")]
    pub anonuid: u32,
    /// gid of squashed callers and of AUTH_NONE.
    #[serde(default = "default_anon")]
    pub anongid: u32,
    /// Security flavors accepted (NFS4ERR_WRONGSEC for others).
    #[serde(default = "default_sec")]
    pub sec: Vec<SecFlavor>,
    /// Require a source port below 1024.
    #[serde(default)]
    pub privileged_port: bool,
    /// Delegations handed out on this export: none, read or readwrite
    /// (docs/delegations.md).
    #[serde(default)]
    pub delegations: DelegationPolicy,
}

fn default_pseudo() -> String {
    "/".into()
}
fn default_expire_on() -> Vec<ExpireOn> {
    vec![ExpireOn::Rename, ExpireOn::Migration, ExpireOn::Reboot]
}
fn default_true() -> bool {
    true
}
fn default_anon() -> u32 {
    NOBODY
}
fn default_sec() -> Vec<SecFlavor> {
    vec![SecFlavor::Sys, SecFlavor::None]
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory holding the sled database (handles, client records).
    pub state_dir: PathBuf,
    /// Lease period in seconds (RFC 8881 §8.3).
    pub lease_time: u32,
    /// Upper bound of the grace period after a restart, in seconds.
    pub grace_time: u32,
    /// Longest a client whose lease ran out keeps its uncontested state
    /// (a courtesy client), in seconds.
    pub courtesy_time: u32,
    /// Exports.
    #[serde(rename = "export")]
    pub exports: Vec<ExportConfig>,
    /// Resource limits.
    pub limits: Limits,
    /// The administrator's interfaces.
    pub admin: AdminConfig,
    /// RPCSEC_GSS with Kerberos 5 (the daemon's `[gss]` section).
    pub gss: GssConfig,
    /// Longest time, in milliseconds, between a namespace change on an
    /// `async` export and its flush to stable storage.
    pub async_flush_ms: u32,
    /// `[cluster]`: this server is one head of a cluster sharing etcd
    /// (docs/cluster.md). Kept as TOML here; the daemon reads it, since
    /// the cluster's machinery is not the core's.
    pub cluster: Option<toml::Table>,
}

/// The administrator's interfaces (docs/operations.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where to serve metrics in the Prometheus text format (`GET
    /// /metrics`); absent: no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Allow `metrics_listen` on an address other than loopback: the
    /// endpoint has no authentication.
    pub metrics_public: bool,
}

/// The `[gss]` section: how the daemon offers RPCSEC_GSS (krb5, krb5i,
/// krb5p). The core only carries it; the daemon builds the RPCSEC_GSS
/// engine from it (docs/security.md has the set-up).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GssConfig {
    /// Offer RPCSEC_GSS. On by default: a host with a keytab serves
    /// Kerberos without further configuration, one without says so at
    /// start-up and serves AUTH_SYS.
    pub enabled: bool,
    /// The keytab; absent: where MIT Kerberos looks by itself
    /// (`KRB5_KTNAME`, else `default_keytab_name` of krb5.conf, else
    /// `/etc/krb5.keytab`).
    pub keytab: Option<PathBuf>,
    /// The service principal, `nfs/HOST@REALM`; absent: any key of the
    /// keytab (MIT's behaviour without an acceptor name).
    pub principal: Option<String>,
    /// The GSS-API library; absent: `libgssapi_krb5.so.2`.
    pub library: Option<PathBuf>,
    /// Realms whose users map to accounts by short name; empty: the
    /// realm of the service principal.
    pub local_realms: Vec<String>,
    /// Contexts held in all (absent: the engine's default, 4096).
    pub max_contexts: Option<u32>,
    /// Contexts held per client address (absent: 128).
    pub max_contexts_per_client: Option<u32>,
    /// Seconds an unused context is kept (absent: an hour).
    pub idle_time: Option<u32>,
    /// Seconds a context lives at most, whatever its ticket says
    /// (absent: a day).
    pub max_lifetime: Option<u32>,
    /// Principal mapping rules, tried in order before the default
    /// mapping.
    #[serde(rename = "map")]
    pub map: Vec<GssMapRule>,
}

impl Default for GssConfig {
    fn default() -> Self {
        GssConfig {
            enabled: true,
            keytab: None,
            principal: None,
            library: None,
            local_realms: Vec::new(),
            max_contexts: None,
            max_contexts_per_client: None,
            idle_time: None,
            max_lifetime: None,
            map: Vec::new(),
        }
    }
}

/// One `[[gss.map]]` rule: principals matching `principal` (`name@REALM`,
/// `*@REALM` or `service/*@REALM`) map to exactly one of: the account
/// `user`, the account named like the principal (`short_name`), fixed
/// ids (`uid`, `gid`, `groups`), or the anonymous identity (`anonymous`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GssMapRule {
    /// The principals the rule applies to.
    pub principal: String,
    /// An account of the user database.
    #[serde(default)]
    pub user: Option<String>,
    /// The account named like the principal's first component.
    #[serde(default)]
    pub short_name: bool,
    /// A fixed user id (with `gid`).
    #[serde(default)]
    pub uid: Option<u32>,
    /// A fixed group id (with `uid`).
    #[serde(default)]
    pub gid: Option<u32>,
    /// Supplementary groups of a fixed identity.
    #[serde(default)]
    pub groups: Vec<u32>,
    /// The anonymous identity (the export's `anonuid`/`anongid`).
    #[serde(default)]
    pub anonymous: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 2049)),
            state_dir: PathBuf::from("nfs4d-data/state"),
            lease_time: 90,
            grace_time: 90,
            courtesy_time: DEFAULT_COURTESY_TIME,
            exports: Vec::new(),
            limits: Limits::default(),
            admin: AdminConfig::default(),
            gss: GssConfig::default(),
            async_flush_ms: DEFAULT_ASYNC_FLUSH_MS,
            cluster: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Parses TOML text. Settings whose default depends on the store
    /// (handles, delegations) take that default when the export does not
    /// set them ([`ExportConfig::store_defaults`]).
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        let mut cfg: Config = toml::from_str(text)?;
        // A second, untyped read tells which keys each export set; the
        // typed read above already reported any error with its position.
        let raw: toml::Table = toml::from_str(text)?;
        let tables = raw.get("export").and_then(toml::Value::as_array);
        for (i, e) in cfg.exports.iter_mut().enumerate() {
            let set = tables
                .and_then(|t| t.get(i))
                .and_then(toml::Value::as_table);
            e.store_defaults(|key| set.is_some_and(|t| t.contains_key(key)));
        }
        Ok(cfg)
    }

    /// Checks values and relations between them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.exports.is_empty() {
            return bad("no export configured");
        }
        if l.max_record < MAX_IO + COMPOUND_OVERHEAD || l.max_record > MAX_RECORD_CEILING {
            return bad("limits.max_record must hold one 1 MiB READ/WRITE plus overhead and be at most 64 MiB");
        }
        if l.max_ops < 2 || l.max_ops > 1024 {
            return bad("limits.max_ops must be within 2..=1024");
        }
        if l.max_slots == 0 || l.max_slots > 1024 {
            return bad("limits.max_slots must be within 1..=1024");
        }
        for (name, v) in [
            ("max_connections", l.max_connections),
            ("max_in_flight", l.max_in_flight),
            ("max_sessions_per_client", l.max_sessions_per_client),
            ("max_open_files", l.max_open_files),
            ("max_open_states", l.max_open_states),
            ("max_locks_per_owner", l.max_locks_per_owner),
            ("max_readdir_entries", l.max_readdir_entries),
            ("max_clients", l.max_clients),
            ("max_owners_per_client", l.max_owners_per_client),
            ("max_delegations", l.max_delegations),
            ("max_lock_files", l.max_lock_files),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} must be positive"
                )));
            }
        }
        if l.read_buffers_kept > MAX_READ_BUFFERS_KEPT {
            return bad("limits.read_buffers_kept must be within 0..=4096");
        }
        if !(MIN_SLED_CACHE..=MAX_SLED_CACHE).contains(&l.sled_cache_bytes) {
            return bad("limits.sled_cache_bytes must be within 1 MiB..=64 GiB");
        }
        if !ASYNC_FLUSH_MS_RANGE.contains(&self.async_flush_ms) {
            return bad("async_flush_ms must be within 10..=60000");
        }
        if !(5..=3600).contains(&self.lease_time) {
            return bad("lease_time must be within 5..=3600 seconds");
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.exports {
            if !e.path.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "export path {:?} must start with /",
                    e.path
                )));
            }
            if !seen.insert(normalize_pseudo(&e.path)) {
                return Err(ConfigError::Invalid(format!(
                    "export path {:?} used twice",
                    e.path
                )));
            }
            validate_access(e).map_err(ConfigError::Invalid)?;
            e.validate_store()?;
            // A volatile export that no event expires would advertise
            // FH4_PERSISTENT: say "persistent" instead of hiding it.
            if e.filehandles == HandleMode::Volatile && e.expire_on.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "export {:?}: filehandles = \"volatile\" needs at least one of rename, migration, reboot in expire_on",
                    e.path
                )));
            }
        }
        Ok(())
    }
}

/// Events that expire an object-store export's volatile handles by
/// default: renames (a rename is a copy to a new key, so the server cannot
/// follow one made by another S3 client) and migration. Not reboot: the
/// handle map outlives restarts.
pub const OBJECT_STORE_EXPIRE_ON: [ExpireOn; 2] = [ExpireOn::Rename, ExpireOn::Migration];

impl ExportConfig {
    /// Gives the settings whose default depends on the store the value for
    /// this export's store, unless `set(key)` says the configuration set
    /// them. An object store (docs/objectstore.md) defaults to volatile
    /// handles that expire on rename and migration (RFC 8881 §4.2.3: a
    /// store that names objects by path), and to no delegations, because
    /// the store cannot tell the server when another S3 client changes an
    /// object, so nothing would recall them.
    pub fn store_defaults(&mut self, set: impl Fn(&str) -> bool) {
        if self.store != StoreKind::S3 {
            return;
        }
        if !set("filehandles") {
            self.filehandles = HandleMode::Volatile;
        }
        if !set("expire_on") {
            self.expire_on = OBJECT_STORE_EXPIRE_ON.to_vec();
        }
        if !set("delegations") {
            self.delegations = crate::state::deleg::Policy::None;
        }
    }

    /// Where the export's data lives, for logs: the directory, or
    /// `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        match self.store {
            StoreKind::Local => self.dir.display().to_string(),
            StoreKind::S3 => {
                let get = |k: &str| {
                    self.s3
                        .as_ref()
                        .and_then(|t| t.get(k))
                        .and_then(toml::Value::as_str)
                        .unwrap_or("")
                };
                let prefix = get("prefix").trim_matches('/');
                if prefix.is_empty() {
                    format!("s3://{}", get("bucket"))
                } else {
                    format!("s3://{}/{prefix}", get("bucket"))
                }
            }
        }
    }

    /// The store settings match the store: a directory for a local
    /// export, an `[export.s3]` table (and no directory) for an object
    /// store. The table's contents are checked by the store itself.
    fn validate_store(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("export {:?}: {m}", self.path)));
        match self.store {
            StoreKind::Local if self.dir.as_os_str().is_empty() => bad("dir is required"),
            StoreKind::Local if self.s3.is_some() => {
                bad("an [export.s3] table needs store = \"s3\"")
            }
            StoreKind::S3 if !self.dir.as_os_str().is_empty() => {
                bad("store = \"s3\" takes its location from [export.s3], not dir")
            }
            StoreKind::S3 if self.s3.is_none() => {
                bad("store = \"s3\" needs an [export.s3] table with at least the bucket")
            }
            _ => Ok(()),
        }
    }

    /// The handle policy this export's settings describe (persistent:
    /// nothing expires; `expire_on` and `noexpire_with_open` only matter
    /// for volatile exports).
    pub fn handle_policy(&self) -> nfs4d_fhmap::HandlePolicy {
        if self.filehandles == HandleMode::Persistent {
            return nfs4d_fhmap::HandlePolicy::PERSISTENT;
        }
        nfs4d_fhmap::HandlePolicy {
            reboot: self.expire_on.contains(&ExpireOn::Reboot),
            rename: self.expire_on.contains(&ExpireOn::Rename),
            migration: self.expire_on.contains(&ExpireOn::Migration),
            noexpire_with_open: self.noexpire_with_open,
        }
    }
}

/// The components of a pseudo-filesystem path ("/a//b/" → ["a", "b"]).
pub fn normalize_pseudo(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Which delegations an export hands out (configuration `delegations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DelegationPolicy {
    /// None at all.
    None,
    /// Read delegations only.
    Read,
    /// Read and write delegations.
    #[default]
    Readwrite,
}

// ---------------------------------------------------------------------------
// Export access rules (what export_access.rs applies)
// ---------------------------------------------------------------------------

/// `nobody`/`nogroup` on Linux: the default anonymous identity.
pub const NOBODY: u32 = 65534;

/// RPC flavor numbers (RFC 5531 §8.2, RFC 8881 §2.2.1.1).
pub const AUTH_NONE: u32 = 0;
/// AUTH_SYS.
pub const AUTH_SYS: u32 = 1;

/// Highest port a privileged (root-only on Unix) socket may bind.
pub const PRIVILEGED_PORT_MAX: u16 = 1023;

/// An address range: a network address and a prefix length. Written as
/// `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address (a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` lies in the range. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`, what a dual-stack listener reports for IPv4
    /// peers) are compared as the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or address/prefix"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Reads only: modifications get NFS4ERR_ROFS, as on a read-only export.
    Ro,
    /// Reads and writes (subject to the export's `read_only`).
    #[default]
    Rw,
}

/// One `clients` entry: an address range and what it may do.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRule {
    /// Source addresses the rule applies to.
    pub addr: Cidr,
    /// What those hosts may do.
    #[serde(default)]
    pub access: AccessMode,
}

/// Identity squashing (knfsd's `no_root_squash`, `root_squash`,
/// `all_squash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Squash {
    /// Identities are used as sent.
    #[default]
    None,
    /// uid 0 becomes `anonuid`, gid 0 (primary or supplementary) `anongid`.
    Root,
    /// Every caller becomes `anonuid`/`anongid` with no supplementary groups.
    All,
}

/// A security flavor an export accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SecFlavor {
    /// AUTH_SYS (uid/gid asserted by the client).
    Sys,
    /// AUTH_NONE (the anonymous identity).
    None,
    /// RPCSEC_GSS with Kerberos 5, authentication only.
    Krb5,
    /// RPCSEC_GSS with Kerberos 5 and integrity.
    Krb5i,
    /// RPCSEC_GSS with Kerberos 5 and privacy.
    Krb5p,
}

impl SecFlavor {
    /// The RPC flavor number (for Kerberos the pseudo-flavor).
    pub fn number(self) -> u32 {
        match self {
            SecFlavor::Sys => AUTH_SYS,
            SecFlavor::None => AUTH_NONE,
            SecFlavor::Krb5 => crate::auth::KRB5,
            SecFlavor::Krb5i => crate::auth::KRB5I,
            SecFlavor::Krb5p => crate::auth::KRB5P,
        }
    }

    /// Whether this is one of the Kerberos flavors.
    pub fn is_kerberos(self) -> bool {
        matches!(self, SecFlavor::Krb5 | SecFlavor::Krb5i | SecFlavor::Krb5p)
    }

    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            SecFlavor::Sys => "sys",
            SecFlavor::None => "none",
            SecFlavor::Krb5 => "krb5",
            SecFlavor::Krb5i => "krb5i",
            SecFlavor::Krb5p => "krb5p",
        }
    }
}

/// Configuration checks for the access fields of an export.
pub fn validate_access(e: &ExportConfig) -> Result<(), String> {
    if e.sec.is_empty() {
        return Err(format!(
            "export {:?}: sec must name at least one flavor",
            e.path
        ));
    }
    if e.clients.as_ref().is_some_and(Vec::is_empty) {
        return Err(format!(
            "export {:?}: clients = [] admits no host; remove the export or list hosts",
            e.path
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_example() {
        let c = Config::parse(
            r#"
            listen = "127.0.0.1:12345"
            state_dir = "/tmp/s"
            [[export]]
            path = "/data"
            dir = "/srv/data"
            filehandles = "volatile"
            expire_on = ["rename"]
            durability = "async"
            [[export]]
            path = "/other"
            dir = "/srv/other"
            [limits]
            max_ops = 32
            "#,
        )
        .unwrap();
        assert_eq!(c.exports[0].filehandles, HandleMode::Volatile);
        assert_eq!(c.exports[0].expired_error, ExpiredError::Auto);
        assert_eq!(c.exports[0].durability, Durability::Async);
        assert_eq!(c.exports[1].durability, Durability::Sync, "the default");
        assert_eq!(c.async_flush_ms, DEFAULT_ASYNC_FLUSH_MS);
        let p = c.exports[0].handle_policy();
        assert!(p.rename && !p.reboot && !p.migration && p.noexpire_with_open);
        assert_eq!(c.limits.max_ops, 32);
        assert_eq!(c.limits.max_record, DEFAULT_MAX_RECORD);
        c.validate().unwrap();
    }

    #[test]
    fn the_example_configuration_parses() {
        let c = Config::parse(include_str!("../../../etc/nfs4d.toml")).expect("etc/nfs4d.toml");
        c.validate().expect("valid");
        assert_eq!(c.async_flush_ms, DEFAULT_ASYNC_FLUSH_MS);
        assert_eq!(c.exports[0].durability, Durability::Sync);
        // The example shows the default.
        assert_eq!(
            c.limits.sled_cache_bytes,
            Limits::default().sled_cache_bytes
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(Config::parse("bogus = 1").is_err());
        let mut c = Config::default();
        assert!(c.validate().is_err(), "no export");
        c.exports.push(ExportConfig {
            path: "/".into(),
            store: StoreKind::Local,
            dir: "/x".into(),
            s3: None,
            filehandles: HandleMode::Persistent,
            expire_on: vec![],
            noexpire_with_open: true,
            expired_error: ExpiredError::Auto,
            read_only: false,
            durability: Durability::Sync,
            clients: None,
            squash: Default::default(),
            anonuid: 65534,
            anongid: 65534,
            sec: default_sec(),
            privileged_port: false,
            delegations: Default::default(),
        });
        c.validate().unwrap();
        c.async_flush_ms = 5;
        assert!(c.validate().is_err(), "flush interval below its range");
        c.async_flush_ms = DEFAULT_ASYNC_FLUSH_MS;
        c.limits.max_record = 1000;
        assert!(c.validate().is_err());
    }

    #[test]
    fn object_store_exports_default_to_volatile_handles_and_no_delegations() {
        let c = Config::parse(
            r#"
            [[export]]
            path = "/s3"
            store = "s3"
            [export.s3]
            bucket = "b"
            prefix = "p/q"
            [[export]]
            path = "/s3b"
            store = "s3"
            filehandles = "persistent"
            delegations = "read"
            [export.s3]
            bucket = "b"
            [[export]]
            path = "/local"
            dir = "/srv"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        let s3 = &c.exports[0];
        assert_eq!(s3.filehandles, HandleMode::Volatile);
        assert_eq!(s3.expire_on, OBJECT_STORE_EXPIRE_ON.to_vec());
        let p = s3.handle_policy();
        assert!(p.rename && p.migration && !p.reboot && p.noexpire_with_open);
        assert_eq!(s3.delegations, crate::state::deleg::Policy::None);
        assert_eq!(s3.location(), "s3://b/p/q");
        // What the configuration says wins over the store's defaults.
        assert_eq!(c.exports[1].filehandles, HandleMode::Persistent);
        assert_eq!(c.exports[1].delegations, crate::state::deleg::Policy::Read);
        assert_eq!(c.exports[1].location(), "s3://b");
        // A local export keeps the local defaults.
        assert_eq!(c.exports[2].filehandles, HandleMode::Persistent);
        assert_eq!(
            c.exports[2].delegations,
            crate::state::deleg::Policy::Readwrite
        );
    }

    #[test]
    fn store_settings_must_match_the_store() {
        for (text, why) in [
            ("[[export]]\npath = \"/\"\n", "dir is required"),
            ("[[export]]\nstore = \"s3\"\n", "needs an [export.s3] table"),
            (
                "[[export]]\nstore = \"s3\"\ndir = \"/x\"\n[export.s3]\nbucket = \"b\"\n",
                "not dir",
            ),
            (
                "[[export]]\ndir = \"/x\"\n[export.s3]\nbucket = \"b\"\n",
                "needs store = \"s3\"",
            ),
        ] {
            let err = Config::parse(text).unwrap().validate().unwrap_err();
            assert!(err.to_string().contains(why), "{text}: {err}");
        }
        assert!(Config::parse("[[export]]\nstore = \"ftp\"\ndir = \"/x\"\n").is_err());
    }
}
