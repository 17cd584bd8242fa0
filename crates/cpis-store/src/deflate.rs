//! Raw deflate at [`LEVEL`], and inflate, with one compressor and one decompressor per thread,
//! reset between uses.
//!
//! A new compressor allocates and zeroes its tables and buffers before its first byte (about
//! 300 KB with miniz, the backend before): made anew for each lookup log frame and each
//! notification payload kept at rest, that zeroing was the log thread's largest single cost and
//! a tenth of the lookup writer's (issue #16, perf at 32 connections). What is deflated here is a frame or one payload, a few kilobytes.
//!
//! The backend is zlib-rs (workspace `Cargo.toml`). Measured on the project's machine (release,
//! 200 notification payloads of ~860 bytes from the lookup benchmark, one at a time and in
//! groups of 64 as a frame holds them): miniz at the fast level, the backend before, took 18–31 µs
//! a payload for 513 bytes, and 4.0 µs a payload in a frame for 120; zlib-rs at level 2 takes
//! 14 µs for 498 bytes, and 3.3 µs in a frame for 98. Its level 1 is faster still (4.9 µs) but
//! uses fixed Huffman codes: 632 bytes a payload, more pages written per lookup.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// The compression level: zlib-ng's fast strategy with Huffman codes fitted to the data.
const LEVEL: u32 = 2;

thread_local! {
    static COMPRESS: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(LEVEL), false));
    static DECOMPRESS: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// `bytes` deflated (raw deflate, no header), as `flate2::write::DeflateEncoder` at [`LEVEL`]
/// writes them.
pub(crate) fn deflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESS.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
        loop {
            let read = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let status = c
                .compress_vec(
                    &bytes[read.min(bytes.len())..],
                    &mut out,
                    FlushCompress::Finish,
                )
                .map_err(std::io::Error::other)?;
            if status == Status::StreamEnd {
                return Ok(out);
            }
            out.reserve(out.capacity().max(256));
        }
    })
}

/// `bytes` inflated (raw deflate); an error for anything that is not one whole deflate stream.
pub(crate) fn inflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    DECOMPRESS.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(3).max(256));
        loop {
            let read = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
            let before = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(
                    &bytes[read.min(bytes.len())..],
                    &mut out,
                    FlushDecompress::None,
                )
                .map_err(std::io::Error::other)?;
            match status {
                Status::StreamEnd => return Ok(out),
                _ if out.len() == out.capacity() => out.reserve(out.capacity()),
                // Room to write and nothing more read or written: the stream is cut short.
                _ if (d.total_in(), d.total_out()) == before => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "a deflate stream cut short",
                    ))
                }
                _ => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// What is deflated here inflates with a fresh decoder and the other way round, however
    /// many times one thread's compressor is reused; a stream cut short is an error.
    #[test]
    fn a_reused_compressor_writes_what_a_new_one_reads() {
        for n in [0usize, 1, 100, 5_000, 200_000] {
            let text: Vec<u8> = (0..n)
                .map(|i| b"cpis lookup log "[i % 16] ^ (i / 7) as u8)
                .collect();
            let ours = deflate(&text).unwrap();
            let mut back = Vec::new();
            flate2::read::DeflateDecoder::new(&ours[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, text, "{n} bytes");
            let mut theirs = flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
            theirs.write_all(&text).unwrap();
            let theirs = theirs.finish().unwrap();
            assert_eq!(inflate(&theirs).unwrap(), text, "{n} bytes");
            if ours.len() > 2 {
                assert!(
                    inflate(&ours[..ours.len() / 2]).is_err(),
                    "{n} bytes cut short"
                );
            }
        }
    }

    /// Payloads an earlier cpis kept at rest were deflated by miniz (flate2's former default
    /// backend) at the fast level: they still inflate. The bytes are miniz's output for `text`.
    #[test]
    fn what_the_former_backend_deflated_still_inflates() {
        let text = br#"{"id":"01a2","kind":"access","child":{"nhs_number":"9434765919","plans":[{"plan_type":"CPP"},{"plan_type":"CPP"}]},"setting":{"ods":"RDEMO01","ods2":"RDEMO01"}}"#;
        let miniz = "6d8cb10ac2301445ffe5ce199a5a95645547b1b88a9498061baccfe28b8384fcbbaf9b43\
                     b77b0e879b117b5854dad55078449ac9791f9885fd104711193470479fe72dbc2536cdaad9\
                     6ed6461b49a6d111c35e32e6d5a5ef1424d9b52d8a5a70d7a2c021a54877d88c57cf529ff7\
                     87e3a9d2f2265cff89527e";
        let bytes: Vec<u8> = (0..miniz.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&miniz[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(inflate(&bytes).unwrap(), text);
        // And the level used now deflates it differently (the test reads a stream it did not
        // write), to about the same size.
        let ours = deflate(text).unwrap();
        assert_ne!(ours, bytes);
        assert!(
            ours.len() <= bytes.len() + 8,
            "{} vs {}",
            ours.len(),
            bytes.len()
        );
    }
}
