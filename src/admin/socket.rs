//! The admin socket: a Unix socket at `<store.path>/admin.sock` through which a running
//! gateway takes `gatehouse user …` commands (sled lets only one process open the store),
//! `gatehouse reload` and `gatehouse store export`, and the client side the CLI uses to
//! reach it.
//!
//! Threat model: whoever can connect can administer users, trigger a reload and read
//! an export (password hashes, the generated secret). The socket is created with mode
//! 0600 inside the store directory (mode 0700), so only the gateway's own user (and root)
//! can reach it. Each connection carries one request line of at most 64 KiB (`user import`,
//! which carries its whole file: at most [`MAX_IMPORT_BYTES`]), read within 10 s; the reply
//! is one line (for `export`: one line, then the export file, which is
//! why its client reads past the 1 MiB cap of the others). The socket file is removed on
//! shutdown, and a stale one left by a killed gateway is replaced at start (the store
//! lock proves no other gateway serves this store).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Reply, Request};

/// The socket's file name inside the store directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Largest request line accepted.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// Largest `import` request line accepted (it carries the import file): 32 MiB.
pub const MAX_IMPORT_BYTES: u64 = 32 * 1024 * 1024;

const READ_TIMEOUT: Duration = Duration::from_secs(10);

const TOO_LONG: &str =
    "the admin request must be one line of at most 64 KiB (an import: at most 32 MiB)";

/// Where the admin socket of the store at `store_path` lives.
pub fn socket_path(store_path: &Path) -> PathBuf {
    store_path.join(SOCKET_NAME)
}

#[cfg(unix)]
pub use unix::{bind, connect, export, serve, Listener};

/// Binds the admin socket of the store at `store_path` and serves it until `shutdown`.
/// Call after the store is open (its lock proves the socket is ours to replace).
#[cfg(unix)]
pub fn start(
    store_path: &Path,
    target: super::protocol::AdminTarget,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = bind(&socket_path(store_path))?;
    Ok(tokio::spawn(serve(
        listener,
        std::sync::Arc::new(target),
        shutdown,
    )))
}

/// Without Unix sockets there is no admin channel: `user` commands need a stopped gateway.
#[cfg(not(unix))]
pub fn start(
    _store_path: &Path,
    _target: super::protocol::AdminTarget,
    _shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    Ok(tokio::spawn(async {}))
}

#[cfg(unix)]
mod unix {
    use super::*;
    use std::io::{BufRead, BufReader, Read as _, Write as _};
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::UnixListener;
    use tokio::sync::watch;

    use crate::admin::protocol::{execute, export_file, AdminTarget};

