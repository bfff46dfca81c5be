//! Group commit: appends from concurrent callers share one transaction, and each caller is
//! answered only once the transaction that holds its item committed.
//!
//! No writer runs while nothing is queued. A caller queues its item and waits for a turn;
//! whoever gets one starts the write of everything queued (up to a batch limit) while the
//! others queue behind it, so under load a commit carries every item that arrived during the
//! one before. The write runs on a task of its own that holds the turn until it answered: a
//! caller that goes away (its request cancelled) cannot drop other callers' items
//! half-written.
//!
//! There are `writers` turns. With one, an item that arrives while a transaction is under way
//! waits for it to end and then for its own: near two commits at worst. With more (PostgreSQL,
//! whose concurrent commits share WAL flushes), it starts its own transaction at once, and
//! waits only for the flush under way to end before its own. SQLite has one writer at a time
//! anyway: one turn there.
//!
//! The queue is bounded ([`QUEUE_BATCHES`] batches): beyond, an append is refused at once as
//! the database being unavailable, rather than waiting behind a backlog. A transaction that
//! fails because the database is away fails its items and everything queued behind them (they
//! would wait only to fail the same way). One the database refuses for its data (a constraint,
//! a value it cannot store) is split, each item written on its own, so a bad item fails alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::StoreError;

type Outcome = Result<(), Arc<StoreError>>;

/// Items waiting for a turn, each with where its outcome goes.
type Queue<T> = Arc<Mutex<Vec<(T, oneshot::Sender<Outcome>)>>>;

/// Writes one batch, all or nothing.
pub(crate) type WriteBatch<T> =
    Arc<dyn Fn(Vec<T>) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send + Sync>;

/// How many batches may wait, beyond the one being written.
pub(crate) const QUEUE_BATCHES: usize = 8;

/// A [`WriteBatch`] from an async function of the batch.
pub(crate) fn batch_writer<T, W, F>(write: W) -> WriteBatch<T>
where
    W: Fn(Vec<T>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    Arc::new(move |items| {
        Box::pin(write(items)) as Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>
    })
}

/// A queue of items written in shared transactions.
pub(crate) struct GroupCommit<T> {
    queue: Queue<T>,
    turns: Arc<tokio::sync::Semaphore>,
    max_batch: usize,
    write: WriteBatch<T>,
    /// Whether a failed batch is retried item by item.
    split: fn(&StoreError) -> bool,
}

