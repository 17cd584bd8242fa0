//! Raw deflate and inflate, with one compressor per use and one decompressor per thread,
//! reset between uses: lookup log frames at [`LEVEL`], notification payloads kept at rest at
//! [`PAYLOAD_LEVEL`] against a preset dictionary ([`deflate_payload`], [`inflate_payload`]).
//!
//! A new compressor allocates and zeroes its tables and buffers before its first byte (about
//! 300 KB with miniz, the backend before): made anew for each lookup log frame and each
//! notification payload kept at rest, that zeroing was the log thread's largest single cost and
//! a tenth of the lookup writer's (issue #16, perf at 32 connections). What is deflated here is
//! a frame or one payload, a few kilobytes.
//!
//! The backend is zlib-rs (workspace `Cargo.toml`). Measured on the project's machine (release,
//! 200 notification payloads of ~860 bytes from the lookup benchmark, one at a time and in
//! groups of 64 as a frame holds them): miniz at the fast level, the backend before, took 18–31 µs
//! a payload for 513 bytes, and 4.0 µs a payload in a frame for 120; zlib-rs at level 2 takes
//! 14 µs for 498 bytes, and 3.3 µs in a frame for 98. Its level 1 is faster still (4.9 µs) but
//! uses fixed Huffman codes: 632 bytes a payload alone. A payload alone has little to match
//! against; with a dictionary of the keys and words every payload repeats, level 1 takes 3.8 µs
//! for 314 bytes (level 2: 11 µs for 239), so payloads at rest use that.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// The compression level of lookup log frames: zlib-ng's quick strategy. A frame holds a few
/// dozen entries that repeat each other, so it compresses well even with fixed Huffman codes:
/// on frames from the lookup benchmark at 32 connections level 1 took the lookup writer 3–4 µs
/// less a lookup than level 2, for 15–35 more bytes written a lookup (2.8 KB in all;
/// BENCHMARKS.md, 2026-12-05).
const LEVEL: u32 = 1;
/// The compression level of a payload at rest: zlib-ng's quick strategy, fixed Huffman codes.
const PAYLOAD_LEVEL: u32 = 1;

/// The first byte of a payload deflated against [`PAYLOAD_DICTIONARY`]. As the first byte of a
/// raw deflate stream it would name block type 3, which does not exist, so no plain stream (the
/// payloads an earlier cpis kept) starts with it.
const PAYLOAD_TAG: u8 = 0x06;

/// What notification payloads repeat: their keys, kinds and common words, the most frequent
/// last (deflate reaches them with shorter distances). Payloads at rest depend on these exact
/// bytes: a different dictionary needs a new [`PAYLOAD_TAG`], with this one kept for reading.
const PAYLOAD_DICTIONARY: &[u8] = br#"birth-reminder expected_delivery_date UCPP urgent-treatment-centre ambulance maternity LAC ended "sensitive":true {"access":{"contact":null,"id":"","organisation":{"name":" Hospital Emergency Department","ods_code":"","phone":""},"role":"Clinician","setting_type":"emergency-department","time":"T:Z","user_id":"","user_name":""},"attendance":{"organisations_30_days":,"seen_30_days":,"seen_6_months":},"child":{"date_of_birth":"","family_name":"","given_name":"","local_id":"","nhs_number":"","plans":[{"end_date":null,"expected_delivery_date":null,"plan_type":"CPP","start_date":"","state":"active"}],"sensitive":false},"created_at":"T:Z","id":"","kind":"access","la":"","pattern":"frequent-attendance","subject":"child"}"#;

thread_local! {
    static COMPRESS: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(LEVEL), false));
    static COMPRESS_PAYLOAD: RefCell<Compress> =
        RefCell::new(Compress::new(Compression::new(PAYLOAD_LEVEL), false));
    static DECOMPRESS: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// `bytes` deflated (raw deflate, no header), as `flate2::write::DeflateEncoder` at [`LEVEL`]
/// writes them.
pub(crate) fn deflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESS.with(|c| deflate_with(&mut c.borrow_mut(), None, Vec::new(), bytes))
}

/// `bytes` inflated (raw deflate); an error for anything that is not one whole deflate stream.
pub(crate) fn inflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    inflate_with(None, bytes)
}

