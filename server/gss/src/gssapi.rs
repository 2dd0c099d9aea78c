//! The GSS-API binding (RFC 2743 in its C form, RFC 2744), restricted to
//! the Kerberos 5 mechanism (RFC 4121).
//!
//! MIT Kerberos' `libgssapi_krb5.so.2` is opened at run time with
//! `libloading` rather than linked: building needs no Kerberos headers and
//! no libclang, and a machine without the library still runs the server
//! (AUTH_SYS only); [`Gss::load`] then returns a [`LoadError`] that says
//! so. The C prototypes and structure layouts below are those of MIT's
//! `gssapi.h` on Unix (natural alignment; Apple's packed variant is not
//! supported).
//!
//! All of the crate's `unsafe` code is in this module. The rest of the
//! crate sees owned wrappers that release their GSS objects on drop:
//! [`Name`], [`Cred`], [`SecContext`] and [`Buffer`].

use std::ffi::{c_char, c_int, c_void, CString};
use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use libloading::Library;

/// The library opened when no other is configured: MIT Kerberos' GSS-API
/// (Debian and Ubuntu: package `libgssapi-krb5-2`; Fedora: `krb5-libs`).
pub const DEFAULT_LIBRARY: &str = "libgssapi_krb5.so.2";

type OmUint32 = u32;
type RawName = *mut c_void;
type RawCtx = *mut c_void;
type RawCred = *mut c_void;

/// `gss_buffer_desc`.
#[repr(C)]
struct BufferDesc {
    length: usize,
    value: *mut c_void,
}

/// `gss_OID_desc`.
#[repr(C)]
struct OidDesc {
    length: OmUint32,
    elements: *mut c_void,
}

/// `gss_OID_set_desc`.
#[repr(C)]
struct OidSetDesc {
    count: usize,
    elements: *mut OidDesc,
}

/// `gss_key_value_element_desc` (MIT's credential store extension).
#[repr(C)]
struct KeyValueElement {
    key: *const c_char,
    value: *const c_char,
}

/// `gss_key_value_set_desc`.
#[repr(C)]
struct KeyValueSet {
    count: OmUint32,
    elements: *const KeyValueElement,
}

/// The Kerberos 5 mechanism, 1.2.840.113554.1.2.2 (RFC 1964 §1), as the
/// DER contents octets GSS-API and NFSv4 SECINFO use.
pub const KRB5_MECH_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// GSS_KRB5_NT_PRINCIPAL_NAME, 1.2.840.113554.1.2.2.1: `primary/instance@REALM`.
const KRB5_NT_PRINCIPAL: [u8; 10] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];
/// GSS_C_NT_HOSTBASED_SERVICE, 1.2.840.113554.1.2.1.4: `service@host`.
const NT_HOSTBASED: [u8; 10] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];

/// An OID or OID set with `'static` storage that the library may keep a
/// pointer to.
struct Static<T>(T);
// SAFETY: the wrapped descriptors point only at immutable statics and are
// never written, by us or (per RFC 2744, inputs are read-only) the library.
unsafe impl<T> Sync for Static<T> {}

static KRB5_MECH: Static<OidDesc> = Static(OidDesc {
    length: KRB5_MECH_OID.len() as OmUint32,
    elements: KRB5_MECH_OID.as_ptr() as *mut c_void,
});
static KRB5_MECH_SET: Static<OidSetDesc> = Static(OidSetDesc {
    count: 1,
    elements: &KRB5_MECH.0 as *const OidDesc as *mut OidDesc,
});
static KRB5_PRINCIPAL_TYPE: Static<OidDesc> = Static(OidDesc {
    length: KRB5_NT_PRINCIPAL.len() as OmUint32,
    elements: KRB5_NT_PRINCIPAL.as_ptr() as *mut c_void,
});
static HOSTBASED_TYPE: Static<OidDesc> = Static(OidDesc {
    length: NT_HOSTBASED.len() as OmUint32,
    elements: NT_HOSTBASED.as_ptr() as *mut c_void,
});

fn oid(o: &'static Static<OidDesc>) -> *mut OidDesc {
    &o.0 as *const OidDesc as *mut OidDesc
}

