//! The hasher of the maps on the message path (topic tree, retained store, decision caches).
//!
//! std's default (SipHash-1-3) was the largest single cost of a cached topic check in the
//! profile (`bench/profile.sh`): every PUBLISH hashes its topic for the PUBLISH and RECEIVE
//! verdicts and for each level of the topic tree. foldhash is several times faster and still
//! seeded at random per map, which is what protects against keys chosen to collide (topic
//! names come from clients); its `quality` variant is used for that reason.

/// A `HashMap` with foldhash's randomly seeded `quality` hasher. Build with `default()`.
pub(crate) type FastHashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
