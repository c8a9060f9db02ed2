//! A response body made ahead of its client: chunks go to a temporary file as fast as they are
//! made, and are sent from it as fast as the client reads. What makes them (an export's query)
//! never waits for a slow client, so a client that reads slowly, or stops, holds a file and not a
//! database connection; and a body that cannot be finished ends in an error, which aborts the
//! response, never in a well-formed document missing its end.

use std::fmt::Display;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, stream};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Sent to the client at most this much at a time.
const SEND_CHUNK: usize = 256 * 1024;

/// What the writer tells the reader.
enum Progress {
    /// This many more bytes are in the file.
    Written(usize),
    /// The body is complete.
    Done,
    Failed(String),
}

/// `chunks`, spooled. `what` names the body in the log.
pub fn spooled<E: Display + Send + 'static>(
    what: &'static str,
    chunks: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> io::Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static> {
    let file = tempfile::tempfile()?;
    let reader = Arc::new(file.try_clone()?);
    let (progress, updates) = mpsc::unbounded_channel();
    tokio::spawn(write_ahead(
        what,
        tokio::fs::File::from_std(file),
        chunks,
        progress,
    ));
    Ok(stream::unfold(
        Reader {
            updates,
            file: reader,
            offset: 0,
            over: false,
            what,
        },
        |mut reader| async move {
            let next = reader.next().await?;
            Some((next, reader))
        },
    )
    // Layers above may poll once more after the end.
    .fuse())
}

async fn write_ahead<E: Display + Send>(
    what: &'static str,
    mut file: tokio::fs::File,
    chunks: impl Stream<Item = Result<Bytes, E>>,
    progress: mpsc::UnboundedSender<Progress>,
) {
    let mut chunks = std::pin::pin!(chunks);
    let mut written = 0;
    while let Some(chunk) = chunks.next().await {
        let result = match chunk {
            // Flushed: tokio's file writes in the background, and the reader reads what it is told.
            Ok(bytes) => match file.write_all(&bytes).await {
                Ok(()) => file.flush().await.map(|()| bytes.len()),
                Err(e) => Err(e),
            },
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        let update = match result {
            Ok(len) => {
                written += len;
                Progress::Written(len)
            }
            Err(e) => {
                tracing::error!(body = what, written, error = %e, "cannot finish the response body: it is aborted");
                let _ = progress.send(Progress::Failed(e.to_string()));
                return;
            }
        };
        // The client has gone: stop making what nobody will read.
        if progress.send(update).is_err() {
            return;
        }
    }
    let _ = progress.send(Progress::Done);
}

struct Reader {
    updates: mpsc::UnboundedReceiver<Progress>,
    file: Arc<std::fs::File>,
    offset: u64,
    over: bool,
    what: &'static str,
}

impl Reader {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.over {
            return None;
        }
        let mut ready = 0;
        let mut end = None;
        // What has been written since the last read, up to a chunk's worth.
        while ready < SEND_CHUNK {
            let update = if ready == 0 {
                self.updates.recv().await
            } else {
                match self.updates.try_recv() {
                    Ok(update) => Some(update),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match update {
                Some(Progress::Written(len)) => ready += len,
                Some(Progress::Done) => {
                    end = Some(Ok(()));
                    break;
                }
                Some(Progress::Failed(e)) => {
                    end = Some(Err(io::Error::other(e)));
                    break;
                }
                None => {
                    end = Some(Err(io::Error::other("the body's writer stopped before the end")));
                    break;
                }
            }
        }
        if let Some(end) = end {
            self.over = true;
            if let Err(e) = end {
                tracing::warn!(body = self.what, sent = self.offset, error = %e, "response aborted");
                return Some(Err(e));
            }
        }
        if ready == 0 {
            return None;
        }
        let (file, offset) = (self.file.clone(), self.offset);
        self.offset += ready as u64;
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = BytesMut::zeroed(ready);
            file.read_exact_at(&mut buffer, offset).map(|()| buffer.freeze())
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        if read.is_err() {
            self.over = true;
        }
        Some(read)
    }
}
