//! [`TcpProxy`]: a TCP forwarder between a client and a server that a test can cut and
//! restore, to play a network failure between two real processes (an agent and its
//! server) without root, network namespaces or firewall rules.
//!
//! Two ways to fail, because real networks fail both ways:
//! - [`TcpProxy::cut`]: a partition. Connections stay open but nothing passes: bytes
//!   already sent wait in the proxy, new connections are accepted and then hear nothing.
//!   [`TcpProxy::restore`] lets everything through again, late, as TCP retransmission
//!   would after a short outage.
//! - [`TcpProxy::reset`]: every open connection is closed, and new ones are closed at
//!   once (a peer that restarted, a firewall sending resets) until `restore`.
//!
//! Plain threads and blocking sockets: tests using it are often synchronous, and the
//! proxy must keep working while the test thread sleeps or polls.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the proxy does with traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Cut,
    Reset,
}

struct State {
    mode: Mode,
    /// Bumped by every reset: a pump from an older generation stops instead of writing.
    generation: u64,
    /// Both sockets of every open pair (clones), so a reset can close them.
    open: Vec<(u64, TcpStream, TcpStream)>,
    /// Connections accepted during a cut, held (unread) until the cut ends.
    held: Vec<TcpStream>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stopped: AtomicBool,
    target: SocketAddr,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking pump thread must not take the proxy down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A TCP proxy on a loopback port, forwarding to one target (see the module docs).
/// Dropping it stops it and closes every connection.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TcpProxy {
    /// A proxy on a free loopback port forwarding to `target` (which need not be up yet:
    /// connections are made to it when clients connect).
    pub fn start(target: impl ToSocketAddrs) -> TcpProxy {
        TcpProxy::start_on("127.0.0.1:0", target)
    }

    /// A proxy listening on `listen`.
    pub fn start_on(listen: impl ToSocketAddrs, target: impl ToSocketAddrs) -> TcpProxy {
        let target = target
            .to_socket_addrs()
            .expect("resolve the proxy's target")
            .next()
            .expect("the proxy's target has an address");
        let listener = TcpListener::bind(listen).expect("bind the proxy's port");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: Mode::Forward,
                generation: 0,
                open: Vec::new(),
                held: Vec::new(),
            }),
            changed: Condvar::new(),
            stopped: AtomicBool::new(false),
            target,
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || accept_loop(listener, accepting));
        TcpProxy { addr, shared }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for HTTP clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts a partition: nothing passes in either direction until [`TcpProxy::restore`];
    /// connections stay open and new ones are accepted, but hear nothing.
    pub fn cut(&self) {
        self.set(Mode::Cut);
    }

    /// Closes every open connection and closes new ones at once, until
    /// [`TcpProxy::restore`].
    pub fn reset(&self) {
        let mut state = self.shared.lock();
        state.mode = Mode::Reset;
        state.generation += 1;
        for (_, a, b) in state.open.drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        for held in state.held.drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Lets traffic through again: what waited during a cut is delivered, connections
    /// held during it are forwarded.
    pub fn restore(&self) {
        let held = {
            let mut state = self.shared.lock();
            state.mode = Mode::Forward;
            std::mem::take(&mut state.held)
        };
        self.shared.changed.notify_all();
        for client in held {
            connect_pair(client, &self.shared);
        }
    }

    fn set(&self, mode: Mode) {
        self.shared.lock().mode = mode;
        self.shared.changed.notify_all();
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.reset();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let mode = shared.lock().mode;
        match mode {
            Mode::Forward => connect_pair(client, &shared),
            Mode::Cut => shared.lock().held.push(client),
            Mode::Reset => drop(client),
        }
    }
}

