//! Reads an upload file's rows on a thread of its own, ahead of the engine (issue #16). Reading a
//! row — CSV, UTF-8, the domain's `parse_row` — then runs on the machine's other core while the
//! engine checks and writes the rows before it, instead of in the gaps between the database's
//! statements: on PostgreSQL the engine's thread mostly waits for the database, on SQLite it
//! writes the pages itself.
//!
//! The rows, their order and a file error's place among them are exactly the reader's; at most
//! [`AHEAD`] rows wait in memory (about a PostgreSQL write batch, `sql::tx::FLUSH_AT`, so a
//! batch's rows are read while the one before it is written).

use super::csv_reader::{FileError, ReadRow, UploadReader};
use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Rows handed over at a time (one channel message).
const CHUNK: usize = 512;
/// Rows read ahead of the engine at most.
const AHEAD: usize = 12 * 1024;

/// A row and the file's byte position after it (for progress).
type Chunk = Vec<(ReadRow, u64)>;

enum Message {
    Rows(Chunk),
    Failed(FileError),
}

/// An [`UploadReader`] running on its own thread: the same rows, `AHEAD` rows ahead.
pub struct ReadAhead {
    /// `None` once dropped, so the reading thread's next send fails and it ends.
    rx: Option<Receiver<Message>>,
    chunk: std::vec::IntoIter<(ReadRow, u64)>,
    bytes_read: u64,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading `reader` (its header already checked) on a new thread.
    pub fn spawn<R: Read + Send + 'static>(reader: UploadReader<R>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(AHEAD / CHUNK);
        let thread = std::thread::Builder::new()
            .name("cpis-upload-read".into())
            .spawn(move || read(reader, &tx))?;
        Ok(ReadAhead {
            rx: Some(rx),
            chunk: Vec::new().into_iter(),
            bytes_read: 0,
            thread: Some(thread),
        })
    }

    /// Bytes of the file consumed up to the last row returned (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next data row, `Ok(None)` at the end: as [`UploadReader::next_row`].
    pub fn next_row(&mut self) -> Result<Option<ReadRow>, FileError> {
        loop {
            if let Some((row, end)) = self.chunk.next() {
                self.bytes_read = end;
                return Ok(Some(row));
            }
            let Some(rx) = &self.rx else {
                return Ok(None);
            };
            match rx.recv() {
                Ok(Message::Rows(rows)) => self.chunk = rows.into_iter(),
                Ok(Message::Failed(e)) => return Err(e),
                // The reader sent everything and ended, or panicked: the panic is the engine's.
                Err(_) => {
                    self.rx = None;
                    if let Some(Err(panic)) = self.thread.take().map(JoinHandle::join) {
                        std::panic::resume_unwind(panic);
                    }
                    return Ok(None);
                }
            }
        }
    }
}

impl Drop for ReadAhead {
    /// Stops the reading thread (its next send fails) and waits for it, so no thread outlives
    /// the pass that started it.
    fn drop(&mut self) {
        self.rx = None;
        if let Some(thread) = self.thread.take() {
            // A panic while stopping is not worth a second one.
            let _ = thread.join();
        }
    }
}

/// The reading thread: sends the rows a chunk at a time, then the file error if there is one.
fn read<R: Read>(mut reader: UploadReader<R>, tx: &SyncSender<Message>) {
    let mut rows = Vec::with_capacity(CHUNK);
    loop {
        match reader.next_row() {
            Ok(Some(row)) => {
                rows.push((row, reader.bytes_read()));
                if rows.len() == CHUNK {
                    let full = std::mem::replace(&mut rows, Vec::with_capacity(CHUNK));
                    if tx.send(Message::Rows(full)).is_err() {
                        return;
                    }
                }
            }
            Ok(None) => {
                if !rows.is_empty() {
                    let _ = tx.send(Message::Rows(rows));
                }
                return;
            }
            Err(e) => {
                if !rows.is_empty() && tx.send(Message::Rows(rows)).is_err() {
                    return;
                }
                let _ = tx.send(Message::Failed(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn rows(n: usize) -> String {
        let mut body = cpis_domain::upload::HEADER.join(",") + "\n";
        for _ in 0..n {
            body.push_str("upsert,9434765919,,,,2015-01-01,CPP,2025-01-01,,,\n");
        }
        body
    }

    fn drain(mut r: ReadAhead) -> (Vec<u64>, Option<FileError>, u64) {
        let mut seen = Vec::new();
        loop {
            match r.next_row() {
                Ok(Some(row)) => seen.push(row.row),
                Ok(None) => return (seen, None, r.bytes_read()),
                Err(e) => return (seen, Some(e), r.bytes_read()),
            }
        }
    }

    #[test]
    fn every_row_arrives_in_order_across_chunks() {
        // More rows than the channel holds, and not a whole number of chunks.
        let n = AHEAD * 2 + CHUNK / 2 + 3;
        let body = rows(n);
        let reader = UploadReader::new(std::io::Cursor::new(body.clone().into_bytes())).unwrap();
        let (seen, error, bytes) = drain(ReadAhead::spawn(reader).unwrap());
        assert_eq!(seen, (1..=n as u64).collect::<Vec<_>>());
        assert_eq!(error, None);
        assert_eq!(bytes, body.len() as u64);
    }

    #[test]
    fn a_file_error_comes_after_the_rows_before_it() {
        let mut body = rows(CHUNK + 5).into_bytes();
        body.extend_from_slice(b"upsert,9434765919,,\xff,,2015-01-01,CPP,2025-01-01,,,\n");
        body.extend_from_slice(rows(3).split_once('\n').unwrap().1.as_bytes());
        let reader = UploadReader::new(std::io::Cursor::new(body)).unwrap();
        let (seen, error, _) = drain(ReadAhead::spawn(reader).unwrap());
        assert_eq!(seen.len(), CHUNK + 5);
        let line = CHUNK as u64 + 5 + 2;
        assert_eq!(error, Some(FileError::NotUtf8 { line }));
    }

    #[test]
    fn dropping_it_early_stops_the_thread() {
        let reader = UploadReader::new(std::io::Cursor::new(rows(AHEAD * 4).into_bytes())).unwrap();
        let mut r = ReadAhead::spawn(reader).unwrap();
        assert_eq!(r.next_row().unwrap().unwrap().row, 1);
        // Blocked on a full channel until the receiver goes; drop joins it (a hang fails here).
        drop(r);
    }
}
