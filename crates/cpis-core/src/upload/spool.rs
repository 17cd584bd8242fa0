//! Spooling: an upload body is written to a private temporary file while it is hashed, so it can
//! be read twice without being held in memory and identified by its content.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use tempfile::NamedTempFile;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("upload is larger than the {limit} byte limit")]
    TooLarge { limit: u64 },
    #[error("could not spool the upload: {0}")]
    Io(#[from] io::Error),
}

/// Receives an upload body chunk by chunk.
pub struct Spooler {
    file: NamedTempFile,
    hasher: Sha256,
    len: u64,
    limit: u64,
}

impl Spooler {
    pub fn new(dir: Option<&Path>, limit: u64) -> Result<Self, SpoolError> {
        let file = match dir {
            Some(d) => NamedTempFile::new_in(d)?,
            None => NamedTempFile::new()?,
        };
        Ok(Spooler {
            file,
            hasher: Sha256::new(),
            len: 0,
            limit,
        })
    }

    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), SpoolError> {
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            return Err(SpoolError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<SpooledFile, SpoolError> {
        self.file.flush()?;
        Ok(SpooledFile {
            file: self.file,
            sha256: hex::encode(self.hasher.finalize()),
            len: self.len,
        })
    }
}

/// A complete upload body on disk with its SHA-256. Deleted when dropped.
pub struct SpooledFile {
    file: NamedTempFile,
    sha256: String,
    len: u64,
}

impl SpooledFile {
    /// Copies a reader (a local file, the demo data…) into a spool.
    pub fn from_reader(mut reader: impl Read, limit: u64) -> Result<Self, SpoolError> {
        let mut spool = Spooler::new(None, limit)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            spool.write_chunk(&buf[..n])?;
        }
        spool.finish()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SpoolError> {
        Self::from_reader(bytes, u64::MAX)
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A fresh reader from the start of the file.
    pub fn open(&self) -> io::Result<BufReader<File>> {
        let mut f = self.file.reopen()?;
        f.seek(SeekFrom::Start(0))?;
        Ok(BufReader::with_capacity(256 * 1024, f))
    }

    /// The whole content (for storing a held upload).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.len as usize);
        self.open()?.read_to_end(&mut v)?;
        Ok(v)
    }
}