/// Connects `client` to the target and starts the two pumps; a target that does not
/// answer closes the client, as a refused connection would.
fn connect_pair(client: TcpStream, shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        let Ok(upstream) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(10))
        else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
            client.try_clone(),
            upstream.try_clone(),
            client.try_clone(),
            upstream.try_clone(),
        ) else {
            return;
        };
        let generation = {
            let mut state = shared.lock();
            if state.mode == Mode::Reset {
                return;
            }
            let generation = state.generation;
            state.open.push((generation, c3, u3));
            generation
        };
        let back = Arc::clone(&shared);
        std::thread::spawn(move || pump(u2, c2, generation, &back));
        pump(client, upstream, generation, &shared);
    });
}

/// Copies `from` to `to` until either side closes; during a cut, data read waits before
/// being written; after a reset of its generation, it stops.
fn pump(mut from: TcpStream, mut to: TcpStream, generation: u64, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut state = shared.lock();
            while state.mode == Mode::Cut && state.generation == generation {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if state.generation != generation {
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    // Half-close: the other direction may still have an answer to deliver.
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
    let mut state = shared.lock();
    state
        .open
        .retain(|(g, a, _)| !(*g == generation && same(a, &from)));
}

fn same(a: &TcpStream, b: &TcpStream) -> bool {
    matches!((a.peer_addr(), b.peer_addr()), (Ok(x), Ok(y)) if x == y)
        && matches!((a.local_addr(), b.local_addr()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// An echo server that answers each line with the same line.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || {
                    let mut out = conn.try_clone().expect("clone");
                    for line in std::io::BufReader::new(conn).lines() {
                        let Ok(line) = line else { break };
                        if out.write_all(format!("{line}\n").as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn client(proxy: &TcpProxy) -> (TcpStream, std::io::BufReader<TcpStream>) {
        let conn = TcpStream::connect(proxy.addr()).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
        (conn, reader)
    }

    fn ask(conn: &mut TcpStream, reader: &mut std::io::BufReader<TcpStream>, text: &str) -> String {
        conn.write_all(format!("{text}\n").as_bytes())
            .expect("send");
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        line.trim_end().to_owned()
    }

    #[test]
    fn forwards_holds_during_a_cut_and_delivers_after_restore() {
        let proxy = TcpProxy::start(echo_server());
        let (mut conn, mut reader) = client(&proxy);
        assert_eq!(ask(&mut conn, &mut reader, "one"), "one");

        proxy.cut();
        conn.write_all(b"two\n").expect("send during the cut");
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut line = String::new();
        let heard = reader.read_line(&mut line);
        assert!(
            heard.is_err(),
            "something passed during the cut: {heard:?} {line:?}"
        );
        // A connection made during the cut is accepted but hears nothing either.
        let (mut late, mut late_reader) = client(&proxy);
        late.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        late.write_all(b"three\n").expect("send");
        let mut late_line = String::new();
        assert!(late_reader.read_line(&mut late_line).is_err());

        proxy.restore();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        late.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        line.clear();
        reader
            .read_line(&mut line)
            .expect("delivered after restore");
        assert_eq!(line.trim_end(), "two");
        late_line.clear();
        late_reader
            .read_line(&mut late_line)
            .expect("late delivered");
        assert_eq!(late_line.trim_end(), "three");
        assert_eq!(ask(&mut conn, &mut reader, "four"), "four");
    }

    #[test]
    fn reset_closes_connections_until_restore() {
        let proxy = TcpProxy::start(echo_server());
        let (mut conn, mut reader) = client(&proxy);
        assert_eq!(ask(&mut conn, &mut reader, "one"), "one");
        proxy.reset();
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap_or(0);
        assert_eq!(n, 0, "the open connection was closed: {line:?}");
        let (_new, mut new_reader) = client(&proxy);
        let mut line = String::new();
        assert_eq!(new_reader.read_line(&mut line).unwrap_or(0), 0);

        proxy.restore();
        let (mut conn, mut reader) = client(&proxy);
        assert_eq!(ask(&mut conn, &mut reader, "back"), "back");
    }
}
