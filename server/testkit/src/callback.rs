//! The client's side of the back channel (RFC 7530 §17, RFC 8881 §20): it
//! answers what the server calls, records it, and reports the file
//! attributes a test chose.

use std::io;

use nfs4d_xdr::codec::Unpack;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::rpc;

use crate::client::Client;

/// CB_COMPOUND, procedure 1 of the callback program (CB_NULL is 0).
const CB_PROC_COMPOUND: u32 = 1;

impl Client {
    /// The reply record to a back-channel call: CB_NULL succeeds; in a
    /// CB_COMPOUND, CB_SEQUENCE is echoed, CB_RECALL and CB_RECALL_ANY
    /// accepted and CB_GETATTR answered from `cb_attrs`. Every operation
    /// but CB_SEQUENCE is recorded in `callbacks`.
    pub fn answer_callback(&mut self, xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rpc::begin_success_reply(xid, &mut out);
        if proc_ == CB_PROC_COMPOUND {
            let res = match CB_COMPOUND4args::unpack(&mut io::Cursor::new(args)) {
                Ok((a, _)) => self.cb_compound(a),
                Err(_) => CB_COMPOUND4res {
                    status: nfsstat4::NFS4ERR_BADXDR,
                    tag: Vec::new(),
                    resarray: Vec::new(),
                },
            };
            out.extend_from_slice(&nfs4d_xdr::to_bytes(&res));
        }
        rpc::finish_record(&mut out);
        out
    }

    fn cb_compound(&mut self, a: CB_COMPOUND4args) -> CB_COMPOUND4res {
        let mut resarray = Vec::new();
        let mut status = nfsstat4::NFS4_OK;
        for op in a.argarray {
            let res = match &op {
                nfs_cb_argop4::OP_CB_SEQUENCE(s) => {
                    nfs_cb_resop4::OP_CB_SEQUENCE(CB_SEQUENCE4res::NFS4_OK(CB_SEQUENCE4resok {
                        csr_sessionid: s.csa_sessionid,
                        csr_sequenceid: s.csa_sequenceid,
                        csr_slotid: s.csa_slotid,
                        csr_highest_slotid: s.csa_highest_slotid,
                        csr_target_highest_slotid: s.csa_highest_slotid,
                    }))
                }
                nfs_cb_argop4::OP_CB_RECALL(_) => nfs_cb_resop4::OP_CB_RECALL(CB_RECALL4res {
                    status: nfsstat4::NFS4_OK,
                }),
                nfs_cb_argop4::OP_CB_RECALL_ANY(_) => {
                    nfs_cb_resop4::OP_CB_RECALL_ANY(CB_RECALL_ANY4res {
                        crar_status: nfsstat4::NFS4_OK,
                    })
                }
                nfs_cb_argop4::OP_CB_GETATTR(_) => match self.cb_attrs {
                    Some((size, change)) => {
                        nfs_cb_resop4::OP_CB_GETATTR(CB_GETATTR4res::NFS4_OK(CB_GETATTR4resok {
                            obj_attributes: size_and_change(size, change),
                        }))
                    }
                    None => {
                        status = nfsstat4::NFS4ERR_BADHANDLE;
                        nfs_cb_resop4::OP_CB_GETATTR(CB_GETATTR4res::default(status))
                    }
                },
                _ => {
                    status = nfsstat4::NFS4ERR_NOTSUPP;
                    nfs_cb_resop4::OP_CB_ILLEGAL(CB_ILLEGAL4res { status })
                }
            };
            if !matches!(op, nfs_cb_argop4::OP_CB_SEQUENCE(_)) {
                self.callbacks.push(op);
            }
            resarray.push(res);
            if status != nfsstat4::NFS4_OK {
                break;
            }
        }
        CB_COMPOUND4res {
            status,
            tag: a.tag,
            resarray,
        }
    }
}

/// CHANGE and SIZE as CB_GETATTR returns them (attribute-number order:
/// change is 3, size 4).
fn size_and_change(size: u64, change: u64) -> fattr4 {
    let mut vals = change.to_be_bytes().to_vec();
    vals.extend_from_slice(&size.to_be_bytes());
    fattr4 {
        attrmask: vec![(1 << FATTR4_CHANGE) | (1 << FATTR4_SIZE)],
        attr_vals: vals,
    }
}
