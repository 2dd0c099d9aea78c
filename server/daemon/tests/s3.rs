//! S3 exports end to end (docs/objectstore.md): the real binary serves a
//! bucket prefix of a real S3 server (s3s-fs on loopback), configured in
//! TOML or on the command line. Checked here: the bucket holds ordinary
//! objects with s3fs metadata; the handle policy of an object-store
//! export (volatile, expiring on rename and migration, `fh_expire_type`
//! saying so; no delegations; hard links refused by capability); handles,
//! fileids and data across a killed server; objects another S3 client
//! rewrites, deletes or renames under the server; and the start-up
//! refusals (missing bucket, dead endpoint, credentials in the file).
//!
//! Without s3s-fs the tests skip loudly; with `CI=true` they fail.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nfs4d_testkit::ops::{self, *};
use nfs4d_testkit::s3s::{self, S3sFs};
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;

use nfsstat4::{NFS4ERR_FHEXPIRED, NFS4ERR_NOENT, NFS4ERR_NOTSUPP, NFS4ERR_STALE, NFS4_OK};

const BUCKET: &str = "bkt";
const PREFIX: &str = "exp";
/// Attribute TTL of the test exports: how long another S3 client's
/// change may stay unseen.
const TTL_MS: u64 = 300;
/// Grace period after a restart (the test's lease and grace times).
const GRACE_SECS: u64 = 5;

const FH4_VOL_MIGRATION: u64 = 4;
const FH4_VOL_RENAME: u64 = 8;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// s3s-fs with the test bucket, or `None` (a loud skip) without it.
fn s3_server(dir: &tempfile::TempDir) -> Option<S3sFs> {
    if s3s::binary().is_none() {
        let msg = format!("s3s-fs not installed ({})", s3s::INSTALL);
        assert!(!in_ci(), "{msg}");
        eprintln!("\n*** SKIPPED: {msg} ***\n");
        return None;
    }
    Some(S3sFs::start(&dir.path().join("s3"), &[BUCKET]).expect("start s3s-fs"))
}

/// The `[[export]]` of an S3 export at "/" on `s3`, with `more` added to
/// the export table (before `[export.s3]`).
fn s3_toml(s3: &S3sFs, more: &str) -> String {
    format!(
        "lease_time = {GRACE_SECS}\ngrace_time = {GRACE_SECS}\n[[export]]\nstore = \"s3\"\n{more}\n[export.s3]\nbucket = \"{BUCKET}\"\n\
         prefix = \"{PREFIX}\"\nendpoint = \"{}\"\nattr_ttl_ms = {TTL_MS}\n\
         retries = 1\nrequest_timeout_ms = 5000\n\
         # s3s-fs never lists directory markers (docs/objectstore.md).\n\
         list_markers = false\n",
        s3.endpoint()
    )
}

fn serve(s3: &S3sFs, more: &str) -> TestServer {
    TestServer::start_with_config_env(&s3_toml(s3, more), &[], &s3.env())
}

