//! Persistence, the logger's side: the store operations it plans (journal records, batch
//! copies, checkpoints of `state` and `acks`, seq reservations) and the host's
//! acknowledgements of them. The ordering rules live in [`crate::outbox`].

use super::*;

impl Logger {
    /// The next store operation to perform, if any. One is handed out at a time: the next
    /// comes once this one is acknowledged with [`Logger::handle_store_result`]. The
    /// operation is borrowed; a host that performs it later copies it.
    pub fn poll_store_op(&mut self) -> Option<&StoreRequest> {
        let settled = &mut self.settled;
        self.outbox
            .poll(&mut |f: Finished| Self::undo_settled(settled, f))
    }

    /// The result of the store operation `id` handed out by [`Logger::poll_store_op`]. A
    /// failed write is counted (`store_errors`), and what depended on it is not done (the
    /// journal is kept when the state that replaces it failed).
    pub fn handle_store_result(
        &mut self,
        id: u64,
        result: Result<(), StoreError>,
    ) -> Result<(), UnknownStoreOp> {
        let finished = self
            .outbox
            .acknowledge(id, result.is_ok())
            .ok_or(UnknownStoreOp(id))?;
        if !finished.ok {
            self.stats.store_errors += 1;
        }
        match finished.purpose {
            // What a restart reads back is the last state written, not the highest
            // reservation ever written: a checkpoint stores `reserved_through` = issued,
            // lower than an earlier reservation. Every state write covers every seq
            // issued when it was planned, so no batch already counted covered loses it.
            Purpose::State { covers } if finished.ok => self.durable_reserved = covers,
            Purpose::Batch(batch) if finished.ok => {
                if let Some(b) = self.queue.get_mut(batch) {
                    b.stored = true;
                }
                if self.settle_splits() {
                    self.write_acks();
                }
            }
            _ => Self::undo_settled(&mut self.settled, finished),
        }
        Ok(())
    }

    /// Performs every planned store operation on `store`, synchronously; returns how many.
    pub fn perform_store_ops<S: Store + ?Sized>(&mut self, store: &mut S) -> usize {
        let mut n = 0;
        while let Some(request) = self.poll_store_op() {
            let (id, result) = (request.id, store.apply(&request.op));
            // The id was just handed out, so it is the one awaited.
            let _ = self.handle_store_result(id, result);
            n += 1;
        }
        n
    }

    /// True while store operations are planned or awaiting their result.
    pub fn store_busy(&self) -> bool {
        self.outbox.busy()
    }

    /// Bytes held by planned store operations not yet handed out, for memory accounting.
    pub fn store_backlog_bytes(&self) -> usize {
        self.outbox.planned_bytes()
    }

    pub(super) fn undo_settled(settled: &mut Vec<Settled>, finished: Finished) {
        if let Purpose::RemoveSettled(id) = finished.purpose {
            if finished.ok {
                settled.retain(|s| s.id != id);
            } else if let Some(s) = settled.iter_mut().find(|s| s.id == id) {
                s.removing = false;
            }
        }
    }

    pub(super) fn journal(&mut self, entry: &Entry<'_>) {
        journal_into(
            &mut self.outbox,
            &mut self.journal_bytes,
            self.generation,
            entry,
        );
    }

    /// Checkpoints a journal grown past its bound. Called only where the logger's state is
    /// whole (not between journaling an event and applying it), and only with an empty open
    /// batch and none sealing, whose impressions live in the journal until stored (a
    /// checkpoint journals the open batch again, which is worth it only when it is small).
    pub(super) fn bound_journal(&mut self) {
        if self.journal_bytes > JOURNAL_CHECKPOINT_BYTES
            && self.open.is_empty()
            && self.sealing.deadline().is_none()
        {
            self.checkpoint();
        }
    }

    /// Makes `seq` and the next [`SEQ_RESERVE`] - 1 durably "possibly issued" before the
    /// first of them is journaled: the state of the last checkpoint, with the new bound.
    pub(super) fn reserve_seqs(&mut self, seq: u64) {
        self.reserved = seq.saturating_add(SEQ_RESERVE - 1);
        self.rewrite_state();
    }

    /// Writes the state of the last checkpoint again with the current reservation: a seq
    /// reservation, or a retry after a state write failed.
    pub(super) fn rewrite_state(&mut self) {
        self.checkpointed.reserved_through = self.reserved;
        let covers = self.reserved;
        put_record(
            &mut self.outbox,
            STATE_KEY,
            &*self.checkpointed,
            Purpose::State { covers },
        );
    }

    /// A batch was counted as delivered or dropped: its stored copy goes once `acks` says so.
    pub(super) fn settle_stored(&mut self, id: u64) {
        self.settled.push(Settled {
            id,
            removing: false,
        });
    }

    /// Settles the originals of split batches whose halves are both stored, or one of
    /// whose halves was settled (delivered, dropped). True if any was.
    pub(super) fn settle_splits(&mut self) -> bool {
        let mut any = false;
        loop {
            let (queue, splits) = (&self.queue, &self.splits);
            let gone = |h: u64| queue.get(h).is_none() && !splits.iter().any(|s| s.0 == h);
            let done = splits.iter().position(|&(_, halves)| {
                halves
                    .iter()
                    .all(|&h| queue.get(h).is_some_and(|b| b.stored))
                    || halves.iter().any(|&h| gone(h))
            });
            let Some(i) = done else {
                return any;
            };
            let (original, _) = self.splits.swap_remove(i);
            self.settle_stored(original);
            any = true;
        }
    }

