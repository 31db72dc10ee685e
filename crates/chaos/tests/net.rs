//! The network faults do what they say, measured from inside the
//! namespaces: a slowed link delivers a burst far slower than a healthy
//! one, duplication doubles what arrives, and heal undoes both. Needs root
//! (CI runs as root; without it the test fails rather than skipping).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use synod_chaos::net::Net;

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace exists");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns (root)");
        f()
    })
}

/// Seconds to move `bytes` over TCP from member 0 to member 1.
fn transfer(net: &Net, port: u16, bytes: usize) -> f64 {
    let to = format!("{}:{port}", net.addr(1));
    let bind = to.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_ns(&net.ns(1), move || {
        let l = TcpListener::bind(&bind).expect("bind");
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        got.len()
    });
    rx.recv().unwrap();
    let client = in_ns(&net.ns(0), move || {
        let t0 = Instant::now();
        let mut s = TcpStream::connect_timeout(&to.parse().unwrap(), Duration::from_secs(5))
            .expect("connect");
        s.write_all(&vec![7u8; bytes]).expect("write");
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // Wait for the receiver's close: everything arrived.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        t0.elapsed().as_secs_f64()
    });
    let secs = client.join().unwrap();
    assert_eq!(server.join().unwrap(), bytes);
    secs
}

/// Datagrams member 1 receives when member 0 sends `n`.
fn datagrams(net: &Net, port: u16, n: usize) -> usize {
    let bind = format!("{}:{port}", net.addr(1));
    let to = bind.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_ns(&net.ns(1), move || {
        let s = UdpSocket::bind(&bind).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        let mut count = 0;
        while s.recv(&mut buf).is_ok() {
            count += 1;
        }
        count
    });
    rx.recv().unwrap();
    in_ns(&net.ns(0), move || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        for i in 0..n {
            s.send_to(&(i as u32).to_le_bytes(), &to).expect("send");
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
    .join()
    .unwrap();
    server.join().unwrap()
}

#[test]
fn a_slow_link_slows_and_duplication_doubles_until_heal() {
    let mut net = Net::create(231, 2).expect("network namespaces (needs root)");
    let bytes = 96 << 10;
    let healthy = transfer(&net, 9101, bytes);
    assert!(healthy < 1.0, "a healthy transfer took {healthy:.2} s");
    // 256 kbit/s is 32 KiB/s: 96 KiB needs about three seconds.
    net.slow(0, 256, 1000).unwrap();
    let slowed = transfer(&net, 9102, bytes);
    assert!(slowed > 1.5, "a slowed transfer took only {slowed:.2} s");
    net.heal().unwrap();
    let healed = transfer(&net, 9103, bytes);
    assert!(healed < 1.0, "after heal a transfer took {healed:.2} s");

    assert_eq!(datagrams(&net, 9201, 200), 200);
    net.duplicate(0, 100).unwrap();
    let doubled = datagrams(&net, 9202, 200);
    assert_eq!(doubled, 400, "every datagram sent twice");
    net.heal().unwrap();
    assert_eq!(datagrams(&net, 9203, 200), 200);
}
