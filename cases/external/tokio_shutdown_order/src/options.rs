//! The command line (docs/contract.md, plus --sleep-us and --exit-on-panic).
use std::path::PathBuf;
use std::process;

use crate::scenario::Variant;

/// Below the seed's 10 ms (about 100 iterations/s) and still reproducing: see
/// docs/external-tokio.md for the rates measured at both.
pub const DEFAULT_SLEEP_US: u64 = 200;

pub struct Options {
    pub argv0: String,
    pub variant: Variant,
    pub iterations: u64,
    pub start: u64,
    pub seed: u64,
    pub workers: usize,
    pub sleep_us: u64,
    pub deadline_ms: u64,
    pub trap: bool,
    pub exit_on_panic: bool,
    pub status: Option<PathBuf>,
}

pub const USAGE: &str = "\
usage: tokio_shutdown_order --variant buggy|fixed|control [--iterations N] [--start I]
         [--seed S] [--workers W] [--sleep-us U] [--deadline-ms T] [--trap]
         [--exit-on-panic] [--status FILE] [--runner tokio] [--mode natural]

The tokio original of cases/shutdown_order.c (\"Panic! At The Async Runtime Shutdown\").
Runs N iterations, each on a fresh runtime: spawn worker and producer, sleep U us
(the seed: 10000), set stop, drop the runtime. Prints one JSON report (docs/contract.md).
  --trap           the first failure prints the panic and abort()s on that thread
  --exit-on-panic  print panics as Rust does; stop after the first panicking
                   iteration, print the report, exit 101 (one process per iteration)";

/// One line on stderr, exit 2: the contract's answer to bad input.
pub fn usage_error(msg: &str) -> ! {
    eprintln!("tokio_shutdown_order: {}", msg);
    process::exit(2);
}

fn number(flag: &str, value: &str) -> u64 {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse::<u64>(),
    };
    parsed.unwrap_or_else(|_| {
        usage_error(&format!(
            "{} needs a number (decimal or 0x hex), got '{}'",
            flag, value
        ))
    })
}

pub fn parse(args: Vec<String>) -> Options {
    let mut args = args.into_iter();
    let argv0 = args
        .next()
        .unwrap_or_else(|| "tokio_shutdown_order".to_string());
    let mut o = Options {
        argv0,
        variant: Variant::Buggy,
        iterations: 1000,
        start: 0,
        seed: 1,
        workers: 2,
        sleep_us: DEFAULT_SLEEP_US,
        deadline_ms: 2000,
        trap: false,
        exit_on_panic: false,
        status: None,
    };
    let mut variant = None;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{}", USAGE);
                process::exit(0);
            }
            "--trap" => o.trap = true,
            "--exit-on-panic" => o.exit_on_panic = true,
            _ => {
                let value = args
                    .next()
                    .unwrap_or_else(|| usage_error(&format!("{} needs a value", flag)));
                let v = value.as_str();
                match flag.as_str() {
                    "--variant" => {
                        variant = Some(Variant::parse(v).unwrap_or_else(|| {
                            usage_error(&format!("unknown variant '{}'; accepted: {}", v, Variant::NAMES))
                        }))
                    }
                    "--iterations" => o.iterations = number(&flag, v),
                    "--start" => o.start = number(&flag, v),
                    "--seed" => o.seed = number(&flag, v),
                    "--workers" => match number(&flag, v) {
                        w @ 1..=64 => o.workers = w as usize,
                        _ => usage_error(&format!("--workers must be 1..64, got '{}'", v)),
                    },
                    "--sleep-us" | "--run-us" => o.sleep_us = number(&flag, v),
                    "--deadline-ms" => match number(&flag, v) {
                        0 => usage_error(&format!("--deadline-ms must be at least 1, got '{}'", v)),
                        d => o.deadline_ms = d,
                    },
                    "--status" => o.status = Some(PathBuf::from(v)),
                    // Accepted so the C cases' driver argv works unchanged; only one value each.
                    "--runner" if v != "tokio" => usage_error(&format!("unknown runner '{}'; accepted: tokio", v)),
                    "--mode" if v != "natural" => usage_error(&format!("unknown mode '{}'; accepted: natural", v)),
                    "--runner" | "--mode" => {}
                    _ => usage_error(&format!(
                        "unknown flag '{}'; accepted: --variant --iterations --start --seed --workers \
                         --sleep-us --run-us --deadline-ms --trap --exit-on-panic --status --runner --mode --help",
                        flag
                    )),
                }
            }
        }
    }
    o.variant = variant.unwrap_or_else(|| {
        usage_error(&format!(
            "--variant is required; accepted: {}",
            Variant::NAMES
        ))
    });
    if o.start.checked_add(o.iterations).is_none() {
        usage_error("--start + --iterations overflows");
    }
    o
}