    /// Plans the batch's stored copy; returns its ticket.
    pub(super) fn store_batch(&mut self, batch: &ClosedBatch) -> u64 {
        let op = self.outbox.put_op(&batch.key(), |buf| {
            frame_with(buf, |payload| batch.write_record(payload))
        });
        self.outbox.plan(op, Purpose::Batch(batch.id))
    }

    pub(super) fn unstore(&mut self, key: &str) {
        let op = self.outbox.remove_op(key);
        self.outbox.plan(op, Purpose::Plain);
    }

    /// Writes counters and ids, starts a new journal generation and re-journals what the
    /// new generation needs (the epoch and the open page views). Order matters for a crash
    /// in between: `state` first (a new generation makes the journal's records old), then
    /// `acks` (drops and settled batches), then the journal is cleared. If `state` cannot
    /// be written, the journal is kept: it is then the only record of its events.
    pub(super) fn checkpoint(&mut self) {
        self.generation = self.generation.saturating_add(1);
        // Every seq issued so far is in a batch planned before this state: a checkpoint is
        // taken only with nothing open or sealing (see `sealing`), so the journal it clears
        // holds nothing else.
        debug_assert!(self.open.is_empty(), "a checkpoint with an open batch");
        debug_assert!(
            self.sealing.deadline().is_none(),
            "a checkpoint while sealing"
        );
        self.reserved = self.stats.issued;
        let s = &self.stats;
        // Written over the last checkpoint's state in place (its session id's buffer
        // reused), then planned from there.
        let state = &mut self.checkpointed;
        state.session_id.clone_from(&self.session_id);
        state.generation = self.generation;
        state.starts = self.starts;
        state.next_batch_id = self.next_batch_id;
        state.next_batch_no = self.next_batch_no;
        state.next_page_view = self.next_page_view;
        state.recorded = s.recorded;
        state.sampled_out = s.sampled_out;
        state.deduped = s.deduped;
        state.issued = s.issued;
        state.invalid = s.invalid;
        state.invalid_by_rule = s.invalid_by_rule.to_stored();
        state.reserved_through = self.reserved;
        let covers = self.reserved;
        let saved = put_record(
            &mut self.outbox,
            STATE_KEY,
            &*self.checkpointed,
            Purpose::State { covers },
        );
        self.write_acks();
        // Only once the new state is acknowledged; if it fails, the journal stays (replay
        // takes records of the stored generation and later ones).
        self.outbox
            .plan_if_ok(saved, StoreOp::ClearJournal, Purpose::Plain);
        self.journal_bytes = 0;
        self.journal(&Entry::Epoch {
            mono_epoch: self.starts,
        });
        for pv in &self.page_views {
            let entry = pv.start_entry();
            journal_into(
                &mut self.outbox,
                &mut self.journal_bytes,
                self.generation,
                &entry,
            );
        }
    }

    /// Plans a record's write; returns its ticket.
    pub(super) fn put_record<T: Message>(&mut self, key: &str, value: &T, purpose: Purpose) -> u64 {
        put_record(&mut self.outbox, key, value, purpose)
    }

    /// Writes `acks`, then removes the stored copies of the batches it lists as settled,
    /// once it is acknowledged.
    pub(super) fn write_acks(&mut self) {
        self.settle_splits();
        let front = self.queue.front().map_or((0, 0), |b| (b.id, b.attempts));
        let ids: Vec<u64> = self.settled.iter().map(|s| s.id).collect();
        let mut acks = Acks::from_stats(
            &self.stats,
            self.schedule.blocked().0,
            self.schedule.blocked().1,
            &ids,
            front,
        );
        acks.settled_through_seq = self.settled_seq;
        let written = self.put_record(ACKS_KEY, &acks, Purpose::Plain);
        for i in 0..self.settled.len() {
            let s = self.settled[i];
            if s.removing {
                continue;
            }
            self.settled[i].removing = true;
            let op = self.outbox.remove_op(&crate::queue::batch_key(s.id));
            self.outbox
                .plan_if_ok(written, op, Purpose::RemoveSettled(s.id));
        }
    }
}

/// Frames `entry` into the journal append `outbox` plans, counting its bytes. Apart from
/// the logger, so an entry that borrows the logger's page views is written without a copy.
pub(super) fn journal_into(
    outbox: &mut Outbox,
    journal_bytes: &mut usize,
    generation: u32,
    entry: &Entry<'_>,
) {
    let (_, added) =
        outbox.append_with(|buf| frame_with(buf, |payload| entry.encode(generation, payload)));
    *journal_bytes += added;
}

/// Plans a record's write in `outbox`; returns its ticket. Apart from the logger, so a
/// record the logger holds (the checkpointed state) is written without moving it out.
fn put_record<T: Message>(outbox: &mut Outbox, key: &str, value: &T, purpose: Purpose) -> u64 {
    let op = outbox.put_op(key, |buf| {
        frame_with(buf, |payload| value.encode_raw(payload))
    });
    outbox.plan(op, purpose)
}
