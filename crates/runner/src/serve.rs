//! The binary's hardened HTTP/1 serve loop, for its long-running listeners (the webhook
//! receiver; a `links serve` later): an axum router behind limits no unauthenticated client can
//! outlast, and a bounded stop.
//!
//! - A connection must send each request's head within [`Limits::header_read_timeout`]. hyper
//!   starts that clock when the connection opens and again whenever it falls idle between
//!   requests, so the same number is the keep-alive idle timeout.
//! - The body must arrive within [`Limits::body_deadline`] (else 408) and within
//!   [`Limits::max_body`] bytes (else 413); it is read whole before the router sees it.
//! - At most [`Limits::max_connections`] connections are open; one over the cap is closed at
//!   once, unanswered, so the file descriptors of the process stay bounded.
//! - The first SIGTERM or SIGINT stops accepting, closes connections with no request in flight
//!   at once and lets the requests in flight finish for up to [`Limits::shutdown_grace`]; a
//!   second signal ends the wait at once ([`Stopped::Interrupted`], exit 130).
//! - Refusals are logged at most once a second per reason, with a count of the lines left out
//!   ([`RefusalLog`]), so a flood cannot fill the disk through the log.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse as _;
use clap::Args;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// What one client may take from a listener. The defaults, and why, are in [`Limits::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a connection's opening (or its last answer) to the end of the next request head.
    pub header_read_timeout: Duration,
    /// From the end of the head to the end of the body.
    pub body_deadline: Duration,
    /// Larger bodies are refused (413), by `Content-Length` before reading.
    pub max_body: usize,
    /// Open connections; the next is closed at once.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// - 10 s for a head and 10 s for a body: a vendor's delivery is a few kilobytes sent at
    ///   once (Apideck gives its whole delivery 60 s, apideck-api.md §8), so a well-behaved
    ///   client needs milliseconds, and a slow one holds a connection 20 s at most.
    /// - 512 connections: far above one vendor's concurrent deliveries, far below a default
    ///   1024 file-descriptor limit, so a flood of idle connections cannot exhaust the process.
    /// - 10 s of grace: a request in flight only writes one small transaction; a supervisor's
    ///   stop (systemd waits 90 s, Kubernetes 30 s) is never outlasted.
    /// - 1 MiB bodies: Apideck's deliveries are small; anything larger is not one.
    pub const DEFAULT: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        body_deadline: Duration::from_secs(10),
        max_body: 1024 * 1024,
        max_connections: 512,
        shutdown_grace: Duration::from_secs(10),
    };
}

/// The limits as hidden flags, so the end-to-end tests run in milliseconds instead of seconds;
/// operators keep the defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    #[arg(long, hide = true, value_name = "MS")]
    pub header_read_timeout_ms: Option<u64>,
    #[arg(long, hide = true, value_name = "MS")]
    pub body_deadline_ms: Option<u64>,
    #[arg(long, hide = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    #[arg(long, hide = true, value_name = "MS")]
    pub shutdown_grace_ms: Option<u64>,
}

impl LimitArgs {
    /// `limits` with what the flags set.
    pub fn apply(&self, limits: Limits) -> Limits {
        let ms = |flag: Option<u64>, default: Duration| flag.map_or(default, Duration::from_millis);
        Limits {
            header_read_timeout: ms(self.header_read_timeout_ms, limits.header_read_timeout),
            body_deadline: ms(self.body_deadline_ms, limits.body_deadline),
            max_connections: self
                .max_connections
                .map_or(limits.max_connections, |n| n as usize),
            shutdown_grace: ms(self.shutdown_grace_ms, limits.shutdown_grace),
            ..limits
        }
    }
}

/// hyper's read buffer, which bounds a request head (its minimum is 8 KiB); a vendor's headers
/// are well under 1 KiB.
const MAX_HEAD_BUFFER: usize = 16 * 1024;

/// A pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How a [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection closed within the grace period.
    Graceful,
    /// The grace period ended with this many connections still open; they were cut.
    GraceExpired { cut: usize },
    /// A second signal arrived during the grace period.
    Interrupted,
}

impl Stopped {
    /// The exit code of a listener that stopped this way (a cut at the end of the grace period
    /// is logged, still a normal stop).
    pub fn exit(self) -> authport_engine::Exit {
        match self {
            Stopped::Graceful => authport_engine::Exit::Ok,
            Stopped::GraceExpired { cut } => {
                tracing::warn!("{cut} connections were cut at the end of the grace period");
                authport_engine::Exit::Ok
            }
            Stopped::Interrupted => {
                tracing::warn!("stopped at once by a second signal");
                authport_engine::Exit::Interrupted
            }
        }
    }
}

