//! A small fault-injecting HTTP/1.1 proxy for the integration tests.
//!
//! Tests point the AWS SDK clients of `lakehose` (S3 and Glue on moto,
//! Kinesis on kinesis-mock: plain HTTP on loopback) at a [`FaultProxy`]
//! instead of the emulator. The proxy forwards requests byte for byte, except
//! that requests matching a [`Rule`] are answered with an injected error
//! (throttling, a transient 5xx) or a dropped connection, so tests can check
//! that the service retries and loses nothing.
//!
//! Standard library only: a thread per client connection, one upstream
//! connection per client connection, HTTP/1.1 keep-alive, `Content-Length`
//! and chunked bodies, `Expect: 100-continue` and interim responses.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest request or response head (start line and headers) accepted.
const MAX_HEAD: u64 = 1 << 20;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: u64 = 64 << 10;
/// How long to wait for the upstream's interim response to `Expect: 100-continue`
/// before sending the body anyway.
const EXPECT_WAIT: Duration = Duration::from_secs(1);
/// How long a closing connection drains what the client still sends, so that
/// closing does not reset the connection before the client read the reply.
const LINGER: Duration = Duration::from_secs(2);
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const INJECTED_MESSAGE: &str = "injected by FaultProxy";

/// A running proxy; dropping it stops accepting and closes client connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Which requests to fail, how often and how.
#[derive(Clone)]
pub struct Rule {
    /// Substring that must appear in the request head (request line + headers, case-sensitive), e.g. "Kinesis_20131202.GetRecords" (the X-Amz-Target header), "PUT /", "BatchCreatePartition".
    pub matches: String,
    /// Fail every `every`-th matching request (1 = all, 3 = the 3rd, 6th, ...).
    pub every: u32,
    /// Stop injecting after this many injected failures (u32::MAX = never).
    pub max: u32,
    /// What to answer instead of forwarding.
    pub reply: Reply,
}

/// The injected answer.
#[derive(Clone)]
pub enum Reply {
    /// awsJson error (Kinesis/Glue): given status, body {"__type": code, "message": "injected by FaultProxy"}, header `x-amzn-ErrorType: code`, content-type application/x-amz-json-1.1.
    Json { status: u16, code: String },
    /// S3 XML error: given status, body <?xml ...?><Error><Code>code</Code><Message>injected by FaultProxy</Message><RequestId>fault</RequestId></Error>, content-type application/xml.
    Xml { status: u16, code: String },
    /// Close the connection without answering (a dropped connection).
    Drop,
}

