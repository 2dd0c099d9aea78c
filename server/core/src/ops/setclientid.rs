//! SETCLIENTID and SETCLIENTID_CONFIRM (4.0, RFC 7530 §16.33–16.34).

use nfs4d_xdr::nfs4::{SETCLIENTID4args, SETCLIENTID4resok, SETCLIENTID_CONFIRM4args};

use crate::context::Cx;
use crate::error::NfsResult;
use crate::state::client::Callback40;

/// SETCLIENTID.
pub fn setclientid(cx: &mut Cx, a: SETCLIENTID4args) -> NfsResult<SETCLIENTID4resok> {
    let cb = Callback40 {
        program: a.callback.cb_program,
        netid: String::from_utf8_lossy(&a.callback.cb_location.na_r_netid).into_owned(),
        addr: String::from_utf8_lossy(&a.callback.cb_location.na_r_addr).into_owned(),
        ident: a.callback_ident,
        peer: Some(cx.req.peer.ip()),
    };
    let ok = cx
        .srv
        .state
        .setclientid(&a.client.id, a.client.verifier, cx.req.principal(), cb)?;
    cx.srv.state.note_client_addr(ok.clientid, cx.req.peer);
    Ok(SETCLIENTID4resok {
        clientid: ok.clientid,
        setclientid_confirm: ok.confirm,
    })
}

/// SETCLIENTID_CONFIRM.
pub fn confirm(cx: &mut Cx, a: SETCLIENTID_CONFIRM4args) -> NfsResult<()> {
    cx.srv
        .state
        .setclientid_confirm(a.clientid, a.setclientid_confirm, &cx.req.principal())
}
