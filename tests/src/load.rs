//! A load client that tags every request and reconciles them all, in
//! three modes at once: a new connection per request, a keep-alive
//! connection, and HTTP/2. Each request is a `POST /echo` whose body is
//! its tag; an answer counts as good only if it is a 200 that echoes
//! that tag. Failures are counted by kind: refused, reset, early end of
//! file, timed out, 5xx, other.
//!
//! A well-behaved client reconnects when the server said
//! `Connection: close` or sent an HTTP/2 GOAWAY, so that is not a
//! failure; a request that was sent and got no answer is. As HTTP
//! clients do (RFC 9113 §8.7, hyper-util's pool), a request the protocol
//! proves was never processed is sent again on a new connection and
//! counted under `retried`: an HTTP/2 stream above the last stream id of
//! the server's GOAWAY, or a request hyper had not yet written when the
//! connection closed.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How one request is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// HTTP/1.1, a new connection for each request (`Connection: close`).
    NewConnection,
    /// HTTP/1.1 on a kept-alive connection, reconnecting when told to.
    KeepAlive,
    /// HTTP/2 (h2c, prior knowledge), many requests per connection.
    Http2,
}

/// The outcomes of one mode's requests.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Requests sent (every one ends in exactly one outcome below).
    pub sent: u64,
    /// Answered 200 with the request's own tag.
    pub ok: u64,
    /// The connection was refused.
    pub refused: u64,
    /// The connection was reset (or the pipe broke) with a request on it.
    pub reset: u64,
    /// The connection closed before the whole answer.
    pub early_eof: u64,
    /// No answer within the request timeout.
    pub timed_out: u64,
    /// Answered with a 5xx.
    pub server_error: u64,
    /// Sent again because the protocol proved the first attempt was
    /// never processed (not a failure; see the module docs).
    pub retried: u64,
    /// Anything else (a wrong body, an unexpected status, an error of
    /// another kind).
    pub other: u64,
    /// The first few failures, described.
    pub examples: Vec<String>,
}

impl Tally {
    /// Requests that failed, of any kind.
    pub fn failed(&self) -> u64 {
        self.refused + self.reset + self.early_eof + self.timed_out + self.server_error + self.other
    }

    fn fail(&mut self, kind: Kind, what: String) {
        match kind {
            Kind::Unprocessed | Kind::Other => self.other += 1,
            Kind::Refused => self.refused += 1,
            Kind::Reset => self.reset += 1,
            Kind::EarlyEof => self.early_eof += 1,
            Kind::TimedOut => self.timed_out += 1,
            Kind::ServerError => self.server_error += 1,
        }
        if self.examples.len() < 5 {
            self.examples.push(what);
        }
    }

    fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.refused += other.refused;
        self.reset += other.reset;
        self.early_eof += other.early_eof;
        self.timed_out += other.timed_out;
        self.server_error += other.server_error;
        self.retried += other.retried;
        self.other += other.other;
        for example in &other.examples {
            if self.examples.len() < 5 {
                self.examples.push(example.clone());
            }
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, ok {}, refused {}, reset {}, early eof {}, timed out {}, 5xx {}, other {} \
             (retried unprocessed: {})",
            self.sent,
            self.ok,
            self.refused,
            self.reset,
            self.early_eof,
            self.timed_out,
            self.server_error,
            self.other,
            self.retried
        )?;
        for example in &self.examples {
            write!(f, "\n    e.g. {example}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Proven never processed: safe to send again.
    Unprocessed,
    Refused,
    Reset,
    EarlyEof,
    TimedOut,
    ServerError,
    Other,
}

/// A request's whole time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Load running in the background; [`stop`](Self::stop) it to get the
/// tallies.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<(Mode, Tally)>>,
}

impl Load {
    /// Starts `per_mode` workers of each mode against `addr`, on the
    /// current tokio runtime.
    pub fn start(addr: SocketAddr, per_mode: usize) -> Load {
        Load::start_modes(
            addr,
            per_mode,
            &[Mode::NewConnection, Mode::KeepAlive, Mode::Http2],
        )
    }

    /// As [`start`](Self::start), with the given modes only (a server
    /// without h2c, say).
    pub fn start_modes(addr: SocketAddr, per_mode: usize, modes: &[Mode]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for &mode in modes {
            for worker in 0..per_mode {
                let stop = Arc::clone(&stop);
                workers.push(tokio::spawn(run(addr, mode, worker, stop)));
            }
        }
        Load { stop, workers }
    }