impl FaultProxy {
    /// Listen on 127.0.0.1:0 and forward to `upstream` (a URL like "http://127.0.0.1:PORT" — only loopback allowed: assert it), applying rules (first matching rule decides).
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let upstream_addr = loopback_addr(upstream);
        for (i, r) in rules.iter().enumerate() {
            assert!(
                r.every >= 1,
                "FaultProxy rule {i}: `every` must be at least 1"
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("FaultProxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("FaultProxy: local address");
        let shared = Arc::new(Shared {
            upstream: upstream_addr,
            counts: Mutex::new(vec![Count::default(); rules.len()]),
            rules,
            requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let acceptor = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("faultproxy-accept".into())
            .spawn(move || accept_loop(listener, acceptor))
            .expect("FaultProxy: spawn accept thread");
        FaultProxy { addr, shared }
    }

    /// "http://127.0.0.1:PORT" of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Number of failures injected so far, per rule index.
    pub fn injected(&self) -> Vec<u32> {
        lock(&self.shared.counts)
            .iter()
            .map(|c| c.injected)
            .collect()
    }

    /// Total requests seen.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept thread, which then sees `stop` and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for s in lock(&self.shared.conns).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Count {
    matched: u32,
    injected: u32,
}

struct Shared {
    upstream: SocketAddr,
    rules: Vec<Rule>,
    counts: Mutex<Vec<Count>>,
    requests: AtomicU64,
    stop: AtomicBool,
    /// Open client connections, shut down when the proxy is dropped.
    conns: Mutex<HashMap<u64, TcpStream>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The reply to inject for a request with this head, if any.
    fn decide(&self, head: &[u8]) -> Option<Reply> {
        let head = String::from_utf8_lossy(head);
        let i = self.rules.iter().position(|r| head.contains(&r.matches))?;
        let rule = &self.rules[i];
        let mut counts = lock(&self.counts);
        let c = &mut counts[i];
        c.matched = c.matched.saturating_add(1);
        if c.matched.is_multiple_of(rule.every) && c.injected < rule.max {
            c.injected += 1;
            Some(rule.reply.clone())
        } else {
            None
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The socket address of an `http://host:port` URL, asserting it is loopback.
fn loopback_addr(url: &str) -> SocketAddr {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("FaultProxy upstream must be an http:// URL, got {url:?}"));
    let hostport = rest.split(['/', '?', '#']).next().unwrap_or_default();
    assert!(
        !hostport.is_empty(),
        "FaultProxy upstream {url:?} has no host"
    );
    let addrs: Vec<SocketAddr> = match hostport.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(_) => format!("{hostport}:80")
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("FaultProxy upstream {url:?}: {e}"))
            .collect(),
    };
    assert!(
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
        "FaultProxy upstream {url:?} must be a loopback address, resolves to {addrs:?}"
    );
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .copied()
        .unwrap_or(addrs[0])
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if shared.stopped() {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(_) => {
                // E.g. out of file descriptors: do not spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let Ok(registered) = stream.try_clone() else {
            continue;
        };
        lock(&shared.conns).insert(id, registered);
        let s = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("faultproxy-conn".into())
            .spawn(move || {
                if !s.stopped() {
                    serve_client(stream, &s);
                }
                lock(&s.conns).remove(&id);
            });
        if spawned.is_err() {
            if let Some(s) = lock(&shared.conns).remove(&id) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A connection: buffered reads and buffered writes on the same socket.
struct Side {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
}

impl Side {
    fn new(stream: TcpStream) -> io::Result<Side> {
        stream.set_nodelay(true)?;
        let w = BufWriter::with_capacity(64 << 10, stream.try_clone()?);
        Ok(Side {
            r: BufReader::with_capacity(64 << 10, stream),
            w,
        })
    }

    fn stream(&self) -> &TcpStream {
        self.r.get_ref()
    }

    /// Close after a reply: stop sending, then drain what the client still
    /// sends for a while, so that unread input does not make the kernel reset
    /// the connection before the client has read the reply.
    fn close_gracefully(mut self) {
        let _ = self.w.flush();
        let _ = self.stream().shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let _ = self
            .stream()
            .set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 16 << 10];
        while Instant::now() < deadline {
            match self.r.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = self.stream().shutdown(Shutdown::Both);
    }

    fn close_now(self) {
        let _ = self.stream().shutdown(Shutdown::Both);
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// How the client connection goes on after one exchange.
enum Next {
    KeepAlive,
    /// A complete reply was sent; close (gracefully).
    Close,
    /// Drop the connection at once.
    Abort,
}

fn serve_client(stream: TcpStream, shared: &Shared) {
    let Ok(mut client) = Side::new(stream) else {
        return;
    };
    let mut upstream: Option<Side> = None;
    loop {
        if shared.stopped() {
            return client.close_now();
        }
        let head = match read_head(&mut client.r) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => return client.close_now(),
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let req = match Request::parse(&head) {
            Ok(r) => r,
            Err(_) => {
                let _ = client
                    .w
                    .write_all(&plain_response(400, "Bad Request", true));
                return client.close_gracefully();
            }
        };
        let next = match shared.decide(&head) {
            Some(reply) => inject(&mut client, &req, &reply),
            None => forward(&mut client, &mut upstream, shared.upstream, &head, &req),
        };
        match next {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close) => return client.close_gracefully(),
            Ok(Next::Abort) | Err(_) => return client.close_now(),
        }
    }
}

/// Answer with the rule's reply instead of forwarding.
fn inject(client: &mut Side, req: &Request, reply: &Reply) -> io::Result<Next> {
    // With `Expect: 100-continue` the body may or may not follow: answer at
    // once and close. Otherwise consume the body to keep the connection usable.
    if !req.expect_continue {
        copy_body(&mut client.r, &mut io::sink(), req.body)?;
    }
    let close = req.expect_continue || req.close;
    let (status, content_type, extra, body) = match reply {
        Reply::Drop => return Ok(Next::Abort),
        Reply::Json { status, code } => (
            *status,
            "application/x-amz-json-1.1",
            format!("x-amzn-ErrorType: {code}\r\nx-amzn-RequestId: fault\r\n"),
            format!(
                "{{\"__type\":\"{}\",\"message\":\"{INJECTED_MESSAGE}\"}}",
                json_escape(code)
            ),
        ),
        Reply::Xml { status, code } => (
            *status,
            "application/xml",
            "x-amz-request-id: fault\r\nx-amz-id-2: fault\r\n".to_owned(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code>\
                 <Message>{INJECTED_MESSAGE}</Message><RequestId>fault</RequestId></Error>",
                xml_escape(code)
            ),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes();
    if !req.is_head {
        out.extend_from_slice(body.as_bytes());
    }
    client.w.write_all(&out)?;
    client.w.flush()?;
    Ok(if close { Next::Close } else { Next::KeepAlive })
}

/// Forward one request upstream and relay the response(s).
fn forward(
    client: &mut Side,
    slot: &mut Option<Side>,
    addr: SocketAddr,
    head: &[u8],
    req: &Request,
) -> io::Result<Next> {
    let mut up = match slot.take() {
        Some(up) if reusable(&up) => up,
        _ => {
            let s = TcpStream::connect_timeout(&addr, UPSTREAM_CONNECT_TIMEOUT)?;
            Side::new(s)?
        }
    };
    up.w.write_all(head)?;
    if req.expect_continue {
        up.w.flush()?;
        loop {
            if !readable_within(&mut up.r, EXPECT_WAIT)? {
                // The upstream waits for the body: send it.
                break;
            }
            let resp = read_response_head(&mut up.r)?;
            client.w.write_all(&resp.head)?;
            if resp.is_interim() {
                client.w.flush()?;
                if resp.status == 100 {
                    break;
                }
                continue;
            }
            // A final answer before the body: the client may or may not send
            // the body now, so neither connection is in a known state.
            relay_body(&mut up.r, &mut client.w, &resp, req.is_head)?;
            client.w.flush()?;
            up.close_now();
            return Ok(Next::Close);
        }
    }
    copy_body(&mut client.r, &mut up.w, req.body)?;
    up.w.flush()?;
    loop {
        let resp = read_response_head(&mut up.r)?;
        client.w.write_all(&resp.head)?;
        if resp.is_interim() {
            client.w.flush()?;
            continue;
        }
        let until_close = relay_body(&mut up.r, &mut client.w, &resp, req.is_head)?;
        client.w.flush()?;
        let upstream_closes = until_close || resp.close;
        if !upstream_closes {
            *slot = Some(up);
        }
        return Ok(if req.close || upstream_closes {
            Next::Close
        } else {
            Next::KeepAlive
        });
    }
}

/// Whether an idle upstream connection is still open and has nothing unread.
fn reusable(up: &Side) -> bool {
    if !up.r.buffer().is_empty() {
        return false;
    }
    let s = up.stream();
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    let alive = matches!(s.peek(&mut b), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).is_ok() && alive
}

/// Wait up to `wait` for input; false on timeout, an error on end of stream.
fn readable_within(r: &mut BufReader<TcpStream>, wait: Duration) -> io::Result<bool> {
    if !r.buffer().is_empty() {
        return Ok(true);
    }
    r.get_ref().set_read_timeout(Some(wait))?;
    let res = loop {
        match r.fill_buf() {
            Ok([]) => break Err(eof("upstream closed while waiting for 100 Continue")),
            Ok(_) => break Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => break Ok(false),
            Err(e) => break Err(e),
        }
    };
    r.get_ref().set_read_timeout(None)?;
    res
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_owned())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Read a head up to and including its empty line. `None` on a clean end of
/// stream before any byte; leading empty lines are skipped.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        let room = MAX_HEAD.saturating_sub(start as u64);
        if room == 0 {
            return Err(invalid("head too long"));
        }
        let n = r.by_ref().take(room).read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(eof("end of stream inside a head"))
            };
        }
        if !head.ends_with(b"\n") {
            if head.len() as u64 >= MAX_HEAD {
                return Err(invalid("head too long"));
            }
            return Err(eof("end of stream inside a head"));
        }
        let line = &head[start..];
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                head.clear(); // stray empty line before a request
                continue;
            }
            return Ok(Some(head));
        }
    }
}

/// The header lines of a head (after the start line) as (name, value).
fn headers(head: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
        let line = String::from_utf8_lossy(line);
        let (name, value) = line.split_once(':')?;
        Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
    })
}

fn start_line(head: &[u8]) -> String {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    String::from_utf8_lossy(&head[..end]).trim().to_owned()
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Framing headers common to requests and responses.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    /// `Some(true)` when the last transfer coding is chunked.
    chunked: Option<bool>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Framing {
    fn parse(head: &[u8]) -> io::Result<Framing> {
        let mut f = Framing::default();
        for (name, value) in headers(head) {
            match name.as_str() {
                "content-length" => {
                    let n: u64 = value.parse().map_err(|_| invalid("bad Content-Length"))?;
                    if f.length.is_some_and(|m| m != n) {
                        return Err(invalid("conflicting Content-Length"));
                    }
                    f.length = Some(n);
                }
                "transfer-encoding" => {
                    let last = value.rsplit(',').next().unwrap_or_default().trim();
                    f.chunked = Some(last.eq_ignore_ascii_case("chunked"));
                }
                "connection" => {
                    f.close |= has_token(&value, "close");
                    f.keep_alive |= has_token(&value, "keep-alive");
                }
                "expect" => f.expect_continue |= value.eq_ignore_ascii_case("100-continue"),
                _ => {}
            }
        }
        Ok(f)
    }
}

struct Request {
    is_head: bool,
    body: Body,
    expect_continue: bool,
    /// The client will close after this exchange.
    close: bool,
}

impl Request {
    fn parse(head: &[u8]) -> io::Result<Request> {
        let line = start_line(head);
        let mut parts = line.split_whitespace();
        let (Some(method), Some(_target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("bad request line"));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(invalid("not HTTP/1.x"));
        }
        let f = Framing::parse(head)?;
        let body = match (f.chunked, f.length) {
            (Some(true), _) => Body::Chunked,
            (Some(false), _) => return Err(invalid("unsupported request Transfer-Encoding")),
            (None, Some(n)) => Body::Length(n),
            (None, None) => Body::None,
        };
        Ok(Request {
            is_head: method == "HEAD",
            body,
            expect_continue: f.expect_continue && version != "HTTP/1.0",
            close: f.close || (version == "HTTP/1.0" && !f.keep_alive),
        })
    }
}

struct Response {
    head: Vec<u8>,
    status: u16,
    framing: Framing,
    /// The upstream closes after this response.
    close: bool,
}

impl Response {
    /// 1xx other than 101 Switching Protocols: a final response follows.
    fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

fn read_response_head(r: &mut impl BufRead) -> io::Result<Response> {
    let head = read_head(r)?.ok_or_else(|| eof("upstream closed before responding"))?;
    let line = start_line(&head);
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default().to_owned();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid("bad status line"))?;
    let framing = Framing::parse(&head)?;
    let close = framing.close || (version == "HTTP/1.0" && !framing.keep_alive);
    Ok(Response {
        head,
        status,
        framing,
        close,
    })
}

/// Relay a response body verbatim; true when it was delimited by the end of
/// the connection (so the connection is finished).
fn relay_body(
    up: &mut impl BufRead,
    client: &mut impl Write,
    resp: &Response,
    request_was_head: bool,
) -> io::Result<bool> {
    let body = if request_was_head
        || (100..200).contains(&resp.status)
        || resp.status == 204
        || resp.status == 304
    {
        Body::None
    } else {
        match (resp.framing.chunked, resp.framing.length) {
            (Some(true), _) => Body::Chunked,
            (Some(false), _) => Body::UntilClose,
            (None, Some(n)) => Body::Length(n),
            (None, None) => Body::UntilClose,
        }
    };
    copy_body(up, client, body)?;
    Ok(body == Body::UntilClose)
}

fn copy_body(r: &mut impl BufRead, w: &mut impl Write, body: Body) -> io::Result<()> {
    match body {
        Body::None => Ok(()),
        Body::Length(n) => copy_exact(r, w, n),
        Body::Chunked => copy_chunked(r, w),
        Body::UntilClose => io::copy(r, w).map(drop),
    }
}

fn copy_exact(r: &mut impl BufRead, w: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.by_ref().take(n), w)?;
    if copied == n {
        Ok(())
    } else {
        Err(eof("end of stream inside a body"))
    }
}

fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<()> {
    line.clear();
    r.by_ref().take(MAX_LINE).read_until(b'\n', line)?;
    if line.ends_with(b"\n") {
        Ok(())
    } else if line.len() as u64 >= MAX_LINE {
        Err(invalid("line too long"))
    } else {
        Err(eof("end of stream inside a chunked body"))
    }
}

/// Copy a chunked body verbatim: chunks, the last chunk, trailers, empty line.
fn copy_chunked(r: &mut impl BufRead, w: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        read_line(r, &mut line)?;
        w.write_all(&line)?;
        let text = String::from_utf8_lossy(&line);
        let size = text.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            break;
        }
        copy_exact(r, w, size)?;
        read_line(r, &mut line)?; // the CRLF after the data
        if line != b"\r\n" && line != b"\n" {
            return Err(invalid("chunk data not followed by CRLF"));
        }
        w.write_all(&line)?;
    }
    loop {
        read_line(r, &mut line)?;
        w.write_all(&line)?;
        if line == b"\r\n" || line == b"\n" {
            return Ok(());
        }
    }
}

fn plain_response(status: u16, text: &str, close: bool) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{text}",
        reason(status),
        text.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
