//! `rtap`: a testpmd-like tool for the rtap packet I/O library.
//!
//! Each subcommand is a module owning its arguments: [`fwd`] (forwarding,
//! generators, live stats), [`bench`] (the benchmark suite), [`demo`], [`info`],
//! [`capture`]. Shared pieces: [`common`] (CPUs, namespaces, signals, tables)
//! and [`traffic`] (TCP bulk transfer, ping). Dependencies point one way: bench
//! uses demo and fwd, demo uses fwd; fwd uses none of them.

// unsafe lives in one module (sys), each block with a SAFETY comment.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod bench;
mod capture;
mod common;
mod demo;
mod fwd;
mod info;
mod send;
mod sink;
#[allow(unsafe_code)]
mod sys;
mod traffic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const ROOT_HELP: &str = "\
Examples:
  rtap demo                                              # namespaces, ping and TCP through rtap
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1   # forward between two taps until Ctrl-C
  rtap fwd --port packet:iface=eth1 --port tap:iface=tap0 # an existing interface (AF_PACKET) to a tap
  rtap fwd --port tun:iface=tun0 --port tun:iface=tun1   # IP packets between two TUNs

Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more than warnings.";

#[derive(Parser, Debug)]
#[command(
    name = "rtap",
    version,
    about = "Packet forwarding over Linux TAP and TUN interfaces and AF_PACKET rings with io_uring (testpmd-like)",
    after_help = ROOT_HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Forward packets between two ports (or back out of one), zero copy
    #[command(after_help = fwd::HELP, after_long_help = fwd::LONG_HELP)]
    Fwd(fwd::FwdArgs),
    /// Two namespaces joined by rtap: ping and a TCP transfer through the forwarder
    #[command(after_help = demo::HELP, after_long_help = demo::LONG_HELP)]
    Demo(demo::DemoArgs),
    /// The benchmark suite: 64-byte tx, rx-drain and io-forward pps, TCP Gbit/s and
    /// ping-pong latency through the forwarder; io_uring vs read/write (and veth)
    #[command(after_help = bench::HELP)]
    Bench(bench::BenchArgs),
    /// What a port is and what the kernel offers it (backend, io_uring features, offloads)
    #[command(
        after_help = "Examples:\n  rtap info --port tap:iface=tap0 --json\n  rtap info --port packet:iface=eth1,kick=uring\n  rtap info --zcrx"
    )]
    Info(info::InfoArgs),
    /// Write received frames to a pcap file (opens in tcpdump and Wireshark)
    #[command(
        after_help = "Examples:\n  rtap capture --port tap:iface=tap0 --write /tmp/tap0.pcap --count 100\n  rtap capture --port packet:iface=eth1,tpacket=3 --write /tmp/eth1.pcap --duration 10"
    )]
    Capture(capture::CaptureArgs),
    /// Receive TCP with zero-copy receive (io_uring zcrx) or its copy fallback,
    /// checking every byte
    #[command(after_help = sink::HELP)]
    Sink(sink::SinkArgs),
    /// Send the pattern `rtap sink` checks (the demo's bulk sender)
    #[command(after_help = send::HELP)]
    Send(send::SendArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Clap's error as one line: its message up to the usage block, whitespace folded.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let msg = text.split("\n\n").next().unwrap_or("");
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    format!("{msg} (see --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    init_tracing();
    if let Err(e) = common::signal::install() {
        eprintln!("error: cannot install the SIGINT/SIGTERM handler: {e}");
        return ExitCode::FAILURE;
    }
    let r = match cli.cmd {
        Cmd::Fwd(a) => fwd::cmd(a),
        Cmd::Demo(a) => demo::cmd(a),
        Cmd::Bench(a) => bench::cmd(a),
        Cmd::Info(a) => match &a.port {
            Some(port) => info::run(port, a.json).map(|out| print!("{out}")),
            None => {
                print!("{}", info::zcrx_only(a.json));
                Ok(())
            }
        },
        Cmd::Capture(a) => capture::cmd(a),
        Cmd::Sink(a) => sink::cmd(a),
        Cmd::Send(a) => send::cmd(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
