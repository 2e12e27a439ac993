//! A tiny HTTPS `CONNECT` proxy that maps names to loopback addresses, for real clients that
//! cannot be given a resolver: Go programs such as skopeo read only /etc/hosts, but honour
//! `HTTPS_PROXY`. Only the mapped `host:port` authorities are tunnelled (405 for other methods,
//! 403 for other targets), so nothing reaches the network. Stops when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy. Stops (with its tunnels) when dropped.
pub struct ConnectProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
    tunnels: Arc<Mutex<Vec<String>>>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    /// `map`: `host:port` as clients name it → where to connect.
    pub async fn start(map: HashMap<String, SocketAddr>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the CONNECT proxy");
        let addr = listener.local_addr().expect("proxy address");
        let map = Arc::new(map);
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let seen = tunnels.clone();
        let task = tokio::spawn(crate::net::accept::serve_each(listener, move |stream| {
            tunnel(stream, map.clone(), seen.clone())
        }));
        ConnectProxy {
            addr,
            task,
            tunnels,
        }
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The authorities tunnelled so far, in order.
    pub fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }
}

async fn tunnel(
    mut client: TcpStream,
    map: Arc<HashMap<String, SocketAddr>>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 && head.len() + n <= 16 * 1024 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split(' ');
    let (method, authority) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "CONNECT" {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let Some(target) = map.get(&authority.to_ascii_lowercase()) else {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    seen.lock().unwrap().push(authority.to_string());
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
