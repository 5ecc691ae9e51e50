//! Mirroring-endpoint stand-ins: a TCP port that behaves, as a client sees it,
//! open, refused, filtered, accept-then-close or slow. Faults come from real
//! socket states, not from skipping code.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::lab::scenario::Listener;

/// Keeps the sockets (and the task) that make the behaviour; dropping it frees the port.
pub struct EndpointListener {
    pub addr: SocketAddr,
    _sockets: Vec<Socket>,
    _fillers: Vec<std::net::TcpStream>,
    task: Option<JoinHandle<()>>,
}

impl Drop for EndpointListener {
    fn drop(&mut self) {
        // A listening socket owned by a task closes only when the runtime drops
        // the aborted task; until then the kernel still completes handshakes on
        // it. Shutting it down here stops that at once (the sockets kept here
        // are the listener itself or a duplicate of its descriptor).
        for s in &self._sockets {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

fn socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    // A rebind for a new fault binds while the old listener's task still holds
    // its (shut down) descriptor: see `Ports::rebind`.
    s.set_reuse_port(true)?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s)
}

/// A listen queue of one, filled by a connection of our own: later SYNs are dropped.
fn full_queue(addr: SocketAddr) -> io::Result<(Socket, std::net::TcpStream)> {
    let s = socket(addr)?;
    s.listen(0)?;
    let bound = s.local_addr()?.as_socket().expect("inet");
    let filler = std::net::TcpStream::connect_timeout(&bound, Duration::from_secs(1))?;
    Ok((s, filler))
}

pub fn bind(addr: SocketAddr, behaviour: Listener, slow_ms: u64) -> io::Result<EndpointListener> {
    let mut out = EndpointListener { addr, _sockets: vec![], _fillers: vec![], task: None };
    match behaviour {
        // Bound but not listening: the port is ours and every SYN gets a RST.
        Listener::Refused => {
            let s = socket(addr)?;
            out.addr = s.local_addr()?.as_socket().expect("inet");
            out._sockets.push(s);
        }
        Listener::Filtered => {
            let (s, filler) = full_queue(addr)?;
            out.addr = s.local_addr()?.as_socket().expect("inet");
            out._sockets.push(s);
            out._fillers.push(filler);
        }
        Listener::Slow => {
            // The queue stays full for `slow_ms` after each accept, so a client's SYN
            // waits for the kernel's retransmission: connects succeed, slowly.
            let (s, filler) = full_queue(addr)?;
            out.addr = s.local_addr()?.as_socket().expect("inet");
            s.set_nonblocking(true)?;
            out._sockets.push(s.try_clone()?);
            let listener = TcpListener::from_std(s.into())?;
            out._fillers.push(filler);
            out.task = Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(slow_ms)).await;
                    if let Ok((conn, _)) = listener.accept().await {
                        tokio::spawn(hold(conn));
                    }
                }
            }));
        }
        Listener::Open | Listener::AcceptClose => {
            let s = socket(addr)?;
            s.listen(128)?;
            s.set_nonblocking(true)?;
            out.addr = s.local_addr()?.as_socket().expect("inet");
            out._sockets.push(s.try_clone()?);
            let listener = TcpListener::from_std(s.into())?;
            let close = behaviour == Listener::AcceptClose;
            out.task = Some(tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    if !close {
                        tokio::spawn(hold(conn));
                    }
                }
            }));
        }
    }
    Ok(out)
}

/// A mirroring endpoint waits for its handshake; the lab reads and discards,
/// and lets go after a minute.
async fn hold(mut conn: tokio::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}
