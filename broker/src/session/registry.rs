//! The session registry: client id → session, with the takeover and clean-session rules of
//! MQTT 3.1.1 §3.1.2.4 and the expiry of offline persistent sessions.
//!
//! This is the one place sessions are created, found and discarded; a durable session store
//! would persist from here without the router knowing.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Owner, QueueBudget, Session, SessionLimits};
use crate::stats::Stats;

/// How a connection wants its session kept: its CONNECT's clean start and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionTerms {
    /// Discard any stored session and start a new one (3.1.1 clean session 1, MQTT 5 Clean
    /// Start).
    pub(crate) clean_start: bool,
    /// The session ends with this connection (3.1.1 clean session 1, MQTT 5 Session Expiry
    /// Interval 0).
    pub(crate) ends_with_connection: bool,
    /// Otherwise, how long it outlives the connection; `None` means forever.
    pub(crate) expiry: Option<Duration>,
}

/// Result of attaching a new connection to a client id.
#[derive(Debug)]
pub(crate) struct Attached {
    /// The session the connection now owns.
    pub(crate) session: Arc<Session>,
    /// Whether a stored session was resumed (CONNACK session present flag).
    pub(crate) session_present: bool,
    /// A session that was discarded because of clean session = 1; the caller removes its
    /// subscriptions from the router.
    pub(crate) discarded: Option<Arc<Session>>,
    /// The connection that owned the client id before (session takeover); the caller waits for
    /// its `done` token after it was kicked.
    pub(crate) previous_owner: Option<Owner>,
}

/// A stored session, found by its client id (the session holds it: a map keyed by a copy of
/// the client id would take five times the room per session).
#[derive(Debug)]
struct Stored(Arc<Session>);

impl Borrow<str> for Stored {
    fn borrow(&self) -> &str {
        self.0.client_id()
    }
}

impl Hash for Stored {
    fn hash<H: Hasher>(&self, state: &mut H) {
        <str as Hash>::hash(self.0.client_id(), state);
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Self) -> bool {
        *self.0.client_id() == *other.0.client_id()
    }
}

impl Eq for Stored {}

/// All sessions by client id.
#[derive(Debug)]
pub(crate) struct SessionRegistry {
    sessions: Mutex<HashSet<Stored>>,
    next_id: AtomicU64,
    limits: SessionLimits,
    stats: Arc<Stats>,
    budget: Arc<QueueBudget>,
}

impl SessionRegistry {
    /// An empty registry; new sessions get `limits` and draw from one budget of
    /// `queued_bytes_budget` bytes.
    pub(crate) fn new(
        limits: SessionLimits,
        queued_bytes_budget: usize,
        stats: Arc<Stats>,
    ) -> Self {
        SessionRegistry {
            sessions: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            limits,
            stats,
            budget: Arc::new(QueueBudget::new(queued_bytes_budget)),
        }
    }

    /// The queue budget every session draws from.
    pub(crate) fn budget(&self) -> &QueueBudget {
        &self.budget
    }