/// The rule for `--listen` of a plain-HTTP listener (`what`: "the receiver", "the broker"):
/// loopback, or another address only with `--allow-public-listen`, then with a warning. The
/// refusal's text is returned for a usage error.
pub fn check_listen(
    listen: std::net::SocketAddr,
    allow_public: bool,
    what: &str,
) -> Result<(), String> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    if !allow_public {
        return Err(format!(
            "--listen {listen} is not a loopback address: {what} speaks plain HTTP, so run it \
             on loopback behind a TLS reverse proxy (or give --allow-public-listen)"
        ));
    }
    tracing::warn!(
        "listening on {listen}, not loopback: {what} speaks plain HTTP; expose it only through a TLS reverse proxy"
    );
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from before the server starts until it ends, so no
/// signal is lost between the first and the second.
pub struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// The next SIGTERM or SIGINT.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {},
            _ = self.interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `router` on `listener` under `limits` until a signal, then stops as the module docs
/// say. Refusals (over the cap, too slow, too large) go to `log`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    mut signals: StopSignals,
    log: Arc<RefusalLog>,
) -> Stopped {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BUFFER);
    let server = Arc::new(Server {
        builder,
        router,
        limits,
        log: log.clone(),
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = signals.next() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                log.refused("accept", &format!("cannot accept a connection: {error}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            log.refused(
                "connection limit",
                &format!(
                    "a connection was closed unanswered: the connection limit ({}) is reached",
                    limits.max_connections
                ),
            );
            continue;
        };
        tracing::debug!("connection opened");
        tokio::spawn(server.clone().connection(stream, permit, stopping.clone()));
    }
    drop(listener);
    tracing::info!(
        "stopping: no new connections; requests in flight have {} s to finish (a second signal ends them now)",
        limits.shutdown_grace.as_secs_f64()
    );
    let _ = stop.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let stopped = tokio::select! {
        _ = connections.acquire_many(all) => Stopped::Graceful,
        () = tokio::time::sleep(limits.shutdown_grace) => Stopped::GraceExpired {
            cut: limits.max_connections - connections.available_permits(),
        },
        () = signals.next() => Stopped::Interrupted,
    };
    log.flush();
    stopped
}

struct Server {
    builder: http1::Builder,
    router: axum::Router,
    limits: Limits,
    log: Arc<RefusalLog>,
}

