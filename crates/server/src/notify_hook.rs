//! The seam between finished runs and the notification senders in [`crate::notify`].

use gantry_pipeline::Spec;
use gantry_store::Run;

use crate::state::State;

/// Sends the notifications `spec.notify` asks for about `run`.
pub async fn send(state: &State, run: &Run, spec: &Spec, previous: Option<&Run>) {
    let _ = (state, previous);
    if !spec.notify.is_empty() {
        tracing::info!(run_id = run.id, "notifications are not wired yet");
    }
}
