//! Reading an upload's body within its bounds: the body limit, the body deadline, and the
//! global budget of buffered request bytes, which every in-flight upload draws on (by its
//! buffer's capacity) for as long as its bytes are held (until its ingest is done).

use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ingest::MAX_COMPRESSED_BYTES;

/// The request bytes all in-flight uploads may buffer together.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Budget {
        let total = total.min(Semaphore::MAX_PERMITS);
        Budget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes buffered now.
    pub fn in_use(&self) -> usize {
        self.total - self.bytes.available_permits()
    }

    /// Takes `n` more bytes of the budget, if that many are free.
    fn take(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n).ok()?;
        self.bytes.clone().try_acquire_many_owned(n).ok()
    }
}

/// A body read whole, holding its share of the budget until dropped.
#[derive(Debug)]
pub struct Buffered {
    pub bytes: Vec<u8>,
    _held: Option<OwnedSemaphorePermit>,
}

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the body limit (413; the SDK splits the batch).
    TooLarge,
    /// Not all there by the deadline (408).
    Timeout,
    /// The budget of buffered bytes is spent (503 with Retry-After).
    OverBudget,
    /// The client went away or sent a broken body (400).
    Broken(String),
}

/// Reads `body`, which announced `announced` bytes (its Content-Length, if any), by
/// `deadline`: at most `max` bytes, whose buffer (its capacity, as it grows with the bytes
/// that arrived) is taken from `budget` before it is filled, so a slow client holds at most
/// twice what it has sent, and never more than it announced. A body over `max` (up to the hard cap) or over the budget is read to
/// its end and discarded, holding nothing, so its client reads the 413 or 503 rather than
/// a reset connection.
pub async fn read(
    mut body: Body,
    announced: Option<u64>,
    max: usize,
    budget: &Budget,
    deadline: Instant,
) -> Result<Buffered, BodyError> {
    let announced = announced.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    match announced {
        Some(n) if n > MAX_COMPRESSED_BYTES => return Err(BodyError::TooLarge),
        Some(n) if n > max => return drain(body, deadline, BodyError::TooLarge).await,
        _ => {}
    }
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut bytes = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > max {
            drop((held, bytes));
            return drain(body, deadline, BodyError::TooLarge).await;
        }
        // Geometric growth, never past the announced length: the buffer is at most twice
        // what arrived and at most what was announced.
        let needed = bytes.len() + data.len();
        if needed > bytes.capacity() {
            let grown = needed.max(2 * bytes.capacity());
            let grown = announced.map_or(grown, |n| grown.min(n.max(needed)));
            bytes.reserve_exact(grown - bytes.len());
        }
        let taken = held.as_ref().map_or(0, |h| h.num_permits());
        if let Some(more) = bytes.capacity().checked_sub(taken).filter(|&n| n > 0) {
            let Some(more) = budget.take(more) else {
                drop((held, bytes));
                return drain(body, deadline, BodyError::OverBudget).await;
            };
            match held.as_mut() {
                Some(h) => h.merge(more),
                None => held = Some(more),
            }
        }
        bytes.extend_from_slice(&data);
    }
    Ok(Buffered { bytes, _held: held })
}

/// Reads and discards the rest of a refused body, up to the hard cap, then gives `refusal`.
async fn drain(
    mut body: Body,
    deadline: Instant,
    refusal: BodyError,
) -> Result<Buffered, BodyError> {
    let mut seen = 0usize;
    while seen <= MAX_COMPRESSED_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, |d| d.len()),
            Ok(None) | Ok(Some(Err(_))) => break,
        }
    }
    Err(refusal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn a_body_holds_its_bytes_of_the_budget_until_dropped() {
        let budget = Budget::new(100);
        let body = read(Body::from(vec![7u8; 60]), Some(60), 1000, &budget, later())
            .await
            .expect("fits");
        assert_eq!(
            (body.bytes.len(), budget.in_use()),
            (60, body.bytes.capacity())
        );
        let refused = read(Body::from(vec![7u8; 41]), Some(41), 1000, &budget, later()).await;
        assert_eq!(refused.unwrap_err(), BodyError::OverBudget);
        let unannounced = read(Body::from(vec![7u8; 41]), None, 1000, &budget, later()).await;
        assert_eq!(unannounced.unwrap_err(), BodyError::OverBudget);
        assert_eq!(
            budget.in_use(),
            60,
            "a refused body gives back what it took"
        );
        drop(body);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_read_to_its_end_and_refused_without_budget() {
        let budget = Budget::new(10);
        for announced in [Some(50), None] {
            let refused = read(Body::from(vec![1u8; 50]), announced, 20, &budget, later()).await;
            assert_eq!(refused.unwrap_err(), BodyError::TooLarge);
        }
        assert_eq!(budget.in_use(), 0);
    }

    /// A body whose chunks arrive by a channel.
    struct Chunks(tokio::sync::mpsc::UnboundedReceiver<axum::body::Bytes>);

    impl http_body::Body for Chunks {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    /// A body whose bytes never come.
    struct Never;

    impl http_body::Body for Never {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_slow_body_holds_budget_for_what_it_sent_not_for_what_it_announced() {
        let budget = Budget::new(1 << 20);
        let (sender, chunks) = tokio::sync::mpsc::unbounded_channel();
        let reading = read(
            Body::new(Chunks(chunks)),
            Some(500_000),
            1 << 20,
            &budget,
            later(),
        );
        tokio::pin!(reading);
        sender
            .send(axum::body::Bytes::from(vec![1u8; 1000]))
            .expect("send");
        // The first 1000 bytes are read, then the read waits for the rest.
        let waiting = tokio::time::timeout(Duration::from_millis(20), &mut reading).await;
        assert!(waiting.is_err(), "the body is not all there");
        let held = budget.in_use();
        assert!((1000..=2000).contains(&held), "{held}");
    }

    #[tokio::test]
    async fn a_body_not_there_by_the_deadline_times_out() {
        let body = Body::new(Never);
        let budget = Budget::new(1000);
        let deadline = Instant::now() + Duration::from_millis(10);
        let late = read(body, Some(10), 1000, &budget, deadline).await;
        assert_eq!(late.unwrap_err(), BodyError::Timeout);
        assert_eq!(budget.in_use(), 0);
    }
}
