//! A timer tokio waits on that wakes on time to the microsecond: a Linux
//! timerfd, whose expiry carries no timer slack, registered with tokio's
//! reactor. tokio's own timers tick in whole milliseconds (and `epoll_wait`
//! rounds up again), which would put every request 1–2 ms late; a thread of
//! its own sleeping on the kernel's high-resolution timer would be on time
//! but costs two context switches per wake-up, handing over to the worker
//! that sends. On a timerfd the worker thread itself wakes on time and goes
//! straight on to send.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A one-shot timer, re-armed for each wake-up.
pub struct PreciseTimer {
    /// None where no timerfd could be made: tokio's timer then, a millisecond coarse.
    fd: Option<AsyncFd<OwnedFd>>,
}

impl PreciseTimer {
    /// A timer on CLOCK_MONOTONIC, the clock `Instant` reads. Call within a tokio runtime.
    pub fn new() -> PreciseTimer {
        // SAFETY: timerfd_create takes two flags and returns a new descriptor or -1.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        let fd = (raw >= 0)
            .then(|| {
                // SAFETY: `raw` is a fresh descriptor we own from here on, and
                // the OwnedFd keeps it open for as long as the AsyncFd lives.
                unsafe { AsyncFd::register_with_interest(OwnedFd::from_raw_fd(raw), Interest::READABLE) }.ok()
            })
            .flatten();
        if fd.is_none() {
            tracing::warn!("no timerfd ({}): requests are paced to the millisecond only", io::Error::last_os_error());
        }
        PreciseTimer { fd }
    }

    /// Returns at `at` (at once if it has passed).
    pub async fn sleep_until(&self, at: Instant) {
        let wait = at.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return;
        }
        let Some(fd) = &self.fd else { return tokio::time::sleep(wait).await };
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: wait.as_secs() as libc::time_t, tv_nsec: wait.subsec_nanos() as libc::c_long },
        };
        // SAFETY: the descriptor is a timerfd we own; the spec outlives the call.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            return tokio::time::sleep(wait).await;
        }
        loop {
            let Ok(mut ready) = fd.readable().await else { return tokio::time::sleep_until(at.into()).await };
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer.
            let read = ready.try_io(|fd| match unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) } {
                n if n < 0 => Err(io::Error::last_os_error()),
                _ => Ok(()),
            });
            if let Ok(Ok(())) = read {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn it_wakes_at_its_time_not_before() {
        let timer = PreciseTimer::new();
        for wait in [Duration::from_micros(300), Duration::ZERO, Duration::from_millis(2)] {
            let at = Instant::now() + wait;
            timer.sleep_until(at).await;
            assert!(Instant::now() >= at);
        }
    }
}
