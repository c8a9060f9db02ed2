//! A cached value: the finished response body and the headers that go with it, as stored in L1
//! and, encoded, in Redis. Redis holds a body of some size in zstd, the coding clients prefer:
//! the replica that fills an entry compresses it once, and every replica that reads it sends
//! those bytes to zstd clients as they are.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::coding::Coding;
use crate::domain::coverage::PageCoverage;

/// Bodies above this are kept in zstd in Redis: no larger than the smallest answer compressed
/// for clients (`COMPRESSION_MIN_BYTES` defaults to 1 KiB), so that such answers share the coding.
const COMPRESS_ABOVE: usize = 512;
/// Format 1 held bodies in lz4: a replica of that version rejects these, and this one those.
const FORMAT: u8 = 2;
const ZSTD: u8 = 1;
/// A stored body's length beyond which its bytes are taken as corrupt rather than allocated.
const MAX_STORED_BODY: usize = 256 << 20;

#[derive(Debug, Default)]
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
    /// What the answer shows, for an answer kept through the changes that leave it as it was
    /// (see `changes`); `None`: only a new generation makes it stale.
    pub coverage: Option<Arc<PageCoverage>>,
    /// The organization's change number its computation began after.
    pub number: u64,
    /// Answered from the organization's register (see `register`), not by the database.
    pub from_register: bool,
    /// The change number through which it was last found current (`Relaxed`: a hint, whose
    /// older value only costs checking some changes again).
    pub checked: AtomicU64,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.content_type,
            &self.etag,
            &self.content_disposition,
            &self.body,
            self.ttl,
            &self.coverage,
            self.number,
        ) == (
            &other.content_type,
            &other.etag,
            &other.content_disposition,
            &other.body,
            other.ttl,
            &other.coverage,
            other.number,
        )
    }
}

impl Entry {
    /// Numbered as computed after change `head`: a register's answer keeps its own number, which
    /// may be lower (it reflects the changes this replica had applied).
    pub fn numbered(self, head: u64) -> Entry {
        let number = match self.from_register {
            true => self.number.min(head),
            false => head,
        };
        Entry { number, ..self }
    }

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

    /// The change number through which the entry is known current.
    pub fn checked_through(&self) -> u64 {
        self.checked.load(Relaxed).max(self.number)
    }

    /// Records that the entry is current through change `number`.
    pub fn checked(&self, number: u64) {
        self.checked.fetch_max(number, Relaxed);
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
            metrics::counter!("cache_codings_made_total", "coding" => coding.as_str()).increment(1);
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

    /// `format, flags, content type, etag, disposition` with u16 length prefixes, the change
    /// number, the coverage as JSON with a u32 length prefix (empty for none), then the body as it
    /// is, or (flag `ZSTD`) its length as a u32 and its zstd coding, made here if no request has
    /// made it yet and kept in the entry.
    pub fn encode(&self) -> Vec<u8> {
        let zstd = match self.body.len() > COMPRESS_ABOVE {
            true => self.encoded(Coding::Zstd).0,
            false => None,
        };
        let stored = zstd.as_ref().unwrap_or(&self.body);
        let mut out = BytesMut::with_capacity(stored.len() + 128);
        out.put_u8(FORMAT);
        out.put_u8(if zstd.is_some() { ZSTD } else { 0 });
        for text in [
            self.content_type.as_str(),
            self.etag.as_str(),
            self.content_disposition.as_deref().unwrap_or(""),
        ] {
            let text = &text.as_bytes()[..text.len().min(usize::from(u16::MAX))];
            out.put_u16(text.len() as u16);
            out.put_slice(text);
        }
        out.put_u64(self.number);
        let coverage = match &self.coverage {
            Some(coverage) => serde_json::to_vec(coverage).unwrap_or_default(),
            None => Vec::new(),
        };
        out.put_u32(u32::try_from(coverage.len()).unwrap_or(0));
        out.put_slice(&coverage);
        if zstd.is_some() {
            out.put_u32(u32::try_from(self.body.len()).unwrap_or(u32::MAX));
        }
        out.put_slice(stored);
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
        if buf.remaining() < 12 {
            return None;
        }
        let number = buf.get_u64();
        let coverage_len = usize::try_from(buf.get_u32()).ok()?;
        if buf.remaining() < coverage_len {
            return None;
        }
        let coverage = match coverage_len {
            0 => None,
            len => Some(Arc::new(serde_json::from_slice(&buf[..len]).ok()?)),
        };
        buf.advance(coverage_len);
        let entry = Entry {
            content_type,
            etag,
            content_disposition: (!disposition.is_empty()).then_some(disposition),
            ttl,
            coverage,
            number,
            checked: AtomicU64::new(number),
            ..Entry::default()
        };
        let entry = match flags & ZSTD != 0 {
            false => Entry {
                body: Bytes::copy_from_slice(buf),
                ..entry
            },
            true => {
                if buf.remaining() < 4 {
                    return None;
                }
                let len = usize::try_from(buf.get_u32()).ok()?;
                if len > MAX_STORED_BODY {
                    return None;
                }
                let body = zstd::bulk::decompress(buf, len).ok()?;
                if body.len() != len {
                    return None;
                }
                let entry = Entry {
                    body: Bytes::from(body),
                    ..entry
                };
                let _ = entry.encoded[Coding::Zstd.index()].set(Some(Bytes::copy_from_slice(buf)));
                entry
            }
        };
        Some(entry.fresh_from_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_encoding_compressed_or_not() {
        for body in [Bytes::from_static(b"{}"), Bytes::from(vec![b'x'; 10_000])] {
            let compressed = body.len() > COMPRESS_ABOVE;
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
            // A compressed body arrives with its zstd coding, sent as it is.
            let coded = decoded.encoded[Coding::Zstd.index()].get().cloned().flatten();
            assert_eq!(coded.is_some(), compressed);
            if let Some(coded) = coded {
                assert_eq!(zstd::stream::decode_all(&coded[..]).unwrap(), entry.body);
                assert!(encoded.len() < 200, "{} bytes in Redis", encoded.len());
            }
        }
        assert!(Entry::decode(&[9, 0], Duration::ZERO).is_none());
        assert!(Entry::decode(&[FORMAT, 0, 0, 200], Duration::ZERO).is_none());
        // A length that the stored coding does not hold is corruption, not an allocation.
        let big = Entry {
            body: Bytes::from(vec![b'y'; 5_000]),
            ..Entry::default()
        };
        let mut bytes = big.encode();
        let length_at = 2 + 3 * 2 + 8 + 4; // format, flags, three empty texts, number, no coverage
        bytes[length_at..length_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Entry::decode(&bytes, Duration::ZERO).is_none());
        bytes[length_at..length_at + 4].copy_from_slice(&4_999u32.to_be_bytes());
        assert!(Entry::decode(&bytes, Duration::ZERO).is_none());
    }
}
