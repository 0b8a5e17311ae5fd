//! The subscription tree: topic filters indexed level by level, so matching a topic walks only
//! the branches that can match it instead of scanning every subscription.
//!
//! A shared subscription `$share/{group}/{filter}` lives in the node of its inner `{filter}`,
//! as one member of that node's [`SharedGroup`] named `{group}`; matching reports the group
//! once, and the router picks the member (see the router module doc).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytestring::ByteString;

use super::Subscription;
use crate::hash::FastHashMap;
use crate::session::Session;

/// One subscription stored in the tree.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) session: Arc<Session>,
    pub(crate) sub: Subscription,
}

/// The members of one shared subscription: one (group name, filter) pair.
#[derive(Debug)]
pub(crate) struct SharedGroup {
    /// `$share/{group}/{filter}` as subscribed: the key carried by the copies it delivers.
    pub(crate) key: Arc<ByteString>,
    /// The group name.
    name: Box<str>,
    /// One subscription per member session.
    pub(crate) members: Vec<Subscriber>,
    /// Round-robin position: the member tried first for the next message.
    cursor: AtomicUsize,
}

impl SharedGroup {
    /// The member that gets the next message: round robin from the cursor, skipping members
    /// that are offline (or closing) and the session `exclude`. Without an online member, the
    /// first offline member with a persistent session from the cursor (it queues QoS 1/2 and
    /// drops QoS 0), else any member, unless `online_only`.
    pub(crate) fn pick(&self, exclude: Option<u64>, online_only: bool) -> Option<&Subscriber> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let mut fallback: Option<(&Subscriber, Availability)> = None;
        for skipped in 0..n {
            let member = &self.members[(start + skipped) % n];
            if exclude == Some(member.session.id()) {
                continue;
            }
            let availability = availability(&member.session);
            if availability == Availability::Online {
                // The skipped members do not get a turn back: the next message starts after
                // the chosen one, so online members share evenly.
                if skipped > 0 {
                    self.cursor.fetch_add(skipped, Ordering::Relaxed);
                }
                return Some(member);
            }
            if fallback.is_none_or(|(_, best)| availability < best) {
                fallback = Some((member, availability));
            }
        }
        if online_only {
            None
        } else {
            fallback.map(|(member, _)| member)
        }
    }

    /// Every member but `exclude`, in the order [`pick`](Self::pick) would prefer them:
    /// online ones, round robin from the cursor (which advances by one); only if there are
    /// none and not `online_only`, offline ones (persistent sessions first).
    pub(crate) fn candidates<'a>(
        &'a self,
        exclude: Option<u64>,
        online_only: bool,
        out: &mut Vec<&'a Subscriber>,
    ) {
        let n = self.members.len();
        if n == 0 {
            return;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let first = out.len();
        let (mut persistent, mut ending) = (Vec::new(), Vec::new());
        for i in 0..n {
            let member = &self.members[(start + i) % n];
            if exclude == Some(member.session.id()) {
                continue;
            }
            match availability(&member.session) {
                Availability::Online => {
                    if out.len() == first && i > 0 {
                        // As in `pick`: the skipped members do not get a turn back.
                        self.cursor.fetch_add(i, Ordering::Relaxed);
                    }
                    out.push(member);
                }
                _ if online_only => {}
                Availability::Persistent => persistent.push(member),
                Availability::Ending => ending.push(member),
            }
        }
        if out.len() == first {
            out.extend(persistent);
            out.extend(ending);
        }
    }
}

/// How well a member can take a message, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Availability {
    /// A connection is attached and not closing.
    Online,
    /// Offline (or closing) with a session that outlives the connection: it queues.
    Persistent,
    /// Offline (or closing) with a session that ends with its connection.
    Ending,
}

/// See [`Availability`] (one short lock of the session).
fn availability(session: &Session) -> Availability {
    session.with_state(|st| {
        if st.owner.is_some() && !st.closing {
            Availability::Online
        } else if st.clean {
            Availability::Ending
        } else {
            Availability::Persistent
        }
    })
}

/// Whether `session` has a connection that is not closing (one short lock).
pub(crate) fn is_online(session: &Session) -> bool {
    availability(session) == Availability::Online
}

