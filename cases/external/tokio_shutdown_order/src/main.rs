//! tokio_shutdown_order: the tokio original of cases/shutdown_order.c, looping itself
//! and printing the contract's one-line JSON report (docs/external-tokio.md).
mod options;
mod panics;
mod report;
mod scenario;

use std::io::Write;
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use options::Options;
use panics::HookMode;
use report::{report_line, StatusFile, Tally, HANG, OK, PANIC};
use scenario::Ending;

struct Run {
    opts: Options,
    started: Instant,
    /// When the watchdog gives up on the running iteration (ns since `started`); 0 between.
    watched_deadline_ns: AtomicU64,
    current: AtomicU64,
    tally: Mutex<Tally>,
    status: StatusFile,
}

impl Run {
    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn print(&self, t: &Tally, complete: bool, next_iteration: u64) {
        let line = report_line(
            &self.opts,
            t,
            self.started.elapsed().as_secs_f64(),
            complete,
            next_iteration,
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line);
        let _ = out.flush();
    }
}

fn deadline_multiplier() -> f64 {
    std::env::var("ASYNCRACE_TIMEOUT_MULTIPLIER")
        .ok()
        .and_then(|m| m.parse::<f64>().ok())
        .filter(|m| *m > 0.0)
        .unwrap_or(1.0)
}

/// An iteration well past its deadline could not unwind (a runtime drop that never
/// returns): count it as hang, report, and leave with exit 3 so the driver resumes.
fn watchdog(run: Arc<Run>) {
    loop {
        thread::sleep(Duration::from_millis(20));
        let tally = run.tally.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = run.watched_deadline_ns.load(Ordering::Acquire);
        if deadline == 0 || run.now_ns() < deadline {
            continue;
        }
        let index = run.current.load(Ordering::Acquire);
        if run.opts.trap {
            eprintln!(
                "tokio_shutdown_order: trap: hang: iteration {} stuck past its deadline",
                index
            );
            process::abort();
        }
        let mut t = tally;
        let after_s = run.started.elapsed().as_secs_f64();
        t.record(
            index,
            HANG,
            "stuck past the deadline; the watchdog ended the run",
            after_s,
        );
        t.done += 1;
        run.status.write(index + 1, &t);
        run.print(&t, false, index + 1);
        process::exit(3);
    }
}

fn main() {
    let opts = options::parse(std::env::args().collect());
    panics::install(if opts.trap {
        HookMode::Trap
    } else if opts.exit_on_panic {
        HookMode::Print
    } else {
        HookMode::Quiet
    });
    let deadline =
        Duration::from_secs_f64(opts.deadline_ms as f64 / 1000.0 * deadline_multiplier());
    let sleep = Duration::from_micros(opts.sleep_us);
    let status = StatusFile::open(opts.status.as_deref());
    let run = Arc::new(Run {
        opts,
        started: Instant::now(),
        watched_deadline_ns: AtomicU64::new(0),
        current: AtomicU64::new(0),
        tally: Mutex::new(Tally::default()),
        status,
    });
    let w = Arc::clone(&run);
    thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || watchdog(w))
        .unwrap_or_else(|_| options::usage_error("cannot start the watchdog thread"));

    let o = &run.opts;
    let end = o.start + o.iterations;
    // The watchdog allows the sleep, the deadline, half again, and 100 ms of grace.
    let allowance =
        (sleep + deadline + deadline / 2 + Duration::from_millis(100)).as_nanos() as u64;
    for i in o.start..end {
        panics::CURRENT.store(i, Ordering::Relaxed);
        run.current.store(i, Ordering::Release);
        run.status.write(i, &run.tally.lock().unwrap());
        run.watched_deadline_ns
            .store(run.now_ns() + allowance, Ordering::Release);

        let ending = scenario::iteration(o.variant, o.workers, sleep, deadline);

        run.watched_deadline_ns.store(0, Ordering::Release);
        let (outcome, detail) = match (panics::take(), ending) {
            (Some(panic), _) => (PANIC, panic),
            (None, Ending::JoinTimedOut) => (
                HANG,
                format!(
                    "fixed: the tasks had not both finished {} ms after stop",
                    deadline.as_millis()
                ),
            ),
            (None, Ending::Dropped) => (OK, String::new()),
        };
        if outcome == HANG && o.trap {
            eprintln!(
                "tokio_shutdown_order: trap: hang: iteration {}: {}",
                i, detail
            );
            process::abort();
        }
        let mut t = run.tally.lock().unwrap();
        t.record(i, outcome, &detail, run.started.elapsed().as_secs_f64());
        t.done += 1;
        run.status.write(i + 1, &t);
        if outcome == PANIC && o.exit_on_panic {
            // The panic message is already on stderr, as Rust prints it; 101 is Rust's panic exit.
            run.print(&t, i + 1 == end, i + 1);
            process::exit(101);
        }
    }
    let t = run.tally.lock().unwrap();
    run.print(&t, true, end);
}
