//! Elementwise loops: unary map, same-shape binary zip, and broadcasting binary. The
//! operation is a closure so each (op, type) pair compiles to a tight loop; large arrays
//! are split across both cores.

use crate::fastmath::wide256;
use crate::parallel::{chunks, split};

/// Below this many elements a loop stays on one thread (a rayon split costs ~µs).
pub const PARALLEL_MIN: usize = 1 << 16;

/// `dst.copy_from_slice(src)`, split across cores only for copies of several MiB: below
/// that, waking the pool costs more than a `memcpy` saves.
pub fn copy(src: &[u8], dst: &mut [u8]) {
    const PAR_BYTES: usize = 4 << 20;
    const PIECE: usize = 1 << 20;
    if dst.len() < PAR_BYTES {
        dst.copy_from_slice(src);
    } else {
        split(dst, PIECE, &|off, d| d.copy_from_slice(&src[off..off + d.len()]));
    }
}

/// `out[i] = f(x[i])`.
pub fn map<A: Copy + Sync, B: Copy + Send, F: Fn(A) -> B + Sync>(x: &[A], out: &mut [B], f: F) {
    debug_assert_eq!(x.len(), out.len());
    let run = |x: &[A], o: &mut [B]| wide256(|| o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x)));
    if out.len() >= PARALLEL_MIN {
        split(out, 1, &|off, o| run(&x[off..off + o.len()], o));
    } else {
        run(x, out);
    }
}

/// `out[i] = f(a[i], b[i])`.
pub fn zip<A: Copy + Sync, B: Copy + Sync, C: Copy + Send, F: Fn(A, B) -> C + Sync>(
    a: &[A],
    b: &[B],
    out: &mut [C],
    f: F,
) {
    debug_assert!(a.len() == out.len() && b.len() == out.len());
    let run = |a: &[A], b: &[B], o: &mut [C]| {
        wide256(|| {
            for i in 0..o.len() {
                o[i] = f(a[i], b[i]);
            }
        })
    };
    if out.len() >= PARALLEL_MIN {
        split(out, 1, &|off, o| run(&a[off..off + o.len()], &b[off..off + o.len()], o));
    } else {
        run(a, b, out);
    }
}

/// Strides of `shape` (row-major, in elements) laid against `out_shape` (right-aligned,
/// numpy rules): size-1 and missing dims get stride 0. `None` if not broadcastable.
pub fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Option<Vec<usize>> {
    if shape.len() > out_shape.len() {
        return None;
    }
    let lead = out_shape.len() - shape.len();
    let mut strides = vec![0; out_shape.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let (d, o) = (shape[i], out_shape[lead + i]);
        if d == o {
            strides[lead + i] = if d == 1 { 0 } else { s };
        } else if d != 1 {
            return None;
        }
        s *= d;
    }
    Some(strides)
}

/// The broadcast shape of two shapes (numpy rules), or `None`.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let y = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            match (x, y) {
                _ if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// `out[idx] = f(a[idx·sa], b[idx·sb])` over `out_shape`, with strides from
/// [`broadcast_strides`]. The innermost dimension runs as a flat loop.
pub fn broadcast_zip<A: Copy + Sync, B: Copy + Sync, C: Copy + Send, F: Fn(A, B) -> C + Sync>(
    a: &[A],
    sa: &[usize],
    b: &[B],
    sb: &[usize],
    out: &mut [C],
    out_shape: &[usize],
    f: F,
) {
    let n = out.len();
    if n == 0 {
        return;
    }
    let rank = out_shape.len();
    if rank == 0 {
        out[0] = f(a[0], b[0]);
        return;
    }
    let inner = out_shape[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let row = |r: usize, o: &mut [C]| {
        // Offsets of this row's start in a and b, from its multi-index over the outer dims.
        let (mut oa, mut ob, mut rem) = (0, 0, r);
        for d in (0..rank - 1).rev() {
            let i = rem % out_shape[d];
            rem /= out_shape[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        match (ia, ib) {
            (1, 1) => o
                .iter_mut()
                .zip(&a[oa..oa + inner])
                .zip(&b[ob..ob + inner])
                .for_each(|((o, &x), &y)| *o = f(x, y)),
            (0, 1) => {
                let x = a[oa];
                o.iter_mut().zip(&b[ob..ob + inner]).for_each(|(o, &y)| *o = f(x, y))
            }
            (1, 0) => {
                let y = b[ob];
                o.iter_mut().zip(&a[oa..oa + inner]).for_each(|(o, &x)| *o = f(x, y))
            }
            _ => o.iter_mut().enumerate().for_each(|(j, o)| *o = f(a[oa + j * ia], b[ob + j * ib])),
        }
    };
    if inner == 0 {
        return;
    }
    if n >= PARALLEL_MIN {
        chunks(out, inner, &|r, o| row(r, o));
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(r, o)| row(r, o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[4]), None);
        let a = [1.0f32, 2.0, 3.0]; // (3,)
        let b = [10.0f32, 20.0]; // (2, 1)
        let out_shape = [2, 3];
        let sa = broadcast_strides(&[3], &out_shape).unwrap();
        let sb = broadcast_strides(&[2, 1], &out_shape).unwrap();
        let mut out = [0.0f32; 6];
        broadcast_zip(&a, &sa, &b, &sb, &mut out, &out_shape, |x, y| x + y);
        assert_eq!(out, [11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
    }
}
