//! The threads model judges run on when a decision has a deadline: a small pool per
//! evaluator, so a provider that hangs holds at most the pool's threads, never one more per
//! call. A judge waits in the pool's queue for a free thread; one whose deadline passed
//! before a thread took it is not run at all (its decision has already called it late), and
//! a full queue refuses the judge at once (it is then late too). Threads are started when
//! work waits and none is free, up to the bound, and end after a while without work or when
//! the pool is dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long an idle thread waits for work before it ends.
const IDLE: Duration = Duration::from_secs(10);

/// Work for the pool: to run before `deadline`, or not at all.
struct Job {
    deadline: Instant,
    run: Box<dyn FnOnce() + Send>,
}

struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    ready: Condvar,
    max_threads: usize,
    max_queued: usize,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bounded pool of judge threads.
pub struct JudgePool {
    inner: Arc<Inner>,
}

/// Why a judge was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// As many judges wait as the queue holds.
    Full,
    /// No thread could be started and none runs.
    NoThread,
}

impl JudgePool {
    /// A pool of at most `max_threads` threads (at least one) with room for `max_queued`
    /// judges waiting for one.
    pub fn new(max_threads: usize, max_queued: usize) -> JudgePool {
        JudgePool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    closed: false,
                }),
                ready: Condvar::new(),
                max_threads: max_threads.max(1),
                max_queued,
            }),
        }
    }

    /// The most threads the pool runs at once.
    pub fn max_threads(&self) -> usize {
        self.inner.max_threads
    }

    /// Threads running now (busy or idle).
    pub fn threads(&self) -> usize {
        self.inner.lock().threads
    }

    /// Runs `run` on a pool thread unless `deadline` passes first.
    pub fn submit(
        &self,
        deadline: Instant,
        run: impl FnOnce() + Send + 'static,
    ) -> Result<(), Refused> {
        let mut s = self.inner.lock();
        if s.queue.len() >= self.inner.max_queued.max(1) {
            return Err(Refused::Full);
        }
        s.queue.push_back(Job {
            deadline,
            run: Box::new(run),
        });
        if s.queue.len() > s.idle && s.threads < self.inner.max_threads {
            let inner = self.inner.clone();
            let started = std::thread::Builder::new()
                .name("tribunal judge".into())
                .spawn(move || work(&inner));
            match started {
                Ok(_) => s.threads += 1,
                Err(_) if s.threads == 0 => {
                    s.queue.pop_back();
                    return Err(Refused::NoThread);
                }
                // The running threads will take it.
                Err(_) => {}
            }
        }
        self.inner.ready.notify_one();
        Ok(())
    }
}

impl Drop for JudgePool {
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.ready.notify_all();
    }
}

fn work(inner: &Inner) {
    loop {
        let job = {
            let mut s = inner.lock();
            loop {
                if let Some(job) = s.queue.pop_front() {
                    break job;
                }
                if s.closed {
                    s.threads -= 1;
                    return;
                }
                s.idle += 1;
                let (guard, waited) = inner
                    .ready
                    .wait_timeout(s, IDLE)
                    .unwrap_or_else(|p| p.into_inner());
                s = guard;
                s.idle -= 1;
                if waited.timed_out() && s.queue.is_empty() {
                    s.threads -= 1;
                    return;
                }
            }
        };
        if Instant::now() < job.deadline {
            // A judge reports its own failures; one that panics must not end the thread.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.run));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn work_beyond_the_threads_waits_and_late_work_is_skipped() {
        let pool = JudgePool::new(2, 4);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let ran = Arc::new(AtomicUsize::new(0));
        let far = Instant::now() + Duration::from_secs(60);
        // Two judges that hang until released take both threads.
        let (started_tx, started_rx) = mpsc::channel();
        for _ in 0..2 {
            let (rx, ran, started) = (release_rx.clone(), ran.clone(), started_tx.clone());
            pool.submit(far, move || {
                started.send(()).unwrap();
                let _ = rx.lock().unwrap().recv();
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        for _ in 0..2 {
            started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        // Queued behind them: one already late when a thread frees, one not.
        let late = ran.clone();
        pool.submit(Instant::now(), move || {
            late.fetch_add(100, Ordering::SeqCst);
        })
        .unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        pool.submit(far, move || done_tx.send(()).unwrap()).unwrap();
        assert_eq!(pool.threads(), 2, "never more than the bound");
        // The queue holds four: two more fit, the next is refused.
        pool.submit(far, || {}).unwrap();
        pool.submit(far, || {}).unwrap();
        assert_eq!(pool.submit(far, || {}), Err(Refused::Full));
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // Both released judges finish; the late one never adds its 100.
        for _ in 0..3000 {
            if ran.load(Ordering::SeqCst) >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 2, "the late job did not run");
        assert!(pool.threads() <= 2);
    }
}
