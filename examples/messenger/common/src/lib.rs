//! What the messenger's services share, so that both log alike.

pub mod log;