/// Major status: the call completed.
pub const GSS_S_COMPLETE: u32 = 0;
/// Major status (supplementary bit): another token exchange is needed.
pub const GSS_S_CONTINUE_NEEDED: u32 = 1;
/// Major status (routine error): the context has expired.
pub const GSS_S_CONTEXT_EXPIRED: u32 = 12 << 16;
/// Major status (routine error): unspecified failure.
pub const GSS_S_FAILURE: u32 = 13 << 16;
/// Calling and routine errors; the low 16 bits are supplementary
/// information (duplicate, old, unsequenced or gap tokens) that
/// RPCSEC_GSS ignores: it keeps its own sequence window (RFC 2203 §5.3.3.1).
const ERROR_MASK: u32 = 0xffff_0000;

const GSS_C_GSS_CODE: c_int = 1;
const GSS_C_MECH_CODE: c_int = 2;
const GSS_C_INITIATE: c_int = 1;
const GSS_C_ACCEPT: c_int = 2;
const GSS_C_MUTUAL_FLAG: u32 = 2;
const GSS_C_CONF_FLAG: u32 = 16;
const GSS_C_INTEG_FLAG: u32 = 32;
const GSS_C_QOP_DEFAULT: u32 = 0;
/// `time_rec` meaning "no expiry".
pub const GSS_C_INDEFINITE: u32 = u32::MAX;

type ImportName =
    unsafe extern "C" fn(*mut OmUint32, *mut BufferDesc, *mut OidDesc, *mut RawName) -> OmUint32;
type ReleaseName = unsafe extern "C" fn(*mut OmUint32, *mut RawName) -> OmUint32;
type DisplayName =
    unsafe extern "C" fn(*mut OmUint32, RawName, *mut BufferDesc, *mut *mut OidDesc) -> OmUint32;
type AcquireCredFrom = unsafe extern "C" fn(
    *mut OmUint32,
    RawName,
    OmUint32,
    *mut OidSetDesc,
    c_int,
    *const KeyValueSet,
    *mut RawCred,
    *mut *mut OidSetDesc,
    *mut OmUint32,
) -> OmUint32;
type ReleaseCred = unsafe extern "C" fn(*mut OmUint32, *mut RawCred) -> OmUint32;
type InitSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    RawCred,
    *mut RawCtx,
    RawName,
    *mut OidDesc,
    OmUint32,
    OmUint32,
    *mut c_void,
    *mut BufferDesc,
    *mut *mut OidDesc,
    *mut BufferDesc,
    *mut OmUint32,
    *mut OmUint32,
) -> OmUint32;
type AcceptSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    *mut RawCtx,
    RawCred,
    *mut BufferDesc,
    *mut c_void,
    *mut RawName,
    *mut *mut OidDesc,
    *mut BufferDesc,
    *mut OmUint32,
    *mut OmUint32,
    *mut RawCred,
) -> OmUint32;
type DeleteSecContext =
    unsafe extern "C" fn(*mut OmUint32, *mut RawCtx, *mut BufferDesc) -> OmUint32;
type InquireContext = unsafe extern "C" fn(
    *mut OmUint32,
    RawCtx,
    *mut RawName,
    *mut RawName,
    *mut OmUint32,
    *mut *mut OidDesc,
    *mut OmUint32,
    *mut c_int,
    *mut c_int,
) -> OmUint32;
type GetMic = unsafe extern "C" fn(
    *mut OmUint32,
    RawCtx,
    OmUint32,
    *mut BufferDesc,
    *mut BufferDesc,
) -> OmUint32;
type VerifyMic = unsafe extern "C" fn(
    *mut OmUint32,
    RawCtx,
    *mut BufferDesc,
    *mut BufferDesc,
    *mut OmUint32,
) -> OmUint32;
type Wrap = unsafe extern "C" fn(
    *mut OmUint32,
    RawCtx,
    c_int,
    OmUint32,
    *mut BufferDesc,
    *mut c_int,
    *mut BufferDesc,
) -> OmUint32;
type Unwrap = unsafe extern "C" fn(
    *mut OmUint32,
    RawCtx,
    *mut BufferDesc,
    *mut BufferDesc,
    *mut c_int,
    *mut OmUint32,
) -> OmUint32;
type DisplayStatus = unsafe extern "C" fn(
    *mut OmUint32,
    OmUint32,
    c_int,
    *mut OidDesc,
    *mut OmUint32,
    *mut BufferDesc,
) -> OmUint32;
type ReleaseBuffer = unsafe extern "C" fn(*mut OmUint32, *mut BufferDesc) -> OmUint32;

