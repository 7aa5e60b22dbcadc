//! One error model. Every error a manager returns knows its [`ErrorKind`]:
//! the user's input, requirements not met, infrastructure (AWS, the
//! simulator, this machine), or an interrupt. The CLI alone turns kinds into
//! exit codes; nothing below it decides how the process ends.

/// What kind of failure an error is, as far as the person running perfsize
/// is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line or an input file is wrong: fix it and run again.
    Usage,
    /// Measured, and the requirements are not met.
    NotMet,
    /// AWS, the simulator or this machine failed us.
    Infrastructure,
    /// Stopped by Ctrl-C.
    Interrupted,
}

/// An error that knows its kind.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}

/// An error and all its causes on one line, for logs and messages that must
/// stay one line (`a: b: c`).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Locks a mutex whose data stays valid even if a holder panicked: the spend
/// ledger and the list of live resources must outlive a bug, or teardown
/// would panic too and endpoints would keep billing.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_yields_its_data() {
        let mutex = std::sync::Arc::new(std::sync::Mutex::new(vec![1]));
        let held = std::sync::Arc::clone(&mutex);
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("a bug while the ledger is held");
        })
        .join();
        assert!(mutex.is_poisoned());
        lock(&mutex).push(2);
        assert_eq!(*lock(&mutex), vec![1, 2]);
    }
}
