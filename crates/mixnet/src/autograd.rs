//! Autograd state (MXNet's `mx.autograd`): whether operations run in training mode.
//! Recording and backward build on this.

use std::cell::Cell;

thread_local! {
    static TRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Whether operators run in training mode on this thread (Dropout, BatchNorm).
pub fn is_training() -> bool {
    TRAINING.with(Cell::get)
}

/// Set training mode on this thread; returns the previous value (MXNet's `set_training`).
pub fn set_training(train: bool) -> bool {
    TRAINING.with(|t| t.replace(train))
}
