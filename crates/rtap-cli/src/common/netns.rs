//! Named network namespaces (`ip netns`), deleted on drop, and entering one on the
//! current thread only.

use anyhow::{anyhow, Context, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;

/// Where `ip netns` keeps its namespace handles.
const NETNS_DIR: &str = "/run/netns";

/// Runs `ip` with `args`; on failure returns its stderr as the error.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (is iproute2 installed?)")?;
    if !out.status.success() {
        return Err(anyhow!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// A named network namespace created with `ip netns add`; deleted when dropped
/// (also while unwinding from a panic).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace.
    pub fn create(name: &str) -> Result<Netns> {
        ip(&["netns", "add", name])?;
        tracing::debug!(netns = name, "namespace created");
        Ok(Netns {
            name: name.to_string(),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args...`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Moves the calling thread (only it) into the namespace. Sockets it creates
    /// afterwards live there; so do threads it spawns.
    pub fn enter(&self) -> Result<()> {
        enter_named(&self.name)
    }

    /// Runs `f` on a new thread inside the namespace and returns its result.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name(format!("netns-{}", self.name))
                .spawn_scoped(s, || {
                    self.enter()?;
                    Ok(f())
                })
                .context("spawn thread")?
                .join()
                .unwrap_or_else(|_| Err(anyhow!("thread in namespace {} panicked", self.name)))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        match ip(&["netns", "del", &self.name]) {
            Ok(()) => tracing::debug!(netns = %self.name, "namespace deleted"),
            Err(e) => tracing::warn!("cleanup: {e}"),
        }
    }
}

/// `setns` into `/run/netns/NAME` for the calling thread.
pub fn enter_named(name: &str) -> Result<()> {
    let path = format!("{NETNS_DIR}/{name}");
    let f = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
    let fd = OwnedFd::from(f);
    crate::sys::setns_net(fd.as_fd()).map_err(|e| anyhow!("setns into {name}: {e}"))
}

/// Deletes namespaces named `PREFIX-...-PID` whose process no longer exists (left
/// behind by a demo that was killed with SIGKILL).
pub fn sweep_stale(prefix: &str) {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match ip(&["netns", "del", &name]) {
                Ok(()) => tracing::info!(netns = %name, "deleted stale namespace"),
                Err(e) => tracing::warn!("stale namespace: {e}"),
            }
        }
    }
}
