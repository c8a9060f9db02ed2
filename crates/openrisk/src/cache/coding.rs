//! Content codings of cached bodies. An entry keeps each coding a client asked for, made once, so
//! that a hit sends stored bytes and never compresses again. The levels are chosen by what they
//! cost on the service's own answers (`benches/codings.rs`, figures in docs/BENCHMARKS.md): each
//! is made on the request path, by the first request that needs it, so none may cost more than a
//! fraction of a millisecond on a page of fifty risks.

use std::io::Write;

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// In the server's order of preference when a client accepts several equally. zstd first: at
    /// the levels below it is the smallest and by far the fastest, and it is the coding an entry
    /// is kept in in Redis, so every replica has it without compressing.
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];

    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The level each coding runs at: zstd 3 and gzip 6 are within a few per cent of their
    /// level 9 in size at a fifth to a half of the time; brotli above quality 4 costs 15 to 30
    /// times as much for a tenth less.
    pub fn level(self) -> u32 {
        match self {
            Coding::Zstd => 3,
            Coding::Br => 3,
            Coding::Gzip => 6,
        }
    }

    /// `body` in this coding; `None` if the encoder failed.
    pub fn compress(self, body: &[u8]) -> Option<Bytes> {
        self.compress_at(body, self.level())
    }

    /// `body` in this coding at `level` (brotli's quality, zstd's or gzip's level).
    pub fn compress_at(self, body: &[u8], level: u32) -> Option<Bytes> {
        let mut out = Vec::with_capacity(body.len() / 4);
        match self {
            Coding::Br => {
                // A window no larger than the body: brotli sets up tables for the whole window,
                // which costs more than compressing a small body.
                let params = brotli::enc::BrotliEncoderParams {
                    quality: i32::try_from(level).ok()?,
                    lgwin: window_bits(body.len()),
                    size_hint: body.len(),
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
            }
            Coding::Zstd => out = zstd::bulk::compress(body, i32::try_from(level).ok()?).ok()?,
            Coding::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
                encoder.write_all(body).ok()?;
                out = encoder.finish().ok()?;
            }
        }
        Some(Bytes::from(out))
    }
}

/// The smallest brotli window (10 to 24 bits) that holds `len` bytes.
fn window_bits(len: usize) -> i32 {
    let bits = usize::BITS - len.max(1).saturating_sub(1).leading_zeros();
    bits.clamp(10, 24) as i32
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn each_coding_round_trips() {
        let body = br#"{"items":[{"title":"Supplier outage","score":12}]}"#.repeat(50);
        for coding in Coding::ALL {
            let encoded = coding.compress(&body).unwrap();
            assert!(
                encoded.len() < body.len() / 5,
                "{coding:?}: {} bytes",
                encoded.len()
            );
            let mut decoded = Vec::new();
            match coding {
                Coding::Br => {
                    brotli::BrotliDecompress(&mut &encoded[..], &mut decoded).unwrap();
                }
                Coding::Zstd => decoded = zstd::stream::decode_all(&encoded[..]).unwrap(),
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&encoded[..])
                        .read_to_end(&mut decoded)
                        .unwrap();
                }
            }
            assert_eq!(decoded, body, "{coding:?}");
        }
    }
}
