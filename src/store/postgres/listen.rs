//! The LISTEN connection: one dedicated connection per store (not from the pool: a pooled
//! connection is handed to others and may be recycled), `LISTEN gatehouse_changes`, and
//! for every notification (the `changes` trigger sends one per change, at commit) a
//! wake-up on the store's change signal. When the connection dies (server restart,
//! `pg_terminate_backend`, network) it reconnects with backoff (100 ms doubling to 5 s)
//! and wakes the followers once more after reconnecting, since changes may have been
//! missed meanwhile. Losing it costs only latency: followers poll by cursor regardless
//! (and a frozen server can keep it open but silent). The loss and the recovery are
//! logged once each.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

/// The channel the `changes` trigger notifies.
pub const CHANNEL: &str = "gatehouse_changes";

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Wakes every follower: the current waiters, and the next one to wait (a follower busy
/// applying changes when the notification came must not miss it).
pub fn wake(signal: &Notify) {
    signal.notify_waiters();
    signal.notify_one();
}

/// Runs until `stop` is cancelled (the store was dropped).
pub async fn run(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    signal: Arc<Notify>,
    stop: CancellationToken,
    scrub: impl Fn(&str) -> String,
) {
    let mut backoff = FIRST_BACKOFF;
    // Whether the last attempt failed, so each outage is logged once.
    let mut lost = false;
    loop {
        let ended = tokio::select! {
            _ = stop.cancelled() => return,
            ended = listen_once(&config, tls.clone(), &signal, &mut backoff, &mut lost) => ended,
        };
        if !lost {
            lost = true;
            tracing::warn!(
                error = %scrub(&ended),
                "the LISTEN connection to the database is lost; reconnecting (replicas keep polling meanwhile)"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, LISTEN, forward notifications; returns why it ended.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    signal: &Notify,
    backoff: &mut Duration,
    lost: &mut bool,
) -> String {
    let (client, mut connection) = match config.connect(tls).await {
        Ok(pair) => pair,
        Err(err) => return super::describe(&err),
    };
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => match done {
                Ok(()) => {
                    listening = true;
                    *backoff = FIRST_BACKOFF;
                    if std::mem::take(lost) {
                        tracing::info!("the LISTEN connection to the database is back");
                    }
                    // Whatever happened while we were not listening.
                    wake(signal);
                }
                Err(err) => return super::describe(&err),
            },
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake(signal),
                Some(Ok(_)) => {}
                Some(Err(err)) => return super::describe(&err),
                None => return "the connection was closed".into(),
            },
        }
    }
}
