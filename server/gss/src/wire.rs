//! RPCSEC_GSS version 1 on the wire (RFC 2203 §5): the credential, the
//! context-creation argument and result, and the integrity and privacy
//! bodies. Decoders are plain functions over byte slices (the fuzz target
//! `gss_wire` calls them); they borrow from the input and bound every
//! variable-length field.

use crate::xdr::{put_opaque, put_u32, Reader, XdrError};

/// The RPCSEC_GSS authentication flavor (RFC 2203 §3).
pub const RPCSEC_GSS: u32 = 6;
/// The only RPCSEC_GSS version served (RFC 2203 §5). Version 2 (RFC 5403)
/// adds only channel bindings, which NFSv4 over TCP does not use; a
/// version 2 credential gets AUTH_BADCRED, what RFC 5403 §2 tells a
/// version 1 server to answer.
pub const RPCSEC_GSS_VERS_1: u32 = 1;
/// Sequence numbers above this end the context (RFC 2203 §5.3.3.1).
pub const MAXSEQ: u32 = 0x8000_0000;
/// The largest `opaque_auth` body (RFC 5531 §8.2): bounds credentials and
/// verifiers, and so the context handles and MICs they carry.
pub const MAX_AUTH_BYTES: usize = 400;
/// The largest context-establishment token accepted or sent. Kerberos
/// AP-REQs are a few hundred bytes, or a few KiB with a large PAC from
/// Active Directory; 64 KiB leaves room for those and no more.
pub const MAX_TOKEN: usize = 64 << 10;
/// The largest context handle a client accepts from a server (the engine
/// issues 16-byte handles).
pub const MAX_HANDLE: usize = 256;
/// The largest checksum in `rpc_gss_integ_data` (a krb5 MIC token is
/// 28 to 60 bytes).
pub const MAX_CHECKSUM: usize = 1024;

const _: () = assert!(MAX_HANDLE + 20 <= MAX_AUTH_BYTES);

/// `rpc_gss_proc_t`: what a call asks of RPCSEC_GSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GssProc {
    /// RPCSEC_GSS_DATA: an ordinary call under an established context.
    Data,
    /// RPCSEC_GSS_INIT: the first context-creation call.
    Init,
    /// RPCSEC_GSS_CONTINUE_INIT: a further context-creation call.
    ContinueInit,
    /// RPCSEC_GSS_DESTROY: ends the context.
    Destroy,
}

impl GssProc {
    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            GssProc::Data => 0,
            GssProc::Init => 1,
            GssProc::ContinueInit => 2,
            GssProc::Destroy => 3,
        }
    }

    fn from_number(n: u32) -> Option<GssProc> {
        Some(match n {
            0 => GssProc::Data,
            1 => GssProc::Init,
            2 => GssProc::ContinueInit,
            3 => GssProc::Destroy,
            _ => return None,
        })
    }
}

/// `rpc_gss_service_t`: the protection of a call's arguments and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// rpc_gss_svc_none: the header is authenticated, the body is not
    /// protected (NFS `sec=krb5`).
    None,
    /// rpc_gss_svc_integrity: bodies carry a MIC (`sec=krb5i`).
    Integrity,
    /// rpc_gss_svc_privacy: bodies are encrypted (`sec=krb5p`).
    Privacy,
}

