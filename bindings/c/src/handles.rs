//! The handle table: every object C holds is a generational id into it, so a handle never
//! issued, already freed or of another kind is detected instead of dereferenced. One lock
//! guards the table; with `std` it waits, without `std` (an interrupt handler calling in
//! while the main loop is inside the library) it reports `SIGHTLINE_STATUS_BUSY`.

use alloc::boxed::Box;

use crate::status::{Result, SightlineStatus};

/// A live object, by kind.
// Boxed as a whole in its slot, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Entry {
    Logger(crate::logger::LoggerState),
    #[cfg(feature = "std")]
    Capture(crate::capture::CaptureState),
    #[cfg(feature = "std")]
    Runtime(crate::runtime::RuntimeState),
}

/// Most objects alive at once: a device runs one logger, a test a few captures. Fixed, so
/// the table itself never allocates and freeing every object gives back all the heap.
pub const SIGHTLINE_MAX_HANDLES: usize = 64;

/// All zeroes when empty (a null box), so the table sits in `.bss` and costs no flash.
struct Slot {
    /// Bumped when the slot is freed, so old handles to it stop matching.
    generation: u32,
    entry: Option<Box<Entry>>,
    /// A panic left the object in an unknown state: only freeing it is allowed.
    poisoned: bool,
}

impl Slot {
    const EMPTY: Slot = Slot {
        generation: 0,
        entry: None,
        poisoned: false,
    };
}

/// The objects, by index; a freed index is reused with a new generation.
pub(crate) struct Table {
    slots: [Slot; SIGHTLINE_MAX_HANDLES],
}

impl Table {
    const fn new() -> Table {
        Table {
            slots: [Slot::EMPTY; SIGHTLINE_MAX_HANDLES],
        }
    }

    /// Stores `entry` and returns its handle id (never 0), or gives the entry back when
    /// every slot is taken.
    fn insert(&mut self, entry: Box<Entry>) -> core::result::Result<u64, Box<Entry>> {
        let Some((index, slot)) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| slot.entry.is_none())
        else {
            return Err(entry);
        };
        slot.entry = Some(entry);
        slot.poisoned = false;
        Ok(id_of(index, slot.generation))
    }

    fn slot(&mut self, id: u64) -> Result<&mut Slot> {
        let index = (id & u64::from(u32::MAX)).wrapping_sub(1);
        let generation = ((id >> 32) as u32).wrapping_sub(1);
        let index = usize::try_from(index).map_err(|_| SightlineStatus::InvalidHandle)?;
        match self.slots.get_mut(index) {
            Some(slot) if slot.generation == generation && slot.entry.is_some() => Ok(slot),
            _ => Err(SightlineStatus::InvalidHandle),
        }
    }

    /// The live entry `id` names, unless poisoned.
    pub(crate) fn get(&mut self, id: u64) -> Result<&mut Entry> {
        let slot = self.slot(id)?;
        if slot.poisoned {
            return Err(SightlineStatus::Internal);
        }
        slot.entry
            .as_deref_mut()
            .ok_or(SightlineStatus::InvalidHandle)
    }

    /// Marks `id`'s object unusable after a panic inside a call on it.
    #[cfg(feature = "std")]
    pub(crate) fn poison(&mut self, id: u64) {
        if let Ok(slot) = self.slot(id) {
            slot.poisoned = true;
        }
    }

    /// Takes `id`'s entry out if `matches` accepts it (the handle's kind); the handle and
    /// every copy of it become invalid. Poisoned objects can be freed too.
    pub(crate) fn remove(
        &mut self,
        id: u64,
        matches: impl Fn(&Entry) -> bool,
    ) -> Result<Box<Entry>> {
        let slot = self.slot(id)?;
        if !slot.entry.as_deref().is_some_and(matches) {
            return Err(SightlineStatus::InvalidHandle);
        }
        let entry = slot.entry.take().ok_or(SightlineStatus::InvalidHandle)?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.poisoned = false;
        Ok(entry)
    }
}

