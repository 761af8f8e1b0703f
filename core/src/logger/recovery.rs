//! Recovery at start: the session, counters, queue, backoff and journaled events read back
//! from what the host stored, and the accounting of whatever a crash or a failed write lost.

use super::*;

/// Hex digits of a new session id: a random `u64`, zero-padded.
const SESSION_ID_DIGITS: usize = 16;

impl Logger {
    /// Restores the session, counters, queue and journaled events from the store. A read
    /// error fails the start (absent and unreadable must not be confused).
    ///
    /// Never inlined: inlined into the C ABI's resume, it shared one frame of about 3 KiB
    /// with the config conversion and the stored values, and its accesses to records and
    /// counters became wide stack-relative instructions (736 B more flash on the firmware).
    #[inline(never)]
    pub(super) fn recover(&mut self, stored: &Stored) {
        // Whatever is stored, even unreadable, seeds a new session id, so a logger whose
        // state was lost does not reuse its old session id (and collide on seqs).
        let previous = stored
            .get(STATE_KEY)
            .map_or(0, |bytes| crate::rng::hash_bytes(0, bytes));
        // Checked where they lie: through `Option::and_then` each record would be copied
        // into the closure and out again.
        let mut state = self.get_record::<State>(stored, STATE_KEY);
        if self.implausible(state.as_ref().is_some_and(|s| !s.plausible())) {
            state = None;
        }
        let mut acks = self.get_record::<Acks>(stored, ACKS_KEY);
        if self.implausible(acks.as_ref().is_some_and(|a| !a.plausible())) {
            acks = None;
        }
        let prefs: Prefs = self.get_record(stored, PREFS_KEY).unwrap_or_default();
        self.enabled = !prefs.opted_out;
        let resumed = state.is_some();
        // The records are read where they lie: moving them out of their options would copy
        // every counter.
        match state.as_mut() {
            Some(s) => {
                self.session_id = core::mem::take(&mut s.session_id);
                self.generation = s.generation;
                self.starts = s.starts;
                self.next_batch_id = s.next_batch_id;
                self.next_batch_no = s.next_batch_no;
                self.next_page_view = s.next_page_view;
                let st = &mut self.stats;
                st.recorded = s.recorded;
                st.sampled_out = s.sampled_out;
                st.deduped = s.deduped;
                st.issued = s.issued;
                st.invalid = s.invalid;
                st.invalid_by_rule = crate::stats::RuleCounts::from_stored(&s.invalid_by_rule);
                self.reserved = s.reserved_through;
            }
            None => {
                // Mixed with the install id and the wall clock: hosts that pass the same
                // seed everywhere must still not share session ids.
                let install = crate::rng::hash_bytes(self.wall, self.config.install_id.as_bytes());
                let clocks = crate::rng::mix64(self.now ^ self.wall.rotate_left(32));
                let id = self.rng.next_u64() ^ install ^ previous ^ clocks;
                self.session_id.clear();
                crate::digits::push_digits(&mut self.session_id, id, 16, SESSION_ID_DIGITS);
            }
        }
        // Acknowledgements belong to the session in `state`; without it they describe a
        // session that is gone.
        let mut settled = Vec::new();
        let mut front_attempts = (0, 0);
        let mut blocked = (0, 0);
        if let Some(a) = acks.as_mut().filter(|_| resumed) {
            let st = &mut self.stats;
            st.delivered = a.delivered;
            st.dropped = a.drops();
            st.uploads = a.uploads;
            st.retries = a.retries;
            st.bytes_delivered = a.bytes_delivered;
            st.store_errors += a.store_errors;
            st.corrupt_records += a.corrupt_records;
            blocked = (a.blocked_until_wall_ms, a.blocked_for_ms);
            front_attempts = (a.attempts_batch, a.attempts);
            self.settled_seq = a.settled_through_seq;
            settled = core::mem::take(&mut a.settled);
        }
        // Jitter must differ between restarts even with the same configured seed.
        self.rng = Rng::new(self.config.seed ^ crate::rng::mix64(u64::from(self.starts) + 1));
        self.starts += 1;
        let key = match self.config.sample_key {
            SampleKey::Install if !self.config.install_id.is_empty() => &self.config.install_id,
            _ => &self.session_id,
        };
        self.sampled_in = sampling::keep(key, self.config.sample_rate_ppm);

        let stored_through = self.load_batches(stored, &settled);
        if let Some(b) = self.queue.get_mut(front_attempts.0) {
            b.attempts = b.attempts.max(front_attempts.1);
        }
        self.settled.extend(settled.into_iter().map(|id| Settled {
            id,
            removing: false,
        }));
        // Seqs of settled batches are counted even if their copies are gone.
        let known_through = stored_through.max(self.settled_seq);
        let journaled_through = self.replay_journal(stored, known_through);
        if prefs.purge_pending {
            self.purge();
        }
        self.account_for_losses(known_through.max(journaled_through), prefs.purge_pending);
        // Everything issued so far is known from what was read back.
        self.durable_reserved = self.stats.issued;
        let tried = self.queue.front().map_or(0, |b| b.attempts);
        let (now, wall) = (self.now, self.wall);
        self.schedule
            .restore(blocked, tried, now, wall, &self.config, &mut self.rng);
        self.checkpoint();
        if prefs.purge_pending {
            self.put_record(
                PREFS_KEY,
                &Prefs {
                    opted_out: prefs.opted_out,
                    purge_pending: false,
                },
                Purpose::Plain,
            );
        }
    }

