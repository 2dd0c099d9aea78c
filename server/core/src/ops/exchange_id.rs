//! EXCHANGE_ID (RFC 8881 §18.35): establishes a 4.1+ client record.

use nfs4d_xdr::nfs4::*;

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::client::MachCred;

fn op_bit(op: nfs_opnum4) -> u64 {
    1 << (op as u32)
}

/// Operations this server enforces the machine credential on under
/// SP4_MACH_CRED: client ID and session upkeep, the set RFC 8881
/// §18.35.3 names, whose members the result must list when the client
/// asks for them (DELEGPURGE answers NFS4ERR_NOTSUPP to everyone).
fn enforceable() -> u64 {
    use nfs_opnum4::*;
    [
        OP_DELEGPURGE,
        OP_EXCHANGE_ID,
        OP_CREATE_SESSION,
        OP_DESTROY_SESSION,
        OP_BIND_CONN_TO_SESSION,
        OP_DESTROY_CLIENTID,
    ]
    .into_iter()
    .map(op_bit)
    .fold(0, |a, b| a | b)
}

/// Operations the machine credential may send on state of any principal
/// (`spo_must_allow`): those that only release state or ask about it,
/// which this server never refuses for the principal anyway.
fn allowable() -> u64 {
    use nfs_opnum4::*;
    [
        OP_CLOSE,
        OP_OPEN_DOWNGRADE,
        OP_LOCKU,
        OP_DELEGRETURN,
        OP_TEST_STATEID,
        OP_FREE_STATEID,
    ]
    .into_iter()
    .map(op_bit)
    .fold(0, |a, b| a | b)
}

/// A bitmap of operation numbers (only numbers below 64 exist).
fn ops_bits(bm: &[u32]) -> u64 {
    let word = |i: usize| u64::from(bm.get(i).copied().unwrap_or(0));
    word(0) | (word(1) << 32)
}

fn ops_bitmap(bits: u64) -> bitmap4 {
    match (bits as u32, (bits >> 32) as u32) {
        (0, 0) => vec![],
        (lo, 0) => vec![lo],
        (lo, hi) => vec![lo, hi],
    }
}

fn protection(m: &Option<MachCred>) -> state_protect4_r {
    match m {
        None => state_protect4_r::SP4_NONE,
        Some(m) => state_protect4_r::SP4_MACH_CRED(state_protect_ops4 {
            spo_must_enforce: ops_bitmap(m.enforce),
            spo_must_allow: ops_bitmap(m.allow),
        }),
    }
}

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
    let mach = match &a.eia_state_protect {
        state_protect4_a::SP4_NONE => None,
        // SP4_MACH_CRED needs RPCSEC_GSS with integrity or privacy (RFC
        // 8881 §18.35.3); the principal of this call is the machine
        // credential. The enforced set is what the client asked for, within
        // the upkeep operations; anything else it listed is not enforced.
        state_protect4_a::SP4_MACH_CRED(ops) => match cx.req.mach_caller() {
            Some((principal, true)) => Some(MachCred {
                principal: principal.to_string(),
                enforce: ops_bits(&ops.spo_must_enforce) & enforceable(),
                allow: ops_bits(&ops.spo_must_allow) & allowable(),
            }),
            _ => {
                tracing::warn!(peer = %cx.req.peer, "EXCHANGE_ID with SP4_MACH_CRED without RPCSEC_GSS integrity or privacy: NFS4ERR_INVAL");
                return Err(NfsError::Inval);
            }
        },
        // The SSV mechanism (RFC 8881 §2.10.9) is not implemented.
        state_protect4_a::SP4_SSV(_) => return Err(NfsError::NotSupp),
    };
    // A client ID under SP4_MACH_CRED is renewed only by its machine
    // credential (RFC 8881 §18.35.3).
    if let Some(m) = cx
        .srv
        .state
        .mach_cred_of_owner(&a.eia_clientowner.co_ownerid)
    {
        if m.enforce & op_bit(nfs_opnum4::OP_EXCHANGE_ID) != 0 && !m.matches(cx.req.mach_caller()) {
            tracing::warn!(peer = %cx.req.peer, machine = %m.principal, "EXCHANGE_ID for a client ID protected by another machine credential: NFS4ERR_WRONG_CRED");
            return Err(NfsError::WrongCred);
        }
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
    cx.srv.state.note_client_addr(ok.clientid, cx.req.peer);
    cx.srv.state.set_mach_cred(ok.clientid, mach);
    let protect = protection(&cx.srv.state.mach_cred(ok.clientid));
    let mut flags = EXCHGID4_FLAG_USE_NON_PNFS;
    if ok.confirmed {
        flags |= EXCHGID4_FLAG_CONFIRMED_R;
    }
    Ok(EXCHANGE_ID4resok {
        eir_clientid: ok.clientid,
        eir_sequenceid: ok.seq,
        eir_flags: flags,
        eir_state_protect: protect,
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
