//! Drives one hyper connection (HTTP/1 or HTTP/2) against its clocks — the first request's
//! head deadline, `idle_timeout`, the park delay — the shutdown signal and the eager-parking
//! signal, with a hand-written side waker so those are looked at only when one of them
//! fired, not on every wake of the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant as Deadline;

use super::activity::Activity;
use super::Timeouts;

/// How `drive` ended.
pub(super) enum Ended {
    /// The connection is over (hyper closed it, or it was dropped at the header deadline).
    Closed,
    /// Parking was asked for and hyper let go of the socket without closing it.
    Parked,
}

/// Drives a hyper connection. Asks it to finish gracefully (what is in flight completes)
/// when idle past `idle_timeout` or at shutdown; drops it when no first request head came
/// by `head_deadline` (hyper's own header timer starts only at the first byte); asks an
/// HTTP/1 connection (`park_after` set) to let go of its socket once idle that long, or
/// right after its first response when `activity.park_eagerly` is set.
///
/// The clock, the shutdown signal and the response signal are polled only after one of
/// them woke the task ([`SideWake`]), not on every wake of the connection: polling them
/// each time was 2% of a proxied request's instructions.
pub(super) async fn drive<C>(
    mut connection: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    activity: &Activity,
    timeouts: Timeouts,
    mut head_deadline: Option<Deadline>,
    park_after: Option<Duration>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Ended, hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let period = check_period(timeouts.idle, park_after);
    let next_check = |now: Deadline, head: Option<Deadline>| {
        head.map_or(now + period, |head| head.min(now + period))
    };
    let timer = tokio::time::sleep_until(next_check(Deadline::now(), head_deadline));
    let mut watcher = shutdown.clone();
    let shutdown_changed = watcher.changed();
    let responded = activity.responded.notified();
    tokio::pin!(timer, shutdown_changed, responded);
    let side = Arc::new(SideWake::default());
    let side_waker = Waker::from(side.clone());
    let mut closing = *shutdown.borrow();
    let mut watching = !closing;
    let mut parking = false;
    let mut eager = park_after.is_some() && activity.park_eagerly.load(Ordering::Relaxed);
    if closing {
        graceful_shutdown(connection.as_mut());
    }
    loop {
        // Every side future is (re)polled after each event, so each has its waker set.
        side.fired.store(true, Ordering::Release);
        let event = std::future::poll_fn(|cx| {
            side.follow(cx.waker());
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Event::Done(result));
            }
            if !side.fired.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let mut side_cx = Context::from_waker(&side_waker);
            if eager && responded.as_mut().poll(&mut side_cx).is_ready() {
                return Poll::Ready(Event::Responded);
            }
            if timer.as_mut().poll(&mut side_cx).is_ready() {
                return Poll::Ready(Event::Tick);
            }
            if watching {
                if let Poll::Ready(changed) = shutdown_changed.as_mut().poll(&mut side_cx) {
                    return Poll::Ready(Event::ShutdownSignal(changed.is_ok()));
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Done(result) => {
                result?;
                return Ok(if parking {
                    Ended::Parked
                } else {
                    Ended::Closed
                });
            }
            Event::Responded => {
                eager = false;
                activity.park_eagerly.store(false, Ordering::Relaxed);
                if !closing && !parking && activity.parkable() {
                    activity.keep_open.store(true, Ordering::Release);
                    graceful_shutdown(connection.as_mut());
                    parking = true;
                }
            }
            Event::Tick => {
                let now = Deadline::now();
                if let Some(head) = head_deadline {
                    if activity.served.load(Ordering::Relaxed) {
                        head_deadline = None;
                    } else if now >= head {
                        return Ok(Ended::Closed);
                    }
                }
                if !closing && !parking {
                    match activity.idle_for() {
                        Some(idle) if idle >= timeouts.idle => {
                            graceful_shutdown(connection.as_mut());
                            closing = true;
                        }
                        Some(idle)
                            if park_after.is_some_and(|after| idle >= after)
                                && activity.parkable() =>
                        {
                            activity.keep_open.store(true, Ordering::Release);
                            graceful_shutdown(connection.as_mut());
                            parking = true;
                        }
                        _ => {}
                    }
                }
                timer.as_mut().reset(next_check(now, head_deadline));
            }
            Event::ShutdownSignal(sender_alive) => {
                // The future is spent either way; the signal only ever turns true.
                watching = false;
                if !sender_alive || *shutdown.borrow() {
                    if !closing {
                        graceful_shutdown(connection.as_mut());
                    }
                    closing = true;
                }
            }
        }
    }
}

/// What `drive` woke up for.
enum Event {
    /// The hyper connection finished.
    Done(Result<(), hyper::Error>),
    /// A response was sent (eager parking).
    Responded,
    /// The clock.
    Tick,
    /// The shutdown signal changed (`false`: its sender is gone, which counts as shutdown).
    ShutdownSignal(bool),
}

/// The waker given to `drive`'s side futures: notes that one of them fired and wakes the
/// connection's task, so `drive` polls them only then.
#[derive(Default)]
struct SideWake {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl SideWake {
    /// Keeps the task's current waker (it can change between polls).
    fn follow(&self, waker: &Waker) {
        let mut task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !task
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// How often a served connection looks at its clocks.
fn check_period(idle_timeout: Duration, park_after: Option<Duration>) -> Duration {
    let period = match park_after {
        Some(after) => (idle_timeout / 4).min(after / 2),
        None => idle_timeout / 4,
    };
    period.max(Duration::from_millis(50))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::conn::PARK_AFTER;

    #[test]
    fn clocks_are_checked_often_enough_for_both_timeouts() {
        let second = Duration::from_secs(1);
        assert_eq!(check_period(60 * second, Some(PARK_AFTER)), PARK_AFTER / 2);
        assert_eq!(check_period(60 * second, None), 15 * second);
        assert_eq!(
            check_period(Duration::from_millis(100), None),
            Duration::from_millis(50)
        );
    }
}