/// The resolved entry points.
struct Fns {
    import_name: ImportName,
    release_name: ReleaseName,
    display_name: DisplayName,
    acquire_cred_from: AcquireCredFrom,
    release_cred: ReleaseCred,
    init_sec_context: InitSecContext,
    accept_sec_context: AcceptSecContext,
    delete_sec_context: DeleteSecContext,
    inquire_context: InquireContext,
    get_mic: GetMic,
    verify_mic: VerifyMic,
    wrap: Wrap,
    unwrap: Unwrap,
    display_status: DisplayStatus,
    release_buffer: ReleaseBuffer,
}

struct Lib {
    fns: Fns,
    /// Keeps the code behind `fns` mapped; dropped last.
    _lib: Library,
}

/// The loaded GSS-API library. Cheap to clone; every GSS object holds one,
/// so the library stays loaded while any object is alive.
#[derive(Clone)]
pub struct Gss(Arc<Lib>);

impl fmt::Debug for Gss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Gss")
    }
}

/// The GSS-API library could not be used: Kerberos is unavailable on this
/// machine, so RPCSEC_GSS (krb5, krb5i, krb5p) cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The shared library could not be opened.
    #[error(
        "Kerberos unavailable: cannot load the GSS-API library {library}: {reason} \
         (install MIT Kerberos' GSS-API library, Debian package libgssapi-krb5-2)"
    )]
    Library {
        /// The file name or path tried.
        library: String,
        /// The dynamic loader's message.
        reason: String,
    },
    /// The library lacks an entry point (not MIT's GSS-API, or too old:
    /// `gss_acquire_cred_from` appeared in MIT Kerberos 1.11).
    #[error("Kerberos unavailable: {library} has no {symbol} ({reason}); MIT Kerberos 1.11 or later is needed")]
    Symbol {
        /// The file name or path.
        library: String,
        /// The missing function.
        symbol: &'static str,
        /// The dynamic loader's message.
        reason: String,
    },
}

/// A failed GSS-API call: the routine, its major and minor status, and
/// the library's explanation (computed when displayed).
#[derive(Clone)]
pub struct GssError {
    gss: Gss,
    /// The GSS-API routine that failed.
    pub call: &'static str,
    /// Major status (RFC 2744 §3.9.1).
    pub major: u32,
    /// Mechanism status (a Kerberos error code for krb5).
    pub minor: u32,
}

impl GssError {
    /// The routine error part of the major status (`GSS_ROUTINE_ERROR`).
    pub fn routine(&self) -> u32 {
        self.major & 0x00ff_0000
    }

    /// The library's text for the major and minor status.
    pub fn message(&self) -> String {
        self.gss.status_message(self.major, self.minor)
    }
}

impl fmt::Debug for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (major {:#x}, minor {})",
            self.call,
            self.message(),
            self.major,
            self.minor
        )
    }
}

impl std::error::Error for GssError {}

/// Borrows `b` as an input buffer. RFC 2744 input buffers are read-only,
/// so the `*mut` the C prototypes ask for is never written through.
fn input(b: &[u8]) -> BufferDesc {
    BufferDesc {
        length: b.len(),
        value: b.as_ptr() as *mut c_void,
    }
}

fn empty() -> BufferDesc {
    BufferDesc {
        length: 0,
        value: ptr::null_mut(),
    }
}

