//! The subscription tree: topic filters indexed level by level, so matching a topic walks only
//! the branches that can match it instead of scanning every subscription.

use std::collections::HashMap;
use std::sync::Arc;

use super::Subscription;
use crate::session::Session;

/// One subscription stored in the tree.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) session: Arc<Session>,
    pub(crate) sub: Subscription,
}

/// A node of the tree: the filters that end here, and the children by next level.
#[derive(Debug, Default)]
struct Node {
    /// Filters that end exactly at this node.
    exact: Vec<Subscriber>,
    /// Filters `<path to here>/#` (match this level and everything below).
    multi: Vec<Subscriber>,
    /// Child for a `+` level.
    single: Option<Box<Node>>,
    /// Children by literal level.
    children: HashMap<Box<str>, Node>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.multi.is_empty()
            && self.single.is_none()
            && self.children.is_empty()
    }
}

/// Every subscription of every session.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionTree {
    root: Node,
    count: usize,
}

impl SubscriptionTree {
    /// Adds or replaces (same session, same filter) a subscription. Returns true if it is new.
    pub(crate) fn insert(
        &mut self,
        filter: &str,
        session: &Arc<Session>,
        sub: Subscription,
    ) -> bool {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        let list = loop {
            let Some(level) = levels.next() else {
                break &mut node.exact;
            };
            match level {
                "#" => break &mut node.multi,
                "+" => node = node.single.get_or_insert_with(Box::default),
                literal => node = node.children.entry(literal.into()).or_default(),
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
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_in(&mut self.root, &levels, session_id);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Number of subscriptions stored.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Calls `visit` for every subscription matching `topic`. A session with several matching
    /// filters is visited once per filter; the router merges them.
    pub(crate) fn for_each_match<'a>(
        &'a self,
        topic: &str,
        visit: &mut impl FnMut(&'a Subscriber),
    ) {
        // [MQTT-4.7.2-1]: a leading wildcard does not match a topic starting with '$'.
        let dollar = topic.starts_with('$');
        let (first, rest) = split_level(topic);
        if !dollar {
            self.root.multi.iter().for_each(&mut *visit);
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
fn match_from<'a>(node: &'a Node, rest: Option<&str>, visit: &mut impl FnMut(&'a Subscriber)) {
    node.multi.iter().for_each(&mut *visit);
    let Some(rest) = rest else {
        node.exact.iter().for_each(visit);
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

fn remove_in(node: &mut Node, levels: &[&str], session_id: u64) -> bool {
    let remove_from =
        |list: &mut Vec<Subscriber>| match list.iter().position(|s| s.session.id() == session_id) {
            Some(index) => {
                list.swap_remove(index);
                true
            }
            None => false,
        };
    match levels {
        [] => remove_from(&mut node.exact),
        ["#"] => remove_from(&mut node.multi),
        ["+", rest @ ..] => {
            let Some(single) = node.single.as_deref_mut() else {
                return false;
            };
            let removed = remove_in(single, rest, session_id);
            if single.is_empty() {
                node.single = None;
            }
            removed
        }
        [literal, rest @ ..] => {
            let Some(child) = node.children.get_mut(*literal) else {
                return false;
            };
            let removed = remove_in(child, rest, session_id);
            if child.is_empty() {
                node.children.remove(*literal);
            }
            removed
        }
    }
}