/// A match reported by [`SubscriptionTree::for_each_match`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hit<'a> {
    /// A non-shared subscription.
    One(&'a Subscriber),
    /// A shared subscription group: one of its members gets the message.
    Shared(&'a SharedGroup),
}

/// A node of the tree: the filters that end here, and the children by next level.
#[derive(Debug, Default)]
struct Node {
    /// Filters that end exactly at this node.
    exact: Vec<Subscriber>,
    /// Filters `<path to here>/#` (match this level and everything below).
    multi: Vec<Subscriber>,
    /// Shared subscriptions whose inner filter ends exactly at this node.
    exact_shared: Vec<SharedGroup>,
    /// Shared subscriptions whose inner filter is `<path to here>/#`.
    multi_shared: Vec<SharedGroup>,
    /// Child for a `+` level.
    single: Option<Box<Node>>,
    /// Children by literal level.
    children: FastHashMap<Box<str>, Node>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.multi.is_empty()
            && self.exact_shared.is_empty()
            && self.multi_shared.is_empty()
            && self.single.is_none()
            && self.children.is_empty()
    }

    /// Reports this node's `#` subscriptions.
    fn visit_multi<'a>(&'a self, visit: &mut impl FnMut(Hit<'a>)) {
        self.multi.iter().for_each(|s| visit(Hit::One(s)));
        self.multi_shared.iter().for_each(|g| visit(Hit::Shared(g)));
    }

    /// Reports the subscriptions ending exactly here.
    fn visit_exact<'a>(&'a self, visit: &mut impl FnMut(Hit<'a>)) {
        self.exact.iter().for_each(|s| visit(Hit::One(s)));
        self.exact_shared.iter().for_each(|g| visit(Hit::Shared(g)));
    }
}

/// Where a filter's subscriptions are stored in its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Exact,
    Multi,
}

/// Walks (creating) the nodes of `filter`; returns the last node and the slot there.
fn node_for<'n>(root: &'n mut Node, filter: &str) -> (&'n mut Node, Slot) {
    let mut node = root;
    for level in filter.split('/') {
        match level {
            "#" => return (node, Slot::Multi),
            "+" => node = node.single.get_or_insert_with(Box::default),
            literal => node = node.children.entry(literal.into()).or_default(),
        }
    }
    (node, Slot::Exact)
}

/// Every subscription of every session.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionTree {
    root: Node,
    count: usize,
}

impl SubscriptionTree {
    /// Adds or replaces (same session, same filter) a subscription. Returns true if it is new.
    ///
    /// A valid `$share/{group}/{filter}` joins (or creates) the group `{group}` in the node of
    /// `{filter}`; anything else is stored as the filter it is.
    pub(crate) fn insert(
        &mut self,
        filter: &str,
        session: &Arc<Session>,
        sub: Subscription,
    ) -> bool {
        let list = match crate::topic::split_shared(filter) {
            Some((group, inner)) => {
                let (node, slot) = node_for(&mut self.root, inner);
                let groups = match slot {
                    Slot::Exact => &mut node.exact_shared,
                    Slot::Multi => &mut node.multi_shared,
                };
                let index = match groups.iter().position(|g| &*g.name == group) {
                    Some(index) => index,
                    None => {
                        groups.push(SharedGroup {
                            key: Arc::new(ByteString::from(filter)),
                            name: group.into(),
                            members: Vec::new(),
                            cursor: AtomicUsize::new(0),
                        });
                        groups.len() - 1
                    }
                };
                &mut groups[index].members
            }
            None => {
                let (node, slot) = node_for(&mut self.root, filter);
                match slot {
                    Slot::Exact => &mut node.exact,
                    Slot::Multi => &mut node.multi,
                }
            }
        };
        match list.iter_mut().find(|s| s.session.id() == session.id()) {
            Some(existing) => {
                existing.sub = sub;
                false
            }
            None => {
                list.push(Subscriber {
                    session: session.clone(),
                    sub,
                });
                self.count += 1;
                true
            }
        }
    }

