//! What the two VPN examples share: the two network namespaces, a TUN with
//! every offload in each, and the two TCP ends that talk across the tunnel
//! (the example runs itself again inside each namespace: `--listen ADDR`
//! checks every byte it receives, `--send ADDR BYTES` sends a pattern).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};

use rtap::{Netns, Offloads, Port, TapConfig};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The TCP port the receiving end listens on.
pub const PORT: u16 = 5001;

/// If this process is one of the TCP ends (its arguments say so), runs it.
pub fn as_tcp_end() -> Option<Res<()>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--listen") => Some(listen(&args[2])),
        Some("--send") => Some(
            args[3]
                .parse()
                .map_err(Into::into)
                .and_then(|n| send(&args[2], n)),
        ),
        _ => None,
    }
}

/// Creates namespaces `ns`, runs `f`, deletes them (also when `f` fails).
pub fn with_namespaces(ns: [&str; 2], f: impl FnOnce() -> Res<()>) -> Res<()> {
    for n in ns {
        ip(&["netns", "add", n])?;
    }
    let r = f();
    for n in ns {
        let _ = ip(&["netns", "del", n]);
    }
    r
}

/// A TUN `vpn0` with every offload (the kernel hands up and takes 64 KiB GSO
/// packets) in namespace `ns`, addressed `me` with `peer` behind it, started.
pub fn tun_in(ns: &str, me: &str, peer: &str) -> Res<Port> {
    let cfg = TapConfig::tun("vpn0")
        .offloads(Offloads::ALL)
        .netns(Netns::Named(ns.to_string()));
    let p = Port::open(cfg)?;
    let peer = format!("{peer}/32");
    ip(&["-n", ns, "addr", "add", me, "peer", &peer, "dev", "vpn0"])?;
    p.start()?;
    Ok(p)
}

/// Starts the receiving end in namespace `ns[1]` at `addr`, then the sending
/// end in `ns[0]`, sending `bytes`.
pub fn start_ends(ns: [&str; 2], addr: &str, bytes: u64) -> Res<(Child, Child)> {
    let server = in_ns(ns[1], &["--listen", addr])?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let client = in_ns(ns[0], &["--send", addr, &bytes.to_string()])?;
    Ok((client, server))
}

fn ip(args: &[&str]) -> Res<()> {
    match Command::new("ip").args(args).status()?.success() {
        true => Ok(()),
        false => Err(format!("ip {} failed", args.join(" ")).into()),
    }
}

/// This example, run again inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(args)
        .spawn()
}

fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// Inside namespace b: accepts one connection and checks every byte.
fn listen(addr: &str) -> Res<()> {
    let l = TcpListener::bind(addr)?;
    let (mut c, _) = l.accept()?;
    let (mut buf, mut off) = (vec![0u8; 1 << 16], 0u64);
    loop {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b != pattern(off + i as u64) {
                return Err(format!("byte {} is wrong", off + i as u64).into());
            }
        }
        off += n as u64;
    }
}

/// Inside namespace a: sends `bytes` of the pattern.
fn send(addr: &str, bytes: u64) -> Res<()> {
    let mut s = TcpStream::connect(addr)?;
    let (mut buf, mut off) = (vec![0u8; 1 << 16], 0u64);
    while off < bytes {
        let n = buf.len().min((bytes - off) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(off + i as u64);
        }
        s.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}