    /// A bound admin socket; the file is removed when this is dropped.
    pub struct Listener {
        listener: UnixListener,
        path: PathBuf,
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Binds the admin socket at `path` with mode 0600, replacing a stale socket file.
    /// Call only while holding the store (its lock proves no other gateway uses `path`).
    pub fn bind(path: &Path) -> Result<Listener, String> {
        if let Ok(metadata) = std::fs::symlink_metadata(path) {
            if !metadata.file_type().is_socket() {
                return Err(format!(
                    "{} exists and is not a socket; remove it so the admin socket can be created",
                    path.display()
                ));
            }
            std::fs::remove_file(path).map_err(|err| {
                format!(
                    "cannot remove the stale admin socket {}: {err}",
                    path.display()
                )
            })?;
        }
        let listener = UnixListener::bind(path).map_err(|err| {
            format!(
                "cannot listen on the admin socket {} (is the store path under ~100 bytes?): {err}",
                path.display()
            )
        })?;
        let listener = Listener {
            listener,
            path: path.to_path_buf(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| format!("cannot restrict {} to 0600: {err}", path.display()))?;
        Ok(listener)
    }

    /// Serves admin requests until `shutdown` turns true; removes the socket file then.
    pub async fn serve(
        listener: Listener,
        target: Arc<AdminTarget>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let stream = tokio::select! {
                accepted = listener.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(error = %err, "admin socket accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let target = target.clone();
            tokio::spawn(async move {
                if let Err(err) = handle(stream, &target).await {
                    tracing::warn!(error = %err, "admin connection failed");
                }
            });
        }
        drop(listener);
    }

    async fn handle(stream: tokio::net::UnixStream, target: &AdminTarget) -> Result<(), String> {
        let (read, mut write) = stream.into_split();
        let mut reader = tokio::io::BufReader::new(read.take(MAX_IMPORT_BYTES));
        let mut line = zeroize::Zeroizing::new(String::new());
        let read = tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await;
        let reply = match read {
            Err(_) => Reply::failed("the admin request did not arrive in time"),
            Ok(Err(err)) => Reply::failed(format!("cannot read the admin request: {err}")),
            Ok(Ok(_)) if !line.ends_with('\n') => Reply::failed(TOO_LONG),
            Ok(Ok(size)) => match serde_json::from_str::<Request>(&line) {
                Ok(request)
                    if size as u64 > MAX_REQUEST_BYTES
                        && !matches!(request, Request::Import { .. }) =>
                {
                    Reply::failed(TOO_LONG)
                }
                Ok(Request::Export { source_backend }) => {
                    let file = export_file(target, &source_backend).await;
                    tracing::info!(op = "export", ok = file.is_ok(), "admin command applied");
                    match file {
                        Ok(file) => {
                            let mut out =
                                serde_json::to_vec(&Reply::ok()).map_err(|err| err.to_string())?;
                            out.push(b'\n');
                            write.write_all(&out).await.map_err(|err| err.to_string())?;
                            write
                                .write_all(&file)
                                .await
                                .map_err(|err| err.to_string())?;
                            return write.shutdown().await.map_err(|err| err.to_string());
                        }
                        Err(err) => Reply::failed(err),
                    }
                }
                Ok(request) => {
                    let op = request.op();
                    let reply = execute(target, &request).await;
                    let username = request.username().unwrap_or("-");
                    tracing::info!(op, username, ok = reply.ok, "admin command applied");
                    reply
                }
                Err(_) => Reply::failed("the admin request is not a valid command"),
            },
        };
        let mut out = serde_json::to_vec(&reply).map_err(|err| err.to_string())?;
        out.push(b'\n');
        write.write_all(&out).await.map_err(|err| err.to_string())?;
        write.shutdown().await.map_err(|err| err.to_string())
    }

    /// Connects to a running gateway's socket and sends `request` as one JSON line.
    /// `Ok(None)` when no gateway answers at `path` (no socket file, or a stale one nobody
    /// listens on).
    fn send(
        path: &Path,
        request: &Request,
    ) -> Result<Option<std::os::unix::net::UnixStream>, String> {
        let mut stream = match std::os::unix::net::UnixStream::connect(path) {
            Ok(stream) => stream,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(err) => {
                return Err(format!(
                    "cannot reach the gateway's admin socket {}: {err}",
                    path.display()
                ))
            }
        };
        // Hashing may queue behind logins; give it time, but not forever.
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|err| failed(path, err))?;
        let mut line =
            zeroize::Zeroizing::new(serde_json::to_vec(request).map_err(|err| err.to_string())?);
        line.push(b'\n');
        stream.write_all(&line).map_err(|err| failed(path, err))?;
        Ok(Some(stream))
    }

    fn failed(path: &Path, err: std::io::Error) -> String {
        format!("admin socket {}: {err}", path.display())
    }

    /// Reads the one-line reply (at most 1 MiB).
    fn read_reply(path: &Path, reader: &mut impl BufRead) -> Result<Reply, String> {
        let mut reply = String::new();
        reader
            .take(1024 * 1024)
            .read_line(&mut reply)
            .map_err(|err| failed(path, err))?;
        serde_json::from_str(&reply)
            .map_err(|_| format!("the gateway at {} sent an unreadable reply", path.display()))
    }

    /// Sends a request to a running gateway. `Ok(None)` when no gateway answers at `path`
    /// (no socket file, or a stale one nobody listens on).
    pub fn connect(path: &Path, request: &Request) -> Result<Option<Reply>, String> {
        let Some(stream) = send(path, request)? else {
            return Ok(None);
        };
        read_reply(path, &mut BufReader::new(&stream)).map(Some)
    }

    /// Asks a running gateway for its store's export file ([`Request::Export`]): the
    /// reply line, then the file until the gateway closes the stream. `Ok(None)` when no
    /// gateway answers at `path`; the gateway's refusal is the error.
    pub fn export(
        path: &Path,
        request: &Request,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, String> {
        let Some(stream) = send(path, request)? else {
            return Ok(None);
        };
        let mut reader = BufReader::new(&stream);
        let reply = read_reply(path, &mut reader)?;
        if !reply.ok {
            return Err(reply
                .error
                .unwrap_or_else(|| "the gateway refused the export".to_string()));
        }
        let mut file = zeroize::Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut file)
            .map_err(|err| failed(path, err))?;
        Ok(Some(file))
    }
}

#[cfg(not(unix))]
mod fallback {
    use super::*;

    /// Without Unix sockets there is no admin channel: the CLI works on a stopped store.
    pub fn connect(_path: &Path, _request: &Request) -> Result<Option<Reply>, String> {
        Ok(None)
    }

    /// Without Unix sockets there is no admin channel: export works on a stopped store.
    pub fn export(
        _path: &Path,
        _request: &Request,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, String> {
        Ok(None)
    }
}

#[cfg(not(unix))]
pub use fallback::{connect, export};