/// A notification payload as SQLite keeps it: [`PAYLOAD_TAG`], then the payload deflated at
/// [`PAYLOAD_LEVEL`] against [`PAYLOAD_DICTIONARY`].
pub(crate) fn deflate_payload(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESS_PAYLOAD.with(|c| {
        deflate_with(
            &mut c.borrow_mut(),
            Some(PAYLOAD_DICTIONARY),
            vec![PAYLOAD_TAG],
            bytes,
        )
    })
}

/// A payload [`deflate_payload`] wrote, or one deflated plainly (earlier versions), inflated.
pub fn inflate_payload(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    match bytes.split_first() {
        Some((&PAYLOAD_TAG, deflated)) => inflate_with(Some(PAYLOAD_DICTIONARY), deflated),
        _ => inflate(bytes),
    }
}

/// Appends `bytes` deflated to `out` with compressor `c`, reset and given `dictionary` first.
fn deflate_with(
    c: &mut Compress,
    dictionary: Option<&[u8]>,
    mut out: Vec<u8>,
    bytes: &[u8],
) -> std::io::Result<Vec<u8>> {
    c.reset();
    if let Some(dictionary) = dictionary {
        c.set_dictionary(dictionary)
            .map_err(std::io::Error::other)?;
    }
    out.reserve(bytes.len() / 2 + 64);
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
}

/// `bytes` inflated with this thread's decompressor, reset and given `dictionary` first.
fn inflate_with(dictionary: Option<&[u8]>, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    DECOMPRESS.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        if let Some(dictionary) = dictionary {
            d.set_dictionary(dictionary)
                .map_err(std::io::Error::other)?;
        }
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

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Payloads round-trip through the dictionary format, whatever their content, and every
    /// one starts with the tag; the ones an earlier cpis deflated plainly still read.
    #[test]
    fn payloads_round_trip_and_plain_ones_still_read() {
        let access = br#"{"access":{"contact":null,"id":"01a2","role":"Clinician"},"kind":"access","la":"E08000035","subject":"child"}"#;
        let unlike: Vec<u8> = (0..5_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for text in [&b""[..], &access[..], &unlike[..], PAYLOAD_DICTIONARY] {
            let at_rest = deflate_payload(text).unwrap();
            assert_eq!(at_rest[0], PAYLOAD_TAG);
            assert_eq!(inflate_payload(&at_rest).unwrap(), text);
            assert_eq!(inflate_payload(&deflate(text).unwrap()).unwrap(), text);
            if at_rest.len() > 3 {
                assert!(inflate_payload(&at_rest[..at_rest.len() / 2]).is_err());
            }
        }
        // The dictionary is what makes a payload small: about half the plain stream's bytes.
        assert!(deflate_payload(access).unwrap().len() * 3 < deflate(access).unwrap().len() * 2);
    }

    /// No plain deflate stream starts with the tag (block type 3 does not exist), so an earlier
    /// payload is never read against the dictionary.
    #[test]
    fn the_tag_cannot_start_a_plain_stream() {
        assert!(inflate(&[PAYLOAD_TAG, 0, 0, 0]).is_err());
        assert_eq!((PAYLOAD_TAG >> 1) & 3, 3);
    }

    /// Bytes this version kept at rest for a payload: they read the same for as long as the
    /// tag is used, so the dictionary cannot change under stored payloads unnoticed.
    #[test]
    fn a_payload_kept_at_rest_reads_back() {
        let text = br#"{"access":{"contact":null,"id":"01a2","organisation":{"name":"Northfield General Hospital Emergency Department","ods_code":"RDEMO01","phone":"0113 496 0001"},"role":"Clinician","setting_type":"emergency-department"},"kind":"access","la":"E08000035","subject":"child"}"#;
        let kept = hex(
            "062394be0c0c138d406905298240810d0d42bffca2928cb4ccd49c1405f7d4bcd4a2c41c\
             52525d908babafbf8121c8d9d0c467606868ac606269a660606060084a2664a6c45a1c21\
             e46a6061606060606c8a2d2800",
        );
        assert_eq!(inflate_payload(&kept).unwrap(), text);
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
        let bytes = hex(miniz);
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
