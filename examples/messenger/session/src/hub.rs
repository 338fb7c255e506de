//! Who is connected: each authenticated connection registers an outbox under its userid;
//! a message goes to every outbox of the recipient.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedSender;

/// A connection's id and where its lines go.
type Outbox = (u64, UnboundedSender<String>);

/// The open, authenticated connections by userid.
#[derive(Default)]
pub struct Hub {
    users: Mutex<HashMap<String, Vec<Outbox>>>,
}

impl Hub {
    /// Registers connection `id` of `userid`, whose lines go to `outbox`.
    pub fn join(&self, userid: &str, id: u64, outbox: UnboundedSender<String>) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users
            .entry(userid.to_owned())
            .or_default()
            .push((id, outbox));
    }

    /// Forgets connection `id` of `userid` (it closed).
    pub fn leave(&self, userid: &str, id: u64) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conns) = users.get_mut(userid) {
            conns.retain(|(i, _)| *i != id);
            if conns.is_empty() {
                users.remove(userid);
            }
        }
    }

    /// Sends `line` to every open connection of `userid`; how many got it.
    pub fn deliver(&self, userid: &str, line: &str) -> usize {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.get(userid).map_or(0, |conns| {
            conns
                .iter()
                .filter(|(_, outbox)| outbox.send(line.to_owned()).is_ok())
                .count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    #[test]
    fn delivers_to_every_connection_of_the_recipient() {
        let hub = Hub::default();
        let (a1, mut a1_rx) = unbounded_channel();
        let (a2, mut a2_rx) = unbounded_channel();
        let (b, mut b_rx) = unbounded_channel();
        hub.join("alice", 1, a1);
        hub.join("alice", 2, a2);
        hub.join("bob", 3, b);
        assert_eq!(hub.deliver("alice", "MSG bob hi"), 2);
        assert_eq!(a1_rx.try_recv().as_deref(), Ok("MSG bob hi"));
        assert_eq!(a2_rx.try_recv().as_deref(), Ok("MSG bob hi"));
        assert!(b_rx.try_recv().is_err());
        assert_eq!(hub.deliver("carol", "MSG bob hi"), 0);
        hub.leave("alice", 1);
        assert_eq!(hub.deliver("alice", "x"), 1);
        hub.leave("alice", 2);
        assert_eq!(hub.deliver("alice", "x"), 0);
    }
}
