//! Response compression: `br`, `zstd` or `gzip`, as the client's `Accept-Encoding` prefers, for
//! text answers (JSON, CSV, HTML) of at least `COMPRESSION_MIN_BYTES`. Cached answers are sent in
//! the coding stored with their entry (see `cache::Coding`); everything else, streamed exports
//! included, is compressed on the way out.

use axum::http::{HeaderMap, HeaderValue, header};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::cache::Coding;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionSettings {
    pub enabled: bool,
    /// Smaller answers are sent as they are: their headers would outweigh the saving.
    pub min_bytes: usize,
}

impl Default for CompressionSettings {
    fn default() -> Self {
        CompressionSettings {
            enabled: true,
            min_bytes: 1024,
        }
    }
}

impl CompressionSettings {
    /// The coding a request with `headers` would have answers in, if they are worth it.
    pub fn wanted(&self, headers: &HeaderMap) -> Option<Coding> {
        self.enabled.then(|| negotiate(headers)).flatten()
    }

    /// Whether an answer of `len` bytes of `content_type` is worth compressing.
    pub fn worth(&self, content_type: &str, len: usize) -> bool {
        len >= self.min_bytes && is_text(content_type)
    }

    /// The layer that compresses what the cache did not: uncached and streamed answers. (Its
    /// answers' bodies are made plain `Body`s again by the router.)
    pub fn layer(&self) -> CompressionLayer<impl Predicate + use<>> {
        let min_bytes = u64::try_from(self.min_bytes).unwrap_or(u64::MAX);
        CompressionLayer::new()
            // Made for one response, so fast settings.
            .quality(CompressionLevel::Fastest)
            .compress_when(
                Enabled(self.enabled)
                    .and(SizeAbove::new(min_bytes.saturating_sub(1)))
                    .and(TextBody),
            )
    }
}

/// Only text compresses well; spreadsheets and PDFs are compressed already.
fn is_text(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/") || essence.ends_with("json") || essence.ends_with("+xml")
}

#[derive(Clone, Copy)]
struct Enabled(bool);

impl Predicate for Enabled {
    fn should_compress<B: axum::body::HttpBody>(&self, _: &axum::http::Response<B>) -> bool {
        self.0
    }
}

#[derive(Clone, Copy)]
struct TextBody;

impl Predicate for TextBody {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_text)
    }
}

/// The coding the client prefers among those offered: highest `q` first, then the server's order
/// (`Coding::ALL`). `*` stands for every coding the client does not name; `q=0` refuses.
pub fn negotiate(headers: &HeaderMap) -> Option<Coding> {
    let mut named: Vec<(&str, f32)> = Vec::new();
    for value in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if !token.is_empty() {
                named.push((token, q));
            }
        }
    }
    let q_of = |coding: Coding| {
        let names: &[&str] = match coding {
            Coding::Gzip => &["gzip", "x-gzip"],
            _ => &[coding.as_str()],
        };
        named
            .iter()
            .find(|(token, _)| names.iter().any(|n| token.eq_ignore_ascii_case(n)))
            .or_else(|| named.iter().find(|(token, _)| *token == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    let mut best: Option<(Coding, f32)> = None;
    for coding in Coding::ALL {
        let q = q_of(coding);
        if q > 0.0 && best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// `Vary` for any answer whose bytes depend on the caller and on the codings it accepts.
pub const VARY: HeaderValue = HeaderValue::from_static("Authorization, Accept-Encoding");

/// `Vary` for a public answer: the same for every caller, in the codings each accepts.
pub const VARY_PUBLIC: HeaderValue = HeaderValue::from_static("Accept-Encoding");

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_client_preference_wins_then_the_server_order() {
        assert_eq!(negotiate(&accept("gzip, deflate, br, zstd")), Some(Coding::Zstd));
        assert_eq!(negotiate(&accept("gzip, deflate, br")), Some(Coding::Br));
        assert_eq!(negotiate(&accept("gzip;q=1, br;q=0.5")), Some(Coding::Gzip));
        assert_eq!(negotiate(&accept("zstd, gzip;q=0.9")), Some(Coding::Zstd));
        assert_eq!(negotiate(&accept("*")), Some(Coding::Zstd));
        assert_eq!(negotiate(&accept("zstd;q=0, *;q=0.1")), Some(Coding::Br));
        assert_eq!(negotiate(&accept("X-GZIP")), Some(Coding::Gzip));
        assert_eq!(negotiate(&accept("identity")), None);
        assert_eq!(negotiate(&accept("gzip;q=0")), None);
        assert_eq!(negotiate(&HeaderMap::new()), None);
    }

    #[test]
    fn only_text_of_some_size_is_compressed() {
        let settings = CompressionSettings::default();
        assert_eq!(settings.wanted(&accept("gzip")), Some(Coding::Gzip));
        assert!(settings.worth("application/json", 4096));
        assert!(settings.worth("text/csv; charset=utf-8", 4096));
        assert!(settings.worth("application/problem+json", 4096));
        assert!(!settings.worth("application/json", 100));
        assert!(!settings.worth("application/pdf", 4096));
        let off = CompressionSettings {
            enabled: false,
            ..settings
        };
        assert_eq!(off.wanted(&accept("gzip")), None);
    }
}
