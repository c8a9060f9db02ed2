//! Accepting connections: hyper's HTTP/1 server, with the time-outs and caps that keep slow or
//! numerous clients from holding every connection, or every file descriptor, the process has.
//!
//! - A request's headers must arrive within `header_timeout`, counted from when the connection
//!   starts waiting for a request: this bounds a slow header and an idle kept-alive connection.
//! - A request body must make progress every `header_timeout` too.
//! - A connection whose client takes no bytes for `send_timeout` is closed: the response it was
//!   sending is dropped with everything it held (an export's place, its spool).
//! - At most `max_connections` are open, and at most `max_connections_per_ip` from one address
//!   (`admission`): a connection past a cap takes the place of one that has sent no request yet,
//!   or is answered 503 and closed at once, holding nothing.

mod admission;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::http::ClientAddress;
use admission::Admission;
pub use admission::ConnectionCaps;

/// Descriptors kept back from connections for the database, Redis, files and the listener.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The most connections served by default, descriptors allowing.
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// What a connection past a cap is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 0\r\n\r\n";

#[derive(Clone, Debug, PartialEq)]
pub struct ServerSettings {
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    /// `None`: as many as the descriptor limit allows, at most `DEFAULT_MAX_CONNECTIONS`.
    pub max_connections: Option<u32>,
    /// `None`: half of `max_connections`.
    pub max_connections_per_ip: Option<u32>,
    /// Proxies whose `X-Forwarded-For` names the client, for the limits kept per client address.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_timeout: Duration::from_secs(20),
            send_timeout: Duration::from_secs(30),
            max_connections: None,
            max_connections_per_ip: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerSettings {
    /// Raises the process's descriptor limit to its hard limit, and sizes the caps to fit it:
    /// a connection refused with a 503 is better than an `accept` failing for want of one.
    pub fn caps(&self) -> ConnectionCaps {
        let descriptors = raise_descriptor_limit();
        let fitting = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(1);
        let total = self
            .max_connections
            .map_or(DEFAULT_MAX_CONNECTIONS.min(fitting), |n| {
                u64::from(n).min(fitting)
            });
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        let per_ip = self
            .max_connections_per_ip
            .map_or(total.div_ceil(2), |n| n as usize)
            .min(total);
        ConnectionCaps { total, per_ip }
    }
}

/// The soft descriptor limit after raising it as far as allowed.
fn raise_descriptor_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        let raised = Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return hard;
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// Serves `router` on `listener` until `stop` completes, then waits up to `grace` for the open
/// connections' requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    settings: &ServerSettings,
    grace: Duration,
    stop: impl Future<Output = ()>,
) {
    let admission = Arc::new(Admission::new(settings.caps()));
    let caps = admission.caps();
    tracing::info!(
        max_connections = caps.total,
        max_connections_per_ip = caps.per_ip,
        "accepting connections"
    );
    let closings = Closings {
        send_timeouts: metrics::counter!("http_connections_timed_out_total", "waiting_for" => "client_read"),
        header_timeouts: metrics::counter!("http_connections_timed_out_total", "waiting_for" => "request"),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    let graceful = GracefulShutdown::new();
    let trusted_proxies: Arc<[IpNet]> = settings.trusted_proxies.clone().into();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let Some(place) = admission.admit(peer.ip()) else {
            // Never waits: a client that does not read this loses nothing it was owed.
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let seen = place.request_seen();
        let trusted = trusted_proxies.clone();
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                seen.mark();
                let client = ClientAddress::of(peer.ip(), request.headers(), &trusted);
                request.extensions_mut().insert(client);
                request
            })
            .layer(RequestBodyTimeoutLayer::new(settings.header_timeout))
            .service(router.clone());
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(sending_within(stream, settings.send_timeout)),
            TowerToHyperService::new(service),
        ));
        let (closings, send_timeout) = (closings.clone(), settings.send_timeout);
        tokio::spawn(async move {
            tokio::select! {
                closed = connection => if let Err(e) = closed {
                    closings.closed_with(&e, peer, send_timeout);
                },
                // Dropping the connection closes its socket.
                () = place.evicted() => {}
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "requests still running after the grace period were dropped");
        }
    }
}

fn sending_within(stream: TcpStream, send_timeout: Duration) -> std::pin::Pin<Box<TimeoutStream<TcpStream>>> {
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(send_timeout));
    Box::pin(stream)
}

/// A connection error that only concerns that connection leaves the listener as it is; anything
/// else (descriptors run out) waits a moment, so the loop does not spin, and is logged.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept a connection; retrying in 100 ms");
    metrics::counter!("http_accept_errors_total").increment(1);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// What the connections that end in an error are counted as.
#[derive(Clone)]
struct Closings {
    send_timeouts: metrics::Counter,
    header_timeouts: metrics::Counter,
}

impl Closings {
    /// Connections closed for a time-out are expected; one whose client stopped reading a
    /// response is worth a line, since the response was cut short.
    fn closed_with(&self, e: &hyper::Error, peer: SocketAddr, send_timeout: Duration) {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                self.send_timeouts.increment(1);
                tracing::warn!(
                    %peer, ?send_timeout,
                    "closed a connection whose client read nothing: its response was cut short"
                );
                return;
            }
            source = error.source();
        }
        if e.is_timeout() {
            self.header_timeouts.increment(1);
        }
        tracing::debug!(%peer, error = %e, "connection closed with an error");
    }
}
