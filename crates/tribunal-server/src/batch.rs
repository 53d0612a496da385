//! One task per kind of record that writes what the request handlers queue, many records per
//! transaction, retrying a failed write so nothing queued is dropped. Closing the queue
//! (dropping every sender) lets the task write what is left and end.

use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tribunal_store::{Store, StoreError};

/// Starts a writer. `write` gets the store and a batch and hands the batch back with the
/// outcome, so a failed batch is retried as it was.
pub fn spawn<T, F, Fut>(
    what: &'static str,
    store: Store,
    write: F,
) -> (mpsc::UnboundedSender<T>, tokio::task::JoinHandle<()>)
where
    T: Send + 'static,
    F: Fn(Store, Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = (Vec<T>, Result<(), StoreError>)> + Send,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<T>();
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 512).await > 0 {
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
