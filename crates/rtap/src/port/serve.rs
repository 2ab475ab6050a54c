//! Serving a port's queues to other processes: the port hands what the server
//! needs to [`crate::share`], which runs it.

use super::Port;
use crate::error::{Error, Result};
use crate::share::server::{self, ServeParts};
use crate::share::{ServeConfig, Server};

impl Port {
    /// Serves this port's queue pairs to other processes on a Unix socket: they
    /// attach with a `shared:path=...` spec ([`SharedConfig`](crate::share::SharedConfig)),
    /// get queue fds and run their own engines on them; this process keeps the
    /// link, the offloads and the port's lifecycle. Every device that can lend
    /// its queues can be served; the others (a port that is itself attached to
    /// another process's, an xdp port) are refused with the reason.
    pub fn serve(&self, cfg: ServeConfig) -> Result<Server> {
        if let Err(hint) = self.dev.lend() {
            return Err(Error::Unsupported {
                feature: "serving this port to other processes",
                hint,
            });
        }
        let netns = self
            .ns
            .as_ref()
            .map(|h| h.fd().try_clone_to_owned())
            .transpose()
            .map_err(|e| Error::sys("dup netns fd", e))?;
        server::spawn(
            cfg,
            ServeParts {
                dev: self.dev.clone(),
                iface: self.iface.clone(),
                kind: self.kind(),
                name: self.name(),
                offloads: self.offloads(),
                queues: self.queues.clone(),
                netns,
            },
        )
    }
}
