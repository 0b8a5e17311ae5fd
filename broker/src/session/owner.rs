//! [`Owner`]: the connection attached to a session, and the kick / release signals between it
//! and the rest of the broker.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// The connection currently attached to a session, with the two signals between it and the
/// rest of the broker: *kick* (disconnect: session takeover, admin or plugin kick, broker
/// shutdown) and *release* (the connection has stopped touching the session).
///
/// Both signals live in one small shared allocation (a flag word and a [`Notify`], 56 bytes)
/// rather than two `CancellationToken`s, one of them a child of the shutdown token: those took
/// two 112-byte tree nodes and a slot in the shutdown token's child list per connection (bench:
/// RSS per idle connection). A broker shutdown kicks the owners through the registry instead
/// ([`SessionRegistry::kick_all`]).
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// Unique id of the connection.
    pub(crate) connection_id: u64,
    signals: Arc<OwnerSignals>,
}

/// The flags of an [`Owner`] and the waiters for them.
#[derive(Debug, Default)]
struct OwnerSignals {
    /// [`Kicked::BIT`] and [`Released::BIT`]; bits are only ever set.
    flags: AtomicU8,
    /// Woken (all waiters) whenever a flag is set.
    notify: Notify,
}

/// One flag of [`OwnerSignals::flags`], as a type: the futures waiting for a flag carry it in
/// their type rather than in a field (they are part of every connection task's state).
pub(crate) trait OwnerFlag {
    /// The flag's bit.
    const BIT: u8;
}

/// The connection must end: [`Owner::kick`].
#[derive(Debug)]
pub(crate) enum Kicked {}

impl OwnerFlag for Kicked {
    const BIT: u8 = 1;
}

/// The connection no longer touches the session: [`Owner::release`].
#[derive(Debug)]
pub(crate) enum Released {}

impl OwnerFlag for Released {
    const BIT: u8 = 2;
}

/// The connection is kicked as a slow consumer: [`Owner::mark_slow_consumer`].
const SLOW_CONSUMER: u8 = 4;

impl Owner {
    /// A new owner for connection `connection_id`, neither kicked nor released.
    pub(crate) fn new(connection_id: u64) -> Self {
        Owner {
            connection_id,
            signals: Arc::default(),
        }
    }

    /// Sets the kick flag and wakes the waits of [`kicked`](Self::kicked). Private: kicks go
    /// through [`Session::kick_owner`], which also wakes the connection's wait for deliveries.
    pub(super) fn kick(&self) {
        self.set(Kicked::BIT);
    }

    /// Whether [`kick`](Self::kick) was called.
    pub(crate) fn is_kicked(&self) -> bool {
        self.signals.flags.load(Ordering::SeqCst) & Kicked::BIT != 0
    }

    /// Resolves once [`kick`](Self::kick) was called.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(crate) fn kicked(&self) -> Signalled<'_, Kicked> {
        Signalled::new(&self.signals)
    }

    /// Ready when the connection was kicked, without a wake-up of its own: to be polled in the
    /// same `select!` as the session's [`woken`](Session::woken) future, made before this is
    /// first polled, which a kick wakes ([`Session::kick_owner`]). A pointer where
    /// [`kicked`](Self::kicked) is a `Notified` (bench: RSS per idle connection: the
    /// connection's wait holds one `Notified` instead of two).
    pub(crate) fn kick_seen(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|_| {
            if self.is_kicked() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Marks the connection as kicked for being a slow consumer (its queue did not drain while
    /// publishers waited); the kick itself follows ([`Session::kick_slow_consumer`]).
    pub(super) fn mark_slow_consumer(&self) {
        self.signals.flags.fetch_or(SLOW_CONSUMER, Ordering::SeqCst);
    }

    /// Whether the kick was for being a slow consumer.
    pub(crate) fn is_slow_consumer(&self) -> bool {
        self.signals.flags.load(Ordering::SeqCst) & SLOW_CONSUMER != 0
    }

    /// Called by the connection once it has stopped touching the session.
    pub(crate) fn release(&self) {
        self.set(Released::BIT);
    }

    /// Resolves once [`release`](Self::release) was called.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub(crate) fn released(&self) -> Signalled<'_, Released> {
        Signalled::new(&self.signals)
    }

    fn set(&self, bit: u8) {
        if self.signals.flags.fetch_or(bit, Ordering::SeqCst) & bit == 0 {
            self.signals.notify.notify_waiters();
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Owner::kicked`] and [`Owner::released`]: resolves once flag `F` is set.
    /// No larger than the `Notified` it holds and a reference.
    #[derive(Debug)]
    pub(crate) struct Signalled<'a, F> {
        signals: &'a OwnerSignals,
        #[pin]
        notified: Notified<'a>,
        flag: PhantomData<F>,
    }
}

impl<'a, F: OwnerFlag> Signalled<'a, F> {
    fn new(signals: &'a OwnerSignals) -> Self {
        // Made before the flag is first checked: a flag set after this point wakes it (a
        // `Notified` sees every `notify_waiters` that follows its creation).
        Signalled {
            signals,
            notified: signals.notify.notified(),
            flag: PhantomData,
        }
    }
}

impl<F: OwnerFlag> Future for Signalled<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            if this.signals.flags.load(Ordering::SeqCst) & F::BIT != 0 {
                return Poll::Ready(());
            }
            ready!(this.notified.as_mut().poll(cx));
            // Woken for another flag: wait again, with a `Notified` made before the next check.
            this.notified.set(this.signals.notify.notified());
        }
    }
}
