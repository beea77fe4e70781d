//! The panic hook: a task's panic is what the seed saw ("thread 'tokio-runtime-worker'
//! panicked at ..."). Inside the loop it is counted and kept quiet; with --exit-on-panic
//! it is printed as usual; with --trap it is printed and the process aborts right there,
//! on the panicking thread, so a core or debugger shows the producer's stack.
use std::any::Any;
use std::panic;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::scenario::TASK;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HookMode {
    Quiet,
    Print,
    Trap,
}

/// The first task panic of the running iteration, as "task: message at file:line:col".
static CAUGHT: Mutex<Option<String>> = Mutex::new(None);
/// The iteration running now, for the trap's message.
pub static CURRENT: AtomicU64 = AtomicU64::new(0);

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

pub fn install(mode: HookMode) {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let task = match TASK.try_with(|t| *t) {
            Ok(t) => t,
            Err(_) => return default_hook(info), // not a task of the scenario: a real bug here
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let detail = format!("{}: {}{}", task, message(info.payload()), at);
        if mode != HookMode::Quiet {
            default_hook(info);
        }
        if mode == HookMode::Trap {
            eprintln!(
                "tokio_shutdown_order: trap: panic in iteration {}: {}",
                CURRENT.load(Ordering::Relaxed),
                detail
            );
            std::process::abort();
        }
        let mut caught = CAUGHT.lock().unwrap_or_else(|e| e.into_inner());
        caught.get_or_insert(detail);
    }));
}

/// The first task panic since the last call (the iteration's threads are joined by then).
pub fn take() -> Option<String> {
    CAUGHT.lock().unwrap_or_else(|e| e.into_inner()).take()
}
