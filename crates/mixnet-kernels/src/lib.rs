//! CPU compute kernels on plain slices: no NDArray, no engine, generic over element type only here.
