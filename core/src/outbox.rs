//! The store operations the logger asks the host to perform: persistence as an output.
//!
//! The logger never calls a store. Every write becomes a [`StoreOp`] planned here, in the
//! order the logger decided it, and the host drains them with
//! [`Logger::poll_store_op`](crate::Logger::poll_store_op), performs each (synchronously or
//! not) and acknowledges it with
//! [`Logger::handle_store_result`](crate::Logger::handle_store_result).
//!
//! - **One at a time.** The next operation is handed out only once the previous one is
//!   acknowledged, so a host may perform them asynchronously (IndexedDB) and still never
//!   reorders them, and the logger decides each one knowing how the previous ones went.
//! - **Coalesced journal.** Journal records appended while an append is still planned join
//!   it: one operation carries every event since the host last drained.
//! - **Conditional operations.** An operation may require that one earlier operation
//!   succeeded (the journal is cleared only after the state that replaces it is written; a
//!   settled batch's copy is removed only after the `acks` that lists it is). When that one
//!   failed or was itself cancelled, the operation is cancelled instead of handed out.
//! - **Tickets.** Every planned operation has a ticket, increasing; it is also the id the
//!   host acknowledges. [`Outbox::settled_through`] tells which tickets are finished, so
//!   the logger offers an upload only after the writes it depends on.

use alloc::collections::VecDeque;

use alloc::string::String;
use alloc::vec::Vec;

use crate::store::{StoreOp, StoreRequest};

/// What an operation was for, so the logger can react to its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A record or journal append whose result needs no reaction.
    Plain,
    /// The `state` record; once written, seqs up to `covers` can never be issued again.
    State { covers: u64 },
    /// The stored copy of batch `id`: once written, its seqs are durable.
    Batch(u64),
    /// Removal of a settled batch's stored copy: on failure it stays listed in `acks`.
    RemoveSettled(u64),
}

#[derive(Debug)]
struct Planned {
    ticket: u64,
    op: StoreOp,
    purpose: Purpose,
    /// Cancelled if the operation with this ticket failed or was cancelled.
    needs: Option<u64>,
    cancelled: bool,
}

#[derive(Debug)]
struct Handed {
    request: StoreRequest,
    purpose: Purpose,
}

/// Spare buffers kept from acknowledged operations, so steady-state logging allocates
/// nothing for its writes.
const SPARE_BUFFERS: usize = 16;

/// How an acknowledged or cancelled operation ended, for the logger to react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    pub purpose: Purpose,
    pub ok: bool,
}

/// The planned operations, in order.
#[derive(Debug)]
pub(crate) struct Outbox {
    planned: VecDeque<Planned>,
    handed: Option<Handed>,
    /// The ticket the next planned operation gets; tickets start at 1.
    next_ticket: u64,
    spare_bytes: Vec<Vec<u8>>,
    spare_keys: Vec<String>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            planned: VecDeque::new(),
            handed: None,
            next_ticket: 1,
            spare_bytes: Vec::new(),
            spare_keys: Vec::new(),
        }
    }
}

impl Outbox {
    /// Plans an operation; returns its ticket.
    pub fn plan(&mut self, op: StoreOp, purpose: Purpose) -> u64 {
        self.push(op, purpose, None)
    }

    /// Plans an operation that runs only if the operation with ticket `needs` succeeded;
    /// returns its ticket.
    pub fn plan_if_ok(&mut self, needs: u64, op: StoreOp, purpose: Purpose) -> u64 {
        self.push(op, purpose, Some(needs))
    }

    /// A put of `value` under `key`, in recycled buffers.
    pub fn put_op(&mut self, key: &str, value: impl FnOnce(&mut Vec<u8>)) -> StoreOp {
        let mut buf = self.spare_bytes.pop().unwrap_or_default();
        buf.clear();
        value(&mut buf);
        StoreOp::Put {
            key: self.key(key),
            value: buf,
        }
    }

    /// A removal of `key`, in a recycled buffer.
    pub fn remove_op(&mut self, key: &str) -> StoreOp {
        StoreOp::Remove { key: self.key(key) }
    }

    fn key(&mut self, key: &str) -> String {
        let mut k = self.spare_keys.pop().unwrap_or_default();
        k.clear();
        k.push_str(key);
        k
    }

    /// Appends journal bytes, joining a planned append when one is last in line.
    #[cfg(test)]
    pub fn append(&mut self, bytes: &[u8]) -> u64 {
        self.append_with(|buf| buf.extend_from_slice(bytes)).0
    }

