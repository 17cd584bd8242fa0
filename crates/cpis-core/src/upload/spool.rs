//! Spooling: an upload body is written to a private temporary file while it is hashed, so it can
//! be read twice without being held in memory and identified by its content.
//!
//! Spool files hold personal data (NHS numbers, names). They live in a cpis-owned directory
//! ([`SpoolDir`]: mode 0700, beside the database), are deleted when dropped (every exit path that
//! unwinds), and files left by a killed process are swept when the next one starts.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tempfile::NamedTempFile;

/// The process's spool directory, once [`SpoolDir::install`] has set it.
static INSTALLED: OnceLock<PathBuf> = OnceLock::new();

/// A spool file's name starts with this and the process id that owns it.
const PREFIX: &str = "cpis-spool-";

/// The directory a cpis process spools uploads into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolDir(PathBuf);

impl SpoolDir {
    /// The default for a database URL: `<file>.spool` beside a SQLite file; for PostgreSQL (or
    /// a URL that names no file) a `cpis-spool` folder in the system temporary directory.
    pub fn for_database(url: &str) -> SpoolDir {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .or_else(|| (!url.contains("://")).then_some(url))
            .filter(|p| !p.is_empty());
        match path {
            Some(p) => SpoolDir(PathBuf::from(format!("{p}.spool"))),
            None => SpoolDir(std::env::temp_dir().join("cpis-spool")),
        }
    }

    pub fn new(path: impl Into<PathBuf>) -> SpoolDir {
        SpoolDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Creates the directory (mode 0700), removes spool files whose owning process is gone, and
    /// makes it the directory every spool of this process uses. Returns how many files it swept.
    pub fn install(&self) -> io::Result<usize> {
        std::fs::create_dir_all(&self.0)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700))?;
        }
        let swept = self.sweep()?;
        // A second install in one process (tests) keeps the first directory.
        let _ = INSTALLED.set(self.0.clone());
        Ok(swept)
    }

    /// Removes the spool files of processes that no longer run.
    pub fn sweep(&self) -> io::Result<usize> {
        let mut swept = 0;
        for entry in std::fs::read_dir(&self.0)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !process_alive(pid) {
                std::fs::remove_file(entry.path())?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// The spool files in the directory now (for checks and tests).
    pub fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.0)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                out.push(entry.path());
            }
        }
        Ok(out)
    }
}

fn process_alive(pid: u32) -> bool {
    // Linux (the supported platform): a running process has /proc/PID. Elsewhere, keep the file.
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

fn spool_file(dir: Option<&Path>) -> io::Result<NamedTempFile> {
    let prefix = format!("{PREFIX}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    match dir.or_else(|| INSTALLED.get().map(PathBuf::as_path)) {
        Some(d) => builder.tempfile_in(d),
        None => builder.tempfile(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("upload is larger than the {limit} byte limit")]
    TooLarge { limit: u64 },
    #[error("the body is not valid gzip data: {0}")]
    BadGzip(String),
    /// The spool's file system is full (or over quota): nothing was kept, and the same body sent
    /// again later can succeed. Callers answer "temporarily unavailable" (503 / CPF05).
    #[error("no room to spool the upload: {0}")]
    NoSpace(io::Error),
    #[error("could not spool the upload: {0}")]
    Io(io::Error),
}

impl From<io::Error> for SpoolError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => SpoolError::NoSpace(e),
            _ => SpoolError::Io(e),
        }
    }
}

impl SpoolError {
    /// Reads back an error from writing through a decoder into a [`Spooler`]: the limit (as the
    /// spooler reported it), bad compressed data, or a real I/O failure.
    pub fn from_write(e: io::Error, limit: u64) -> SpoolError {
        match e.kind() {
            io::ErrorKind::FileTooLarge => SpoolError::TooLarge { limit },
            io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::UnexpectedEof => SpoolError::BadGzip(e.to_string()),
            _ => SpoolError::from(e),
        }
    }
}

/// Receives an upload body chunk by chunk.
pub struct Spooler {
    file: NamedTempFile,
    hasher: Sha256,
    len: u64,
    limit: u64,
}

impl Spooler {
    /// A spool in `dir`, else in the installed [`SpoolDir`], else the system temporary directory.
    pub fn new(dir: Option<&Path>, limit: u64) -> Result<Self, SpoolError> {
        let file = spool_file(dir)?;
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

/// A spooler is a writer too (a decoder can write into it); passing the limit is
/// `ErrorKind::FileTooLarge`, which [`SpoolError::from_write`] reads back.
impl Write for Spooler {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.write_chunk(buf) {
            Ok(()) => Ok(buf.len()),
            Err(SpoolError::TooLarge { limit }) => Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("upload is larger than the {limit} byte limit"),
            )),
            Err(SpoolError::Io(e) | SpoolError::NoSpace(e)) => Err(e),
            Err(e @ SpoolError::BadGzip(_)) => Err(io::Error::other(e.to_string())),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_files_are_named_by_owner_and_leftovers_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let spools = SpoolDir::new(dir.path().join("db.spool"));
        std::fs::create_dir_all(spools.path()).unwrap();
        // A file left by a process that no longer runs (pid 0 never names a user process), one of
        // this process, and an unrelated file.
        std::fs::write(spools.path().join(format!("{PREFIX}0-abc")), b"9434765919").unwrap();
        let mine = Spooler::new(Some(spools.path()), 100).unwrap();
        std::fs::write(spools.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(spools.files().unwrap().len(), 2);
        assert_eq!(spools.sweep().unwrap(), 1);
        assert_eq!(spools.files().unwrap().len(), 1, "the live spool is kept");
        drop(mine);
        assert!(
            spools.files().unwrap().is_empty(),
            "dropped spools are deleted"
        );
        assert!(spools.path().join("notes.txt").exists());
    }

    #[test]
    fn a_full_disk_is_no_space_not_an_internal_error() {
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            assert!(matches!(
                SpoolError::from(io::Error::from(kind)),
                SpoolError::NoSpace(_)
            ));
            assert!(matches!(
                SpoolError::from_write(io::Error::from(kind), 10),
                SpoolError::NoSpace(_)
            ));
        }
        assert!(matches!(
            SpoolError::from(io::Error::from(io::ErrorKind::PermissionDenied)),
            SpoolError::Io(_)
        ));
    }

    #[test]
    fn the_default_directory_is_beside_the_sqlite_file() {
        assert_eq!(
            SpoolDir::for_database("sqlite:///var/lib/cpis/cpis.db").path(),
            Path::new("/var/lib/cpis/cpis.db.spool")
        );
        assert_eq!(
            SpoolDir::for_database("cpis.db").path(),
            Path::new("cpis.db.spool")
        );
        assert_eq!(
            SpoolDir::for_database("postgres://db/cpis").path(),
            std::env::temp_dir().join("cpis-spool")
        );
    }
}
