//! The upload protocol, the logger's side: handing out the front batch once it is durable,
//! the host's outcomes (delivered, retry with backoff and Retry-After, 413 split, permanent
//! refusal), the in-flight timeout, and the next deadline the host must wake up for.

use super::*;

impl Logger {
    /// Call when the deadline from [`Logger::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.tick(now);
        if self.store_retry_at.is_some_and(|t| self.now >= t) {
            self.store_retry_at = None;
            self.reserved = self.reserved.max(self.stats.issued);
            self.rewrite_state();
        }
        if let Some(upload) = self.schedule.timed_out(self.now) {
            // The id is the one in flight, so this cannot be unknown.
            let _ = self.settle(upload, UploadOutcome::NetworkError);
        }
        if self.sealing.due(self.now) {
            self.step_sealing(sealing::SEAL_STEP_BYTES);
        }
        self.drive();
    }

    /// The next monotonic time at which the host must call [`Logger::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut deadline: Option<u64> = None;
        let mut consider = |t: u64| deadline = Some(deadline.map_or(t, |d: u64| d.min(t)));
        if !self.open.is_empty() {
            consider(
                self.open
                    .opened_at
                    .saturating_add(self.config.max_batch_age_ms),
            );
        }
        if let Some(t) = self.store_retry_at {
            consider(t);
        }
        if let Some(t) = self.sealing.deadline() {
            consider(t);
        }
        // A front batch held back for durability is sent after a store result or the store
        // retry, never at a send deadline: that one may have passed long ago.
        let sendable = self.queue.front().is_some_and(|b| self.durable(b));
        if let Some(t) = self.schedule.deadline(sendable) {
            consider(t);
        }
        // Back on the host's clock.
        deadline.map(|d| d.saturating_sub(self.mono_offset))
    }

    /// The next upload to perform, if one is due. At most one is in flight at a time.
    pub fn poll_upload(&mut self, now: Now) -> Option<Upload> {
        self.tick(now);
        let batch = self.queue.front()?;
        // Before the schedule: a store retry is needed even while an upload backoff runs
        // (poll_timeout offers no send deadline for a batch that is not durable).
        if !self.durable(batch) {
            // A write it depended on failed (rather than not being acknowledged yet): the
            // state is written again a little later.
            let acknowledged = batch.ready_after <= self.outbox.settled_through();
            if acknowledged && self.store_retry_at.is_none() && !self.outbox.busy() {
                self.store_retry_at = Some(self.now.saturating_add(STORE_RETRY_MS));
            }
            return None;
        }
        if !self.schedule.due(self.now) {
            return None;
        }
        let (id, batch_no) = (batch.id, batch.batch_no);
        let attempt = batch.attempts + 1;
        let send = proto::Batch {
            send: Some(proto::SendInfo {
                sent_at_wall_ms: self.wall,
                mono_epoch: self.starts,
                sent_at_mono_ms: self.now,
                attempt,
            }),
            ..Default::default()
        };
        let mut body = batch.body.clone();
        // A few bytes: stored, so sending needs no compressor.
        gzip::gzip_stored_into(&send.encode_to_vec(), &mut body);
        if let Some(b) = self.queue.get_mut(id) {
            b.attempts = attempt;
        }
        self.stats.uploads += 1;
        if attempt > 1 {
            self.stats.retries += 1;
        }
        let upload = self.schedule.begin(id, self.now);
        Some(Upload {
            id: upload,
            path: UPLOAD_PATH.to_string(),
            headers: alloc::vec![
                Header {
                    name: "content-type".to_string(),
                    value: CONTENT_TYPE.to_string(),
                },
                Header {
                    name: APP_KEY_HEADER.to_string(),
                    value: self.config.app_key.clone(),
                },
                Header {
                    name: BATCH_HEADER.to_string(),
                    value: batch_header(&self.session_id, batch_no),
                },
            ],
            body,
        })
    }

    /// Durability first: a batch may be sent once what it depends on (its stored copy, the
    /// state naming its seqs) is acknowledged, and its seqs are durable: its copy or a state
    /// reserving them was written. Otherwise a restart could issue them again.
    fn durable(&self, batch: &ClosedBatch) -> bool {
        let covered = batch
            .last_seq_bound()
            .is_some_and(|last| last <= self.durable_reserved);
        batch.ready_after <= self.outbox.settled_through() && (batch.stored || covered)
    }

    /// The outcome of an upload returned by [`Logger::poll_upload`].
    pub fn handle_upload_result(
        &mut self,
        id: u64,
        outcome: UploadOutcome,
        now: Now,
    ) -> Result<(), UnknownUpload> {
        self.tick(now);
        let result = self.settle(id, outcome);
        self.drive();
        result
    }

    pub(super) fn settle(
        &mut self,
        upload: u64,
        outcome: UploadOutcome,
    ) -> Result<(), UnknownUpload> {
        let id = self.schedule.finish(upload).ok_or(UnknownUpload(upload))?;
        let Some(batch) = self.queue.get_mut(id) else {
            return Err(UnknownUpload(upload));
        };
        let (count, attempts, body_len) =
            (u64::from(batch.count), batch.attempts, batch.body.len());
        let last_seq = batch.last_seq_bound().unwrap_or(0);
        match upload::classify(&outcome) {
            Disposition::Delivered => {
                self.queue.remove(id);
                self.stats.delivered += count;
                self.stats.bytes_delivered += body_len as u64;
                self.settled_seq = self.settled_seq.max(last_seq);
                self.settle_stored(id);
                self.schedule.now_ready(self.now);
            }
            Disposition::Reject => self.drop_batch(id, DropReason::Rejected),
            Disposition::Split => self.split(id),
            Disposition::Retry if attempts >= self.config.max_attempts => {
                self.drop_batch(id, DropReason::RetriesExhausted);
            }
            Disposition::Retry => {
                let asked = match &outcome {
                    UploadOutcome::Status {
                        retry_after: Some(text),
                        ..
                    } => upload::parse_retry_after(text, self.wall).unwrap_or(0),
                    _ => 0,
                };
                let (now, wall) = (self.now, self.wall);
                self.schedule
                    .retry(attempts, asked, now, wall, &self.config, &mut self.rng);
            }
        }
        // Also persists the front batch's attempt count, so backoff survives a restart
        // without rewriting the batch.
        self.write_acks();
        Ok(())
    }

    pub(super) fn drop_batch(&mut self, id: u64, reason: DropReason) {
        if let Some(b) = self.queue.remove(id) {
            self.stats.dropped.add(reason, u64::from(b.count));
            self.count_settled(&b);
        }
        self.schedule.now_ready(self.now);
    }

    /// 413: re-encode the batch as two halves, each with its own string table, and send
    /// those instead; a single impression that is still too large is dropped.
    pub(super) fn split(&mut self, id: u64) {
        // The halves are compressed with the sealing batch's compressor: it goes first.
        self.finish_sealing();
        let Some(batch) = self.queue.get(id) else {
            return;
        };
        // Decoded into locals step by step: the batch is not moved through options.
        let Ok(proto_batch) = wire::decode_gzip_batch(&batch.body) else {
            self.drop_batch(id, DropReason::TooLarge);
            return;
        };
        let rows = match wire::impressions(&proto_batch) {
            Ok(rows) if rows.len() > 1 => rows,
            _ => {
                self.drop_batch(id, DropReason::TooLarge);
                return;
            }
        };
        // A stored copy whose body holds other impressions than its header counts (the
        // header is what was counted): halves would settle impressions never counted.
        if rows.len() != batch.count as usize || rows[0].seq != batch.first_seq {
            self.drop_batch(id, DropReason::StoreCorrupt);
            return;
        }
        let (left, right) = rows.split_at(rows.len() / 2);
        let mut halves = [0; 2];
        // Encoded in the buffer batch closes reuse, as they are: no buffer of its own.
        let mut raw = core::mem::take(&mut self.encode_buf);
        // Push the right half first so the left half ends up in front.
        for (slot, half_id) in halves.iter_mut().enumerate() {
            let half = if slot == 0 { right } else { left };
            raw.clear();
            crate::batch::subset_into(&proto_batch, half, self.next_batch_no, &mut raw);
            let body = self.compress(&raw);
            let (id, no) = (self.next_batch_id, self.next_batch_no);
            let mut closed = ClosedBatch::new(id, no, half[0].seq, half.len() as u32, body);
            self.next_batch_id += 1;
            self.next_batch_no += 1;
            closed.ready_after = self.store_batch(&closed);
            *half_id = id;
            self.queue.push_front(closed);
        }
        self.encode_buf = raw;
        // The original goes the way of a settled batch once both halves are stored (or a
        // half is settled): listed in the next `acks`, its copy removed once that `acks`
        // is acknowledged (a failed removal is retried, and a restart never loads it next
        // to halves that were already counted). Until then a restart finds the original,
        // keeps it and drops the halves: a half whose put failed is never lost with it.
        self.queue.remove(id);
        self.splits.push((id, halves));
        self.schedule.now_ready(self.now);
    }
}

/// The batch header's value: `<session id>/<batch number>`, the number in decimal.
fn batch_header(session_id: &str, batch_no: u64) -> String {
    let mut value = String::with_capacity(session_id.len() + 1 + 20);
    value.push_str(session_id);
    value.push('/');
    crate::digits::push_digits(&mut value, batch_no, 10, 1);
    value
}