    /// Appends the journal bytes `write` adds to the buffer it is given (the planned append
    /// itself: no staging copy); returns the append's ticket and how many bytes were added.
    pub fn append_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> (u64, usize) {
        if let Some(last) = self.planned.back_mut() {
            if let StoreOp::Append { bytes: pending } = &mut last.op {
                let before = pending.len();
                write(pending);
                return (last.ticket, pending.len() - before);
            }
        }
        let mut buf = self.spare_bytes.pop().unwrap_or_default();
        buf.clear();
        write(&mut buf);
        let added = buf.len();
        (
            self.push(StoreOp::Append { bytes: buf }, Purpose::Plain, None),
            added,
        )
    }

    fn push(&mut self, op: StoreOp, purpose: Purpose, needs: Option<u64>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.planned.push_back(Planned {
            ticket,
            op,
            purpose,
            needs,
            cancelled: false,
        });
        ticket
    }

    /// Operation `ticket` failed or was cancelled: cancel what needs it.
    fn cancel_dependents(&mut self, ticket: u64) {
        for p in self.planned.iter_mut().filter(|p| p.needs == Some(ticket)) {
            p.cancelled = true;
        }
    }

    /// The ticket of the last planned operation (0 before any).
    pub fn last_ticket(&self) -> u64 {
        self.next_ticket - 1
    }

    /// Every operation with a ticket up to this one has been acknowledged or cancelled.
    pub fn settled_through(&self) -> u64 {
        match (&self.handed, self.planned.front()) {
            (Some(h), _) => h.request.id - 1,
            (None, Some(p)) => p.ticket - 1,
            (None, None) => self.last_ticket(),
        }
    }

    /// True while an operation is handed out or planned.
    pub fn busy(&self) -> bool {
        self.handed.is_some() || !self.planned.is_empty()
    }

    /// Bytes held by planned operations, for memory accounting.
    pub fn planned_bytes(&self) -> usize {
        self.planned
            .iter()
            .map(|p| match &p.op {
                StoreOp::Put { key, value } => key.len() + value.len(),
                StoreOp::Remove { key } => key.len(),
                StoreOp::Append { bytes } => bytes.len(),
                StoreOp::ClearJournal => 0,
            })
            .sum()
    }

    /// The next operation to perform, unless one is still unacknowledged (then `None`: an
    /// operation is handed out once). Operations whose condition failed are cancelled on the
    /// way and reported through `cancelled`.
    pub fn poll(&mut self, cancelled: &mut impl FnMut(Finished)) -> Option<&StoreRequest> {
        if self.handed.is_some() {
            return None;
        }
        while let Some(next) = self.planned.pop_front() {
            if next.cancelled {
                self.cancel_dependents(next.ticket);
                self.recycle(next.op);
                cancelled(Finished {
                    purpose: next.purpose,
                    ok: false,
                });
                continue;
            }
            let handed = self.handed.insert(Handed {
                request: StoreRequest {
                    id: next.ticket,
                    op: next.op,
                },
                purpose: next.purpose,
            });
            return Some(&handed.request);
        }
        None
    }

    /// Takes the host's acknowledgement of operation `id`; `None` if `id` is not the
    /// operation handed out.
    pub fn acknowledge(&mut self, id: u64, ok: bool) -> Option<Finished> {
        let handed = self.handed.take_if(|h| h.request.id == id)?;
        if !ok {
            self.cancel_dependents(id);
        }
        self.recycle(handed.request.op);
        Some(Finished {
            purpose: handed.purpose,
            ok,
        })
    }

