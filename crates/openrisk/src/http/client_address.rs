//! The address a request comes from, for limits kept per client: the connection's peer, or, when
//! the peer is a trusted proxy, the address that proxy says it forwarded for.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Where a request comes from; in the request's extensions when it came over a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// `peer`, unless it is one of `trusted_proxies`: then the rightmost address of
    /// `X-Forwarded-For` that is not a trusted proxy (each proxy appends the address it saw, so
    /// only the entries added by trusted ones can be believed). A header that cannot be read
    /// leaves the peer.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> ClientAddress {
        let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return ClientAddress(peer);
        }
        let mut forwarded = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else {
                return ClientAddress(peer);
            };
            for entry in value.split(',') {
                match entry.trim().parse::<IpAddr>() {
                    Ok(ip) => forwarded.push(ip),
                    Err(_) => return ClientAddress(peer),
                }
            }
        }
        ClientAddress(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !trusted(ip))
                .unwrap_or(peer),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|net| net.parse().unwrap()).collect();
        ClientAddress::of(peer.parse().unwrap(), &headers, &trusted)
            .0
            .to_string()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        // No proxy trusted: the header is the client's own claim.
        assert_eq!(of("203.0.113.9", &["198.51.100.1"], &[]), "203.0.113.9");
        // The balancer appended the client it saw; what the client claimed before it is ignored.
        let balancer = ["10.0.0.0/8"];
        assert_eq!(
            of("10.0.0.5", &["192.0.2.66, 198.51.100.7"], &balancer),
            "198.51.100.7"
        );
        assert_eq!(
            of("10.0.0.5", &["192.0.2.66", "198.51.100.7, 10.0.0.9"], &balancer),
            "198.51.100.7"
        );
        // Nothing forwarded, or something unreadable: the peer.
        assert_eq!(of("10.0.0.5", &[], &balancer), "10.0.0.5");
        assert_eq!(of("10.0.0.5", &["not-an-address"], &balancer), "10.0.0.5");
    }
}
