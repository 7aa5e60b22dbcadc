//! Ctrl-C (and SIGTERM, as Jenkins sends on abort) for the whole process.
//!
//! perfsize installs its handler before any goose attack starts, so goose's own
//! handler (whose second Ctrl-C calls `process::exit` and would skip teardown)
//! fails to install and stays out of the way. The first signal cancels the
//! run's [`CancellationToken`]: the current step stops and teardown begins. A
//! second signal only says teardown is still running. A third forces the exit,
//! after printing what is left behind and how to remove it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

type LeftoverReport = Box<dyn Fn() -> Vec<String> + Send>;

/// The process's interrupt state.
pub struct Interrupts {
    received: AtomicU32,
    token: CancellationToken,
    leftovers: Mutex<Option<LeftoverReport>>,
    /// The exit code of a forced exit: the CLI's, for an interrupt.
    forced_exit_code: i32,
}

impl Interrupts {
    /// Cancelled at the first Ctrl-C.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Registers what to print if the user forces an exit during teardown:
    /// one line per resource still alive, then the command that removes them.
    pub fn on_forced_exit(&self, report: impl Fn() -> Vec<String> + Send + 'static) {
        *crate::error::lock(&self.leftovers) = Some(Box::new(report));
    }

    /// Whether the user asked to stop.
    pub fn interrupted(&self) -> bool {
        self.received.load(Ordering::SeqCst) > 0
    }

    fn signal(&self) {
        match self.received.fetch_add(1, Ordering::SeqCst) + 1 {
            1 => {
                eprintln!(
                    "\ninterrupted: stopping the current step and tearing down what perfsize deployed (Ctrl-C twice more forces an exit)"
                );
                self.token.cancel();
            }
            2 => eprintln!("\nstill tearing down, so nothing is left billing; press Ctrl-C once more to exit anyway"),
            _ => {
                eprintln!("\nforced exit during teardown");
                if let Some(report) = crate::error::lock(&self.leftovers).as_ref() {
                    for line in report() {
                        eprintln!("{line}");
                    }
                }
                std::process::exit(self.forced_exit_code);
            }
        }
    }
}

impl Interrupts {
    fn new(forced_exit_code: i32) -> Interrupts {
        Interrupts { received: AtomicU32::new(0), token: CancellationToken::new(), leftovers: Mutex::new(None), forced_exit_code }
    }
}

static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();

/// Installs the process-wide handler (once) and returns its state; a forced
/// exit ends the process with `forced_exit_code`.
pub fn install(forced_exit_code: i32) -> &'static Interrupts {
    let mut first = false;
    let interrupts = INTERRUPTS.get_or_init(|| {
        first = true;
        Interrupts::new(forced_exit_code)
    });
    if first && let Err(e) = ctrlc::set_handler(|| INTERRUPTS.get().expect("installed before the handler").signal()) {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    interrupts
}
