//! Which connections are let in: at most `total` open, at most `per_ip` from one client address.
//!
//! A connection past a cap takes the place of the oldest connection that has not yet sent a
//! whole request head (a slow header, or a socket opened and left), from the same address when
//! that address is at its cap, else from the address holding the most. A client that floods the
//! server with idle or slow sockets so churns its own, while connections that have sent a
//! request are never closed for another. Only when every place is held by such a connection is
//! the newcomer refused.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// The caps in force.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionCaps {
    pub total: usize,
    pub per_ip: usize,
}

pub struct Admission {
    caps: ConnectionCaps,
    open: Mutex<Open>,
    gauge: metrics::Gauge,
    refused_total: metrics::Counter,
    refused_per_ip: metrics::Counter,
    evicted: metrics::Counter,
}

/// Invariant: `total` is the sum of the lengths of `by_ip`'s lists, no list is empty, and a
/// connection is in its address's list exactly while it holds a place (until it is dropped or
/// evicted), in the order admitted.
#[derive(Default)]
struct Open {
    total: usize,
    next_id: u64,
    by_ip: HashMap<IpAddr, VecDeque<Arc<Connection>>>,
}

struct Connection {
    id: u64,
    /// Set once the connection has sent a whole request head. Relaxed is enough: it is only a
    /// hint for choosing whom to evict, and a request whose head arrives just as its connection
    /// is chosen is the one case it misses.
    requested: AtomicBool,
    evicted: CancellationToken,
}

/// A connection's place, given back when it is dropped.
pub struct Place {
    admission: Arc<Admission>,
    ip: IpAddr,
    connection: Arc<Connection>,
}

/// Marks its connection as having sent a request.
#[derive(Clone)]
pub struct RequestSeen(Arc<Connection>);

impl RequestSeen {
    pub fn mark(&self) {
        self.0.requested.store(true, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(caps: ConnectionCaps) -> Self {
        Admission {
            caps,
            open: Mutex::default(),
            gauge: metrics::gauge!("http_connections_open"),
            refused_total: metrics::counter!("http_connections_refused_total", "cap" => "total"),
            refused_per_ip: metrics::counter!("http_connections_refused_total", "cap" => "per_ip"),
            evicted: metrics::counter!("http_connections_evicted_total"),
        }
    }

    pub fn caps(&self) -> ConnectionCaps {
        self.caps
    }

    /// A place for a connection from `ip`, or `None` when it must be refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        let mut open = self.lock();
        let from_ip = open.by_ip.get(&ip).map_or(0, VecDeque::len);
        if from_ip >= self.caps.per_ip && !self.evict_from(&mut open, ip) {
            self.refused_per_ip.increment(1);
            return None;
        }
        if open.total >= self.caps.total {
            let busiest = open
                .by_ip
                .iter()
                .filter(|(_, list)| list.iter().any(|c| !c.requested.load(Ordering::Relaxed)))
                .max_by_key(|(_, list)| list.len())
                .map(|(ip, _)| *ip);
            if !busiest.is_some_and(|busiest| self.evict_from(&mut open, busiest)) {
                self.refused_total.increment(1);
                return None;
            }
        }
        let connection = Arc::new(Connection {
            id: open.next_id,
            requested: AtomicBool::new(false),
            evicted: CancellationToken::new(),
        });
        open.next_id += 1;
        open.total += 1;
        open.by_ip.entry(ip).or_default().push_back(connection.clone());
        self.gauge.increment(1.0);
        Some(Place {
            admission: self.clone(),
            ip,
            connection,
        })
    }

    /// Evicts `ip`'s oldest connection that has sent no request, if it has one.
    fn evict_from(&self, open: &mut Open, ip: IpAddr) -> bool {
        let Some(list) = open.by_ip.get_mut(&ip) else {
            return false;
        };
        let Some(at) = list.iter().position(|c| !c.requested.load(Ordering::Relaxed)) else {
            return false;
        };
        if let Some(connection) = list.remove(at) {
            connection.evicted.cancel();
        }
        if list.is_empty() {
            open.by_ip.remove(&ip);
        }
        open.total -= 1;
        self.gauge.decrement(1.0);
        self.evicted.increment(1);
        true
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Place {
    pub fn request_seen(&self) -> RequestSeen {
        RequestSeen(self.connection.clone())
    }

    /// Completes when another connection has taken this one's place: it must close.
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.connection.evicted.cancelled()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let admission = &self.admission;
        let mut open = admission.lock();
        // Checked under the lock that evicting takes: an evicted place was given back then.
        if self.connection.evicted.is_cancelled() {
            return;
        }
        if let Some(list) = open.by_ip.get_mut(&self.ip) {
            list.retain(|c| c.id != self.connection.id);
            if list.is_empty() {
                open.by_ip.remove(&self.ip);
            }
        }
        open.total -= 1;
        admission.gauge.decrement(1.0);
    }
}
