//! An in-memory, bounded pipe of byte chunks (one record line per chunk) between the export
//! thread and the import. Drained chunks are zeroed: the secrets they held do not linger in
//! freed memory.

pub(crate) fn pipe(capacity: usize) -> (PipeWriter, PipeReader) {
    let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
    (
        PipeWriter(sender),
        PipeReader {
            receiver,
            chunk: Vec::new(),
            read: 0,
        },
    )
}

pub(crate) struct PipeWriter(std::sync::mpsc::SyncSender<Vec<u8>>);

impl std::io::Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Blocks while the pipe is full; fails once the import dropped its end.
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) struct PipeReader {
    receiver: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    read: usize,
}

impl std::io::Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.read == self.chunk.len() {
            self.chunk.fill(0);
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.read = 0;
                }
                // Every writer is gone: the export ended.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.read);
        buf[..n].copy_from_slice(&self.chunk[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.chunk.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipe_carries_every_byte_in_order_and_ends_when_the_writer_goes() {
        use std::io::{Read as _, Write as _};
        let (mut writer, mut reader) = pipe(2);
        let producer = std::thread::spawn(move || {
            for i in 0..100 {
                writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
            }
        });
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        producer.join().unwrap();
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        // The reader gone, a write fails instead of blocking forever.
        let (mut writer, reader) = pipe(1);
        drop(reader);
        let error = writer.write_all(b"x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
