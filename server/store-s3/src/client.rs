//! The S3 client: an OpenDAL operator for what OpenDAL's portable API
//! covers (HEAD, ranged GET, PUT with user metadata, DELETE), and signed
//! S3 requests of its own for what that API keeps inside or changes (the
//! upload id of a multipart upload, which the journal needs to finish an
//! upload after a crash; a directory marker with metadata; a
//! metadata-only update by `CopyObject` with `REPLACE`; listings and keys
//! with blanks at either end, which OpenDAL's path normalisation trims).
//! Both halves share OpenDAL's HTTP transport and the same AWS credential
//! chain (reqsign, as OpenDAL's own S3 service uses it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use nfs4d_store::{StoreError, StoreResult, Timespec};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::services::S3;
use opendal::{Buffer, HttpTransporter, Operator};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqsign_aws_v4::{Credential, DefaultCredentialProvider, RequestSigner};
use reqsign_core::{Context, OsEnv, Signer};
use serde::Deserialize;

use crate::config::{S3Config, S3_MAX_LIST_PAGE};
use crate::errors::{from_dal, from_status, status_is_transient};
use crate::meta::{Meta, ObjInfo};

/// Characters a key keeps unescaped in a URL path (RFC 3986 unreserved,
/// plus `/` between segments), as S3's signature expects.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// One entry of a listing page.
#[derive(Debug, Clone)]
pub(crate) struct ListItem {
    /// The full key (a common prefix ends with `/`).
    pub key: String,
    pub is_prefix: bool,
    /// What the listing says of an object (not of a common prefix), when
    /// it gives the size and date.
    pub listed: Option<Listed>,
}

/// An object as a listing describes it: size and Last-Modified second,
/// which a write of its data or metadata changes, and the ETag where the
/// server lists it (AWS, Garage, Ceph RGW and MinIO do; s3s-fs does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub etag: Option<String>,
    pub size: u64,
    pub modified_sec: i64,
}

/// A completed part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Part {
    pub number: u32,
    pub etag: String,
    pub len: u64,
}

/// Requests this store sent to the S3 server, by kind (one per request
/// made, retries not counted): what the tests pin the write path's cost
/// on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// HeadObject (objects and markers).
    pub head: u64,
    /// GetObject (ranged).
    pub get: u64,
    /// PutObject (objects and markers).
    pub put: u64,
    pub copy: u64,
    pub delete: u64,
    pub list: u64,
    pub mpu_create: u64,
    pub mpu_part: u64,
    pub mpu_complete: u64,
    pub mpu_abort: u64,
}

