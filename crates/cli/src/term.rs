//! Terminal echo while live progress is drawn.
//!
//! The live renderer keeps its bars in place by moving the cursor up over lines it drew.
//! Anything the terminal echoes in between — the `^C` of Ctrl-C, a stray Enter — shifts
//! the screen under it and leaves stale bar lines behind. So echo is switched off while
//! the bars are shown (gantry never reads its input) and restored afterwards, also on the
//! second-Ctrl-C exit path, which skips destructors.

use std::sync::Mutex;

use nix::sys::termios::{LocalFlags, SetArg, Termios, tcgetattr, tcsetattr};

/// The terminal settings to restore, while echo is off.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Turns echo off on standard error's terminal, if gantry is in its foreground process
/// group (changing a terminal from the background would stop gantry with SIGTTOU).
pub fn quiet_echo() {
    let stderr = std::io::stderr();
    let foreground =
        nix::unistd::tcgetpgrp(&stderr).is_ok_and(|pgrp| pgrp == nix::unistd::getpgrp());
    if !foreground {
        return;
    }
    let Ok(original) = tcgetattr(&stderr) else {
        return;
    };
    let mut quiet = original.clone();
    quiet
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ECHOCTL);
    if tcsetattr(&stderr, SetArg::TCSANOW, &quiet).is_ok()
        && let Ok(mut saved) = SAVED.lock()
    {
        *saved = Some(original);
    }
}

/// Restores the settings [`quiet_echo`] changed, if it changed any.
pub fn restore() {
    let Ok(mut saved) = SAVED.lock() else { return };
    if let Some(original) = saved.take() {
        let _ = tcsetattr(std::io::stderr(), SetArg::TCSANOW, &original);
    }
}
