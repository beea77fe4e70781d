//! Counting, the one-line JSON report and the status file, in docs/contract.md's shapes.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::options::{usage_error, Options};

/// The contract's outcomes, in enum order (`uncontrolled` is the scheduler's: never
/// given here, but counted, so the status record has the contract's layout).
pub const OUTCOMES: [&str; 10] = [
    "ok",
    "panic",
    "deadlock",
    "fatal",
    "lost",
    "wrong_thread",
    "leak",
    "crash",
    "hang",
    "uncontrolled",
];
pub const OK: usize = 0;
pub const PANIC: usize = 1;
pub const HANG: usize = 8;

pub struct FirstFailure {
    pub iteration: u64,
    pub outcome: usize,
    pub detail: String,
    pub after_s: f64,
}

#[derive(Default)]
pub struct Tally {
    pub counts: [u64; OUTCOMES.len()],
    pub done: u64,
    pub first: Option<FirstFailure>,
}

impl Tally {
    pub fn record(&mut self, iteration: u64, outcome: usize, detail: &str, after_s: f64) {
        self.counts[outcome] += 1;
        if outcome != OK && self.first.is_none() {
            self.first = Some(FirstFailure {
                iteration,
                outcome,
                detail: detail.to_string(),
                after_s,
            });
        }
    }
}

/// The C harness's mix (harness/case_main.c), so iteration i's seed is the same number.
pub fn iteration_seed(run_seed: u64, index: u64) -> u64 {
    let mut x = run_seed ^ index.wrapping_mul(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 31)).wrapping_mul(0x7fb5d329728ea185);
    x = (x ^ (x >> 27)).wrapping_mul(0x81dadef4bc2dd44d);
    x ^ (x >> 33)
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c)
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn replay_command(o: &Options, iteration: u64) -> String {
    format!(
        "{} --variant {} --seed {} --start {} --iterations 1 --workers {} --sleep-us {} --deadline-ms {} --trap",
        o.argv0, o.variant.name(), o.seed, iteration, o.workers, o.sleep_us, o.deadline_ms
    )
}

pub fn report_line(
    o: &Options,
    t: &Tally,
    elapsed_s: f64,
    complete: bool,
    next_iteration: u64,
) -> String {
    let variant = o.variant.name();
    let outcomes: Vec<String> = OUTCOMES
        .iter()
        .zip(t.counts.iter())
        .map(|(n, c)| format!("\"{}\": {}", n, c))
        .collect();
    let first = match &t.first {
        None => "null".to_string(),
        Some(f) => format!(
            "{{\"iteration\": {}, \"seed\": {}, \"outcome\": \"{}\", \"detail\": {}, \"after_s\": {:.6}, \"replay\": {}}}",
            f.iteration,
            iteration_seed(o.seed, f.iteration),
            OUTCOMES[f.outcome],
            json_string(&f.detail),
            f.after_s,
            json_string(&replay_command(o, f.iteration))
        ),
    };
    let rate = if elapsed_s > 0.0 {
        t.done as f64 / elapsed_s
    } else {
        0.0
    };
    format!(
        "{{\"cell\": \"tokio_shutdown_order.tokio.{v}.natural\", \"case\": \"tokio_shutdown_order\", \
         \"runner\": \"tokio\", \"runner_version\": \"tokio {tv}\", \"variant\": \"{v}\", \"mode\": \"natural\", \
         \"seed\": {seed}, \"start\": {start}, \"iterations\": {done}, \"workers\": {w}, \"run_us\": {us}, \
         \"outcomes\": {{{oc}}}, \"elapsed_s\": {el:.6}, \"iterations_per_s\": {rate:.1}, \
         \"first_failure\": {first}, \"complete\": {complete}, \"next_iteration\": {next}}}",
        v = variant,
        tv = env!("TOKIO_VERSION"),
        seed = o.seed,
        start = o.start,
        done = t.done,
        w = if o.variant == crate::scenario::Variant::Control { 1 } else { o.workers },
        us = o.sleep_us,
        oc = outcomes.join(", "),
        el = elapsed_s,
        rate = rate,
        first = first,
        complete = complete,
        next = next_iteration
    )
}

/// The contract's status record (376 bytes: 10 counts), rewritten in place (pwrite) after every
/// iteration, so a crash or a kill loses nothing already counted.
pub struct StatusFile(Option<File>);

impl StatusFile {
    pub fn open(path: Option<&Path>) -> StatusFile {
        StatusFile(path.map(|p| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(p)
                .unwrap_or_else(|_| {
                    usage_error(&format!("cannot write the status file '{}'", p.display()))
                })
        }))
    }

    pub fn write(&self, current: u64, t: &Tally) {
        let file = match &self.0 {
            Some(f) => f,
            None => return,
        };
        const COUNTS: usize = 24;
        const FIRST: usize = COUNTS + 8 * OUTCOMES.len(); /* first failure: iteration, outcome, detail */
        let mut rec = [0u8; FIRST + 16 + 256];
        rec[..8].copy_from_slice(b"ARSTAT1\0");
        rec[8..16].copy_from_slice(&current.to_le_bytes());
        rec[16..24].copy_from_slice(&t.done.to_le_bytes());
        for (k, c) in t.counts.iter().enumerate() {
            rec[COUNTS + 8 * k..COUNTS + 8 + 8 * k].copy_from_slice(&c.to_le_bytes());
        }
        let (ff_iteration, ff_outcome, detail) = match &t.first {
            Some(f) => (f.iteration, f.outcome as u64, f.detail.as_bytes()),
            None => (u64::MAX, 0, &b""[..]),
        };
        rec[FIRST..FIRST + 8].copy_from_slice(&ff_iteration.to_le_bytes());
        rec[FIRST + 8..FIRST + 16].copy_from_slice(&ff_outcome.to_le_bytes());
        let n = detail.len().min(255);
        rec[FIRST + 16..FIRST + 16 + n].copy_from_slice(&detail[..n]);
        // The status is best effort: a failed write must not change what the report says.
        let _ = file.write_all_at(&rec, 0);
    }
}