#[derive(Default)]
struct Counters {
    head: AtomicU64,
    get: AtomicU64,
    put: AtomicU64,
    copy: AtomicU64,
    delete: AtomicU64,
    list: AtomicU64,
    mpu_create: AtomicU64,
    mpu_part: AtomicU64,
    mpu_complete: AtomicU64,
    mpu_abort: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct Client {
    pub op: Operator,
    counts: Counters,
    transport: HttpTransporter,
    signer: Signer<Credential>,
    /// `scheme://host[:port]` and the path before the key (`/bucket` in
    /// path style, empty in virtual-host style).
    base: String,
    retries: usize,
    timeout: Duration,
}

pub(crate) fn to_timespec(t: opendal::raw::Timestamp) -> Timespec {
    let ns = t.into_inner().as_nanosecond();
    Timespec {
        sec: ns.div_euclid(1_000_000_000) as i64,
        nsec: ns.rem_euclid(1_000_000_000) as u32,
    }
}

impl Client {
    pub fn new(cfg: &S3Config) -> StoreResult<Client> {
        let setup = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Setup(format!("s3 store for bucket {:?}: {what}: {e}", cfg.bucket))
        };
        let endpoint = match &cfg.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", cfg.region),
        };
        let url = reqwest::Url::parse(&endpoint).map_err(|e| setup("bad endpoint URL", &e))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(setup("bad endpoint URL", &"not http(s)://host"));
        }
        let base = if cfg.path_style {
            format!("{endpoint}/{}", cfg.bucket)
        } else {
            let host = url.host_str().unwrap_or_default();
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}.{host}{port}", url.scheme(), cfg.bucket)
        };

        let timeout = Duration::from_millis(cfg.request_timeout_ms);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .build()
            .map_err(|e| setup("HTTP client", &e))?;
        let transport =
            HttpTransporter::new(opendal_http_transport_reqwest::ReqwestTransport::from(http));

        let mut b = S3::default()
            .bucket(&cfg.bucket)
            .endpoint(&endpoint)
            .region(&cfg.region)
            .root("/");
        if !cfg.path_style {
            b = b.enable_virtual_host_style();
        }
        let mut creds = DefaultCredentialProvider::builder();
        if let Some(p) = &cfg.profile {
            b = b.profile(p);
            creds = creds.with_profile(p.clone());
        }
        let op = Operator::new(b).map_err(|e| setup("OpenDAL", &e))?;
        let op = op
            .clone()
            .with_context(op.context().with_http_transport(transport.clone()));
        let op = op
            .layer(
                RetryLayer::new()
                    .with_max_times(cfg.retries)
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(2))
                    .with_jitter(),
            )
            .layer(
                TimeoutLayer::new()
                    .with_timeout(timeout)
                    .with_io_timeout(timeout),
            );

        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_http_send(transport.clone())
            .with_env(OsEnv);
        let signer = Signer::new(ctx, creds.build(), RequestSigner::new("s3", &cfg.region));
        Ok(Client {
            op,
            transport,
            signer,
            base,
            retries: cfg.retries,
            timeout,
            counts: Counters::default(),
        })
    }

    pub fn requests(&self) -> Requests {
        let c = &self.counts;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Requests {
            head: l(&c.head),
            get: l(&c.get),
            put: l(&c.put),
            copy: l(&c.copy),
            delete: l(&c.delete),
            list: l(&c.list),
            mpu_create: l(&c.mpu_create),
            mpu_part: l(&c.mpu_part),
            mpu_complete: l(&c.mpu_complete),
            mpu_abort: l(&c.mpu_abort),
        }
    }

    // --- OpenDAL -------------------------------------------------------------

    /// HEAD of a file key; `None` when absent.
    pub async fn head(&self, key: &str) -> StoreResult<Option<ObjInfo>> {
        bump(&self.counts.head);
        if !dal_keeps(key) {
            return self.raw_head(key).await;
        }
        match self.op.stat(key).await {
            Ok(m) => Ok(Some(ObjInfo {
                key: key.to_string(),
                size: m.content_length(),
                etag: m.etag().unwrap_or_default().to_string(),
                last_modified: m.last_modified().map(to_timespec).unwrap_or_default(),
                meta: m.user_metadata().map(Meta::parse).unwrap_or_default(),
            })),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(from_dal(&e, &format!("HEAD {key}"))),
        }
    }

    /// Bytes `[off, off + len)` of `key`, only if its ETag is still `etag`
    /// (else [`StoreError::Stale`]).
    pub async fn get_range(&self, key: &str, off: u64, len: u64, etag: &str) -> StoreResult<Bytes> {
        bump(&self.counts.get);
        if !dal_keeps(key) {
            return self.raw_get_range(key, off, len, etag).await;
        }
        let mut r = self.op.read_with(key).range(off..off + len);
        if !etag.is_empty() {
            r = r.if_match(etag);
        }
        match r.await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => Ok(Bytes::new()),
            Err(e) => Err(from_dal(&e, &format!("GET {key}"))),
        }
    }

    /// PUT of a whole file object with its metadata; returns the ETag.
    pub async fn put(&self, key: &str, data: Buffer, meta: &Meta) -> StoreResult<String> {
        bump(&self.counts.put);
        if !dal_keeps(key) {
            return self.raw_put(key, data.to_bytes(), meta).await;
        }
        let m = self
            .op
            .write_with(key, data)
            .user_metadata(meta.to_pairs())
            .content_type("application/octet-stream")
            .await
            .map_err(|e| from_dal(&e, &format!("PUT {key}")))?;
        Ok(m.etag().unwrap_or_default().to_string())
    }

    pub async fn delete(&self, key: &str) -> StoreResult<()> {
        bump(&self.counts.delete);
        if !dal_keeps(key) {
            let url = self.url(key, "");
            return match self
                .send(&format!("DELETE {key}"), || {
                    Request::builder()
                        .method(Method::DELETE)
                        .uri(&url)
                        .body(Buffer::new())
                        .map_err(|e| StoreError::Io(format!("request: {e}")))
                })
                .await
            {
                Ok(_) | Err(StoreError::NotFound) => Ok(()),
                Err(e) => Err(e),
            };
        }
        self.op
            .delete(key)
            .await
            .map_err(|e| from_dal(&e, &format!("DELETE {key}")))
    }

    /// One page of `prefix`'s entries after `start_after`, at most `limit`,
    /// and whether more follow. Sent as a ListObjectsV2 request of its own
    /// and read without trimming: keys are names, and a name may begin or
    /// end with blanks (OpenDAL's lister drops them with the XML
    /// whitespace).
    pub async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        recursive: bool,
    ) -> StoreResult<(Vec<ListItem>, bool)> {
        let what = format!("LIST {prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..LIST_ROUNDS_MAX {
            // Query parameters in the order SigV4 signs them.
            let mut q = String::new();
            if let Some(t) = &token {
                q.push_str(&format!("continuation-token={}&", query_escape(t)));
            }
            if !recursive {
                q.push_str("delimiter=%2F&");
            }
            q.push_str(&format!(
                "list-type=2&max-keys={}&prefix={}",
                limit.clamp(1, S3_MAX_LIST_PAGE),
                query_escape(prefix)
            ));
            if let (None, Some(sa)) = (&token, start_after) {
                q.push_str(&format!("&start-after={}", query_escape(sa)));
            }
            let url = format!("{}/?{q}", self.base);
            bump(&self.counts.list);
            let (_, body) = self
                .send(&what, || {
                    Request::builder()
                        .method(Method::GET)
                        .uri(&url)
                        .body(Buffer::new())
                        .map_err(|e| StoreError::Io(format!("request: {e}")))
                })
                .await?;
            let page = parse_list(&body)
                .map_err(|e| StoreError::Io(format!("{what}: bad answer: {e}")))?;
            let mut keys = page.keys;
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            let mut rest = keys.into_iter().peekable();
            while let Some((key, is_prefix, listed)) = rest.next() {
                // A directory's own `dir/` marker is not one of its entries
                // (delimited listings, READDIR), but recursive listings keep
                // it: they decide whether the directory exists and what a
                // rename must move.
                if (key == prefix && !recursive) || start_after.is_some_and(|sa| key.as_str() <= sa)
                {
                    continue;
                }
                out.push(ListItem {
                    key,
                    is_prefix,
                    listed,
                });
                if out.len() == limit {
                    return Ok((out, rest.peek().is_some() || page.truncated));
                }
            }
            match page.next {
                Some(t) if page.truncated => token = Some(t),
                _ => return Ok((out, false)),
            }
        }
        Err(StoreError::Io(format!(
            "{what}: no end after {LIST_ROUNDS_MAX} continued pages"
        )))
    }

    /// Whether the bucket answers: a one-key listing.
    pub async fn check(&self, prefix: &str) -> StoreResult<()> {
        self.list_page(prefix, None, 1, false).await.map(|_| ())
    }

    // --- signed S3 requests of our own --------------------------------------

    fn url(&self, key: &str, query: &str) -> String {
        let k = utf8_percent_encode(key, KEY_ESCAPE);
        if query.is_empty() {
            format!("{}/{k}", self.base)
        } else {
            format!("{}/{k}?{query}", self.base)
        }
    }

    /// Sends a request built by `build` (again on each retry), retrying
    /// transient failures with exponential backoff; returns the status,
    /// headers and body of the final answer.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> StoreResult<Request<Buffer>>,
    ) -> StoreResult<(http::HeaderMap, Bytes)> {
        self.send_with(what, &[], build)
            .await
            .map(|(_, h, b)| (h, b))
    }

    /// [`Client::send`], also returning the answers with a status in
    /// `accept` (and the status).
    async fn send_with(
        &self,
        what: &str,
        accept: &[u16],
        build: impl Fn() -> StoreResult<Request<Buffer>>,
    ) -> StoreResult<(u16, http::HeaderMap, Bytes)> {
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            let req = build()?;
            let (mut parts, body) = req.into_parts();
            parts.headers.insert(
                "x-amz-content-sha256",
                http::HeaderValue::from_static("UNSIGNED-PAYLOAD"),
            );
            let signed = self.signer.sign(&mut parts, None).await;
            let outcome = match signed {
                Err(e) => Err((true, format!("signing: {e}"), 0u16, String::new())),
                Ok(()) => {
                    parts.headers.remove(http::header::HOST);
                    let fut = self.transport.send(Request::from_parts(parts, body));
                    match tokio::time::timeout(self.timeout, fut).await {
                        Err(_) => Err((true, "timed out".to_string(), 0, String::new())),
                        Ok(Err(e)) => Err((e.is_temporary(), e.to_string(), 0, String::new())),
                        Ok(Ok(resp)) => {
                            let status = resp.status().as_u16();
                            let (p, b) = resp.into_parts();
                            let b = b.to_bytes();
                            if (status < 300 && !has_error(&b)) || accept.contains(&status) {
                                return Ok((status, p.headers, b));
                            }
                            let code = error_code(&b);
                            let transient = status_is_transient(status)
                                || (status < 300 && code == "InternalError")
                                || code == "SlowDown";
                            Err((transient, format!("{status} {code}"), status, code))
                        }
                    }
                }
            };
            let (transient, msg, status, code) = match outcome {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if transient && attempt < self.retries {
                attempt += 1;
                tracing::debug!("s3: {what}: {msg}; retry {attempt} in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
            if status == 0 {
                if transient {
                    tracing::warn!("s3: {what}: {msg} after retries");
                    return Err(StoreError::Transient(format!("{what}: {msg}")));
                }
                tracing::error!("s3: {what}: {msg}");
                return Err(StoreError::Io(format!("{what}: {msg}")));
            }
            return Err(from_status(
                if status < 300 { 500 } else { status },
                &code,
                what,
            ));
        }
    }

    fn meta_headers(mut b: http::request::Builder, meta: &Meta) -> http::request::Builder {
        for (k, v) in meta.to_pairs() {
            b = b.header(format!("x-amz-meta-{k}"), v);
        }
        b
    }

    // --- keys OpenDAL's paths cannot carry ------------------------------------
    //
    // OpenDAL normalises every path it is given: blanks at either end are
    // trimmed. A name may end (or, at the top of a whole-bucket export,
    // begin) with blanks, and its key must stay its own: `a ` is not `a`.
    // Those keys are sent as requests of our own.

    /// The headers of a HEAD of `key` sent as is; `None` when absent.
    async fn head_headers(&self, key: &str) -> StoreResult<Option<http::HeaderMap>> {
        let url = self.url(key, "");
        let r = self
            .send(&format!("HEAD {key}"), || {
                Request::builder()
                    .method(Method::HEAD)
                    .uri(&url)
                    .body(Buffer::new())
                    .map_err(|e| StoreError::Io(format!("request: {e}")))
            })
            .await;
        match r {
            Ok((h, _)) => Ok(Some(h)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// HEAD of a file key; `None` when absent.
    async fn raw_head(&self, key: &str) -> StoreResult<Option<ObjInfo>> {
        let Some(headers) = self.head_headers(key).await? else {
            return Ok(None);
        };
        let bad = |e: opendal::Error| StoreError::Io(format!("HEAD {key}: bad answer: {e}"));
        Ok(Some(ObjInfo {
            key: key.to_string(),
            size: opendal::raw::parse_content_length(&headers)
                .map_err(bad)?
                .unwrap_or(0),
            etag: opendal::raw::parse_etag(&headers)
                .map_err(bad)?
                .unwrap_or_default()
                .to_string(),
            last_modified: opendal::raw::parse_last_modified(&headers)
                .map_err(bad)?
                .map(to_timespec)
                .unwrap_or_default(),
            meta: Meta::parse(
                meta_pairs(&headers)
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        }))
    }

    /// [`Client::get_range`] by a request of our own.
    async fn raw_get_range(&self, key: &str, off: u64, len: u64, etag: &str) -> StoreResult<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let url = self.url(key, "");
        let range = format!("bytes={off}-{}", off.saturating_add(len - 1));
        let (status, _, body) = self
            .send_with(&format!("GET {key}"), &[RANGE_NOT_SATISFIABLE], || {
                let mut b = Request::builder()
                    .method(Method::GET)
                    .uri(&url)
                    .header(http::header::RANGE, &range);
                if !etag.is_empty() {
                    b = b.header(http::header::IF_MATCH, etag);
                }
                b.body(Buffer::new())
                    .map_err(|e| StoreError::Io(format!("request: {e}")))
            })
            .await?;
        if status == RANGE_NOT_SATISFIABLE {
            return Ok(Bytes::new());
        }
        // A server that ignores Range sends the whole object.
        if status == 200 && body.len() as u64 > len {
            let start = (off as usize).min(body.len());
            let end = start.saturating_add(len as usize).min(body.len());
            return Ok(body.slice(start..end));
        }
        Ok(body)
    }

    /// [`Client::put`] by a request of our own.
    async fn raw_put(&self, key: &str, data: Bytes, meta: &Meta) -> StoreResult<String> {
        let url = self.url(key, "");
        let len = data.len();
        let (headers, _) = self
            .send(&format!("PUT {key}"), || {
                let b = Request::builder()
                    .method(Method::PUT)
                    .uri(&url)
                    .header(http::header::CONTENT_TYPE, "application/octet-stream")
                    .header(http::header::CONTENT_LENGTH, len);
                Self::meta_headers(b, meta)
                    .body(Buffer::from(data.clone()))
                    .map_err(|e| StoreError::Io(format!("request: {e}")))
            })
            .await?;
        Ok(headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string())
    }

    /// HEAD of a `dir/` marker by its key, with its metadata, or `None`
    /// when there is none. OpenDAL takes a path ending in `/` for a
    /// directory and answers its stat from a listing, without the
    /// marker's metadata, so this request is sent as is.
    pub async fn head_marker(&self, key: &str) -> StoreResult<Option<ObjInfo>> {
        bump(&self.counts.head);
        let Some(headers) = self.head_headers(key).await? else {
            return Ok(None);
        };
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let pairs = meta_pairs(&headers);
        Ok(Some(ObjInfo {
            key: key.to_string(),
            size: 0,
            etag: text("etag").trim_matches('"').to_string(),
            // A marker's times are in its metadata (nfs4d and s3fs write
            // them); Last-Modified is not needed.
            last_modified: Timespec::default(),
            meta: Meta::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }))
    }

    /// PUT of a zero-byte `dir/` marker carrying s3fs metadata (OpenDAL's
    /// `create_dir` takes no metadata).
    pub async fn put_marker(&self, key: &str, meta: &Meta) -> StoreResult<()> {
        bump(&self.counts.put);
        let url = self.url(key, "");
        self.send(&format!("PUT {key}"), || {
            let b = Request::builder()
                .method(Method::PUT)
                .uri(&url)
                .header(http::header::CONTENT_TYPE, "application/x-directory")
                .header(http::header::CONTENT_LENGTH, "0");
            Self::meta_headers(b, meta)
                .body(Buffer::new())
                .map_err(|e| StoreError::Io(format!("request: {e}")))
        })
        .await
        .map(|_| ())
    }

    /// Server-side copy of `from` to `to` with new metadata (`CopyObject`
    /// with `REPLACE`); `from == to` changes the metadata in place without
    /// moving data.
    pub async fn copy_with_meta(
        &self,
        from: &str,
        to: &str,
        meta: &Meta,
        content_type: &str,
    ) -> StoreResult<()> {
        bump(&self.counts.copy);
        let url = self.url(to, "");
        let source = format!("/{}", self.source_path(from));
        self.send(&format!("COPY {from} -> {to}"), || {
            let b = Request::builder()
                .method(Method::PUT)
                .uri(&url)
                .header("x-amz-copy-source", &source)
                .header("x-amz-metadata-directive", "REPLACE")
                .header(http::header::CONTENT_TYPE, content_type)
                .header(http::header::CONTENT_LENGTH, "0");
            Self::meta_headers(b, meta)
                .body(Buffer::new())
                .map_err(|e| StoreError::Io(format!("request: {e}")))
        })
        .await
        .map(|_| ())
    }

    fn source_path(&self, key: &str) -> String {
        // `x-amz-copy-source` is `bucket/key`, URL-encoded.
        let bucket = self
            .base
            .rsplit_once('/')
            .map(|(_, b)| b)
            .filter(|b| !b.contains(':') && !b.contains('.'))
            .unwrap_or_default();
        let bucket = if bucket.is_empty() {
            // Virtual-host style: the bucket is the first host label.
            self.base
                .split("://")
                .nth(1)
                .and_then(|h| h.split('.').next())
                .unwrap_or_default()
        } else {
            bucket
        };
        format!("{bucket}/{}", utf8_percent_encode(key, KEY_ESCAPE))
    }

    /// Starts a multipart upload of `key` with its metadata.
    pub async fn mpu_create(&self, key: &str, meta: &Meta) -> StoreResult<String> {
        bump(&self.counts.mpu_create);
        let url = self.url(key, "uploads");
        let (_, body) = self
            .send(&format!("CreateMultipartUpload {key}"), || {
                let b = Request::builder()
                    .method(Method::POST)
                    .uri(&url)
                    .header(http::header::CONTENT_TYPE, "application/octet-stream")
                    .header(http::header::CONTENT_LENGTH, "0");
                Self::meta_headers(b, meta)
                    .body(Buffer::new())
                    .map_err(|e| StoreError::Io(format!("request: {e}")))
            })
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Init {
            upload_id: String,
        }
        let init: Init = quick_xml::de::from_reader(body.as_ref())
            .map_err(|e| StoreError::Io(format!("CreateMultipartUpload {key}: bad answer: {e}")))?;
        Ok(init.upload_id)
    }

    /// Uploads part `number`; returns its ETag.
    pub async fn mpu_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: Bytes,
    ) -> StoreResult<String> {
        bump(&self.counts.mpu_part);
        let q = format!(
            "partNumber={number}&uploadId={}",
            utf8_percent_encode(upload_id, NON_ALPHANUMERIC)
        );
        let url = self.url(key, &q);
        let len = data.len();
        let (headers, _) = self
            .send(&format!("UploadPart {key} #{number}"), || {
                Request::builder()
                    .method(Method::PUT)
                    .uri(&url)
                    .header(http::header::CONTENT_LENGTH, len)
                    .body(Buffer::from(data.clone()))
                    .map_err(|e| StoreError::Io(format!("request: {e}")))
            })
            .await?;
        headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| StoreError::Io(format!("UploadPart {key}: no ETag")))
    }

    pub async fn mpu_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> StoreResult<()> {
        bump(&self.counts.mpu_complete);
        let q = format!(
            "uploadId={}",
            utf8_percent_encode(upload_id, NON_ALPHANUMERIC)
        );
        let url = self.url(key, &q);
        let mut xml = String::from("<CompleteMultipartUpload>");
        for p in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                p.number,
                xml_escape(&p.etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let body = Bytes::from(xml);
        self.send(&format!("CompleteMultipartUpload {key}"), || {
            Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header(http::header::CONTENT_LENGTH, body.len())
                .body(Buffer::from(body.clone()))
                .map_err(|e| StoreError::Io(format!("request: {e}")))
        })
        .await
        .map(|_| ())
    }

    pub async fn mpu_abort(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        bump(&self.counts.mpu_abort);
        let q = format!(
            "uploadId={}",
            utf8_percent_encode(upload_id, NON_ALPHANUMERIC)
        );
        let url = self.url(key, &q);
        match self
            .send(&format!("AbortMultipartUpload {key}"), || {
                Request::builder()
                    .method(Method::DELETE)
                    .uri(&url)
                    .body(Buffer::new())
                    .map_err(|e| StoreError::Io(format!("request: {e}")))
            })
            .await
        {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether OpenDAL addresses `key` as it is: its path normalisation trims
/// blanks at both ends (and would fold `//`, which keys of valid names
/// never hold).
fn dal_keeps(key: &str) -> bool {
    key.trim() == key
}

const RANGE_NOT_SATISFIABLE: u16 = 416;

/// The user metadata (`x-amz-meta-*`) of an answer.
fn meta_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-amz-meta-")?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect()
}

/// Continued requests of one [`Client::list_page`] call: a page that
/// holds only skipped keys (a marker) is followed, a server that never
/// ends is not.
const LIST_ROUNDS_MAX: usize = 64;

/// Bytes a query value keeps unescaped (RFC 3986 unreserved, as SigV4
/// wants them).
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn query_escape(v: &str) -> String {
    utf8_percent_encode(v, QUERY_ESCAPE).to_string()
}

/// What a ListObjectsV2 answer says: keys (with whether each is a common
/// prefix), whether it is truncated, and the token to continue with.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListPage {
    /// Keys, whether each is a common prefix, and what is listed of it.
    keys: Vec<(String, bool, Option<Listed>)>,
    truncated: bool,
    next: Option<String>,
}

/// Reads a ListObjectsV2 answer keeping every character of the keys:
/// text is taken as it is (no trimming, no line-end folding), references
/// resolved.
fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut page = ListPage::default();
    // The fields of the `Contents` element being read; an object whose
    // ETag, size or date is missing or unreadable is listed without them.
    let mut key: Option<String> = None;
    let mut etag: Option<String> = None;
    let mut size: Option<u64> = None;
    let mut modified: Option<i64> = None;
    loop {
        match r.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                path.push(e.name().as_ref().to_string());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t),
            Event::CData(t) => text.push_str(&t),
            Event::GeneralRef(g) => {
                if let Some(c) = g.resolve_char_ref().map_err(|e| e.to_string())? {
                    text.push(c);
                } else {
                    let name: &str = &g;
                    let v = quick_xml::escape::resolve_predefined_entity(name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?;
                    text.push_str(v);
                }
            }
            Event::End(_) => {
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                match names.as_slice() {
                    [_, "Contents", "Key"] => key = Some(text.clone()),
                    [_, "Contents", "ETag"] => etag = Some(text.clone()),
                    [_, "Contents", "Size"] => size = text.trim().parse().ok(),
                    [_, "Contents", "LastModified"] => {
                        modified = text
                            .trim()
                            .parse::<opendal::raw::Timestamp>()
                            .ok()
                            .map(|t| to_timespec(t).sec)
                    }
                    [_, "Contents"] => {
                        if let Some(k) = key.take() {
                            let listed = match (size.take(), modified.take()) {
                                (Some(size), Some(modified_sec)) => Some(Listed {
                                    etag: etag.take(),
                                    size,
                                    modified_sec,
                                }),
                                _ => None,
                            };
                            page.keys.push((k, false, listed));
                        }
                        etag = None;
                        size = None;
                        modified = None;
                    }
                    [_, "CommonPrefixes", "Prefix"] => page.keys.push((text.clone(), true, None)),
                    [_, "IsTruncated"] => page.truncated = text.trim() == "true",
                    [_, "NextContinuationToken"] => page.next = Some(text.clone()),
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Event::Eof => return Ok(page),
            _ => {}
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// S3 may answer 200 to CompleteMultipartUpload and CopyObject with an
/// `<Error>` document in the body.
fn has_error(body: &[u8]) -> bool {
    let head = &body[..body.len().min(256)];
    String::from_utf8_lossy(head).contains("<Error>")
}

fn error_code(body: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct E {
        #[serde(default)]
        code: String,
    }
    quick_xml::de::from_reader::<_, E>(body)
        .map(|e| e.code)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_keep_every_character_of_keys() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bkt</Name><Prefix>e/</Prefix><IsTruncated>true</IsTruncated>
  <Contents><Key>e/trailing </Key><Size>1</Size></Contents>
  <Contents><Key>e/full</Key><LastModified>2026-12-06T09:30:01.250Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>42</Size></Contents>
  <Contents><Key> e/lead</Key></Contents>
  <Contents><Key>e/a&amp;b&lt;&#x9;&#10;c</Key></Contents>
  <Contents><Key><![CDATA[e/raw <x> ]]></Key></Contents>
  <CommonPrefixes><Prefix>e/sub /</Prefix></CommonPrefixes>
  <NextContinuationToken>tok=1</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list(xml).expect("parse");
        assert_eq!(
            page,
            ListPage {
                keys: vec![
                    ("e/trailing ".into(), false, None),
                    (
                        "e/full".into(),
                        false,
                        Some(Listed {
                            etag: Some("\"9b2cf535f27731c974343645a3985328\"".into()),
                            size: 42,
                            modified_sec: 1_796_549_401,
                        })
                    ),
                    (" e/lead".into(), false, None),
                    ("e/a&b<\t\nc".into(), false, None),
                    ("e/raw <x> ".into(), false, None),
                    ("e/sub /".into(), true, None),
                ],
                truncated: true,
                next: Some("tok=1".into()),
            }
        );
        let end =
            parse_list(b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
                .expect("parse");
        assert_eq!(end, ListPage::default());
        assert!(parse_list(b"<ListBucketResult><Contents><Key>&bogus;</Key>").is_err());
    }

    #[test]
    fn only_keys_with_blanks_at_the_ends_bypass_opendal() {
        assert!(dal_keeps("export/a b/c"));
        assert!(!dal_keeps("export/c "));
        assert!(!dal_keeps(" c"));
        assert!(!dal_keeps("export/c\t"));
    }
}
