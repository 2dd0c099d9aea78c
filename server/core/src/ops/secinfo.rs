//! SECINFO and SECINFO_NO_NAME (RFC 8881 §18.29, §18.45): the flavors
//! usable for an object, as its export's `sec` option lists them
//! (docs/security.md). A Kerberos flavor is reported as RPCSEC_GSS with
//! the Kerberos 5 mechanism's OID, the default QOP and the service
//! (RFC 8881 §18.29.2). Pseudo directories accept every flavor; they
//! report the Kerberos flavors some export uses (strongest first, so a
//! negotiating client picks the strongest it has), then AUTH_SYS and
//! AUTH_NONE.

use nfs4d_xdr::nfs4::{
    rpc_gss_svc_t, rpcsec_gss_info, secinfo4, secinfo_style4, SECINFO4args, SECINFO4resok,
    SECINFO_NO_NAME4args,
};

use super::common;
use crate::auth::KRB5_OID;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::export_access::SecFlavor;
use crate::namespace::vfs::{component, Node};

/// The `secinfo4` entry of a flavor.
pub fn secinfo_entry(f: SecFlavor) -> secinfo4 {
    let gss = |service| {
        secinfo4::RPCSEC_GSS(rpcsec_gss_info {
            oid: KRB5_OID.to_vec(),
            qop: 0,
            service,
        })
    };
    match f {
        SecFlavor::Sys | SecFlavor::None => secinfo4::default(f.number()),
        SecFlavor::Krb5 => gss(rpc_gss_svc_t::RPC_GSS_SVC_NONE),
        SecFlavor::Krb5i => gss(rpc_gss_svc_t::RPC_GSS_SVC_INTEGRITY),
        SecFlavor::Krb5p => gss(rpc_gss_svc_t::RPC_GSS_SVC_PRIVACY),
    }
}

/// The flavors a pseudo directory reports.
fn pseudo_flavors(cx: &Cx) -> Vec<SecFlavor> {
    let used = |f: &SecFlavor| cx.srv.cfg.exports.iter().any(|e| e.sec.contains(f));
    [SecFlavor::Krb5p, SecFlavor::Krb5i, SecFlavor::Krb5]
        .into_iter()
        .filter(used)
        .chain([SecFlavor::Sys, SecFlavor::None])
        .collect()
}

/// The flavors of export `export`, or of the pseudo filesystem for `None`.
fn flavors(cx: &Cx, export: Option<u32>) -> SECINFO4resok {
    let list = match export.and_then(|id| cx.srv.vfs.export(id).ok()) {
        Some(e) => crate::export_access::flavors(&e.cfg),
        None => pseudo_flavors(cx),
    };
    list.into_iter().map(secinfo_entry).collect()
}

/// SECINFO: the name must exist in the current directory. In 4.1 the
/// current filehandle is consumed (RFC 8881 §2.6.3.1.1.8).
pub fn secinfo(cx: &mut Cx, a: SECINFO4args) -> NfsResult<SECINFO4resok> {
    let name = component(&a.name)?;
    let cur = cx.cfh()?.clone();
    // The export the named object belongs to (an export mounted on a
    // pseudo directory has its own rules).
    let target = match &cur.node {
        Node::Pseudo(n) => {
            let child = cx.srv.vfs.pseudo[*n]
                .children
                .iter()
                .copied()
                .find(|c| cx.srv.vfs.pseudo[*c].name.as_bytes() == name.as_bytes())
                .ok_or(NfsError::NoEnt)?;
            cx.srv.vfs.pseudo[child].export
        }
        Node::Obj { export, .. } => {
            let (e, path, _) = common::obj(cx, &cur, NfsError::NotDir)?;
            let dir = e.store().stat(path)?;
            if dir.kind != nfs4d_store::FileKind::Directory {
                return Err(NfsError::NotDir);
            }
            e.store().lookup(path, &name)?;
            Some(*export)
        }
    };
    if cx.minor >= 1 {
        cx.cfh = None;
    }
    Ok(flavors(cx, target))
}

/// SECINFO_NO_NAME: for the current object or its parent.
pub fn secinfo_no_name(cx: &mut Cx, a: SECINFO_NO_NAME4args) -> NfsResult<SECINFO4resok> {
    let cur = cx.cfh()?.clone();
    let mut target = cur.obj().map(|o| o.0);
    if a == secinfo_style4::SECINFO_STYLE4_PARENT {
        let is_root = match &cur.node {
            Node::Pseudo(n) => *n == 0,
            Node::Obj { path, export, .. } => {
                path.is_root()
                    && cx
                        .srv
                        .vfs
                        .pseudo
                        .first()
                        .is_some_and(|p| p.export == Some(*export))
            }
        };
        if is_root {
            return Err(NfsError::NoEnt);
        }
        // The parent of an export root is a pseudo directory.
        if matches!(&cur.node, Node::Obj { path, .. } if path.is_root()) {
            target = None;
        }
    }
    cx.cfh = None;
    Ok(flavors(cx, target))
}