    /// Stops every worker after its current request; the tallies by mode.
    pub async fn stop(self) -> BTreeMap<Mode, Tally> {
        self.stop.store(true, Ordering::Release);
        let mut tallies: BTreeMap<Mode, Tally> = BTreeMap::new();
        for worker in self.workers {
            let (mode, tally) = worker.await.expect("a load worker panicked");
            tallies.entry(mode).or_default().add(&tally);
        }
        tallies
    }
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(addr: SocketAddr, mode: Mode) -> Result<Sender, (Kind, String)> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|err| classify_io(&err))?;
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    match mode {
        Mode::Http2 => {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|err| classify(&err))?;
            tokio::spawn(conn);
            Ok(Sender::Http2(sender))
        }
        _ => {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|err| classify(&err))?;
            tokio::spawn(conn);
            Ok(Sender::Http1(sender))
        }
    }
}

async fn run(addr: SocketAddr, mode: Mode, worker: usize, stop: Arc<AtomicBool>) -> (Mode, Tally) {
    let mut tally = Tally::default();
    let mut sender: Option<Sender> = None;
    let mut seq = 0_u64;
    while !stop.load(Ordering::Acquire) {
        // A connection the server closed between requests (it said
        // `Connection: close`, or GOAWAY) is replaced before sending.
        let usable = match &mut sender {
            Some(Sender::Http1(s)) => s.ready().await.is_ok(),
            Some(Sender::Http2(s)) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable || mode == Mode::NewConnection {
            sender = None;
        }
        seq += 1;
        let tag = format!("{mode:?}-{worker}-{seq}");
        tally.sent += 1;
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            match attempt(addr, mode, &tag, &mut sender).await {
                Ok(Err((Kind::Unprocessed, _))) if attempts < 3 => {
                    tally.retried += 1;
                    sender = None;
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok(Ok(())) => tally.ok += 1,
            Ok(Err((kind, what))) => {
                tally.fail(kind, format!("{tag}: {what}"));
                sender = None;
            }
            Err(_) => {
                tally.fail(
                    Kind::TimedOut,
                    format!("{tag}: no answer in {REQUEST_TIMEOUT:?}"),
                );
                sender = None;
            }
        }
    }
    (mode, tally)
}

/// One attempt at one tagged request, within the request timeout.
async fn attempt(
    addr: SocketAddr,
    mode: Mode,
    tag: &str,
    sender: &mut Option<Sender>,
) -> Result<Result<(), (Kind, String)>, tokio::time::error::Elapsed> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        if sender.is_none() {
            *sender = Some(connect(addr, mode).await?);
        }
        let mut request = Request::post("/echo").header("host", addr.to_string());
        if mode == Mode::NewConnection {
            request = request.header("connection", "close");
        }
        let request = request
            .body(Full::new(Bytes::from(tag.to_owned())))
            .expect("a valid request");
        let response = match sender.as_mut().expect("connected above") {
            Sender::Http1(s) => s.send_request(request).await,
            Sender::Http2(s) => {
                let (mut parts, body) = request.into_parts();
                parts.version = hyper::Version::HTTP_2;
                parts.uri = format!("http://{addr}/echo").parse().expect("a valid URI");
                parts.headers.remove("host");
                s.send_request(Request::from_parts(parts, body)).await
            }
        }
        .map_err(|err| classify(&err))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| classify(&err))?
            .to_bytes();
        if status.is_server_error() {
            return Err((Kind::ServerError, format!("status {status}")));
        }
        if status != 200 || body != tag.as_bytes() {
            return Err((
                Kind::Other,
                format!(
                    "status {status}, body {:?} for tag {tag}",
                    String::from_utf8_lossy(&body)
                ),
            ));
        }
        Ok(())
    })
    .await
}

fn classify_io(err: &io::Error) -> (Kind, String) {
    let kind = match err.kind() {
        io::ErrorKind::ConnectionRefused => Kind::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Kind::Reset,
        io::ErrorKind::UnexpectedEof => Kind::EarlyEof,
        io::ErrorKind::TimedOut => Kind::TimedOut,
        _ => Kind::Other,
    };
    (kind, err.to_string())
}

fn classify(err: &hyper::Error) -> (Kind, String) {
    let what = format!("{err} ({err:?})");
    // Never written: hyper's dispatcher still held it at the close.
    if err.is_canceled() {
        return (Kind::Unprocessed, what);
    }
    let h2 = std::error::Error::source(err).and_then(|s| s.downcast_ref::<h2::Error>());
    if let Some(h2) = h2 {
        // A stream above the last stream id of the server's GOAWAY, or
        // refused: the server says it did nothing with it.
        let above_goaway =
            h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        if above_goaway || h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
            return (Kind::Unprocessed, what);
        }
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return (classify_io(io).0, what);
        }
        source = cause.source();
    }
    let kind = if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        Kind::EarlyEof
    } else if err.is_timeout() {
        Kind::TimedOut
    } else {
        Kind::Other
    };
    (kind, what)
}
