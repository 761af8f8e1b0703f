//! String interning without per-string allocations: one text arena, one offset table and
//! an open-addressing index. Cleared tables keep their capacity, so steady-state logging
//! allocates nothing. A [`Key`] carries its hash, so a call that looks an id up in several
//! interners hashes it once; the arena is a `String`, so reading an id back is a slice,
//! not a second UTF-8 validation.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::hash::hash;

/// An id and its hash, computed once per call. A word of hash: the index masks its low
/// bits, and on 32-bit targets a second word would only take registers.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a> {
    pub text: &'a str,
    pub hash: usize,
}

impl<'a> Key<'a> {
    /// Hashes `text`. Out of line under `compact`, where flash counts more than a call.
    #[cfg_attr(feature = "compact", inline(never))]
    pub fn new(text: &'a str) -> Self {
        Key {
            text,
            // Truncated on 32-bit targets, as intended: only the low bits index.
            hash: hash(text.as_bytes()) as usize,
        }
    }

    /// `text` with the hash [`Key::new`] gave it earlier.
    pub fn with_hash(text: &'a str, hash: usize) -> Self {
        Key { text, hash }
    }
}

/// Index slots start here and double; small pages never rehash.
const INITIAL_SLOTS: usize = 64;

#[derive(Clone, Debug, Default)]
pub struct Interner {
    arena: String,
    ends: Vec<u32>,
    /// Open addressing over string indices plus one; 0 marks an empty slot.
    slots: Vec<u32>,
}

impl Interner {
    /// The index of `s`, adding it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        self.intern_key(Key::new(s))
    }

    /// The index of `key`, adding it if new.
    pub fn intern_key(&mut self, key: Key<'_>) -> u32 {
        if let Some(i) = self.find_key(key) {
            return i;
        }
        if (self.ends.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.arena.push_str(key.text);
        self.ends.push(self.arena.len() as u32);
        let index = (self.ends.len() - 1) as u32;
        self.place(key.hash, index);
        index
    }

    /// The index of `key`, if interned.
    pub fn find_key(&self, key: Key<'_>) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = key.hash & mask;
        loop {
            match self.slots[slot] {
                0 => return None,
                plus_one if self.get(plus_one - 1) == key.text => return Some(plus_one - 1),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// The string at `index` (empty if out of range).
    pub fn get(&self, index: u32) -> &str {
        let i = index as usize;
        let end = self.ends.get(i).map_or(0, |&e| e as usize);
        let start = i.checked_sub(1).and_then(|p| self.ends.get(p));
        // Offsets are ends of whole strings pushed, so they fall on char boundaries.
        self.arena
            .get(start.map_or(0, |&s| s as usize)..end)
            .unwrap_or("")
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Heap bytes reserved, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + 4 * (self.ends.capacity() + self.slots.capacity())
    }

    /// Forgets every string, keeping the capacity.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.ends.clear();
        self.slots.iter_mut().for_each(|s| *s = 0);
    }

    fn place(&mut self, hash: usize, index: u32) {
        let mask = self.slots.len() - 1;
        let mut slot = hash & mask;
        while self.slots[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = index + 1;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(INITIAL_SLOTS);
        self.slots = vec![0; size];
        for i in 0..self.ends.len() as u32 {
            let h = Key::new(self.get(i)).hash;
            self.place(h, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn interning_the_same_string_twice_gives_the_same_index() {
        let mut t = Interner::default();
        let a = t.intern("title:1");
        let b = t.intern("title:2");
        assert_ne!(a, b);
        assert_eq!(t.intern("title:1"), a);
        assert_eq!(t.get(b), "title:2");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn thousands_of_strings_survive_growth() {
        let mut t = Interner::default();
        for i in 0..5000 {
            assert_eq!(t.intern(&format!("s{i}")), i);
        }
        for i in 0..5000 {
            assert_eq!(t.find_key(Key::new(&format!("s{i}"))), Some(i));
        }
        assert_eq!(t.find_key(Key::new("missing")), None);
    }

    #[test]
    fn clearing_forgets_strings_but_keeps_capacity() {
        let mut t = Interner::default();
        for i in 0..100 {
            t.intern(&format!("s{i}"));
        }
        let reserved = t.heap_bytes();
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.find_key(Key::new("s1")), None);
        assert_eq!(t.heap_bytes(), reserved);
        assert_eq!(t.intern("s1"), 0);
    }
}