impl Server {
    /// One connection, holding its `permit` until it closes.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        mut stopping: watch::Receiver<bool>,
    ) {
        let _permit = permit;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let service = {
            let (server, in_flight, served) = (self.clone(), in_flight.clone(), served.clone());
            hyper::service::service_fn(move |request| {
                served.fetch_add(1, Ordering::Relaxed);
                let (server, guard) = (server.clone(), InFlight::enter(&in_flight));
                async move {
                    let response = server.request(request).await;
                    drop(guard);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                self.closed(result, served.load(Ordering::Relaxed));
                return;
            }
            _ = stopping.wait_for(|stop| *stop) => {}
        }
        // Idle, or still sending a head: nothing to finish, so it closes now.
        if in_flight.load(Ordering::SeqCst) == 0 {
            return;
        }
        connection.as_mut().graceful_shutdown();
        let result = connection.await;
        self.closed(result, served.load(Ordering::Relaxed));
    }

    /// Logs how a connection that `served` requests ended. The header clock also closes idle
    /// keep-alive connections, which is routine: only a connection that never completed a
    /// request is worth a (rate-limited) warning.
    fn closed(&self, result: Result<(), hyper::Error>, served: usize) {
        match result {
            Ok(()) => tracing::debug!("connection closed"),
            Err(error) if error.is_timeout() && served == 0 => self.log.refused(
                "header timeout",
                "a connection was closed: no complete request head in time",
            ),
            Err(error) if error.is_timeout() => {
                tracing::debug!("connection closed: idle or slow after {served} requests");
            }
            Err(error) => tracing::debug!("connection closed: {error}"),
        }
    }

    /// Reads the body whole, within the deadline and the size limit, then hands the request to
    /// the router.
    async fn request(&self, request: Request<Incoming>) -> Response<Body> {
        tracing::debug!("request started");
        let (parts, body) = request.into_parts();
        let max = self.limits.max_body;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > max as u64) {
            return self.refuse(StatusCode::PAYLOAD_TOO_LARGE, "body too large", false);
        }
        let read =
            tokio::time::timeout(self.limits.body_deadline, Limited::new(body, max).collect())
                .await;
        let bytes = match read {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return self.refuse(StatusCode::PAYLOAD_TOO_LARGE, "body too large", true);
            }
            Ok(Err(_)) => return self.refuse(StatusCode::BAD_REQUEST, "body unreadable", true),
            Err(_) => return self.refuse(StatusCode::REQUEST_TIMEOUT, "body too slow", true),
        };
        let request = Request::from_parts(parts, Body::from(bytes));
        match TowerToHyperService::new(self.router.clone())
            .call(request)
            .await
        {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// An answer from the serve loop itself; `close` ends the connection after it (the rest of
    /// the body is not worth waiting for).
    fn refuse(&self, status: StatusCode, reason: &'static str, close: bool) -> Response<Body> {
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                format!("the body is over {} bytes", self.limits.max_body)
            }
            StatusCode::REQUEST_TIMEOUT => format!(
                "the body did not arrive within {} s",
                self.limits.body_deadline.as_secs_f64()
            ),
            _ => "the body could not be read".to_owned(),
        };
        self.log.refused(
            reason,
            &format!("request refused ({}): {message}", status.as_u16()),
        );
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        if close {
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// Counts a connection's requests between their head and their answer.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Refusal log lines, at most one a second per reason: the first is written, later ones within
/// the second are counted and the count is written with the next line of that reason (or when
/// the server stops). The messages are the server's own words, never a request's.
#[derive(Debug, Default)]
pub struct RefusalLog {
    reasons: Mutex<HashMap<&'static str, Quota>>,
}

#[derive(Debug, Clone, Copy)]
struct Quota {
    written_at: Instant,
    suppressed: u64,
}

/// The interval of [`RefusalLog`]: one line per reason per this.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

impl RefusalLog {
    /// Logs `message` (a warning) unless a line of `reason` was written less than a second ago.
    pub fn refused(&self, reason: &'static str, message: &str) {
        if let Some(suppressed) = self.admit(reason, Instant::now()) {
            if suppressed > 0 {
                tracing::warn!("{message} ({suppressed} more like it not logged)");
            } else {
                tracing::warn!("{message}");
            }
        }
    }

    /// Whether a line of `reason` may be written at `now`; `Some(n)`: yes, after `n` left out.
    fn admit(&self, reason: &'static str, now: Instant) -> Option<u64> {
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        match reasons.get_mut(reason) {
            Some(quota) if now.saturating_duration_since(quota.written_at) < LOG_INTERVAL => {
                quota.suppressed += 1;
                None
            }
            Some(quota) => {
                let suppressed = std::mem::take(&mut quota.suppressed);
                quota.written_at = now;
                Some(suppressed)
            }
            None => {
                reasons.insert(
                    reason,
                    Quota {
                        written_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }

    /// Writes the counts still held back.
    pub fn flush(&self) {
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        for (reason, quota) in reasons.iter_mut() {
            let suppressed = std::mem::take(&mut quota.suppressed);
            if suppressed > 0 {
                tracing::warn!("{suppressed} more refusals ({reason}) not logged");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_a_second_per_reason_with_the_count_left_out() {
        let log = RefusalLog::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(log.admit("slow", at(0)), Some(0));
        assert_eq!(log.admit("slow", at(10)), None);
        assert_eq!(log.admit("slow", at(999)), None);
        assert_eq!(
            log.admit("large", at(999)),
            Some(0),
            "each reason has its own quota"
        );
        assert_eq!(log.admit("slow", at(1000)), Some(2));
        assert_eq!(log.admit("slow", at(1500)), None);
        assert_eq!(log.admit("slow", at(2100)), Some(1));
    }

    #[test]
    fn the_hidden_flags_override_only_what_they_set() {
        let args = LimitArgs {
            max_connections: Some(2),
            header_read_timeout_ms: Some(200),
            ..LimitArgs::default()
        };
        let limits = args.apply(Limits::DEFAULT);
        assert_eq!(limits.max_connections, 2);
        assert_eq!(limits.header_read_timeout, Duration::from_millis(200));
        assert_eq!(limits.body_deadline, Limits::DEFAULT.body_deadline);
        assert_eq!(LimitArgs::default().apply(Limits::DEFAULT), Limits::DEFAULT);
    }
}
