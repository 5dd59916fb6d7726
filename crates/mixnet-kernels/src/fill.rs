//! Filling outputs whose values depend only on the position (creation operators): no
//! input to read, so a plain indexed loop, split across the cores for large arrays.

use crate::elementwise::PARALLEL_MIN;

const CHUNK: usize = 1 << 14;

/// `out[i] = f(i)`.
pub fn fill_with<T: Send, F: Fn(usize) -> T + Sync>(out: &mut [T], f: F) {
    if out.len() >= PARALLEL_MIN {
        crate::parallel::chunks(out, CHUNK, &|c, o| {
            o.iter_mut().enumerate().for_each(|(j, o)| *o = f(c * CHUNK + j));
        });
    } else {
        out.iter_mut().enumerate().for_each(|(i, o)| *o = f(i));
    }
}

/// `out[i] = v`.
pub fn fill<T: Copy + Send + Sync>(out: &mut [T], v: T) {
    if out.len() >= PARALLEL_MIN {
        crate::parallel::split(out, CHUNK, &|_, o| o.fill(v));
    } else {
        out.fill(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed() {
        let mut v = vec![0usize; PARALLEL_MIN + 3];
        fill_with(&mut v, |i| i * 2);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i * 2));
        fill(&mut v, 7);
        assert!(v.iter().all(|&x| x == 7));
    }
}