    /// Removes the subscription of `session_id` to `filter`. Returns whether it existed.
    pub(crate) fn remove(&mut self, filter: &str, session_id: u64) -> bool {
        let (group, filter) = match crate::topic::split_shared(filter) {
            Some((group, inner)) => (Some(group), inner),
            None => (None, filter),
        };
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_in(&mut self.root, &levels, group, session_id);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Number of subscriptions stored.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The shared group of `$share/{group}/{filter}`, if it has members.
    pub(crate) fn group(&self, shared_filter: &str) -> Option<&SharedGroup> {
        let (group, inner) = crate::topic::split_shared(shared_filter)?;
        let mut node = &self.root;
        let mut slot = Slot::Exact;
        for level in inner.split('/') {
            match level {
                "#" => {
                    slot = Slot::Multi;
                    break;
                }
                "+" => node = node.single.as_deref()?,
                literal => node = node.children.get(literal)?,
            }
        }
        let groups = match slot {
            Slot::Exact => &node.exact_shared,
            Slot::Multi => &node.multi_shared,
        };
        groups.iter().find(|g| &*g.name == group)
    }

    /// Calls `visit` for every subscription matching `topic`: each non-shared one, and each
    /// shared group once. A session with several matching filters is visited once per filter;
    /// the router merges them.
    pub(crate) fn for_each_match<'a>(&'a self, topic: &str, visit: &mut impl FnMut(Hit<'a>)) {
        // [MQTT-4.7.2-1]: a leading wildcard does not match a topic starting with '$'.
        let dollar = topic.starts_with('$');
        let (first, rest) = split_level(topic);
        if !dollar {
            self.root.visit_multi(visit);
        }
        if let Some(child) = self.root.children.get(first) {
            match_from(child, rest, visit);
        }
        if !dollar && let Some(single) = &self.root.single {
            match_from(single, rest, visit);
        }
    }
}

/// Splits off the first level of a topic: `("a", Some("b/c"))`, `("a", None)` for the last level.
fn split_level(topic: &str) -> (&str, Option<&str>) {
    match topic.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (topic, None),
    }
}

/// Matches the remaining levels `rest` (None: the topic ended at `node`).
fn match_from<'a>(node: &'a Node, rest: Option<&str>, visit: &mut impl FnMut(Hit<'a>)) {
    node.visit_multi(visit);
    let Some(rest) = rest else {
        node.visit_exact(visit);
        return;
    };
    let (level, rest) = split_level(rest);
    if let Some(child) = node.children.get(level) {
        match_from(child, rest, visit);
    }
    if let Some(single) = &node.single {
        match_from(single, rest, visit);
    }
}

fn remove_in(node: &mut Node, levels: &[&str], group: Option<&str>, session_id: u64) -> bool {
    let remove_from =
        |list: &mut Vec<Subscriber>| match list.iter().position(|s| s.session.id() == session_id) {
            Some(index) => {
                list.swap_remove(index);
                true
            }
            None => false,
        };
    let remove_member = |groups: &mut Vec<SharedGroup>, group: &str| {
        let Some(index) = groups.iter().position(|g| &*g.name == group) else {
            return false;
        };
        let members = &mut groups[index].members;
        // Order kept (groups are small): the round-robin cursor indexes this list.
        let removed = match members.iter().position(|s| s.session.id() == session_id) {
            Some(at) => {
                members.remove(at);
                true
            }
            None => false,
        };
        if groups[index].members.is_empty() {
            groups.swap_remove(index);
        }
        removed
    };
    match (levels, group) {
        ([], None) => remove_from(&mut node.exact),
        (["#"], None) => remove_from(&mut node.multi),
        ([], Some(group)) => remove_member(&mut node.exact_shared, group),
        (["#"], Some(group)) => remove_member(&mut node.multi_shared, group),
        (["+", rest @ ..], _) => {
            let Some(single) = node.single.as_deref_mut() else {
                return false;
            };
            let removed = remove_in(single, rest, group, session_id);
            if single.is_empty() {
                node.single = None;
            }
            removed
        }
        ([literal, rest @ ..], _) => {
            let Some(child) = node.children.get_mut(*literal) else {
                return false;
            };
            let removed = remove_in(child, rest, group, session_id);
            if child.is_empty() {
                node.children.remove(*literal);
            }
            removed
        }
    }
}
