//! Content codings of cached bodies. An entry keeps each coding a client asked for, made once, so
//! that a hit sends stored bytes and never compresses again.

use std::io::Write;

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// In the server's order of preference when a client accepts several equally: the smallest
    /// output first, since a cached body is compressed once and sent many times.
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

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

    /// `body` in this coding, at settings that favour size over speed (made once per entry);
    /// `None` if the encoder failed.
    pub fn compress(self, body: &[u8]) -> Option<Bytes> {
        let mut out = Vec::with_capacity(body.len() / 4);
        match self {
            Coding::Br => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 9,
                    lgwin: 22,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
            }
            Coding::Zstd => out = zstd::bulk::compress(body, 9).ok()?,
            Coding::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(9));
                encoder.write_all(body).ok()?;
                out = encoder.finish().ok()?;
            }
        }
        Some(Bytes::from(out))
    }
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