impl Service {
    /// All three, weakest first.
    pub const ALL: [Service; 3] = [Service::None, Service::Integrity, Service::Privacy];

    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            Service::None => 1,
            Service::Integrity => 2,
            Service::Privacy => 3,
        }
    }

    fn from_number(n: u32) -> Option<Service> {
        Some(match n {
            1 => Service::None,
            2 => Service::Integrity,
            3 => Service::Privacy,
            _ => return None,
        })
    }

    /// The Kerberos pseudo-flavor (RFC 2623 §2.2): 390003 krb5, 390004
    /// krb5i, 390005 krb5p, as export rules and mount options name them.
    pub fn pseudo_flavor(self) -> u32 {
        390_002 + self.number()
    }

    /// The security name used in configuration and mount options.
    pub fn name(self) -> &'static str {
        match self {
            Service::None => "krb5",
            Service::Integrity => "krb5i",
            Service::Privacy => "krb5p",
        }
    }

    /// The service of a name from [`Service::name`].
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// `rpc_gss_cred_vers_1_t`: the body of an RPCSEC_GSS credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cred<'a> {
    /// Control procedure.
    pub proc_: GssProc,
    /// Sequence number (DATA and DESTROY).
    pub seq: u32,
    /// Requested protection.
    pub service: Service,
    /// Context handle (empty for INIT).
    pub handle: &'a [u8],
}

/// A credential body that cannot be used. Every variant is answered with
/// AUTH_BADCRED (RFC 2203 §5.3.3.3: bad version or service; RFC 5531 §9
/// for an undecodable or unknown procedure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredError {
    /// Not RPCSEC_GSS version 1.
    #[error("RPCSEC_GSS version {0} is not supported")]
    Version(u32),
    /// An unknown `gss_proc`.
    #[error("unknown RPCSEC_GSS procedure {0}")]
    Proc(u32),
    /// An unknown service.
    #[error("unknown RPCSEC_GSS service {0}")]
    Service(u32),
    /// Too short, too long or with trailing bytes.
    #[error("malformed RPCSEC_GSS credential: {0}")]
    Malformed(XdrError),
}

/// Decodes the body of an RPCSEC_GSS credential (`rpc_gss_cred_t`).
pub fn decode_cred(body: &[u8]) -> Result<Cred<'_>, CredError> {
    if body.len() > MAX_AUTH_BYTES {
        return Err(CredError::Malformed(XdrError::TooLong {
            len: u32::try_from(body.len()).unwrap_or(u32::MAX),
            max: MAX_AUTH_BYTES,
        }));
    }
    let mut r = Reader::new(body);
    let vers = r.u32().map_err(CredError::Malformed)?;
    if vers != RPCSEC_GSS_VERS_1 {
        return Err(CredError::Version(vers));
    }
    let p = r.u32().map_err(CredError::Malformed)?;
    let seq = r.u32().map_err(CredError::Malformed)?;
    let s = r.u32().map_err(CredError::Malformed)?;
    let handle = r.opaque(MAX_AUTH_BYTES).map_err(CredError::Malformed)?;
    r.end().map_err(CredError::Malformed)?;
    let proc_ = GssProc::from_number(p).ok_or(CredError::Proc(p))?;
    let service = Service::from_number(s).ok_or(CredError::Service(s))?;
    Ok(Cred {
        proc_,
        seq,
        service,
        handle,
    })
}

/// Encodes a credential body (version 1).
pub fn encode_cred(c: &Cred<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + c.handle.len() + 3);
    put_u32(&mut out, RPCSEC_GSS_VERS_1);
    put_u32(&mut out, c.proc_.number());
    put_u32(&mut out, c.seq);
    put_u32(&mut out, c.service.number());
    put_opaque(&mut out, c.handle);
    out
}

/// Decodes `rpc_gss_init_arg`: the context-creation token, at most
/// [`MAX_TOKEN`] bytes, and nothing after it.
pub fn decode_init_arg(args: &[u8]) -> Result<&[u8], XdrError> {
    let mut r = Reader::new(args);
    let token = r.opaque(MAX_TOKEN)?;
    r.end()?;
    Ok(token)
}

/// Encodes `rpc_gss_init_arg`.
pub fn encode_init_arg(token: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len() + 8);
    put_opaque(&mut out, token);
    out
}

/// `rpc_gss_init_res`: the answer to INIT and CONTINUE_INIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitRes<'a> {
    /// Context handle (empty on failure).
    pub handle: &'a [u8],
    /// GSS major status.
    pub major: u32,
    /// GSS minor status.
    pub minor: u32,
    /// Sequence window the server keeps (RFC 2203 §5.2.3.1).
    pub seq_window: u32,
    /// Token for the client.
    pub token: &'a [u8],
}

