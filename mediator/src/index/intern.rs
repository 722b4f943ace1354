//! Interning for the index: namespaces, node names, owner names, container names and label keys and values
//! repeat across thousands of objects, and whole label sets and named-port lists repeat across the pods of one
//! template, so each distinct value is stored once and shared.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

/// An object's labels as interned pairs, sorted by key.
pub(crate) type LabelPairs = [(Arc<str>, Arc<str>)];
/// A pod's named container ports.
pub(crate) type NamedPorts = [(Arc<str>, u16)];

/// Shared values. A value stays in the set while some record holds it; `collect` drops the rest.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strings: HashSet<Arc<str>>,
    label_sets: HashSet<Arc<LabelPairs>>,
    port_sets: HashSet<Arc<NamedPorts>>,
    /// Records replaced or removed since the last collection; collecting after as many changes as there are
    /// strings keeps the cost amortised O(1) per change.
    changes_since_collect: usize,
}

/// Below this many strings a collection is not worth its pause.
const MIN_COLLECT: usize = 4096;

impl Interner {
    /// The shared copy of `text`, added if it is new.
    pub(crate) fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(Arc::clone(&shared));
        shared
    }

    pub(crate) fn intern_labels(&mut self, labels: Vec<(Arc<str>, Arc<str>)>) -> Arc<LabelPairs> {
        intern_slice(&mut self.label_sets, labels)
    }

    pub(crate) fn intern_ports(&mut self, ports: Vec<(Arc<str>, u16)>) -> Arc<NamedPorts> {
        intern_slice(&mut self.port_sets, ports)
    }

    /// Notes that a record holding interned strings was replaced or dropped, and collects when enough were.
    pub(crate) fn note_change(&mut self) {
        self.changes_since_collect += 1;
        if self.changes_since_collect > self.strings.len().max(MIN_COLLECT) {
            self.collect();
        }
    }

    /// Drops every string no record holds any more (the set's own reference is the only one left).
    pub(crate) fn collect(&mut self) {
        // Sets first: dropping a set releases its strings.
        self.label_sets.retain(|s| Arc::strong_count(s) > 1);
        self.port_sets.retain(|s| Arc::strong_count(s) > 1);
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.changes_since_collect = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len() + self.label_sets.len() + self.port_sets.len()
    }
}

fn intern_slice<T: Hash + Eq>(set: &mut HashSet<Arc<[T]>>, items: Vec<T>) -> Arc<[T]> {
    if let Some(shared) = set.get(items.as_slice()) {
        return Arc::clone(shared);
    }
    let shared: Arc<[T]> = Arc::from(items);
    set.insert(Arc::clone(&shared));
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_stored_once() {
        let mut interner = Interner::default();
        let a = interner.intern("app");
        let b = interner.intern("app");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(interner.len(), 1);
    }

    #[test]
    fn collecting_drops_only_strings_nobody_holds() {
        let mut interner = Interner::default();
        let kept = interner.intern("kept");
        drop(interner.intern("dropped"));
        interner.collect();
        assert_eq!(interner.len(), 1);
        assert!(Arc::ptr_eq(&kept, &interner.intern("kept")));
    }

    #[test]
    fn equal_label_sets_are_shared_and_release_their_strings_when_dropped() {
        let mut interner = Interner::default();
        let pair = |i: &mut Interner| vec![(i.intern("app"), i.intern("web"))];
        let first = pair(&mut interner);
        let a = interner.intern_labels(first);
        let second = pair(&mut interner);
        let b = interner.intern_labels(second);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(interner.len(), 3);
        drop((a, b));
        interner.collect();
        assert_eq!(interner.len(), 0);
    }
}
