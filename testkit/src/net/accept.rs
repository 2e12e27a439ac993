//! The one accept loop behind every listener of the testkit (the fakes, the front, the CONNECT
//! proxy, the host, the sandbox's forwarder and control API).

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Accepts connections on `listener` for ever and serves each with `serve`, in a task owned by
/// this loop: aborting the task that runs it aborts every connection too. A failed `accept`
/// (out of file descriptors, say) is retried after 10 ms instead of spinning.
pub(crate) async fn serve_each<F, Fut>(listener: TcpListener, mut serve: F)
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(serve(stream));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