/// Another S3 client on the test bucket.
fn other_client(s3: &S3sFs) -> opendal::Operator {
    let b = opendal::services::S3::default()
        .bucket(BUCKET)
        .endpoint(&s3.endpoint())
        .region("us-east-1")
        .access_key_id(s3s::ACCESS_KEY)
        .secret_access_key(s3s::SECRET_KEY)
        .disable_config_load()
        .disable_ec2_metadata();
    let op = opendal::Operator::new(b).expect("operator");
    let t = opendal::HttpTransporter::new(opendal_http_transport_reqwest::ReqwestTransport::from(
        reqwest::Client::new(),
    ));
    op.clone().with_context(op.context().with_http_transport(t))
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn session(srv: &TestServer, owner: &str) -> Client {
    let mut c = srv.client(1);
    c.establish41(owner.as_bytes()).expect("session");
    c
}

fn fh_of(c: &mut Client, path: &str) -> Result<Vec<u8>, nfsstat4> {
    let mut v = vec![nfs_argop4::OP_PUTROOTFH];
    v.extend(path.split('/').filter(|s| !s.is_empty()).map(lookup));
    v.push(nfs_argop4::OP_GETFH);
    let r = c.compound(v).expect("lookup");
    ops::fh_of(&r).ok_or(r.status)
}

/// Creates (or truncates) `name` in `dir` with `data`, FILE_SYNC, and
/// closes it; returns its handle.
fn put(c: &mut Client, dir: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let r = c
        .compound(vec![
            putfh(dir),
            open_op(
                c.clientid,
                format!("w-{name}").as_bytes(),
                0,
                OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
                openflag4::OPEN4_CREATE(createhow4::UNCHECKED4(size_attr(0))),
                claim_null(name),
            ),
            nfs_argop4::OP_GETFH,
        ])
        .expect("open");
    let sid = open_ok(&r)
        .unwrap_or_else(|| panic!("OPEN {name}: {:?}", r.status))
        .stateid
        .clone();
    let fh = ops::fh_of(&r).expect("fh");
    let w = c
        .compound(vec![
            putfh(&fh),
            write(&sid, 0, stable_how4::FILE_SYNC4, data.to_vec()),
            close(0, &sid),
        ])
        .expect("write");
    assert_eq!(w.status, NFS4_OK, "WRITE+CLOSE {name}");
    fh
}

/// OPEN (read) + READ of the whole (small) file behind `fh`: the data, or
/// the status of the first failing operation.
fn get(c: &mut Client, fh: &[u8]) -> Result<Vec<u8>, nfsstat4> {
    let r = c
        .compound(vec![
            putfh(fh),
            open_op(
                c.clientid,
                b"reader",
                0,
                OPEN4_SHARE_ACCESS_READ,
                no_create(),
                open_claim4::CLAIM_FH,
            ),
        ])
        .expect("open");
    let Some(ok) = open_ok(&r) else {
        return Err(r.status);
    };
    let sid = ok.stateid.clone();
    let r = c
        .compound(vec![putfh(fh), read(&sid, 0, 1 << 20), close(0, &sid)])
        .expect("read");
    match read_ok(&r) {
        Some(ok) => Ok(ok.data.clone()),
        None => Err(r.status),
    }
}

/// fh_expire_type, change, link_support and fileid of `fh`.
fn attrs(c: &mut Client, fh: &[u8]) -> Result<Vec<(u32, u64)>, nfsstat4> {
    let want = [
        (FATTR4_FH_EXPIRE_TYPE, false),
        (FATTR4_CHANGE, true),
        (FATTR4_LINK_SUPPORT, false),
        (FATTR4_FILEID, true),
    ];
    let nums: Vec<u32> = want.iter().map(|w| w.0).collect();
    let r = c
        .compound(vec![putfh(fh), getattr(&nums)])
        .expect("getattr");
    let f = attrs_of(&r).ok_or(r.status)?;
    Ok(scalar_attrs(f, &want).expect("attributes"))
}

fn attr(v: &[(u32, u64)], a: u32) -> u64 {
    v.iter()
        .find(|x| x.0 == a)
        .unwrap_or_else(|| panic!("attribute {a} missing"))
        .1
}

fn names(c: &mut Client, dir: &[u8]) -> Vec<String> {
    let r = c
        .compound(vec![putfh(dir), readdir(0, [0; 8], 64 << 10, &bitmap(&[]))])
        .expect("readdir");
    let ok = readdir_ok(&r).unwrap_or_else(|| panic!("READDIR: {:?}", r.status));
    let mut out = Vec::new();
    let mut e = ok.reply.entries.as_deref();
    while let Some(x) = e {
        out.push(String::from_utf8_lossy(&x.name).into_owned());
        e = x.nextentry.as_deref();
    }
    out.sort();
    out
}

/// Retries `f` until it returns `want` or the attribute TTL has passed
/// several times over: another S3 client's change shows within the TTL.
fn within_ttl<T: PartialEq + std::fmt::Debug>(what: &str, want: T, mut f: impl FnMut() -> T) {
    let deadline = Instant::now() + Duration::from_millis(TTL_MS * 10 + 2000);
    loop {
        let got = f();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: got {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(TTL_MS / 3));
    }
}

/// Waits (bounded) until `done` says the grace period is over.
fn within_grace(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(GRACE_SECS * 3);
    while !done() {
        assert!(Instant::now() < deadline, "grace period did not end");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_s3_export_serves_files_as_ordinary_objects() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = s3_server(&dir) else { return };
    let srv = serve(&s3, "");
    let mut c = session(&srv, "plain");
    let root = fh_of(&mut c, "").unwrap();
    let f = put(&mut c, &root, "hello.txt", b"hello, bucket");
    assert_eq!(get(&mut c, &f).unwrap(), b"hello, bucket");
    // The object is where the layout says, with s3fs's metadata.
    let obj = s3.object_path(BUCKET, &format!("{PREFIX}/hello.txt"));
    assert_eq!(std::fs::read(&obj).unwrap(), b"hello, bucket");
    let meta = block(other_client(&s3).stat(&format!("{PREFIX}/hello.txt"))).unwrap();
    let user = meta.user_metadata().expect("user metadata");
    // A regular file with mode 0644 unless the umask of the defaults
    // changed it: S_IFREG is in the decimal st_mode s3fs writes.
    let mode: u32 = user.get("mode").expect("mode").parse().unwrap();
    assert_eq!(mode & 0o170000, 0o100000, "s3fs mode metadata {mode}");
    assert!(user.get("uid").is_some() && user.get("mtime").is_some());

    // Directories, listings.
    let r = c
        .compound(vec![
            putfh(&root),
            mkdir("d", no_attrs()),
            nfs_argop4::OP_GETFH,
        ])
        .unwrap();
    let d = ops::fh_of(&r).unwrap_or_else(|| panic!("MKDIR: {:?}", r.status));
    put(&mut c, &d, "inner", b"x");
    assert_eq!(names(&mut c, &root), ["d", "hello.txt"]);
    assert_eq!(names(&mut c, &d), ["inner"]);

    // The handle policy of an object store: volatile, expiring on rename
    // and migration and nothing else (RFC 8881 §4.2.3, §5.8.2.2: the
    // NOEXPIRE_WITH_OPEN bit only goes with FH4_VOLATILE_ANY).
    let a = attrs(&mut c, &f).unwrap();
    assert_eq!(
        attr(&a, FATTR4_FH_EXPIRE_TYPE),
        FH4_VOL_RENAME | FH4_VOL_MIGRATION
    );
    assert_eq!(attr(&a, FATTR4_LINK_SUPPORT), 0, "no hard links on S3");
    let r = c
        .compound(vec![
            putfh(&f),
            nfs_argop4::OP_SAVEFH,
            putfh(&root),
            nfs_argop4::OP_LINK(LINK4args {
                newname: b"hl".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4ERR_NOTSUPP, "LINK");

    // No delegations by default: other S3 clients could not break them.
    let r = c
        .compound(vec![
            putfh(&root),
            open_op(
                c.clientid,
                b"deleg",
                0,
                OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
                no_create(),
                claim_null("hello.txt"),
            ),
        ])
        .unwrap();
    let ok = open_ok(&r).unwrap_or_else(|| panic!("OPEN: {:?}", r.status));
    assert!(
        matches!(
            ok.delegation,
            open_delegation4::OPEN_DELEGATE_NONE_EXT(_) | open_delegation4::OPEN_DELEGATE_NONE
        ),
        "{:?}",
        ok.delegation
    );
    let sid = ok.stateid.clone();
    let r = c.compound(vec![putfh(&f), close(0, &sid)]).unwrap();
    assert_eq!(r.status, NFS4_OK, "CLOSE");

    // RENAME is a copy and a delete: the old handle expires, the object
    // moves, its fileid stays.
    let fileid = attr(&a, FATTR4_FILEID);
    let r = c
        .compound(vec![
            putfh(&root),
            nfs_argop4::OP_SAVEFH,
            putfh(&d),
            ops::rename("hello.txt", "moved.txt"),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4_OK, "RENAME");
    assert_eq!(attrs(&mut c, &f).unwrap_err(), NFS4ERR_FHEXPIRED);
    let moved = fh_of(&mut c, "d/moved.txt").unwrap();
    assert_eq!(get(&mut c, &moved).unwrap(), b"hello, bucket");
    assert_eq!(attr(&attrs(&mut c, &moved).unwrap(), FATTR4_FILEID), fileid);
    assert!(!obj.exists(), "old key deleted");
    assert!(s3
        .object_path(BUCKET, &format!("{PREFIX}/d/moved.txt"))
        .exists());
}

#[test]
fn a_killed_server_comes_back_with_the_same_handles_fileids_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = s3_server(&dir) else { return };
    let mut srv = serve(&s3, "");
    let mut c = session(&srv, "before");
    let root = fh_of(&mut c, "").unwrap();
    let r = c
        .compound(vec![
            putfh(&root),
            mkdir("dir", no_attrs()),
            nfs_argop4::OP_GETFH,
        ])
        .unwrap();
    let d = ops::fh_of(&r).unwrap();
    let f = put(&mut c, &d, "f", b"durable");
    let big: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    let g = put(&mut c, &root, "g", &big);
    let before: Vec<_> = [&d, &f, &g]
        .iter()
        .map(|h| attr(&attrs(&mut c, h).unwrap(), FATTR4_FILEID))
        .collect();

    srv.restart();
    let mut c = session(&srv, "after");
    // New opens wait for the grace period to end (the previous client
    // held nothing, so it ends early or at grace_time).
    within_grace(|| get(&mut c, &f) != Err(nfsstat4::NFS4ERR_GRACE));
    // Handles of an object-store export do not expire at a restart (the
    // map is durable): the same bytes reach the same objects.
    let after: Vec<_> = [&d, &f, &g]
        .iter()
        .map(|h| {
            attr(
                &attrs(&mut c, h).expect("handle after restart"),
                FATTR4_FILEID,
            )
        })
        .collect();
    assert_eq!(before, after, "fileids across a restart");
    assert_eq!(get(&mut c, &f).unwrap(), b"durable");
    assert_eq!(get(&mut c, &g).unwrap(), big);
    assert_eq!(
        fh_of(&mut c, "dir/f").unwrap(),
        f,
        "a fresh lookup gives the same handle"
    );
}

#[test]
fn objects_changed_by_another_s3_client_are_never_served_under_old_handles() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = s3_server(&dir) else { return };
    let srv = serve(&s3, "");
    let other = other_client(&s3);
    let mut c = session(&srv, "oob");
    let root = fh_of(&mut c, "").unwrap();
    let rewritten = put(&mut c, &root, "rewritten", b"old contents");
    let deleted = put(&mut c, &root, "deleted", b"doomed");
    let renamed = put(&mut c, &root, "renamed", b"travels");
    let key = |n: &str| format!("{PREFIX}/{n}");

    block(async {
        other
            .write(&key("rewritten"), b"NEW CONTENTS".to_vec())
            .await
            .unwrap();
        other.delete(&key("deleted")).await.unwrap();
        other.copy(&key("renamed"), &key("arrived")).await.unwrap();
        other.delete(&key("renamed")).await.unwrap();
        other
            .write(&key("uploaded"), b"from outside".to_vec())
            .await
            .unwrap();
    });

    // Within the TTL the server notices; the old handles then answer that
    // they expired (the export expires on rename, and a replacement cannot
    // be told from a rename) and never the new object's data.
    within_ttl(
        "rewritten object's old handle",
        Err(NFS4ERR_FHEXPIRED),
        || {
            get(&mut c, &rewritten).map(|d| {
                assert_ne!(d, b"NEW CONTENTS", "old handle served the replacement");
                d
            })
        },
    );
    assert_eq!(get(&mut c, &deleted), Err(NFS4ERR_FHEXPIRED));
    assert_eq!(get(&mut c, &renamed), Err(NFS4ERR_FHEXPIRED));
    // The names lead to what the bucket holds now.
    let fresh = fh_of(&mut c, "rewritten").unwrap();
    assert_ne!(fresh, rewritten);
    assert_eq!(get(&mut c, &fresh).unwrap(), b"NEW CONTENTS");
    assert_eq!(fh_of(&mut c, "deleted"), Err(NFS4ERR_NOENT));
    assert_eq!(fh_of(&mut c, "renamed"), Err(NFS4ERR_NOENT));
    let arrived = fh_of(&mut c, "arrived").unwrap();
    assert_eq!(get(&mut c, &arrived).unwrap(), b"travels");
    within_ttl(
        "listing after outside changes",
        vec!["arrived".to_string(), "rewritten".into(), "uploaded".into()],
        || names(&mut c, &root),
    );
    let up = fh_of(&mut c, "uploaded").unwrap();
    assert_eq!(get(&mut c, &up).unwrap(), b"from outside");
    // The expiry is remembered: the old handle keeps saying so.
    assert_eq!(get(&mut c, &rewritten), Err(NFS4ERR_FHEXPIRED));

    // With expired_error = "stale" the same replacement answers STALE.
    drop(c);
    drop(srv);
    let srv = serve(&s3, "expired_error = \"stale\"");
    let mut c = session(&srv, "oob-stale");
    let root = fh_of(&mut c, "").unwrap();
    let f = put(&mut c, &root, "again", b"one");
    block(async { other.write(&key("again"), b"two".to_vec()).await.unwrap() });
    within_ttl("stale policy", Err(NFS4ERR_STALE), || get(&mut c, &f));
}

#[test]
fn the_command_line_exports_a_bucket_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = s3_server(&dir) else { return };
    let state = dir.path().join("state");
    let url = format!("s3://{BUCKET}/cli/sub");
    let srv = TestServer::start_with_config_env(
        "",
        &[
            "--export",
            &url,
            "--s3-endpoint",
            &s3.endpoint(),
            "--s3-set",
            "list_markers=false",
            "--s3-set",
            "attr_ttl_ms=250",
        ],
        &s3.env(),
    );
    drop(state);
    let mut c = session(&srv, "cli");
    let root = fh_of(&mut c, "").unwrap();
    let f = put(&mut c, &root, "file", b"via the command line");
    assert_eq!(
        std::fs::read(s3.object_path(BUCKET, "cli/sub/file")).unwrap(),
        b"via the command line"
    );
    let a = attrs(&mut c, &f).unwrap();
    assert_eq!(
        attr(&a, FATTR4_FH_EXPIRE_TYPE),
        FH4_VOL_RENAME | FH4_VOL_MIGRATION
    );
    // The journal and staged data live under the state directory.
    assert!(
        srv.state.join("s3-spool").is_dir(),
        "spool in {}",
        srv.state.display()
    );
}

/// Runs `nfs4d serve` with `toml` and arguments `args` until it exits
/// (it must, within the timeout); returns its status and stderr.
fn must_refuse(toml: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nfs4d.toml");
    std::fs::write(&conf, toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .args(if toml.is_empty() {
            vec![]
        } else {
            vec!["--config".to_string(), conf.display().to_string()]
        })
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nfs4d did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "nfs4d started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_bucket_a_dead_endpoint_or_credentials_in_the_file_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = s3_server(&dir) else { return };
    let env = s3.env();

    let text = s3_toml(&s3, "").replace(&format!("bucket = \"{BUCKET}\""), "bucket = \"nope\"");
    let err = must_refuse(&text, &[], &env);
    assert!(err.contains("s3 bucket \"nope\""), "{err}");
    assert!(err.contains("does the bucket exist"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("nfs4d:")).count(),
        1,
        "{err}"
    );

    let dead = format!("http://127.0.0.1:{}", s3.addr.port() + 1);
    let text = s3_toml(&s3, "").replace(&s3.endpoint(), &dead);
    let err = must_refuse(&text, &[], &env);
    assert!(err.contains(&dead), "{err}");

    // Credentials have no place in the file.
    let text = format!("{}secret_access_key = \"x\"\n", s3_toml(&s3, ""));
    let err = must_refuse(&text, &[], &env);
    assert!(err.contains("unknown field `secret_access_key`"), "{err}");

    // Refused credentials are named as such.
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()));
    let err = must_refuse(&s3_toml(&s3, ""), &[], &wrong);
    assert!(err.contains("credentials refused"), "{err}");

    // The command line: an S3 flag without an S3 export, a URL without a
    // bucket.
    let err = must_refuse(
        "",
        &["--export", "/tmp", "--s3-endpoint", &s3.endpoint()],
        &env,
    );
    assert!(err.contains("no export is on S3"), "{err}");
    let err = must_refuse(
        "",
        &["--export", "s3://b", "--s3-set", "no_such_setting=1"],
        &env,
    );
    assert!(err.contains("unknown field `no_such_setting`"), "{err}");
    let err = must_refuse("", &["--export", "s3://"], &env);
    assert!(err.contains("the bucket is missing"), "{err}");
}
