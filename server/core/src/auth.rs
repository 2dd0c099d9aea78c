//! Kerberos callers as the transport hands them to the core.
//!
//! RPCSEC_GSS (RFC 2203) is handled entirely by the transport: context
//! creation, the header checksum, the sequence window and the protection
//! of arguments and results never reach the core. What does reach it, for
//! a call the transport accepted, is a [`GssCaller`]: the client's
//! Kerberos principal, the Unix identity it maps to, what kind of
//! principal it is (so export rules can squash root and machine
//! credentials) and the service the call was protected with (so an
//! export's `sec` list can ask for integrity or privacy).
//!
//! The security flavor of such a call is the Kerberos pseudo-flavor of its
//! service (RFC 2623 §2.2, registered for NFSv4 in RFC 7530 §3.2.1.1):
//! 390003 krb5, 390004 krb5i, 390005 krb5p; SECINFO reports them as
//! RPCSEC_GSS with the Kerberos mechanism's OID and the service (RFC 8881
//! §18.29.2).

/// The RPCSEC_GSS flavor number (RFC 2203 §5).
pub const RPCSEC_GSS: u32 = 6;
/// Pseudo-flavor of Kerberos 5 with authentication only (`sec=krb5`).
pub const KRB5: u32 = 390_003;
/// Pseudo-flavor of Kerberos 5 with integrity (`sec=krb5i`).
pub const KRB5I: u32 = 390_004;
/// Pseudo-flavor of Kerberos 5 with privacy (`sec=krb5p`).
pub const KRB5P: u32 = 390_005;

/// The Kerberos 5 GSS-API mechanism, 1.2.840.113554.1.2.2 (RFC 1964
/// §1), as the DER contents without tag and length: what `sec_oid4`
/// carries (knfsd and the Linux client send and expect these 9 bytes).
pub const KRB5_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// The RPCSEC_GSS service a call was protected with (`rpc_gss_service_t`,
/// RFC 2203 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GssService {
    /// The header is authenticated, the body is not protected (krb5).
    None,
    /// Arguments and results carry a checksum (krb5i).
    Integrity,
    /// Arguments and results are encrypted (krb5p).
    Privacy,
}

impl GssService {
    /// The `rpc_gss_service_t` value (1, 2, 3).
    pub fn number(self) -> u32 {
        match self {
            GssService::None => 1,
            GssService::Integrity => 2,
            GssService::Privacy => 3,
        }
    }

    /// The Kerberos pseudo-flavor of this service.
    pub fn pseudo_flavor(self) -> u32 {
        match self {
            GssService::None => KRB5,
            GssService::Integrity => KRB5I,
            GssService::Privacy => KRB5P,
        }
    }
}

/// What kind of principal a Kerberos caller is; export rules squash
/// [`PrincipalKind::Root`] and [`PrincipalKind::Machine`] like AUTH_SYS
/// uid 0, and give [`PrincipalKind::Anonymous`] the export's anonymous ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A user of a local realm with an account (or mapped by a rule).
    User,
    /// `root/…@REALM`: administrative root (uid 0).
    Root,
    /// `nfs/…@REALM` or `host/…@REALM`: a client machine's credential,
    /// which clients use for lease and session upkeep (uid 0).
    Machine,
    /// Nobody known: an unknown user, another realm, another service.
    Anonymous,
}

/// A call accepted under RPCSEC_GSS: who sent it and how it was protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssCaller {
    /// The client principal as GSS-API displays it (`alice@EXAMPLE.COM`).
    /// State belongs to it (RFC 8881 §2.4.3).
    pub principal: String,
    /// What kind of principal it is.
    pub kind: PrincipalKind,
    /// The service of this call.
    pub service: GssService,
    /// The Unix identity it maps to: user id …
    pub uid: u32,
    /// … primary group …
    pub gid: u32,
    /// … and supplementary groups.
    pub groups: Vec<u32>,
}

impl GssCaller {
    /// The security flavor of the call (a Kerberos pseudo-flavor).
    pub fn flavor(&self) -> u32 {
        self.service.pseudo_flavor()
    }
}