impl Gss {
    /// Opens MIT Kerberos' GSS-API library: `library` when given (a file
    /// name searched the usual way, or a path), else [`DEFAULT_LIBRARY`].
    pub fn load(library: Option<&Path>) -> Result<Gss, LoadError> {
        let name = library.map_or_else(
            || Path::new(DEFAULT_LIBRARY).to_path_buf(),
            Path::to_path_buf,
        );
        let shown = name.display().to_string();
        // SAFETY: opening a shared library runs its initialisers. MIT's
        // libgssapi_krb5 and its dependencies (libkrb5, libk5crypto,
        // libcom_err, libkrb5support) only set up their own globals there.
        // A different library with the same name is the administrator's
        // choice, like any system library the server links.
        let lib = unsafe { Library::new(&name) }.map_err(|e| LoadError::Library {
            library: shown.clone(),
            reason: e.to_string(),
        })?;
        macro_rules! sym {
            ($name:literal) => {{
                // SAFETY: the symbol's type is the prototype from MIT's
                // gssapi.h (see the type aliases above); the function
                // pointer is copied out and used only while `_lib`, stored
                // beside it in `Lib`, keeps the library mapped.
                match unsafe { lib.get(concat!($name, "\0").as_bytes()) } {
                    Ok(s) => *s,
                    Err(e) => {
                        return Err(LoadError::Symbol {
                            library: shown,
                            symbol: $name,
                            reason: e.to_string(),
                        })
                    }
                }
            }};
        }
        let fns = Fns {
            import_name: sym!("gss_import_name"),
            release_name: sym!("gss_release_name"),
            display_name: sym!("gss_display_name"),
            acquire_cred_from: sym!("gss_acquire_cred_from"),
            release_cred: sym!("gss_release_cred"),
            init_sec_context: sym!("gss_init_sec_context"),
            accept_sec_context: sym!("gss_accept_sec_context"),
            delete_sec_context: sym!("gss_delete_sec_context"),
            inquire_context: sym!("gss_inquire_context"),
            get_mic: sym!("gss_get_mic"),
            verify_mic: sym!("gss_verify_mic"),
            wrap: sym!("gss_wrap"),
            unwrap: sym!("gss_unwrap"),
            display_status: sym!("gss_display_status"),
            release_buffer: sym!("gss_release_buffer"),
        };
        Ok(Gss(Arc::new(Lib { fns, _lib: lib })))
    }

    fn f(&self) -> &Fns {
        &self.0.fns
    }

    fn check(&self, call: &'static str, major: u32, minor: u32) -> Result<u32, GssError> {
        if major & ERROR_MASK != 0 {
            Err(GssError {
                gss: self.clone(),
                call,
                major,
                minor,
            })
        } else {
            Ok(major)
        }
    }

    /// Takes ownership of a buffer the library allocated.
    fn own(&self, desc: BufferDesc) -> Buffer {
        Buffer {
            gss: self.clone(),
            desc,
        }
    }

    /// The library's messages for a major status and the Kerberos
    /// mechanism's for the minor one, joined with "; ".
    pub fn status_message(&self, major: u32, minor: u32) -> String {
        let mut parts = Vec::new();
        self.display_status(major, GSS_C_GSS_CODE, &mut parts);
        if minor != 0 {
            self.display_status(minor, GSS_C_MECH_CODE, &mut parts);
        }
        if parts.is_empty() {
            "no message".to_string()
        } else {
            parts.join("; ")
        }
    }

    fn display_status(&self, status: u32, kind: c_int, out: &mut Vec<String>) {
        let mut context: OmUint32 = 0;
        // A status has a handful of messages; bound the loop in case a
        // library never resets the context.
        for _ in 0..8 {
            let mut minor = 0;
            let mut buf = empty();
            let mech = if kind == GSS_C_MECH_CODE {
                oid(&KRB5_MECH)
            } else {
                ptr::null_mut()
            };
            // SAFETY: every pointer is valid for the call; `buf` receives
            // a library-owned buffer that `own` releases.
            let major = unsafe {
                (self.f().display_status)(&mut minor, status, kind, mech, &mut context, &mut buf)
            };
            let buf = self.own(buf);
            if major & ERROR_MASK != 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            if !text.is_empty() {
                out.push(text);
            }
            if context == 0 {
                break;
            }
        }
    }

