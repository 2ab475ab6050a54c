//! The tx kick of an engine whose frames wait in a ring shared with the kernel
//! (an AF_PACKET tx ring): one zero-length send per burst makes the kernel walk
//! the ring. Either `send()` from the application's thread ([`Kick::Sendto`]) or
//! the same send as an io_uring request that the process's SQPOLL kernel thread
//! issues ([`Kick::Uring`]: the application writes an SQE and the SQ tail, and
//! enters the kernel only to wake the thread after it went to sleep).
//!
//! Any device with such a ring reuses this: [`choose`] decides the kick (with
//! the reason when the uring kick falls back), [`Kicker`] issues it and counts
//! into the queue's [`KickCounters`].

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::uring::kick::{Kicked, SendKick};
use super::uring::{self, RingConfig, RingFeatures, SqPoll};
use crate::error::Result;
pub(crate) use crate::queue::counters::KickCounters;
use crate::queue::Kick;
use crate::sys::fd as sysfd;

/// Adds `n` to a counter this thread alone writes.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Relaxed) + n, Relaxed);
    }
}

/// The kick in effect for `want`: the uring kick needs io_uring and an SQPOLL
/// thread (the process's shared one for `sqpoll`); without either it is
/// `sendto`, and the reason says why.
pub(crate) fn choose(want: Kick, sqpoll: SqPoll) -> (Kick, Option<String>) {
    match want {
        Kick::Sendto => (Kick::Sendto, None),
        Kick::Uring => {
            if let Err(why) = uring::check_available() {
                let why = format!("io_uring unavailable ({why}): kick=sendto");
                tracing::warn!("{why}");
                return (Kick::Sendto, Some(why));
            }
            match uring::SqAnchor::shared(sqpoll) {
                Some(_) => (Kick::Uring, None),
                None => {
                    let why = "SQPOLL refused (an unprivileged user before Linux 5.11, or a seccomp/LSM policy): kick=sendto".to_string();
                    tracing::warn!("{why}");
                    (Kick::Sendto, Some(why))
                }
            }
        }
    }
}

/// An errno that says the socket lost its interface (deleted or moved away).
fn unbound(errno: i32) -> bool {
    matches!(errno, libc::ENXIO | libc::ENODEV)
}

/// How a tx engine makes the kernel walk its ring.
pub(crate) enum Kicker {
    /// `send()` from the application thread.
    Sendto,
    /// An io_uring send of length 0 that the SQPOLL thread issues.
    Uring(Box<SendKick>),
}

impl Kicker {
    /// The kicker for `kick` on socket `fd`: for the uring kick, a ring of
    /// `sq_entries` attached to the SQ thread of `attach` (the port's anchor
    /// for `sqpoll`).
    pub(crate) fn new(
        kick: Kick,
        fd: RawFd,
        sq_entries: u32,
        sqpoll: SqPoll,
        attach: Option<RawFd>,
    ) -> Result<Kicker> {
        Ok(match kick {
            Kick::Sendto => Kicker::Sendto,
            Kick::Uring => {
                let ring = RingConfig::default()
                    .tx_entries(sq_entries)
                    .sqpoll(Some(sqpoll));
                Kicker::Uring(Box::new(SendKick::new(fd, &ring, attach)?))
            }
        })
    }

    /// [`new`](Self::new), falling back to `send()` when the io_uring kick
    /// cannot be made (io_uring refused since the port opened): the fallback
    /// is logged with the reason and counted in `c.fallbacks`.
    pub(crate) fn new_or_sendto(
        kick: Kick,
        fd: RawFd,
        sq_entries: u32,
        sqpoll: SqPoll,
        attach: Option<RawFd>,
        c: &KickCounters,
    ) -> Kicker {
        match Kicker::new(kick, fd, sq_entries, sqpoll, attach) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(
                    "the io_uring tx kick could not be made ({e}): this queue kicks with send()"
                );
                add(&c.fallbacks, 1);
                Kicker::Sendto
            }
        }
    }

    /// Which kick this is.
    pub(crate) fn kind(&self) -> Kick {
        match self {
            Kicker::Sendto => Kick::Sendto,
            Kicker::Uring(_) => Kick::Uring,
        }
    }

    /// Asks the kernel to send the frames waiting at the ring's head.
    /// `Ok(true)` if a `send()` kick was answered `EAGAIN` (frames may still
    /// wait: an XDP socket in copy mode sends a budget's worth a call); a uring
    /// kick's answer comes later, through [`reap`](Self::reap). `Err(errno)` if
    /// the socket lost its interface.
    pub(crate) fn kick(
        &mut self,
        fd: BorrowedFd<'_>,
        c: &KickCounters,
    ) -> std::result::Result<bool, i32> {
        match self {
            Kicker::Sendto => {
                add(&c.kicks, 1);
                let mut r = sysfd::send_kick(fd);
                if r.as_ref()
                    .is_err_and(|e| e.raw_os_error() == Some(libc::ENETDOWN))
                {
                    // A link that went down and up again leaves that error pending on
                    // the socket; the send that reports it sent nothing. Once more.
                    r = sysfd::send_kick(fd);
                }
                match r {
                    Ok(_) => Ok(false),
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap_or(libc::EIO);
                        count_error(errno, c).map(|()| errno == libc::EAGAIN)
                    }
                }
            }
            Kicker::Uring(u) => {
                match u.kick() {
                    Kicked::Full => {}
                    Kicked::Queued => add(&c.kicks, 1),
                    Kicked::Woke => {
                        add(&c.kicks, 1);
                        add(&c.sq_wakeups, 1);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Reaps finished kicks and counts their failures. `Err(errno)` if one says
    /// the socket lost its interface.
    pub(crate) fn reap(&mut self, c: &KickCounters) -> std::result::Result<(), i32> {
        let Kicker::Uring(u) = self else {
            return Ok(());
        };
        let mut r = Ok(());
        u.reap(|res| {
            if res < 0 {
                r = r.and(count_error(-res, c));
            }
        });
        r
    }

    /// A kick is on its way: the kernel will walk the ring without another.
    pub(crate) fn pending(&self) -> bool {
        matches!(self, Kicker::Uring(u) if u.outstanding() > 0)
    }

    /// The kick ring's features, for the uring kick.
    pub(crate) fn features(&self) -> Option<&RingFeatures> {
        match self {
            Kicker::Sendto => None,
            Kicker::Uring(u) => Some(&u.features),
        }
    }
}

/// Counts a failed kick: `EAGAIN` (send buffer full: the frames stay queued and
/// the next kick retries them) apart from the rest. The loss of the interface is
/// returned.
fn count_error(errno: i32, c: &KickCounters) -> std::result::Result<(), i32> {
    if errno == libc::EAGAIN {
        add(&c.kick_eagain, 1);
        return Ok(());
    }
    add(&c.kick_errors, 1);
    if unbound(errno) {
        return Err(errno);
    }
    Ok(())
}
