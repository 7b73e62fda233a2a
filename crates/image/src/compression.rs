//! Layer compression, detected from the first bytes of the blob (media
//! types lie: docker-archive layers are plain tars whatever the manifest
//! says, and some registries label zstd layers as gzip).

use std::io::{self, BufRead, BufReader, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps `reader` in the decompressor its first bytes call for.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(1 << 20, reader);
    let head = buffered.fill_buf()?;
    let kind = Compression::detect(head);
    let out: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((kind, out))
}

/// A reader that fails once more than `limit` bytes came through: stops a
/// decompression bomb before it fills the disk.
pub struct LimitedReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> LimitedReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        LimitedReader { inner, left: limit }
    }
}

/// The error kind [`LimitedReader`] returns, recognized by callers.
pub const LIMIT_EXCEEDED: &str = "uncompressed size limit exceeded";

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(self.left.saturating_add(1).min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::other(LIMIT_EXCEEDED));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_and_decompresses_by_content() {
        let data = b"hello layers".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&data[..], 1).unwrap();
        for (blob, kind) in [
            (&data[..], Compression::None),
            (&gz[..], Compression::Gzip),
            (&zst[..], Compression::Zstd),
        ] {
            let (k, mut r) = decompress(blob).unwrap();
            assert_eq!(k, kind);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn limited_reader_stops_at_the_limit() {
        let data = vec![0u8; 1000];
        let mut out = Vec::new();
        assert!(LimitedReader::new(&data[..], 1000)
            .read_to_end(&mut out)
            .is_ok());
        out.clear();
        let err = LimitedReader::new(&data[..], 999)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.to_string(), LIMIT_EXCEEDED);
    }
}