/// The handle of slot `index` at `generation`: neither half is ever 0 while fresh, and
/// the id is never 0 (the index half is at least 1).
fn id_of(index: usize, generation: u32) -> u64 {
    // Indexes are below SIGHTLINE_MAX_HANDLES, far below 2^32.
    (u64::from(generation.wrapping_add(1)) << 32) | (index as u64 + 1)
}

/// Stores a new object and returns its handle id; `SIGHTLINE_STATUS_TOO_MANY_HANDLES` when
/// the table is full. The refused object is dropped after the lock is released (a
/// runtime's drop joins its thread).
pub(crate) fn insert(entry: Entry) -> Result<u64> {
    match with_table(|t| Ok(t.insert(Box::new(entry))))? {
        Ok(id) => Ok(id),
        Err(refused) => {
            drop(refused);
            Err(SightlineStatus::TooManyHandles)
        }
    }
}

/// Takes the object `id` names out of the table if `matches` accepts its kind, and drops
/// it after the lock is released.
pub(crate) fn free(id: u64, matches: impl Fn(&Entry) -> bool) -> Result {
    let entry = with_table(|t| t.remove(id, matches))?;
    drop(entry);
    Ok(())
}

/// Runs `f` on the table: with `std` waiting for the lock; bare metal, inside the call's
/// `exclusive` section.
pub(crate) fn with_table<R>(f: impl FnOnce(&mut Table) -> Result<R>) -> Result<R> {
    lock::with(f)
}

/// Runs `f` on the object `id` names, as `kind` (the wrong kind is an invalid handle).
/// With `std` a panic inside `f` poisons the object and returns `SIGHTLINE_STATUS_INTERNAL`.
pub(crate) fn with_entry<R>(id: u64, f: impl FnOnce(&mut Entry) -> Result<R>) -> Result<R> {
    with_table(|table| {
        let entry = table.get(id)?;
        #[cfg(feature = "std")]
        {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(entry)));
            run.unwrap_or_else(|_| {
                table.poison(id);
                Err(SightlineStatus::Internal)
            })
        }
        #[cfg(not(feature = "std"))]
        f(entry)
    })
}

#[cfg(feature = "std")]
mod lock {
    use super::Table;
    use crate::status::Result;
    use std::sync::Mutex;

    static TABLE: Mutex<Table> = Mutex::new(Table::new());

    pub(super) fn with<R>(f: impl FnOnce(&mut Table) -> Result<R>) -> Result<R> {
        // Panics are caught inside the lock (`with_entry`), so poisoning would only follow
        // a bug in the table itself; its state stays consistent, so carry on.
        let mut table = TABLE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut table)
    }
}

#[cfg(not(feature = "std"))]
pub(crate) use lock::exclusive;

#[cfg(not(feature = "std"))]
mod lock {
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::Table;
    use crate::status::{Result, SightlineStatus};

    /// A lock that never waits: bare metal has no scheduler to wait for, and a caller
    /// that interrupted the holder would wait forever.
    struct TryLock {
        held: AtomicBool,
        table: UnsafeCell<Table>,
    }

    // SAFETY: `table` is only reached while `held` is set by the call in progress
    // (`exclusive`), so at most one context touches it at a time.
    unsafe impl Sync for TryLock {}

    static TABLE: TryLock = TryLock {
        held: AtomicBool::new(false),
        table: UnsafeCell::new(Table::new()),
    };

    /// Runs a whole call under the lock, or returns BUSY without running it.
    pub(crate) fn exclusive(body: impl FnOnce() -> Result) -> Result {
        if TABLE
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(SightlineStatus::Busy);
        }
        let result = body();
        // No unwinding without std (panic = abort), so the release is always reached.
        TABLE.held.store(false, Ordering::Release);
        result
    }

    pub(super) fn with<R>(f: impl FnOnce(&mut Table) -> Result<R>) -> Result<R> {
        // Only reached from inside `exclusive`, which set the flag; one table access at a
        // time, never nested.
        if !TABLE.held.load(Ordering::Relaxed) {
            return Err(SightlineStatus::Internal);
        }
        // SAFETY: the call in progress holds the flag (above), and table accesses are not
        // nested, so this is the only reference.
        f(unsafe { &mut *TABLE.table.get() })
    }
}