/// Encodes `rpc_gss_init_res`.
pub fn encode_init_res(r: &InitRes<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + r.handle.len() + r.token.len());
    put_opaque(&mut out, r.handle);
    put_u32(&mut out, r.major);
    put_u32(&mut out, r.minor);
    put_u32(&mut out, r.seq_window);
    put_opaque(&mut out, r.token);
    out
}

/// Decodes `rpc_gss_init_res` (client side).
pub fn decode_init_res(body: &[u8]) -> Result<InitRes<'_>, XdrError> {
    let mut r = Reader::new(body);
    let handle = r.opaque(MAX_HANDLE)?;
    let major = r.u32()?;
    let minor = r.u32()?;
    let seq_window = r.u32()?;
    let token = r.opaque(MAX_TOKEN)?;
    r.end()?;
    Ok(InitRes {
        handle,
        major,
        minor,
        seq_window,
        token,
    })
}

/// Decodes `rpc_gss_integ_data`: the protected body (`rpc_gss_data_t`:
/// sequence number and arguments or results) and its checksum.
pub fn decode_integ(body: &[u8]) -> Result<(&[u8], &[u8]), XdrError> {
    let mut r = Reader::new(body);
    // The data body is bounded by the record it came in.
    let data = r.opaque(usize::MAX)?;
    let checksum = r.opaque(MAX_CHECKSUM)?;
    r.end()?;
    Ok((data, checksum))
}

