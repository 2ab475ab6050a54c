//! Built without feature `tokio`: task-driven queues cannot be made (their
//! waits need tokio's reactor), so this type has no values and the handles'
//! task-driven branches are never taken.

use std::task::Context;
use std::time::Duration;

use super::chan::Chan;
use super::end::MtReport;

/// No task-driven queue exists in this build.
#[derive(Debug)]
pub(crate) enum Inline {}

impl Inline {
    pub(crate) fn pump_rx(&self, _: &Chan, _: &Context<'_>) -> bool {
        match *self {}
    }

    pub(crate) fn pump_tx(&self, _: &Chan) {
        match *self {}
    }

    pub(crate) fn pending(&self) -> usize {
        match *self {}
    }

    pub(crate) fn drained(&self, _: &Chan) -> bool {
        match *self {}
    }

    pub(crate) fn stop(&self, _: &Chan, _: Duration) -> MtReport {
        match *self {}
    }
}
