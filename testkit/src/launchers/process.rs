//! What every launcher does with the program it starts: a free loopback port to offer it, a
//! child tied to this test process (its own process group, PR_SET_PDEATHSIG), killed with its
//! group. A port is free when chosen but may be taken before the program binds it: each launcher
//! retries with a fresh port when its readiness probe does not reach its own child.

use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns a helper process (Azurite, the registry, Redis) tied to this test process: in its own
/// process group (so that [`kill_group`] takes its children too), with PR_SET_PDEATHSIG, and from
/// a thread that lives as long as the process (PDEATHSIG fires when the *thread* that forked
/// exits), so that it dies when this test process dies.
pub(crate) fn spawn_tied_to_process(mut cmd: Command) -> io::Result<Child> {
    cmd.process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }

    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send((cmd, reply_tx))
        .expect("spawner alive");
    reply_rx.recv().expect("spawner reply")
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub(crate) fn kill_group(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain syscall; the child leads its own process group (process_group(0)).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}