    fn import_name(&self, text: &str, kind: &'static Static<OidDesc>) -> Result<Name, GssError> {
        let mut minor = 0;
        let mut raw: RawName = ptr::null_mut();
        let mut buf = input(text.as_bytes());
        // SAFETY: `buf` borrows `text` for the call (the library copies
        // it); `kind` is a static OID; `raw` receives a name we own.
        let major = unsafe { (self.f().import_name)(&mut minor, &mut buf, oid(kind), &mut raw) };
        let name = Name {
            gss: self.clone(),
            raw,
        };
        self.check("gss_import_name", major, minor)?;
        Ok(name)
    }

    /// A Kerberos principal name, `primary[/instance]@REALM`, e.g.
    /// `nfs/server.example.com@EXAMPLE.COM`.
    pub fn principal(&self, text: &str) -> Result<Name, GssError> {
        self.import_name(text, &KRB5_PRINCIPAL_TYPE)
    }

    /// A host-based service name, `service@host` (the realm comes from the
    /// Kerberos configuration), e.g. `nfs@server.example.com`.
    pub fn host_service(&self, text: &str) -> Result<Name, GssError> {
        self.import_name(text, &HOSTBASED_TYPE)
    }

    fn acquire(
        &self,
        name: Option<&Name>,
        usage: c_int,
        store_key: &'static str,
        store_value: Option<&str>,
    ) -> Result<Cred, AcquireError> {
        let key = CString::new(store_key).map_err(|_| AcquireError::Nul)?;
        let value = store_value
            .map(|v| CString::new(v).map_err(|_| AcquireError::Nul))
            .transpose()?;
        let element = value.as_ref().map(|v| KeyValueElement {
            key: key.as_ptr(),
            value: v.as_ptr(),
        });
        let store = element.as_ref().map(|e| KeyValueSet {
            count: 1,
            elements: e,
        });
        let store_ptr = store
            .as_ref()
            .map_or(ptr::null(), |s| s as *const KeyValueSet);
        let mut minor = 0;
        let mut raw: RawCred = ptr::null_mut();
        // SAFETY: the name (or GSS_C_NO_NAME), the static krb5 mechanism
        // set and the credential store (strings owned above, alive for the
        // call) are valid inputs; `raw` receives a credential we own; the
        // optional outputs are null.
        let major = unsafe {
            (self.f().acquire_cred_from)(
                &mut minor,
                name.map_or(ptr::null_mut(), |n| n.raw),
                GSS_C_INDEFINITE,
                &KRB5_MECH_SET.0 as *const OidSetDesc as *mut OidSetDesc,
                usage,
                store_ptr,
                &mut raw,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let cred = Cred {
            gss: self.clone(),
            raw,
        };
        self.check("gss_acquire_cred_from", major, minor)?;
        Ok(cred)
    }

    /// Acceptor credentials: the keys of `name` (any key when `None`) from
    /// `keytab`, or from the keytab MIT finds by itself when `None`
    /// (`KRB5_KTNAME`, else the configured default, `/etc/krb5.keytab`).
    pub fn acceptor_cred(
        &self,
        name: Option<&Name>,
        keytab: Option<&str>,
    ) -> Result<Cred, AcquireError> {
        self.acquire(name, GSS_C_ACCEPT, "keytab", keytab)
    }

    /// Initiator credentials: the tickets of `name` (the cache's default
    /// principal when `None`) in credential cache `ccache` (e.g.
    /// `FILE:/tmp/krb5cc_1000`), or the default cache (`KRB5CCNAME`).
    pub fn initiator_cred(
        &self,
        name: Option<&Name>,
        ccache: Option<&str>,
    ) -> Result<Cred, AcquireError> {
        self.acquire(name, GSS_C_INITIATE, "ccache", ccache)
    }
}

/// Credentials could not be acquired.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// A keytab or cache name contained a NUL byte.
    #[error("keytab or credential cache name contains a NUL byte")]
    Nul,
    /// The library refused.
    #[error(transparent)]
    Gss(#[from] GssError),
}

/// A buffer allocated by the library (an output token, a MIC, wrapped or
/// unwrapped data), released on drop.
pub struct Buffer {
    gss: Gss,
    desc: BufferDesc,
}

// SAFETY: the buffer is plain memory owned by this value; the library's
// release function may be called from any thread.
unsafe impl Send for Buffer {}
// SAFETY: shared access only reads the bytes.
unsafe impl Sync for Buffer {}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        if self.desc.value.is_null() || self.desc.length == 0 {
            return &[];
        }
        // SAFETY: the library set `value`/`length` to an allocation it
        // owns until `gss_release_buffer`, which only `drop` calls.
        unsafe { std::slice::from_raw_parts(self.desc.value as *const u8, self.desc.length) }
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({} bytes)", self.desc.length)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.desc.value.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: `desc` came from the library and is released once.
        unsafe { (self.gss.f().release_buffer)(&mut minor, &mut self.desc) };
    }
}

