//! EXCHANGE_ID (RFC 8881 §18.35): establishes a 4.1+ client record.

use nfs4d_xdr::nfs4::*;

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// Flags a client may send (RFC 8881 §18.35.3).
const FLAGS_ALLOWED: u32 = EXCHGID4_FLAG_SUPP_MOVED_REFER
    | EXCHGID4_FLAG_SUPP_MOVED_MIGR
    | EXCHGID4_FLAG_BIND_PRINC_STATEID
    | EXCHGID4_FLAG_MASK_PNFS
    | EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;

/// EXCHANGE_ID.
pub fn run(cx: &mut Cx, a: EXCHANGE_ID4args) -> NfsResult<EXCHANGE_ID4resok> {
    if a.eia_flags & !FLAGS_ALLOWED != 0 {
        return Err(NfsError::Inval);
    }
    match a.eia_state_protect {
        state_protect4_a::SP4_NONE => {}
        // Machine-credential and SSV protection need RPCSEC_GSS, which this
        // server does not offer (docs/security.md).
        _ => return Err(NfsError::NotSupp),
    }
    if a.eia_client_impl_id.len() > 1 {
        return Err(NfsError::BadXdr);
    }
    let impl_name = a
        .eia_client_impl_id
        .first()
        .map(|i| String::from_utf8_lossy(&i.nii_name).into_owned())
        .unwrap_or_default();
    let update = a.eia_flags & EXCHGID4_FLAG_UPD_CONFIRMED_REC_A != 0;
    let ok = cx.srv.state.exchange_id(
        &a.eia_clientowner.co_ownerid,
        a.eia_clientowner.co_verifier,
        cx.req.principal(),
        update,
        impl_name.clone(),
    )?;
    tracing::debug!(client = format_args!("{:#x}", ok.clientid), implementation = %impl_name, "EXCHANGE_ID");
    let mut flags = EXCHGID4_FLAG_USE_NON_PNFS;
    if ok.confirmed {
        flags |= EXCHGID4_FLAG_CONFIRMED_R;
    }
    Ok(EXCHANGE_ID4resok {
        eir_clientid: ok.clientid,
        eir_sequenceid: ok.seq,
        eir_flags: flags,
        eir_state_protect: state_protect4_r::SP4_NONE,
        eir_server_owner: server_owner4 {
            so_minor_id: 0,
            so_major_id: cx.srv.owner_major.clone(),
        },
        eir_server_scope: cx.srv.scope.clone(),
        eir_server_impl_id: vec![nfs_impl_id4 {
            nii_domain: b"nfs4d.invalid".to_vec(),
            nii_name: format!("nfs4d {}", env!("CARGO_PKG_VERSION")).into_bytes(),
            nii_date: nfstime4 {
                seconds: 0,
                nseconds: 0,
            },
        }],
    })
}
