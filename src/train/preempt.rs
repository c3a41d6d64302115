//! Preemption: SIGTERM or SIGINT asks the run to finish its current step,
//! write a checkpoint and exit with [`EXIT_PREEMPTED`]; a second SIGINT
//! ends the process at once (exit status 130).
//!
//! The handlers only store the signal number in an atomic; the step loop
//! polls [`requested`] between steps, so a signal that arrives during a
//! checkpoint write lets the write finish.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Exit status of a run stopped by a signal after saving its checkpoint
/// (75, `EX_TEMPFAIL`: rerun the same command to resume).
pub const EXIT_PREEMPTED: u8 = 75;

struct Flags {
    signal: Arc<AtomicUsize>,
}

static FLAGS: OnceLock<Option<Flags>> = OnceLock::new();

/// Installs the SIGTERM/SIGINT handlers (once per process). Returns false
/// when they could not be installed (the run then cannot be preempted
/// cleanly, and says so).
pub fn install() -> bool {
    FLAGS
        .get_or_init(|| {
            let signal = Arc::new(AtomicUsize::new(0));
            let armed = Arc::new(AtomicBool::new(false));
            let ok = (|| -> std::io::Result<()> {
                use signal_hook::consts::{SIGINT, SIGTERM};
                // Order matters: the conditional shutdown sees `armed` as
                // it was before this signal, so only a second SIGINT exits.
                signal_hook::flag::register_conditional_shutdown(SIGINT, 130, armed.clone())?;
                signal_hook::flag::register(SIGINT, armed.clone())?;
                signal_hook::flag::register_usize(SIGINT, signal.clone(), SIGINT as usize)?;
                signal_hook::flag::register_usize(SIGTERM, signal.clone(), SIGTERM as usize)?;
                Ok(())
            })();
            ok.ok().map(|()| Flags { signal })
        })
        .is_some()
}

/// The signal that asked this process to stop (`SIGTERM` or `SIGINT`), if
/// any has arrived since [`install`].
pub fn requested() -> Option<i32> {
    let f = FLAGS.get()?.as_ref()?;
    match f.signal.load(Ordering::SeqCst) {
        0 => None,
        s => i32::try_from(s).ok(),
    }
}

/// The name of a signal number as users know it.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGINT => "SIGINT",
        _ => "a signal",
    }
}