/// A GSS name, released on drop.
pub struct Name {
    gss: Gss,
    raw: RawName,
}

// SAFETY: a name is immutable once imported; MIT's names may be used and
// released from any thread.
unsafe impl Send for Name {}
// SAFETY: as above; only read-only calls (display) take `&self`.
unsafe impl Sync for Name {}

impl Name {
    /// The name as text (`alice@EXAMPLE.COM` for a Kerberos principal).
    pub fn display(&self) -> Result<String, GssError> {
        display_raw(&self.gss, self.raw)
    }
}

fn display_raw(gss: &Gss, raw: RawName) -> Result<String, GssError> {
    let mut minor = 0;
    let mut buf = empty();
    // SAFETY: `raw` is a valid name for the call; `buf` receives a
    // library-owned buffer that `own` releases; the name type output is
    // not wanted (null).
    let major = unsafe { (gss.f().display_name)(&mut minor, raw, &mut buf, ptr::null_mut()) };
    let buf = gss.own(buf);
    gss.check("gss_display_name", major, minor)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl Drop for Name {
    fn drop(&mut self) {
        if self.raw.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: `raw` is a name we own, released once.
        unsafe { (self.gss.f().release_name)(&mut minor, &mut self.raw) };
    }
}

/// GSS credentials, released on drop.
pub struct Cred {
    gss: Gss,
    raw: RawCred,
}

// SAFETY: MIT's krb5 credentials carry their own mutex; they may be used
// by several threads at once and released from any thread.
unsafe impl Send for Cred {}
// SAFETY: as above.
unsafe impl Sync for Cred {}

impl Drop for Cred {
    fn drop(&mut self) {
        if self.raw.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: `raw` is a credential we own, released once.
        unsafe { (self.gss.f().release_cred)(&mut minor, &mut self.raw) };
    }
}

/// The result of one context-establishment step.
#[derive(Debug)]
pub struct Step {
    /// True when the context is established (GSS_S_COMPLETE); false when
    /// the peer must answer `token` (GSS_S_CONTINUE_NEEDED).
    pub complete: bool,
    /// The token for the peer (possibly empty).
    pub token: Buffer,
    /// Seconds the context remains valid ([`GSS_C_INDEFINITE`]: no limit).
    pub lifetime_secs: u32,
}

/// A failed establishment step: the error and the token the library
/// produced for the peer, if any (e.g. a KRB-ERROR), which RPCSEC_GSS
/// returns in `rpc_gss_init_res` (RFC 2203 §5.2.3.2).
#[derive(Debug)]
pub struct StepError {
    /// What failed.
    pub error: GssError,
    /// A token for the peer.
    pub token: Buffer,
}

/// A security context (being) established with a peer, deleted on drop.
///
/// Per-message calls take `&mut self`: MIT's contexts keep sequence state
/// and must not be used by two threads at once.
pub struct SecContext {
    gss: Gss,
    raw: RawCtx,
}

// SAFETY: a context may be used from any thread, one at a time (`&mut self`
// on every call that uses it).
unsafe impl Send for SecContext {}

impl fmt::Debug for SecContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecContext")
    }
}

/// The names and remaining lifetime of an established context.
#[derive(Debug, Clone)]
pub struct ContextInfo {
    /// The initiator (the client's principal).
    pub source: String,
    /// The acceptor (the server's principal).
    pub target: String,
    /// Seconds left ([`GSS_C_INDEFINITE`]: no limit).
    pub lifetime_secs: u32,
}

impl SecContext {
    /// A context not yet started (GSS_C_NO_CONTEXT).
    pub fn new(gss: &Gss) -> SecContext {
        SecContext {
            gss: gss.clone(),
            raw: ptr::null_mut(),
        }
    }

