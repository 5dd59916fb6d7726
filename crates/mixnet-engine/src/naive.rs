//! `NaiveEngine`: every operation runs synchronously on the pushing thread.
//! For debugging (errors surface next to their cause) and as the reference semantics.

use crate::error::{EngineError, ErrorLog};
use crate::opr::{fast_path_set, run_guarded, OpFn, OpProps, OpResult, OprBlock};
use crate::var::Var;
use crate::{Engine, EngineKind};

/// Runs each op at push time. Ops pushed concurrently from several threads are not
/// ordered against each other (as in MXNet's NaiveEngine).
#[derive(Default)]
pub struct NaiveEngine {
    errors: ErrorLog,
}

impl NaiveEngine {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for NaiveEngine {
    fn push(&self, func: OpFn, reads: &[Var], writes: &[Var], props: OpProps) {
        let block = OprBlock::new(func, reads, writes, props, 0);
        if let (Err(e), true) = block.run_sync() {
            self.errors.record(e);
        }
    }

    fn try_run_now(
        &self,
        func: &mut dyn FnMut() -> OpResult,
        reads: &[&Var],
        writes: &[&Var],
        name: &'static str,
    ) -> bool {
        let Some(set) = fast_path_set(reads, writes) else { return false };
        let written = || set.iter().filter(|(_, write)| *write).map(|(v, _)| v);
        written().for_each(|v| v.note_pushed_write());
        let (outcome, new) = run_guarded(|| name.into(), func);
        written().for_each(|v| v.complete_write_sync(&outcome));
        if let (Err(e), true) = (outcome, new) {
            self.errors.record(e);
        }
        true
    }

    fn wait_for_var(&self, var: &Var) -> Result<(), EngineError> {
        var.report_poison()
    }

    fn wait_all(&self) -> Result<(), EngineError> {
        self.errors.take_first_unreported()
    }

    fn delete_var(&self, var: &Var, on_delete: Box<dyn FnOnce() + Send>) {
        var.mark_delete_requested();
        on_delete();
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Naive
    }
}
