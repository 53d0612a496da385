//! One task per kind of record that writes what the request handlers queue, many records per
//! transaction: what gathered while the last transaction ran, after letting records gather
//! for a while longer when the writer is given a linger ([`LINGER`] for records nobody
//! waits for). A `write` that reports a failure gets its batch back to retry, so nothing
//! queued is dropped; the decision log handles its failures itself (its requests fail).
//! Closing the queue (dropping every sender) lets the task write what is left and end.
//!
//! Queues are bounded: when the store falls behind by `capacity` records, a handler waits
//! for room before it answers, so a server under more load than its store can take slows
//! down instead of holding an ever-growing backlog in memory.

use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tribunal_store::{Store, StoreError};

/// Records a writer takes in one transaction at most.
pub(crate) const BATCH: usize = 512;

/// How long the gate trace writer lets records gather after the first one before it
/// writes. Handlers never wait for that write, so this costs them nothing; under load it
/// turns a transaction (and a wake-up of the writer and of the database thread) per request
/// into one per few milliseconds. The decision log, whose requests wait for the commit,
/// lingers for no time: entries that arrive while a transaction runs share the next one.
pub const LINGER: Duration = Duration::from_millis(2);

/// Starts a writer with a queue of `capacity` records (at least 1) that lets records
/// gather for `linger` after the first. `write` gets the store and a batch and hands the
/// batch back with the outcome, so a failed batch is retried as it was.
pub fn spawn<T, F, Fut>(
    what: &'static str,
    store: Store,
    capacity: usize,
    linger: Duration,
    write: F,
) -> (mpsc::Sender<T>, tokio::task::JoinHandle<()>)
where
    T: Send + 'static,
    F: Fn(Store, Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = (Vec<T>, Result<(), StoreError>)> + Send,
{
    let (tx, mut rx) = mpsc::channel::<T>(capacity.max(1));
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH.min(capacity.max(1)));
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            if batch.len() < BATCH && !rx.is_closed() && !linger.is_zero() {
                tokio::time::sleep(linger).await;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
            }
            let mut delay = Duration::from_millis(50);
            loop {
                let (back, result) = write(store.clone(), std::mem::take(&mut batch)).await;
                batch = back;
                match result {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, records = batch.len(), "writing {what} failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            batch.clear();
        }
    });
    (tx, task)
}

/// How often the store's write-ahead log is checkpointed (SQLite).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints a SQLite store's log every [`CHECKPOINT_EVERY`] from a connection of its
/// own, so that no commit a request waits for (the decision log's) stops to copy pages and
/// `fsync` the database file; until `stop`. Does nothing on PostgreSQL.
pub async fn checkpoints(store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut checkpointer = match store.wal_checkpointer().await {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            // The commits go on checkpointing by themselves.
            tracing::warn!(error = %e, "the log checkpointer did not start");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = checkpointer.checkpoint().await {
            tracing::warn!(error = %e, "checkpointing the store's log failed");
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Records waiting in a queue.
pub fn depth<T>(tx: &mpsc::Sender<T>) -> usize {
    tx.max_capacity() - tx.capacity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn a_full_queue_makes_senders_wait_until_the_writer_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        // The writer may write only when the test lets it.
        let gate = Arc::new(Semaphore::new(0));
        let written = Arc::new(Mutex::new(Vec::new()));
        let (g, w) = (gate.clone(), written.clone());
        let (tx, task) = spawn(
            "test records",
            store,
            2,
            LINGER,
            move |_store, rows: Vec<u32>| {
                let (g, w) = (g.clone(), w.clone());
                async move {
                    g.acquire().await.unwrap().forget();
                    w.lock().unwrap().extend(rows.iter().copied());
                    (rows, Ok(()))
                }
            },
        );
        // The writer takes the first record and waits; two more fill the queue.
        tx.send(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(2).await.unwrap();
        tx.send(3).await.unwrap();
        assert_eq!(depth(&tx), 2);
        let blocked = tokio::time::timeout(Duration::from_millis(100), tx.send(4)).await;
        assert!(blocked.is_err(), "a full queue must make the sender wait");
        // Letting the writer go frees room; every record arrives, in order.
        gate.add_permits(10);
        tx.send(4).await.unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(*written.lock().unwrap(), vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn records_that_arrive_while_the_writer_lingers_share_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let b = batches.clone();
        let (tx, task) = spawn(
            "test records",
            store,
            100,
            LINGER,
            move |_store, rows: Vec<u32>| {
                let b = b.clone();
                async move {
                    b.lock().unwrap().push(rows.clone());
                    (rows, Ok(()))
                }
            },
        );
        tx.send(1).await.unwrap();
        // The writer takes the first record and lingers; the others arrive meanwhile.
        tokio::task::yield_now().await;
        for i in 2..=5 {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        task.await.unwrap();
        assert_eq!(*batches.lock().unwrap(), vec![vec![1, 2, 3, 4, 5]]);
    }
}