    /// After recovery, every seq issued must be queued, delivered or dropped. Seqs proven
    /// issued (by a stored batch) count as recorded; impressions whose stored records were
    /// lost (a failed write, a corrupt batch, a crash between writes) count as dropped for
    /// a store failure, or as purged when a purge was under way.
    ///
    /// Seqs reserved beyond the highest one found may have been issued to impressions
    /// whose journal records never became durable: they count as recorded and dropped as
    /// `journal_lost` (at most [`SEQ_RESERVE`] per unclean stop, some possibly never used).
    ///
    /// Records that passed their checksums can still disagree with each other (a host's
    /// bug, corruption the CRC missed): seqs counted as settled were issued, and recorded
    /// impressions neither skipped nor issued had seqs whose records were lost, and the
    /// impressions still held (queued, rebuilt from the journal) are pending, whatever the
    /// counts say. Left as they were, the counters would flag every later batch of the
    /// session as inconsistent, or count a held impression delivered beyond issued.
    pub(super) fn account_for_losses(&mut self, found_through: u64, purging: bool) {
        let held = self.queue.impressions() + self.open.len() as u64;
        let st = &mut self.stats;
        let settled = st.delivered.saturating_add(st.dropped.total());
        let skipped = st.sampled_out.saturating_add(st.deduped);
        st.issued = st
            .issued
            .max(found_through)
            .max(settled.saturating_add(held))
            .max(st.recorded.saturating_sub(skipped));
        let unconfirmed = self.reserved.saturating_sub(st.issued);
        st.issued = st.issued.saturating_add(unconfirmed);
        st.recorded = skipped.saturating_add(st.issued);
        let lost = st.pending().saturating_sub(held);
        let reason = if purging {
            DropReason::Purged
        } else {
            DropReason::StoreCorrupt
        };
        let unconfirmed = unconfirmed.min(lost);
        let reason_unconfirmed = if purging {
            DropReason::Purged
        } else {
            DropReason::JournalLost
        };
        st.dropped.add(reason_unconfirmed, unconfirmed);
        st.dropped.add(reason, lost - unconfirmed);
    }

    /// Loads stored batches into the queue; returns the highest seq they hold. Batches
    /// `settled` names were already counted: their leftover copies are removed.
    pub(super) fn load_batches(&mut self, stored: &Stored, settled: &[u64]) -> u64 {
        let mut through = 0;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for (key, bytes) in stored
            .keys(BATCH_KEY_PREFIX)
            .filter_map(|k| Some((k, stored.get(k)?)))
        {
            // A record under another batch's key could never be removed (removals name
            // the batch's own key): every start would count it again.
            let record = read_single_frame(bytes)
                .and_then(ClosedBatch::from_record)
                .filter(|b| b.plausible() && b.key() == key)
                .and_then(|b| b.last_seq_bound().map(|last| (b, last)));
            let Some((batch, last)) = record else {
                // Unreadable: its impressions are counted lost once recovery is done.
                self.stats.corrupt_records += 1;
                self.unstore(key);
                continue;
            };
            // A crash between storing the halves of a split batch and removing the
            // original leaves both: the halves are redundant copies.
            let overlaps = ranges
                .iter()
                .any(|&(a, b)| batch.first_seq <= b && a <= last);
            if settled.contains(&batch.id) || overlaps {
                self.unstore(key);
                continue;
            }
            ranges.push((batch.first_seq, last));
            through = through.max(last);
            self.next_batch_id = self.next_batch_id.max(batch.id.saturating_add(1));
            self.next_batch_no = self.next_batch_no.max(batch.batch_no.saturating_add(1));
            let max = self.config.max_queue_bytes as usize;
            for old in self.queue.push(batch, max, None) {
                self.count_overflow(&old);
            }
        }
        through
    }

