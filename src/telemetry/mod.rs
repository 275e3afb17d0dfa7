//! Logging and metrics. Logs are structured (`tracing`), text or JSON, with a level that
//! SIGHUP can change; `RUST_LOG`, when set, wins over the config.
//!
//! Secrets never reach a log line: the pipeline logs method, normalized path (no query
//! string: it may carry tokens), status, duration, user, upstream — never headers.

pub mod metrics;

use std::io::IsTerminal as _;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{LogFormat, LogSettings};

/// Changes the log level of a running process (SIGHUP).
#[derive(Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    env_wins: bool,
    /// Keeps the log writer thread alive; dropping the last clone flushes what is queued.
    _writer: Option<std::sync::Arc<tracing_appender::non_blocking::WorkerGuard>>,
}

impl LogControl {
    /// A control that changes nothing (tests that share one global subscriber).
    pub fn inert() -> Self {
        LogControl {
            handle: None,
            env_wins: true,
            _writer: None,
        }
    }

    /// Applies a new `[log] level` unless `RUST_LOG` is set.
    pub fn set_level(&self, level: &str) {
        if self.env_wins {
            return;
        }
        if let (Some(handle), Ok(filter)) = (&self.handle, EnvFilter::try_new(level)) {
            let _ = handle.reload(filter);
        }
    }
}

/// Installs the global subscriber (once per process; later calls return an inert control).
pub fn init(settings: &LogSettings) -> LogControl {
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = from_env
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"))
        });
    let (filter, handle) = reload::Layer::new(filter);
    // Lines are written by a background thread so a request never waits on stderr; the
    // queue is not lossy (a full queue slows logging down instead of dropping lines), and
    // holds 16 Ki lines: the default 128 Ki preallocates 4 MiB of idle memory.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(16 * 1024)
        .thread_name("gatehouse-log")
        .finish(std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(writer),
            )
            .try_init(),
        // Colours only on a terminal: container runtimes and journald store escapes as-is.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(writer),
            )
            .try_init(),
    };
    match installed {
        Ok(()) => LogControl {
            handle: Some(handle),
            env_wins: from_env.is_some(),
            _writer: Some(std::sync::Arc::new(guard)),
        },
        Err(_) => LogControl::inert(),
    }
}