impl<T: Clone + Send + 'static> GroupCommit<T> {
    /// A queue whose transactions hold at most `max_batch` items (at least 1), each written by
    /// `write` with the batch in arrival order, at most `writers` (at least 1) at once; a batch
    /// failing with an error `split` accepts is written again item by item.
    pub(crate) fn new(
        max_batch: usize,
        writers: usize,
        write: WriteBatch<T>,
        split: fn(&StoreError) -> bool,
    ) -> Self {
        Self {
            queue: Arc::new(Mutex::new(Vec::new())),
            turns: Arc::new(tokio::sync::Semaphore::new(writers.max(1))),
            max_batch: max_batch.max(1),
            write,
            split,
        }
    }

    fn queue_handle(&self) -> Queue<T> {
        self.queue.clone()
    }

    /// Queues `item` and returns once the transaction holding it committed, or with that
    /// transaction's error (shared by every item in it).
    pub(crate) async fn submit(&self, item: T) -> Result<(), StoreError> {
        let (answer, mut answered) = oneshot::channel();
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= self.max_batch * QUEUE_BATCHES {
                return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
            }
            queue.push((item, answer));
        }
        loop {
            // Waits for a turn: with every one taken, the item may be in a batch being written.
            let Ok(turn) = self.turns.clone().acquire_owned().await else {
                return Err(StoreError::Lost); // never closed
            };
            match answered.try_recv() {
                Ok(outcome) => return outcome.map_err(StoreError::Shared),
                // The task holding the item died without answering (a panic): the outcome is
                // unknown, which for an append is a failure.
                Err(oneshot::error::TryRecvError::Closed) => return Err(StoreError::Lost),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            // The front of the queue: this caller's item, or items ahead of it beyond the
            // batch limit, in which case the next turn takes it.
            let batch: Vec<_> = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                let take = queue.len().min(self.max_batch);
                queue.drain(..take).collect()
            };
            if batch.is_empty() {
                // Another turn took the item: its batch is being written. (With one turn, only if
                // the task holding it died, which the outcome then says.)
                drop(turn);
                return match answered.await {
                    Ok(outcome) => outcome.map_err(StoreError::Shared),
                    Err(_) => Err(StoreError::Lost),
                };
            }
            let write = self.write.clone();
            let queue = self.queue_handle();
            let split = self.split;
            tokio::spawn(async move {
                let (items, mut answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let outcome = write(items.clone()).await;
                match outcome {
                    // One item the database refuses must not fail the others that happened to
                    // share its transaction: each on its own.
                    Err(e) if items.len() > 1 && split(&e) => {
                        for (item, answer) in items.into_iter().zip(answers) {
                            let _ = answer.send(write(vec![item]).await.map_err(Arc::new));
                        }
                    }
                    outcome => {
                        let away = outcome.as_ref().is_err_and(StoreError::is_unavailable);
                        if away {
                            // Those queued behind would wait a whole timeout each to learn the
                            // same.
                            let behind =
                                std::mem::take(&mut *queue.lock().unwrap_or_else(PoisonError::into_inner));
                            answers.extend(behind.into_iter().map(|(_, answer)| answer));
                        }
                        let outcome = outcome.map_err(Arc::new);
                        for answer in answers {
                            // A caller that went away no longer listens; its item is written
                            // anyway.
                            let _ = answer.send(outcome.clone());
                        }
                    }
                }
                drop(turn);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    const POISON: u32 = 13;

    /// The test's stand-in for a value the database refuses.
    fn poisoned(e: &StoreError) -> bool {
        matches!(e, StoreError::Busy(_))
    }

    /// Every batch written, in order.
    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    /// Records every batch written; fails batches while `fail` is set; each write takes
    /// `delay`, the time in which later items queue up.
    fn recorder(delay: Duration, fail: Arc<AtomicBool>) -> (Batches, WriteBatch<u32>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let write = batch_writer(move |items: Vec<u32>| {
            let seen = seen.clone();
            let fail = fail.clone();
            async move {
                tokio::time::sleep(delay).await;
                if fail.load(Ordering::SeqCst) {
                    return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
                }
                // A value the database refuses, whatever else is in the transaction.
                if items.contains(&POISON) {
                    return Err(StoreError::Busy("refused".to_owned()));
                }
                seen.lock().expect("lock").push(items);
                Ok(())
            }
        });
        (batches, write)
    }

    /// Submits `items` at once, each from a task of its own, and expects each written.
    async fn submit_all(queue: &Arc<GroupCommit<u32>>, items: std::ops::Range<u32>) {
        let tasks: Vec<_> = items
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.submit(i).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("written");
        }
    }

    /// Every item written, in order.
    fn written(batches: &Batches) -> Vec<u32> {
        let mut written: Vec<u32> = batches.lock().expect("lock").iter().flatten().copied().collect();
        written.sort_unstable();
        written
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_items_share_transactions_and_each_is_written_once() {
        let (batches, write) = recorder(Duration::from_millis(5), Arc::new(AtomicBool::new(false)));
        let queue = Arc::new(GroupCommit::new(32, 1, write, poisoned));
        submit_all(&queue, 100..300).await;
        assert_eq!(
            written(&batches),
            (100..300).collect::<Vec<_>>(),
            "every item exactly once"
        );
        let batches = batches.lock().expect("lock").clone();
        assert!(
            batches.iter().all(|b| b.len() <= 32),
            "batch limit held: {batches:?}"
        );
        assert!(
            batches.len() < 200 / 2,
            "items waiting behind a commit share the next one: {} transactions for 200 items",
            batches.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_transaction_fails_its_items_and_not_later_ones() {
        let fail = Arc::new(AtomicBool::new(true));
        let (batches, write) = recorder(Duration::from_millis(1), fail.clone());
        let queue = GroupCommit::new(16, 1, write, poisoned);
        let error = queue.submit(1).await.expect_err("the write failed");
        assert!(
            error.is_unavailable(),
            "the batch's error, classified as it was: {error:?}"
        );
        fail.store(false, Ordering::SeqCst);
        queue.submit(2).await.expect("written");
        assert_eq!(
            *batches.lock().expect("lock"),
            vec![vec![2]],
            "the failed item was not written later"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_item_the_database_refuses_fails_alone() {
        let (batches, write) = recorder(Duration::from_millis(5), Arc::new(AtomicBool::new(false)));
        let queue = Arc::new(GroupCommit::new(64, 1, write, poisoned));
        let tasks: Vec<_> = (0..40u32)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move { (i, queue.submit(i).await) })
            })
            .collect();
        for task in tasks {
            let (i, outcome) = task.await.expect("join");
            match outcome {
                Err(StoreError::Shared(e)) if i == POISON => assert!(matches!(*e, StoreError::Busy(_))),
                Ok(()) if i != POISON => {}
                other => panic!("item {i}: {other:?}"),
            }
        }
        let expected: Vec<u32> = (0..40).filter(|i| *i != POISON).collect();
        assert_eq!(written(&batches), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_an_outage_fails_those_behind() {
        let fail = Arc::new(AtomicBool::new(true));
        let (batches, write) = recorder(Duration::from_millis(300), fail.clone());
        let queue = Arc::new(GroupCommit::new(1, 1, write, poisoned));
        let spawn = |i: u32| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.submit(i).await })
        };
        let queued = |n: usize| {
            let queue = queue.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while queue.queue.lock().expect("lock").len() != n || queue.turns.available_permits() > 0 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "never {n} queued behind a write"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        };
        let mut waiting = vec![spawn(0)];
        queued(0).await;
        waiting.extend((1..=QUEUE_BATCHES as u32).map(spawn));
        // One being written, QUEUE_BATCHES queued: the next is refused without waiting.
        queued(QUEUE_BATCHES).await;
        let started = std::time::Instant::now();
        let refused = queue.submit(99).await.expect_err("full");
        assert!(
            refused.is_unavailable() && started.elapsed() < Duration::from_millis(100),
            "{refused:?}"
        );
        // The first batch fails as the database being away: everyone behind it learns so with
        // it, not one write timeout after another.
        let started = std::time::Instant::now();
        for task in waiting {
            let error = task.await.expect("join").expect_err("database away");
            assert!(error.is_unavailable(), "{error:?}");
        }
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert!(batches.lock().expect("lock").is_empty());
    }

    /// A writer that takes `delay` per batch and records the most batches under way at once,
    /// and every item written.
    fn overlapping(delay: Duration) -> (Arc<AtomicUsize>, Arc<AtomicUsize>, Batches, WriteBatch<u32>) {
        let (under_way, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let batches: Batches = Arc::new(Mutex::new(Vec::new()));
        let (now, peak, seen) = (under_way.clone(), most.clone(), batches.clone());
        let write = batch_writer(move |items: Vec<u32>| {
            let (now, peak, seen) = (now.clone(), peak.clone(), seen.clone());
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                seen.lock().expect("lock").push(items);
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        });
        (under_way, most, batches, write)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_two_writers_an_item_does_not_wait_for_the_transaction_under_way() {
        for writers in [1, 2] {
            let (under_way, most, batches, write) = overlapping(Duration::from_millis(100));
            let queue = Arc::new(GroupCommit::new(16, writers, write, poisoned));
            let first = {
                let queue = queue.clone();
                tokio::spawn(async move { queue.submit(1).await })
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while under_way.load(Ordering::SeqCst) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the first write never started"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Arrives while the first transaction is under way.
            queue.submit(2).await.expect("written");
            first.await.expect("join").expect("written");
            assert_eq!(
                most.load(Ordering::SeqCst),
                writers,
                "{writers} writer(s): the second item's transaction overlaps the first only with two"
            );
            assert_eq!(written(&batches), [1, 2]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_three_writers_items_still_share_transactions_and_each_is_written_once() {
        let (_, most, batches, write) = overlapping(Duration::from_millis(5));
        let queue = Arc::new(GroupCommit::new(32, 3, write, poisoned));
        // 240 at once: within the queue's bound (32 × QUEUE_BATCHES).
        submit_all(&queue, 0..240).await;
        assert_eq!(
            written(&batches),
            (0..240).collect::<Vec<_>>(),
            "every item exactly once"
        );
        let batches = batches.lock().expect("lock").clone();
        assert!(most.load(Ordering::SeqCst) <= 3, "at most three at once");
        assert!(
            batches.len() < 120,
            "items still share transactions: {} for 240 items",
            batches.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_cancelled_mid_write_does_not_lose_the_batch() {
        let (batches, write) = recorder(Duration::from_millis(50), Arc::new(AtomicBool::new(false)));
        let queue = Arc::new(GroupCommit::new(16, 1, write, poisoned));
        // The first caller takes the turn and is dropped while its batch is being written.
        let first = tokio::time::timeout(Duration::from_millis(10), queue.submit(1)).await;
        assert!(first.is_err(), "still writing when cancelled");
        // Items queued meanwhile are written by the next turn, after the first batch.
        queue.submit(2).await.expect("written");
        assert_eq!(*batches.lock().expect("lock"), vec![vec![1], vec![2]]);
    }
}
