//! Independent runs at once, each on a device of its own.
//!
//! `compare`'s seeds and a paper's repeated runs share nothing while they
//! train, so they can go side by side: [`on_devices`] hands the items to
//! `jobs` workers, the first on the caller's device and the others on
//! [`Gpu::sibling`]s of it (the same adapter, the same measured kernel
//! choices), and returns the results in the items' order. A run computes
//! the same numbers whichever device takes it, so the results do not depend
//! on `jobs` (tested).
//!
//! This pays where one run leaves the adapter idle part of the time: on a
//! 2-core CPU adapter (lavapipe) two or three devices at once train about
//! 2–2.5× as many steps per second as one, because a single run waits on
//! its own submissions. It is not the replica axis of the speed issue
//! (several runs batched into each dispatch), which would pay on a GPU too.

// A browser has no threads: there the items run one after another.
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::Gpu;

enum Message<R> {
    Say(String),
    Done(usize, Result<R>),
}

/// Run `run(device, item, say)` for every item on `jobs` devices at once and
/// return the results in the items' order. `say` passes a line of progress
/// to `progress`, which is called on the caller's thread. The first error
/// stops the workers after the run each has in hand, and is returned.
/// With `jobs` ≤ 1 (and in a browser, which has no threads) the items run
/// one after another on `gpu`.
pub fn on_devices<T, R>(
    gpu: &Gpu,
    jobs: usize,
    items: Vec<T>,
    progress: &mut dyn FnMut(&str),
    run: impl Fn(&Gpu, T, &dyn Fn(&str)) -> Result<R> + Sync,
) -> Result<Vec<R>>
where
    T: Send,
    R: Send,
{
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 || cfg!(target_arch = "wasm32") {
        let progress = RefCell::new(progress);
        let say = |line: &str| (progress.borrow_mut())(line);
        return items.into_iter().map(|item| run(gpu, item, &say)).collect();
    }
    #[cfg(target_arch = "wasm32")]
    unreachable!("a browser runs the items one after another");
    #[cfg(not(target_arch = "wasm32"))]
    {
        // Measured once, here, and carried to every sibling: each device
        // then picks the same kernels, so a run's numbers do not depend on
        // which device took it.
        crate::kernels::matmul_choice::tuning(gpu)?;
        let siblings = (1..jobs)
            .map(|_| gpu.sibling())
            .collect::<Result<Vec<Gpu>>>()?;
        let n = items.len();
        let queue = Mutex::new(items.into_iter().enumerate().collect::<VecDeque<_>>());
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<Message<R>>();
        std::thread::scope(|scope| {
            for device in std::iter::once(gpu).chain(&siblings) {
                let (tx, queue, stop, run) = (tx.clone(), &queue, &stop, &run);
                scope.spawn(move || {
                    let say = |line: &str| {
                        let _ = tx.send(Message::Say(line.to_string()));
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                        let Some((i, item)) = next else { break };
                        let done = run(device, item, &say);
                        let failed = done.is_err();
                        if tx.send(Message::Done(i, done)).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
            let mut first_error = None;
            for message in rx {
                match message {
                    Message::Say(line) => progress(&line),
                    Message::Done(i, Ok(r)) => results[i] = Some(r),
                    Message::Done(_, Err(e)) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error.get_or_insert(e);
                    }
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => results
                    .into_iter()
                    .collect::<Option<Vec<R>>>()
                    .ok_or_else(|| {
                        Error::internal("parallel runs", "a worker stopped without a result")
                    }),
            }
        })
    }
}
