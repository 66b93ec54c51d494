#![allow(dead_code)]
//! A fault-injecting TCP proxy for the fault tests: clients connect to [`FaultProxy::addr`],
//! which forwards to the real service, and [`FaultProxy::set`] switches, at any moment and for
//! the connections already open as well as new ones, between passing traffic through and one of
//! the network's failures ([`Fault`]).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the network does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Everything passes.
    Pass,
    /// The service goes away: open connections are closed (FIN) and new ones are closed as
    /// soon as they are accepted.
    Drop,
    /// Every chunk of data, both ways, waits this long first (a slow, far or congested link).
    Delay(Duration),
    /// Open connections and new ones are reset (RST), as by a crashed peer or a firewall.
    Reset,
    /// A black hole: connections open, but nothing is delivered either way until the fault
    /// ends (a partition; TCP delivers what was held once the path is back).
    Stall,
}

impl Fault {
    pub fn name(self) -> String {
        match self {
            Fault::Pass => "pass".into(),
            Fault::Drop => "drop".into(),
            Fault::Delay(d) => format!("delay {} ms", d.as_millis()),
            Fault::Reset => "reset".into(),
            Fault::Stall => "stall".into(),
        }
    }
}

/// Counts of what the proxy did, for the tests' reports.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub reset: AtomicU64,
    pub closed_by_fault: AtomicU64,
    /// Chunks held back by a delay, and by a stall.
    pub delayed: AtomicU64,
    pub held: AtomicU64,
}

/// The proxy; it stops (and its connections end) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    pub stats: Arc<ProxyStats>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`). Must be called
    /// within a tokio runtime, which then runs the proxy.
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let addr = listener.local_addr().unwrap();
        let (fault, _) = watch::channel(Fault::Pass);
        let stats = Arc::new(ProxyStats::default());
        let upstream = upstream.to_owned();
        let accept_loop = {
            let fault = fault.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let now = *fault.borrow();
                    match now {
                        Fault::Drop => {
                            stats.refused.fetch_add(1, Ordering::Relaxed);
                            drop(client);
                        }
                        Fault::Reset => {
                            stats.reset.fetch_add(1, Ordering::Relaxed);
                            reset(client);
                        }
                        _ => {
                            stats.accepted.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(connection(client, upstream.clone(), fault.subscribe(), stats.clone()));
                        }
                    }
                }
            })
        };
        FaultProxy {
            addr,
            fault,
            stats,
            accept_loop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: what a client is given instead of the service's own URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        // Ends every open connection's pumps.
        self.fault.send_replace(Fault::Drop);
    }
}

/// Makes the socket's close an RST instead of a FIN (SO_LINGER on with a zero timeout).
fn zero_linger(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: an open socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn reset(stream: TcpStream) {
    zero_linger(stream.as_raw_fd());
}

/// How a connection ended because of a fault.
enum Ending {
    Closed,
    Reset,
}

async fn connection(client: TcpStream, upstream: String, mut fault: watch::Receiver<Fault>, stats: Arc<ProxyStats>) {
    // A stall that starts before the upstream connection holds the client in the dark too.
    if *fault.borrow() == Fault::Stall {
        stats.held.fetch_add(1, Ordering::Relaxed);
    }
    while *fault.borrow_and_update() == Fault::Stall {
        if fault.changed().await.is_err() {
            return;
        }
    }
    match *fault.borrow() {
        Fault::Drop => return,
        Fault::Reset => return reset(client),
        _ => {}
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return reset(client);
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let ending = tokio::select! {
        ending = pump(client_read, server_write, fault.clone(), &stats) => ending,
        ending = pump(server_read, client_write, fault.clone(), &stats) => ending,
    };
    // The select dropped the other direction's halves: both sockets are closed now.
    match ending {
        Some(Ending::Reset) => stats.reset.fetch_add(1, Ordering::Relaxed),
        Some(Ending::Closed) => stats.closed_by_fault.fetch_add(1, Ordering::Relaxed),
        None => 0,
    };
}

/// Copies one direction until either side closes (`None`) or a fault ends the connection.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
    stats: &ProxyStats,
) -> Option<Ending> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            ending = ended_by(&mut fault) => return Some(abort(ending, from, to)),
        };
        let n = match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        // Hold the chunk while the fault says so; a fault that ends the connection wins.
        loop {
            let now = *fault.borrow_and_update();
            match now {
                Fault::Pass => break,
                Fault::Delay(d) => {
                    stats.delayed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(d).await;
                    break;
                }
                Fault::Drop => return Some(abort(Ending::Closed, from, to)),
                Fault::Reset => return Some(abort(Ending::Reset, from, to)),
                Fault::Stall => {
                    stats.held.fetch_add(1, Ordering::Relaxed);
                    if fault.changed().await.is_err() {
                        return Some(Ending::Closed);
                    }
                }
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return None;
        }
    }
}

/// Resolves when the fault becomes one that ends open connections.
async fn ended_by(fault: &mut watch::Receiver<Fault>) -> Ending {
    loop {
        match *fault.borrow_and_update() {
            Fault::Drop => return Ending::Closed,
            Fault::Reset => return Ending::Reset,
            _ => {}
        }
        if fault.changed().await.is_err() {
            return Ending::Closed;
        }
    }
}

/// Ends the connection: this direction's halves are dropped here, the other direction's by
/// the caller's select, and with the last of them each socket closes (reset: with an RST).
fn abort(ending: Ending, from: OwnedReadHalf, to: OwnedWriteHalf) -> Ending {
    if let Ending::Reset = ending {
        zero_linger(from.as_ref().as_raw_fd());
        zero_linger(to.as_ref().as_raw_fd());
    }
    ending
}