    /// Applies the journal records of the stored generation and later ones (a later one
    /// exists when a checkpoint's state write failed and the journal was kept): counters,
    /// and impressions that are not already in a stored batch, which are closed into a
    /// batch of their own epoch. Returns the highest seq journaled. Never inlined, as
    /// [`Logger::recover`] is not.
    #[inline(never)]
    pub(super) fn replay_journal(&mut self, stored: &Stored, stored_through: u64) -> u64 {
        let frames = read_frames(&stored.journal);
        let mut journaled_through = 0;
        if frames.corrupt_tail {
            self.stats.corrupt_records += 1;
        }
        let mut epoch = 0;
        // Page views as journaled: their names borrowed from the journal's bytes.
        let mut pvs: Vec<PageViewRef<'_>> = Vec::new();
        for payload in frames.payloads {
            let Some((generation, entry)) = Entry::decode(payload) else {
                self.stats.corrupt_records += 1;
                continue;
            };
            if generation < self.generation {
                continue;
            }
            match entry {
                Entry::Epoch { mono_epoch } => epoch = mono_epoch,
                Entry::PageViewStart {
                    ordinal,
                    start_mono,
                    start_wall,
                    page,
                    request_id,
                } => {
                    self.next_page_view = self.next_page_view.max(ordinal + 1);
                    pvs.push(PageViewRef {
                        ordinal,
                        page,
                        request_id,
                        start_mono,
                        start_wall,
                    });
                }
                Entry::PageViewEnd {
                    ordinal,
                    duration_ms,
                } => self.open.end_page_view(ordinal, duration_ms),
                Entry::SampledOut => {
                    self.stats.recorded += 1;
                    self.stats.sampled_out += 1;
                }
                Entry::Deduped => {
                    self.stats.recorded += 1;
                    self.stats.deduped += 1;
                }
                Entry::Invalid { rule } => {
                    if let Some(r) = Rule::from_code(rule) {
                        self.stats.count_invalid(r);
                    }
                }
                Entry::Impression(imp) => {
                    // Journaled again by a checkpoint whose state write failed (the open
                    // batch of a sealing close): already replayed from the older generation.
                    // Under `compact` nothing is journaled again.
                    #[cfg(not(feature = "compact"))]
                    if imp.seq <= journaled_through {
                        continue;
                    }
                    self.stats.recorded += 1;
                    // Raised as replay goes, so a batch sealed here has counters that
                    // cover its seqs.
                    self.stats.issued = self.stats.issued.max(imp.seq);
                    journaled_through = journaled_through.max(imp.seq);
                    if imp.seq <= stored_through {
                        continue;
                    }
                    let Some(&pv_ref) = pvs.iter().find(|p| p.ordinal == imp.page_view) else {
                        // Its page view record was lost (a failed journal append): counted
                        // lost with the other gaps once recovery is done.
                        continue;
                    };
                    // Seqs in a batch are contiguous: a record lost in between starts another.
                    let next = self.open.first_seq() + self.open.len() as u64;
                    if self.open.full(
                        self.config.max_batch_impressions as usize,
                        self.config.contract.max_id_len,
                    ) || (!self.open.is_empty() && imp.seq != next)
                    {
                        self.seal_replayed(epoch);
                    }
                    let page_view = match self.open.page_view(&pv_ref) {
                        Some(p) => p,
                        None => {
                            self.seal_replayed(epoch);
                            self.open.page_view(&pv_ref).unwrap_or(0)
                        }
                    };
                    let item = self.open.intern_item(Key::new(imp.item));
                    let artwork = imp
                        .artwork
                        .map_or(0, |a| self.open.intern_artwork(Key::new(a)) + 1);
                    self.open.push(
                        imp.seq,
                        self.now,
                        Pending {
                            item,
                            artwork,
                            row: imp.row,
                            column: imp.column,
                            first_visible_ms: imp.first_visible_ms,
                            visible_ms: imp.visible_ms,
                            focused_ms: imp.focused_ms,
                            page_view,
                            max_visible_pct: imp.max_visible_pct,
                        },
                    );
                }
            }
        }
        self.seal_replayed(epoch);
        journaled_through
    }

    /// Seals the batch replay rebuilt, in this call; recovery checkpoints once at its end.
    fn seal_replayed(&mut self, epoch: u32) {
        self.begin_sealing(epoch, false);
        self.finish_sealing();
    }

    /// Counts a record that passed its checksum but is `implausible` as corrupt; returns
    /// whether it is.
    fn implausible(&mut self, implausible: bool) -> bool {
        if implausible {
            self.stats.corrupt_records += 1;
        }
        implausible
    }

    /// Reads a record: `None` when absent or corrupt (counted). Never inlined, as
    /// [`Logger::recover`] is not: each record type's decoder in a frame of its own.
    #[inline(never)]
    pub(super) fn get_record<T: Message + Default>(
        &mut self,
        stored: &Stored,
        key: &str,
    ) -> Option<T> {
        let bytes = stored.get(key)?;
        let parsed = read_single_frame(bytes).and_then(|raw| T::decode(raw).ok());
        if parsed.is_none() {
            self.stats.corrupt_records += 1;
        }
        parsed
    }
}