    /// The acceptor's step: consumes the initiator's `token` with acceptor
    /// credentials `cred`. Delegated credentials are refused (not asked for).
    pub fn accept(&mut self, cred: &Cred, token: &[u8]) -> Result<Step, StepError> {
        let mut minor = 0;
        let mut inbuf = input(token);
        let mut out = empty();
        let mut lifetime: OmUint32 = 0;
        // SAFETY: `self.raw` is GSS_C_NO_CONTEXT or a context of ours; the
        // library updates it in place (and sets it to GSS_C_NO_CONTEXT if
        // it deletes the context on failure), so we keep owning whatever
        // it holds afterwards. `inbuf` borrows `token` for the call; `out`
        // receives a buffer we own; unwanted outputs are null.
        let major = unsafe {
            (self.gss.f().accept_sec_context)(
                &mut minor,
                &mut self.raw,
                cred.raw,
                &mut inbuf,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                &mut out,
                ptr::null_mut(),
                &mut lifetime,
                ptr::null_mut(),
            )
        };
        let token = self.gss.own(out);
        match self.gss.check("gss_accept_sec_context", major, minor) {
            Ok(m) => Ok(Step {
                complete: m & GSS_S_CONTINUE_NEEDED == 0,
                token,
                lifetime_secs: lifetime,
            }),
            Err(error) => Err(StepError { error, token }),
        }
    }

    /// The initiator's step towards `target`: the first call passes no
    /// token, later ones the acceptor's. Asks for mutual authentication,
    /// integrity and confidentiality (what krb5i and krb5p need).
    pub fn init(
        &mut self,
        cred: &Cred,
        target: &Name,
        token: Option<&[u8]>,
    ) -> Result<Step, StepError> {
        let mut minor = 0;
        let mut inbuf = input(token.unwrap_or(&[]));
        let mut out = empty();
        let mut lifetime: OmUint32 = 0;
        // SAFETY: as in `accept`; the mechanism OID is static; the input
        // token is GSS_C_NO_BUFFER (null) on the first call.
        let major = unsafe {
            (self.gss.f().init_sec_context)(
                &mut minor,
                cred.raw,
                &mut self.raw,
                target.raw,
                oid(&KRB5_MECH),
                GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG,
                GSS_C_INDEFINITE,
                ptr::null_mut(),
                if token.is_some() {
                    &mut inbuf
                } else {
                    ptr::null_mut()
                },
                ptr::null_mut(),
                &mut out,
                ptr::null_mut(),
                &mut lifetime,
            )
        };
        let token = self.gss.own(out);
        match self.gss.check("gss_init_sec_context", major, minor) {
            Ok(m) => Ok(Step {
                complete: m & GSS_S_CONTINUE_NEEDED == 0,
                token,
                lifetime_secs: lifetime,
            }),
            Err(error) => Err(StepError { error, token }),
        }
    }

    fn raw_checked(&self, call: &'static str) -> Result<RawCtx, GssError> {
        if self.raw.is_null() {
            // GSS_S_NO_CONTEXT, without asking the library.
            return Err(GssError {
                gss: self.gss.clone(),
                call,
                major: 8 << 16,
                minor: 0,
            });
        }
        Ok(self.raw)
    }

