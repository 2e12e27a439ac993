//! Guest stdout/stderr and host log lines, collected into one shared, line-oriented buffer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The host-wide log: complete lines only, optionally echoed to the real stderr.
#[derive(Clone)]
pub(crate) struct LogSink {
    buf: Arc<Mutex<String>>,
    echo: bool,
}

impl LogSink {
    pub(crate) fn new(echo: bool) -> LogSink {
        LogSink {
            buf: Arc::new(Mutex::new(String::new())),
            echo,
        }
    }

    pub(crate) fn contents(&self) -> String {
        self.buf.lock().unwrap().clone()
    }

    /// Appends one line (a trailing newline is added).
    pub(crate) fn line(&self, line: &str) {
        let mut text = line.trim_end_matches('\n').to_string();
        text.push('\n');
        self.append(&text);
    }

    /// A host log line, marked so it can be told apart from guest output.
    pub(crate) fn host(&self, line: &str) {
        self.line(&format!("[host] {line}"));
    }

    fn append(&self, text: &str) {
        if self.echo {
            eprint!("{text}");
        }
        self.buf.lock().unwrap().push_str(text);
    }

    /// A fresh stdout/stderr for one instance, collected here. With `spin_files`, each write
    /// also goes where `spin up` sends it ([`SpinStdio`]).
    pub(crate) fn guest_stream(&self, spin_files: Option<SpinStdio>) -> GuestOutput {
        GuestOutput(Arc::new(LineBuffer {
            sink: self.clone(),
            pending: Mutex::new(Vec::new()),
            spin_files: spin_files.map(Mutex::new),
        }))
    }
}

/// One stream of one instance as Spin 3.6.3's `spin up` writes it (spin
/// `crates/trigger/src/cli/stdio.rs`): with a log directory (`<state dir>/logs` by default) it
/// opens `<component>_<stdout|stderr>.txt` for append for every instance and clones the handle,
/// writes each guest write to the file, and, since `spin up` follows every component unless told
/// otherwise, to its own stderr as well. A host that echoes does that write through its
/// [`LogSink`]; one that does not writes to `/dev/null` instead: the same write, nowhere to read.
pub(crate) struct SpinStdio {
    file: std::fs::File,
    _clone: std::fs::File,
    follow: Option<Arc<std::fs::File>>,
}

/// Where a followed write goes when the host does not echo.
pub(crate) fn follow_target(echo: bool) -> io::Result<Option<Arc<std::fs::File>>> {
    if echo {
        return Ok(None);
    }
    Ok(Some(Arc::new(
        std::fs::File::options().write(true).open("/dev/null")?,
    )))
}

impl SpinStdio {
    pub(crate) fn open(
        log_dir: &std::path::Path,
        component_id: &str,
        stream: &str,
        follow: Option<Arc<std::fs::File>>,
    ) -> io::Result<SpinStdio> {
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{component_id}_{stream}.txt")))?;
        let clone = file.try_clone()?;
        Ok(SpinStdio {
            file,
            _clone: clone,
            follow,
        })
    }

    fn write(&mut self, data: &[u8]) {
        use std::io::Write;
        let _ = self.file.write(data);
        if let Some(null) = &self.follow {
            let _ = (&**null).write_all(data);
        }
    }
}

/// Holds a partial line until its newline arrives; the rest is flushed when the instance is gone.
struct LineBuffer {
    sink: LogSink,
    pending: Mutex<Vec<u8>>,
    spin_files: Option<Mutex<SpinStdio>>,
}

impl LineBuffer {
    fn write(&self, data: &[u8]) {
        if let Some(files) = &self.spin_files {
            files.lock().unwrap().write(data);
        }
        let complete = {
            let mut pending = self.pending.lock().unwrap();
            pending.extend_from_slice(data);
            match pending.iter().rposition(|b| *b == b'\n') {
                Some(i) => pending.drain(..=i).collect::<Vec<u8>>(),
                None => return,
            }
        };
        self.sink.append(&String::from_utf8_lossy(&complete));
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let rest = std::mem::take(&mut *self.pending.lock().unwrap());
        if !rest.is_empty() {
            self.sink.line(&String::from_utf8_lossy(&rest));
        }
    }
}

/// stdout/stderr of one instance (both may share one).
#[derive(Clone)]
pub(crate) struct GuestOutput(Arc<LineBuffer>);

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(1024 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_whole() {
        let sink = LogSink::new(false);
        {
            let out = sink.guest_stream(None);
            out.0.write(b"hel");
            assert_eq!(sink.contents(), "");
            out.0.write(b"lo\nwor");
            assert_eq!(sink.contents(), "hello\n");
            sink.host("between");
        }
        assert_eq!(sink.contents(), "hello\n[host] between\nwor\n");
    }
}