    /// Attaches the connection `owner` to `client_id`: kicks any connection that owns it now
    /// (takeover), resumes the stored session unless `terms.clean_start`, and otherwise starts
    /// a new one (discarding the stored one). A will still waiting for its delay is cancelled
    /// ([MQTT-3.1.3-9]), and the session takes the connection's expiry terms.
    pub(crate) fn attach(
        &self,
        client_id: &ByteString,
        terms: SessionTerms,
        owner: Owner,
    ) -> Attached {
        let clean = terms.clean_start;
        let mut sessions = self.sessions.lock();
        let existing = sessions.get(&**client_id).map(|s| s.0.clone());
        let previous_owner = existing.as_ref().and_then(|s| {
            let previous = s.with_state(|st| st.owner.take())?;
            s.kick_owner(&previous);
            Some(previous)
        });
        let (session, session_present, discarded) = match existing {
            Some(session) if !clean => {
                session.with_state(|st| st.offline_since = None);
                // A new connection starts with no cached topic verdicts, even when it took the
                // session over before the old connection detached.
                session.decisions().clear();
                (session, true, None)
            }
            existing => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let session = Arc::new(Session::new(
                    id,
                    client_id.clone(),
                    clean,
                    self.limits,
                    self.stats.clone(),
                    self.budget.clone(),
                ));
                sessions.replace(Stored(session.clone()));
                // Clean Start ends the stored session: a will still waiting for its delay is
                // sent now, the session having ended first (§3.1.3.2.2).
                if let Some(will) = existing
                    .as_ref()
                    .and_then(|old| old.with_state(|st| st.pending_will.take()))
                {
                    will.fire();
                }
                (session, false, existing)
            }
        };
        session.with_state(|st| {
            st.owner = Some(owner);
            st.closing = false;
            st.clean = terms.ends_with_connection;
            st.expiry = terms.expiry;
            if let Some(will) = st.pending_will.take() {
                will.cancel();
            }
        });
        drop(sessions);
        Attached {
            session,
            session_present,
            discarded,
            previous_owner,
        }
    }

    /// Detaches connection `connection_id` from `session`. Returns `Some(true)` when the session
    /// was clean and has been removed from the registry (the caller drops its subscriptions),
    /// `Some(false)` when it stays stored offline, and `None` when the connection no longer owned
    /// it (taken over).
    pub(crate) fn detach(&self, session: &Arc<Session>, connection_id: u64) -> Option<bool> {
        let mut sessions = self.sessions.lock();
        let clean = session.with_state(|st| {
            if st.owner.as_ref().map(|o| o.connection_id) != Some(connection_id) {
                // Taken over: the new connection attached before this one scheduled its
                // delayed will, so `attach` found nothing to cancel. "If a new Network
                // Connection to this Session is made before the Will Delay Interval has passed,
                // the Server MUST NOT send the Will Message" [MQTT-3.1.3-9].
                if st.owner.is_some()
                    && let Some(will) = st.pending_will.take()
                {
                    will.cancel();
                }
                return None;
            }
            st.owner = None;
            st.offline_since = Some(Instant::now());
            Some(st.clean)
        })?;
        // Cached topic decisions belong to the connection, not the stored session.
        session.decisions().clear();
        session.release_publishers();
        if clean
            && sessions
                .get(&**session.client_id())
                .is_some_and(|s| Arc::ptr_eq(&s.0, session))
        {
            sessions.remove(&**session.client_id());
        }
        Some(clean)
    }

    /// Removes sessions offline for longer than their own expiry and returns them so the
    /// caller can drop their subscriptions. Sessions without an expiry never expire.
    ///
    /// One short scan of every session; the broker calls it once a second.
    pub(crate) fn expire(&self) -> Vec<Arc<Session>> {
        let now = Instant::now();
        let mut expired = Vec::new();
        self.sessions.lock().retain(|Stored(session)| {
            let stale = session.with_state(|st| {
                st.owner.is_none()
                    && st
                        .offline_since
                        .zip(st.expiry)
                        .is_some_and(|(t, expiry)| now.duration_since(t) >= expiry)
            });
            if stale {
                expired.push(session.clone());
            }
            !stale
        });
        expired
    }

    /// Removes the stored session of `client_id` if no connection is attached to it, and
    /// returns it so the caller can drop its subscriptions (the admin API's discard).
    pub(crate) fn remove_offline(&self, client_id: &str) -> Option<Arc<Session>> {
        let mut sessions = self.sessions.lock();
        let offline = sessions
            .get(client_id)
            .is_some_and(|s| s.0.with_state(|st| st.owner.is_none()));
        if offline {
            sessions.take(client_id).map(|s| s.0)
        } else {
            None
        }
    }

    /// The session of `client_id`, if one is stored.
    pub(crate) fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(client_id).map(|s| s.0.clone())
    }

    /// Every stored session (a snapshot).
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().iter().map(|s| s.0.clone()).collect()
    }

    /// Number of stored sessions, online or offline.
    pub(crate) fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Kicks the connection of every online session (a broker shutdown). A connection that
    /// attaches after this call must check the shutdown token itself (the handshake does).
    pub(crate) fn kick_all(&self) {
        let online: Vec<(Arc<Session>, Owner)> = self
            .sessions
            .lock()
            .iter()
            .filter_map(|s| s.0.owner().map(|owner| (s.0.clone(), owner)))
            .collect();
        for (session, owner) in online {
            session.kick_owner(&owner);
        }
    }
}