    /// The peer and local names and the remaining lifetime.
    pub fn info(&self) -> Result<ContextInfo, GssError> {
        let raw = self.raw_checked("gss_inquire_context")?;
        let mut minor = 0;
        let mut src: RawName = ptr::null_mut();
        let mut targ: RawName = ptr::null_mut();
        let mut lifetime: OmUint32 = 0;
        // SAFETY: `raw` is an established context of ours; the two names
        // are owned by us afterwards (wrapped right below); other outputs
        // are null.
        let major = unsafe {
            (self.gss.f().inquire_context)(
                &mut minor,
                raw,
                &mut src,
                &mut targ,
                &mut lifetime,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let src = Name {
            gss: self.gss.clone(),
            raw: src,
        };
        let targ = Name {
            gss: self.gss.clone(),
            raw: targ,
        };
        self.gss.check("gss_inquire_context", major, minor)?;
        Ok(ContextInfo {
            source: src.display()?,
            target: targ.display()?,
            lifetime_secs: lifetime,
        })
    }

    /// A MIC over `msg` (GSS_GetMIC, default QOP).
    pub fn get_mic(&mut self, msg: &[u8]) -> Result<Buffer, GssError> {
        let raw = self.raw_checked("gss_get_mic")?;
        let mut minor = 0;
        let mut inbuf = input(msg);
        let mut out = empty();
        // SAFETY: `raw` is our context, used by this thread only (`&mut
        // self`); `inbuf` borrows `msg`; `out` receives a buffer we own.
        let major = unsafe {
            (self.gss.f().get_mic)(&mut minor, raw, GSS_C_QOP_DEFAULT, &mut inbuf, &mut out)
        };
        let out = self.gss.own(out);
        self.gss.check("gss_get_mic", major, minor)?;
        Ok(out)
    }

    /// Checks that `mic` is a MIC over `msg` from the peer (GSS_VerifyMIC).
    /// Supplementary sequencing bits are ignored (RFC 2203 §5.3.3.1 keeps
    /// its own window).
    pub fn verify_mic(&mut self, msg: &[u8], mic: &[u8]) -> Result<(), GssError> {
        let raw = self.raw_checked("gss_verify_mic")?;
        let mut minor = 0;
        let mut m = input(msg);
        let mut t = input(mic);
        // SAFETY: as in `get_mic`; both buffers are borrowed inputs and the
        // QOP output is not wanted.
        let major =
            unsafe { (self.gss.f().verify_mic)(&mut minor, raw, &mut m, &mut t, ptr::null_mut()) };
        self.gss.check("gss_verify_mic", major, minor)?;
        Ok(())
    }

    /// Protects `msg` (GSS_Wrap): encrypted and integrity-protected when
    /// `confidential`, integrity-protected only otherwise.
    pub fn wrap(&mut self, msg: &[u8], confidential: bool) -> Result<Buffer, GssError> {
        let raw = self.raw_checked("gss_wrap")?;
        let mut minor = 0;
        let mut inbuf = input(msg);
        let mut out = empty();
        let mut conf: c_int = 0;
        // SAFETY: as in `get_mic`.
        let major = unsafe {
            (self.gss.f().wrap)(
                &mut minor,
                raw,
                c_int::from(confidential),
                GSS_C_QOP_DEFAULT,
                &mut inbuf,
                &mut conf,
                &mut out,
            )
        };
        let out = self.gss.own(out);
        self.gss.check("gss_wrap", major, minor)?;
        if confidential && conf == 0 {
            // The mechanism could not encrypt: never send privacy data in
            // the clear.
            return Err(GssError {
                gss: self.gss.clone(),
                call: "gss_wrap",
                major: GSS_S_FAILURE,
                minor: 0,
            });
        }
        Ok(out)
    }

    /// Undoes the peer's GSS_Wrap: the message and whether it was
    /// encrypted.
    pub fn unwrap(&mut self, token: &[u8]) -> Result<(Buffer, bool), GssError> {
        let raw = self.raw_checked("gss_unwrap")?;
        let mut minor = 0;
        let mut inbuf = input(token);
        let mut out = empty();
        let mut conf: c_int = 0;
        // SAFETY: as in `get_mic`; the QOP output is not wanted.
        let major = unsafe {
            (self.gss.f().unwrap)(
                &mut minor,
                raw,
                &mut inbuf,
                &mut out,
                &mut conf,
                ptr::null_mut(),
            )
        };
        let out = self.gss.own(out);
        self.gss.check("gss_unwrap", major, minor)?;
        Ok((out, conf != 0))
    }
}

impl Drop for SecContext {
    fn drop(&mut self) {
        if self.raw.is_null() {
            return;
        }
        let mut minor = 0;
        // SAFETY: `raw` is our context, deleted once; no output token is
        // asked for (GSS_C_NO_BUFFER), as RFC 2744 recommends.
        unsafe { (self.gss.f().delete_sec_context)(&mut minor, &mut self.raw, ptr::null_mut()) };
    }
}