    fn recycle(&mut self, op: StoreOp) {
        let (key, bytes) = match op {
            StoreOp::Put { key, value } => (Some(key), Some(value)),
            StoreOp::Remove { key } => (Some(key), None),
            StoreOp::Append { bytes } => (None, Some(bytes)),
            StoreOp::ClearJournal => (None, None),
        };
        if let Some(k) = key.filter(|_| self.spare_keys.len() < SPARE_BUFFERS) {
            self.spare_keys.push(k);
        }
        if let Some(b) = bytes.filter(|_| self.spare_bytes.len() < SPARE_BUFFERS) {
            self.spare_bytes.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn put(key: &str) -> StoreOp {
        StoreOp::Put {
            key: key.to_string(),
            value: vec![1],
        }
    }

    fn no_cancel(_: Finished) {
        panic!("nothing should be cancelled");
    }

    #[test]
    fn operations_leave_in_order_one_at_a_time() {
        let mut out = Outbox::default();
        let a = out.plan(put("a"), Purpose::Plain);
        let b = out.plan(put("b"), Purpose::Plain);
        let first = out.poll(&mut no_cancel).cloned().unwrap();
        assert_eq!((first.id, first.op), (a, put("a")));
        assert!(out.poll(&mut no_cancel).is_none(), "a is not acknowledged");
        assert!(out.acknowledge(a, true).is_some());
        assert_eq!(out.poll(&mut no_cancel).unwrap().id, b);
    }

    #[test]
    fn journal_appends_planned_back_to_back_become_one_operation() {
        let mut out = Outbox::default();
        let t1 = out.append(b"one");
        let t2 = out.append(b"two");
        assert_eq!(t1, t2);
        let req = out.poll(&mut no_cancel).cloned().unwrap();
        assert_eq!(
            req.op,
            StoreOp::Append {
                bytes: b"onetwo".to_vec()
            }
        );
        out.acknowledge(req.id, true);
        assert_ne!(out.append(b"three"), t1, "the handed append is closed");
    }

    #[test]
    fn an_append_after_another_operation_does_not_jump_the_queue() {
        let mut out = Outbox::default();
        out.append(b"before");
        out.plan(StoreOp::ClearJournal, Purpose::Plain);
        out.append(b"after");
        let mut ops = Vec::new();
        while let Some(r) = out.poll(&mut no_cancel).cloned() {
            out.acknowledge(r.id, true);
            ops.push(r.op);
        }
        assert_eq!(
            ops,
            [
                StoreOp::Append {
                    bytes: b"before".to_vec()
                },
                StoreOp::ClearJournal,
                StoreOp::Append {
                    bytes: b"after".to_vec()
                },
            ]
        );
    }

    #[test]
    fn a_failed_write_cancels_what_depends_on_it_and_nothing_else() {
        let mut out = Outbox::default();
        let state = out.plan(put("state"), Purpose::State { covers: 0 });
        out.plan_if_ok(state, StoreOp::ClearJournal, Purpose::Plain);
        let after = out.append(b"later");
        let r = out.poll(&mut no_cancel).unwrap().id;
        assert_eq!(out.acknowledge(r, false).map(|f| f.ok), Some(false));
        let mut cancelled = Vec::new();
        let next = out.poll(&mut |f| cancelled.push(f)).unwrap().id;
        assert_eq!(next, after, "the clear was skipped");
        assert_eq!(cancelled.len(), 1);
    }

    #[test]
    fn a_dependent_of_a_dependent_is_cancelled_too_and_independent_failures_cancel_nothing() {
        let mut out = Outbox::default();
        let a = out.plan(put("a"), Purpose::Plain);
        let b = out.plan_if_ok(a, put("b"), Purpose::Plain);
        let c = out.plan_if_ok(b, put("c"), Purpose::Plain);
        let other = out.plan(put("other"), Purpose::Plain);
        let d = out.plan_if_ok(a, put("d"), Purpose::Plain);
        let mut handed = Vec::new();
        while let Some(op) = out.poll(&mut no_cancel).cloned() {
            handed.push(op.id);
            // `other` fails: `d` needs only `a`, which succeeded.
            out.acknowledge(op.id, op.id != other);
        }
        assert_eq!(handed, [a, b, c, other, d]);

        let mut out = Outbox::default();
        let a = out.plan(put("a"), Purpose::Plain);
        let b = out.plan_if_ok(a, put("b"), Purpose::Plain);
        let c = out.plan_if_ok(b, put("c"), Purpose::Plain);
        let r = out.poll(&mut no_cancel).unwrap().id;
        out.acknowledge(r, false);
        let mut cancelled = 0;
        assert!(out.poll(&mut |_| cancelled += 1).is_none());
        assert_eq!((cancelled, out.settled_through()), (2, c));
    }

    #[test]
    fn settled_through_follows_acknowledgements_and_cancellations() {
        let mut out = Outbox::default();
        assert_eq!(out.settled_through(), 0);
        let a = out.plan(put("a"), Purpose::Plain);
        let b = out.plan_if_ok(a, put("b"), Purpose::Plain);
        assert_eq!(out.settled_through(), 0);
        let r = out.poll(&mut no_cancel).unwrap().id;
        assert_eq!(out.settled_through(), 0, "handed out is not settled");
        out.acknowledge(r, false);
        assert_eq!(out.settled_through(), a);
        assert!(out.poll(&mut |_| {}).is_none(), "b was cancelled");
        assert_eq!(out.settled_through(), b);
    }

    #[test]
    fn an_acknowledgement_for_another_operation_is_refused() {
        let mut out = Outbox::default();
        let a = out.plan(put("a"), Purpose::Plain);
        out.poll(&mut no_cancel);
        assert!(out.acknowledge(a + 1, true).is_none());
        assert!(out.acknowledge(a, true).is_some());
        assert!(out.acknowledge(a, true).is_none(), "only once");
    }
}
