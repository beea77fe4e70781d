//! The seed's program: a worker answers m with m + 1, a producer sends i, awaits the
//! reply and unwraps it; main sleeps, sets stop, and drops the runtime.
//!
//! The producer's unwrap looks safe: the worker stops only once the producer drops its
//! sender. But dropping a multi-thread runtime drops the live tasks in no set order
//! while other workers may still poll: when the worker task goes first, its reply
//! sender goes with it, the parked producer is woken on another thread, reads None,
//! and panics. The current-thread runtime drops its tasks on the one thread that would
//! poll them, so the woken producer never runs (the seed saw 0 panics there).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

tokio::task_local! {
    /// Which of the two tasks is running: the panic hook reads it, so a panic is
    /// attributed to the producer (or the worker), never guessed from a line number.
    pub static TASK: &'static str;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// The seed: multi-thread runtime, dropped while both tasks are live.
    Buggy,
    /// The user-level "stop, collect, then drop": join both tasks (bounded) first.
    Fixed,
    /// The seed's current-thread runtime.
    Control,
}

impl Variant {
    pub const NAMES: &'static str = "buggy, fixed, control";

    pub fn parse(name: &str) -> Option<Variant> {
        match name {
            "buggy" => Some(Variant::Buggy),
            "fixed" => Some(Variant::Fixed),
            "control" => Some(Variant::Control),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Buggy => "buggy",
            Variant::Fixed => "fixed",
            Variant::Control => "control",
        }
    }
}

/// How an iteration ended, apart from panics (the panic hook counts those).
#[derive(PartialEq, Eq, Debug)]
pub enum Ending {
    Dropped,
    /// fixed only: the tasks had not both finished within the bound after stop.
    JoinTimedOut,
}

struct Tasks {
    stop: Arc<AtomicBool>,
    worker: JoinHandle<()>,
    producer: JoinHandle<()>,
}

fn spawn_tasks() -> Tasks {
    let (requests_tx, mut requests_rx) = mpsc::unbounded_channel::<u64>();
    let (replies_tx, mut replies_rx) = mpsc::unbounded_channel::<u64>();
    let stop = Arc::new(AtomicBool::new(false));

    let worker = tokio::spawn(TASK.scope("worker", async move {
        while let Some(m) = requests_rx.recv().await {
            let _ = replies_tx.send(m + 1);
        }
    }));

    let stop_flag = Arc::clone(&stop);
    let producer = tokio::spawn(TASK.scope("producer", async move {
        let mut i: u64 = 0;
        while !stop_flag.load(Ordering::Acquire) {
            requests_tx.send(i).unwrap();
            let reply = replies_rx.recv().await.unwrap(); // the seed's panic
            assert_eq!(reply, i + 1);
            i += 1;
        }
    }));

    Tasks {
        stop,
        worker,
        producer,
    }
}

fn runtime(variant: Variant, workers: usize) -> Runtime {
    let mut builder = match variant {
        Variant::Control => Builder::new_current_thread(),
        Variant::Buggy | Variant::Fixed => {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(workers);
            b
        }
    };
    builder.enable_time().build().expect("tokio runtime")
}

/// Stop, collect, then drop: once stop is set the producer ends and drops its sender,
/// then the worker reads None and ends. Awaiting both before the runtime is dropped
/// means shutdown finds no live task, so no drop order can matter.
async fn collect(tasks: Tasks, bound: Duration) -> Ending {
    let both = async {
        let _ = tasks.producer.await; // a JoinError is a panic: the hook has counted it
        let _ = tasks.worker.await;
    };
    match tokio::time::timeout(bound, both).await {
        Ok(()) => Ending::Dropped,
        Err(_) => Ending::JoinTimedOut,
    }
}

/// One iteration of the seed's loop, on a fresh runtime.
pub fn iteration(
    variant: Variant,
    workers: usize,
    sleep: Duration,
    join_bound: Duration,
) -> Ending {
    let rt = runtime(variant, workers);
    let ending = rt.block_on(async move {
        let tasks = spawn_tasks();
        tokio::time::sleep(sleep).await;
        tasks.stop.store(true, Ordering::Release);
        match variant {
            Variant::Fixed => collect(tasks, join_bound).await,
            Variant::Buggy | Variant::Control => Ending::Dropped, // both tasks still live
        }
    });
    drop(rt); // "the runtime is dropped here!": it joins its threads before returning
    ending
}