/// Appends `rpc_gss_integ_data` for `seq` and `body` to `out`; `mic`
/// computes the checksum over the data body (`seq` followed by `body`),
/// which is encoded in place so `body` is copied once.
pub fn encode_integ_into<B: AsRef<[u8]>, E>(
    out: &mut Vec<u8>,
    seq: u32,
    body: &[u8],
    mic: impl FnOnce(&[u8]) -> Result<B, E>,
) -> Result<(), E> {
    let start = out.len();
    out.reserve(body.len() + 80);
    put_u32(out, u32::try_from(body.len() + 4).unwrap_or(u32::MAX));
    let data_at = out.len();
    put_u32(out, seq);
    out.extend_from_slice(body);
    let data_end = out.len();
    let checksum = match mic(&out[data_at..data_end]) {
        Ok(c) => c,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    out.resize(data_end + crate::xdr::pad(data_end - data_at), 0);
    put_opaque(out, checksum.as_ref());
    Ok(())
}

/// Decodes `rpc_gss_priv_data`: the wrapped token.
pub fn decode_priv(body: &[u8]) -> Result<&[u8], XdrError> {
    let mut r = Reader::new(body);
    let token = r.opaque(usize::MAX)?;
    r.end()?;
    Ok(token)
}

/// Appends `rpc_gss_priv_data` holding `wrapped` to `out`.
pub fn encode_priv_into(out: &mut Vec<u8>, wrapped: &[u8]) {
    put_opaque(out, wrapped);
}

/// The plaintext of an integrity or privacy body (`rpc_gss_data_t`) for
/// `seq`: the sequence number, then `body`.
pub fn data_body(seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    put_u32(&mut out, seq);
    out.extend_from_slice(body);
    out
}

/// Splits `rpc_gss_data_t` into its sequence number and the procedure's
/// arguments or results.
pub fn split_data_body(data: &[u8]) -> Result<(u32, &[u8]), XdrError> {
    let mut r = Reader::new(data);
    let seq = r.u32()?;
    Ok((seq, r.rest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_round_trip() {
        for proc_ in [
            GssProc::Data,
            GssProc::Init,
            GssProc::ContinueInit,
            GssProc::Destroy,
        ] {
            for service in Service::ALL {
                let c = Cred {
                    proc_,
                    seq: 77,
                    service,
                    handle: b"0123456789abcdef\x01",
                };
                let enc = encode_cred(&c);
                assert_eq!(decode_cred(&enc), Ok(c));
            }
        }
    }

    fn raw_cred(vers: u32, proc_: u32, seq: u32, service: u32, handle: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [vers, proc_, seq, service] {
            put_u32(&mut out, v);
        }
        put_opaque(&mut out, handle);
        out
    }

    #[test]
    fn bad_credentials_are_refused_with_the_reason() {
        // pynfs GSS5 (versions), GSS7 (procedures), GSS8 (services).
        for v in [0, 2, 3, 1024] {
            assert_eq!(
                decode_cred(&raw_cred(v, 0, 1, 1, b"h")),
                Err(CredError::Version(v))
            );
        }
        for p in [4, 5, 1024] {
            assert_eq!(
                decode_cred(&raw_cred(1, p, 1, 1, b"h")),
                Err(CredError::Proc(p))
            );
        }
        for s in [0, 4, 5, 1024] {
            assert_eq!(
                decode_cred(&raw_cred(1, 0, 1, s, b"h")),
                Err(CredError::Service(s))
            );
        }
        let good = raw_cred(1, 0, 1, 1, b"handle");
        for cut in 4..good.len() {
            assert!(matches!(
                decode_cred(&good[..cut]),
                Err(CredError::Malformed(_))
            ));
        }
        let mut long = good.clone();
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            decode_cred(&long),
            Err(CredError::Malformed(XdrError::Trailing(4)))
        );
        let huge = raw_cred(1, 0, 1, 1, &[7; MAX_AUTH_BYTES]);
        assert!(matches!(
            decode_cred(&huge),
            Err(CredError::Malformed(XdrError::TooLong { .. }))
        ));
    }

    #[test]
    fn init_arg_and_res_round_trip_and_bounds() {
        let token = vec![9u8; 1001];
        assert_eq!(decode_init_arg(&encode_init_arg(&token)), Ok(&token[..]));
        let big = encode_init_arg(&vec![1u8; MAX_TOKEN + 1]);
        assert!(matches!(
            decode_init_arg(&big),
            Err(XdrError::TooLong { .. })
        ));
        let res = InitRes {
            handle: b"h1",
            major: 1,
            minor: 2,
            seq_window: 128,
            token: b"tok",
        };
        assert_eq!(decode_init_res(&encode_init_res(&res)), Ok(res));
    }

    #[test]
    fn integ_and_priv_round_trip() {
        for len in [0usize, 1, 3, 4, 5, 1000] {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = vec![0xee];
            let mut seen = Vec::new();
            encode_integ_into::<_, ()>(&mut out, 42, &body, |d| {
                seen = d.to_vec();
                Ok(b"MIC!!".to_vec())
            })
            .unwrap();
            assert_eq!(seen, data_body(42, &body));
            let (data, sum) = decode_integ(&out[1..]).unwrap();
            assert_eq!(data, &seen[..]);
            assert_eq!(sum, b"MIC!!");
            assert_eq!(split_data_body(data), Ok((42, &body[..])));
            let mut p = Vec::new();
            encode_priv_into(&mut p, &body);
            assert_eq!(decode_priv(&p), Ok(&body[..]));
        }
        // A failing checksum leaves `out` as it was.
        let mut out = vec![1, 2, 3];
        assert_eq!(
            encode_integ_into::<Vec<u8>, _>(&mut out, 1, b"x", |_| Err("no")),
            Err("no")
        );
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn pseudo_flavors_and_names() {
        assert_eq!(Service::None.pseudo_flavor(), 390003);
        assert_eq!(Service::Integrity.pseudo_flavor(), 390004);
        assert_eq!(Service::Privacy.pseudo_flavor(), 390005);
        for s in Service::ALL {
            assert_eq!(Service::from_name(s.name()), Some(s));
        }
        assert_eq!(Service::from_name("sys"), None);
    }
}
