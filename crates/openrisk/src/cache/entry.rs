//! A cached value: the finished response body and the headers that go with it, as stored in L1
//! and, encoded, in Redis.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::coding::Coding;

/// Bodies above this are compressed in Redis.
const COMPRESS_ABOVE: usize = 4096;
const FORMAT: u8 = 1;
const COMPRESSED: u8 = 1;

#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// Whose it is (not stored: Redis keys carry it), for L1's shares.
    pub org: uuid::Uuid,
    pub content_type: String,
    pub etag: String,
    pub content_disposition: Option<String>,
    pub body: Bytes,
    /// How long the entry is fresh (not stored: Redis keeps its own expiry).
    pub ttl: Duration,
    /// Past this the entry is stale: still served for a short grace period while it is
    /// recomputed in the background.
    pub fresh_until: Option<Instant>,
    /// A typed value's decoded form, kept next to its bytes in L1 so that hits do not decode.
    pub decoded: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// The body in each content coding a client asked for (`Coding::index` order), made once.
    pub encoded: [OnceLock<Option<Bytes>>; 3],
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.content_type,
            &self.etag,
            &self.content_disposition,
            &self.body,
            self.ttl,
        ) == (
            &other.content_type,
            &other.etag,
            &other.content_disposition,
            &other.body,
            other.ttl,
        )
    }
}

impl Entry {
    /// A typed value's entry: its JSON, with the value kept decoded so that L1 hits do not decode.
    pub fn of_value<T: Serialize + Send + Sync + 'static>(value: T, ttl: Duration) -> Entry {
        let body = match serde_json::to_vec(&value) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                // Served from L1 as it is; Redis gets no bytes a reader could take for the value.
                tracing::error!(error = %e, "cache: a value does not serialize");
                Bytes::new()
            }
        };
        let entry = Entry {
            content_type: "application/json".into(),
            body,
            ttl,
            ..Entry::default()
        };
        let _ = entry.decoded.set(Arc::new(value));
        entry
    }

    /// The typed value: as kept decoded, else decoded from the body once (an entry from L2) and
    /// kept. `None` when the body does not hold a `T`.
    pub fn value<T: DeserializeOwned + Clone + Send + Sync + 'static>(&self) -> Option<T> {
        if let Some(value) = self.decoded.get().and_then(|v| v.downcast_ref::<T>()) {
            return Some(value.clone());
        }
        let value: T = serde_json::from_slice(&self.body).ok()?;
        let _ = self.decoded.set(Arc::new(value.clone()));
        Some(value)
    }

    /// Marks the entry fresh for its TTL from now.
    pub fn fresh_from_now(mut self) -> Self {
        self.fresh_until = Some(Instant::now() + self.ttl);
        self
    }

    pub fn is_stale(&self) -> bool {
        self.fresh_until.is_some_and(|until| Instant::now() > until)
    }

    /// The body in `coding` (`None` if it could not be encoded), and whether this call made it.
    pub fn encoded(&self, coding: Coding) -> (Option<Bytes>, bool) {
        let slot = &self.encoded[coding.index()];
        if let Some(encoded) = slot.get() {
            return (encoded.clone(), false);
        }
        let mut made = false;
        let encoded = slot.get_or_init(|| {
            made = true;
            coding.compress(&self.body)
        });
        (encoded.clone(), made)
    }

    /// Bytes it occupies in L1, roughly.
    pub fn weight(&self) -> u32 {
        let encoded: usize = self
            .encoded
            .iter()
            .filter_map(|slot| slot.get().and_then(Option::as_ref).map(Bytes::len))
            .sum();
        let size = self.body.len()
            + encoded
            + self.content_type.len()
            + self.etag.len()
            + self.content_disposition.as_ref().map_or(0, String::len)
            + 96;
        u32::try_from(size).unwrap_or(u32::MAX)
    }

    /// `format, flags, content type, etag, disposition, body` with u16 length prefixes.
    pub fn encode(&self) -> Vec<u8> {
        let compress = self.body.len() > COMPRESS_ABOVE;
        let mut out = BytesMut::with_capacity(self.body.len() + 128);
        out.put_u8(FORMAT);
        out.put_u8(if compress { COMPRESSED } else { 0 });
        for text in [
            self.content_type.as_str(),
            self.etag.as_str(),
            self.content_disposition.as_deref().unwrap_or(""),
        ] {
            let text = &text.as_bytes()[..text.len().min(usize::from(u16::MAX))];
            out.put_u16(text.len() as u16);
            out.put_slice(text);
        }
        if compress {
            out.put_slice(&lz4_flex::compress_prepend_size(&self.body));
        } else {
            out.put_slice(&self.body);
        }
        out.to_vec()
    }

    /// `None` for bytes this version did not write (another format, corruption).
    pub fn decode(bytes: &[u8], ttl: Duration) -> Option<Entry> {
        let mut buf = bytes;
        if buf.remaining() < 2 || buf.get_u8() != FORMAT {
            return None;
        }
        let flags = buf.get_u8();
        let mut text = || -> Option<String> {
            if buf.remaining() < 2 {
                return None;
            }
            let len = usize::from(buf.get_u16());
            if buf.remaining() < len {
                return None;
            }
            let value = String::from_utf8(buf[..len].to_vec()).ok()?;
            buf.advance(len);
            Some(value)
        };
        let content_type = text()?;
        let etag = text()?;
        let disposition = text()?;
        let body = if flags & COMPRESSED != 0 {
            Bytes::from(lz4_flex::decompress_size_prepended(buf).ok()?)
        } else {
            Bytes::copy_from_slice(buf)
        };
        Some(
            Entry {
                content_type,
                etag,
                content_disposition: (!disposition.is_empty()).then_some(disposition),
                body,
                ttl,
                ..Entry::default()
            }
            .fresh_from_now(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_encoding_compressed_or_not() {
        for body in [Bytes::from_static(b"{}"), Bytes::from(vec![b'x'; 10_000])] {
            let entry = Entry {
                content_type: "application/json".into(),
                etag: "\"3-abc\"".into(),
                content_disposition: None,
                body,
                ttl: Duration::from_secs(60),
                ..Entry::default()
            };
            let encoded = entry.encode();
            let decoded = Entry::decode(&encoded, entry.ttl).unwrap();
            assert_eq!(decoded, entry);
            assert!(!decoded.is_stale());
        }
        assert!(Entry::decode(&[9, 0], Duration::ZERO).is_none());
        assert!(Entry::decode(&[FORMAT, 0, 0, 200], Duration::ZERO).is_none());
    }
}
