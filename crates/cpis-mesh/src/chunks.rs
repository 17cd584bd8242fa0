//! Splitting bodies into MESH chunks and reading `Mex-Chunk-Range` (`"{n}:{total}"`).

use crate::error::MeshError;

/// Splits `body` into consecutive pieces of at most `max_chunk_bytes` (treated as at least 1).
/// Always at least one piece: an empty body is one empty chunk.
pub fn split(body: &[u8], max_chunk_bytes: usize) -> Vec<&[u8]> {
    if body.is_empty() {
        return vec![body];
    }
    body.chunks(max_chunk_bytes.max(1)).collect()
}

/// Parses a `Mex-Chunk-Range` value `"n:m"` into `(n, m)`, requiring `1 <= n <= m`.
pub fn parse_range(value: &str) -> Result<(u32, u32), MeshError> {
    let bad = || MeshError::Protocol(format!("bad Mex-Chunk-Range {value:?}"));
    let (n, m) = value.trim().split_once(':').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let m: u32 = m.trim().parse().map_err(|_| bad())?;
    if n == 0 || n > m {
        return Err(bad());
    }
    Ok((n, m))
}

/// Formats a `Mex-Chunk-Range` value.
pub fn format_range(chunk: u32, total: u32) -> String {
    format!("{chunk}:{total}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_edges() {
        assert_eq!(split(b"", 10), vec![&b""[..]]);
        assert_eq!(split(b"abc", 10), vec![&b"abc"[..]]);
        assert_eq!(split(b"abcdef", 3), vec![&b"abc"[..], &b"def"[..]]);
        assert_eq!(
            split(b"abcdefg", 3),
            vec![&b"abc"[..], &b"def"[..], &b"g"[..]]
        );
        assert_eq!(split(b"ab", 0).len(), 2, "0 is treated as 1");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("1:1").unwrap(), (1, 1));
        assert_eq!(parse_range(" 2:5 ").unwrap(), (2, 5));
        for bad in ["", "1", "0:1", "3:2", "a:b", "1:2:3", "-1:2"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        assert_eq!(format_range(3, 7), "3:7");
    }

    proptest! {
        #[test]
        fn split_then_join_is_identity(body in proptest::collection::vec(any::<u8>(), 0..2000), max in 1usize..300) {
            let parts = split(&body, max);
            prop_assert!(!parts.is_empty());
            prop_assert!(parts.iter().all(|p| p.len() <= max));
            // Only the last piece may be short, and none is empty unless the body is.
            for p in &parts[..parts.len() - 1] {
                prop_assert_eq!(p.len(), max);
            }
            prop_assert_eq!(parts.len(), body.len().div_ceil(max).max(1));
            prop_assert_eq!(parts.concat(), body);
        }

        #[test]
        fn range_round_trips(n in 1u32..10_000, extra in 0u32..10_000) {
            let total = n + extra;
            prop_assert_eq!(parse_range(&format_range(n, total)).unwrap(), (n, total));
        }
    }
}
