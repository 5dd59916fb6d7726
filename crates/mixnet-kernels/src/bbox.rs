//! Bounding-box kernels of MXNet's detection ops: pairwise intersection-over-union
//! (`_contrib_box_iou`) and greedy non-maximum suppression (`_contrib_box_nms`), following
//! MXNet 1.9.1's CPU kernels (`bounding_box-inl.h`) step for step, including their
//! conventions for degenerate boxes and ties.

use crate::unary::Real;

/// How four box coordinates are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxFormat {
    /// `[xmin, ymin, xmax, ymax]`.
    Corner,
    /// `[x, y, width, height]` (center and size).
    Center,
}

/// Overlap length along one axis of boxes `a` and `b`, given as (start, end) in corner
/// format or (center, size) in center format; never negative.
fn intersect<R: Real>(a0: R, a1: R, b0: R, b1: R, f: BoxFormat) -> R {
    let (al, ar, bl, br) = match f {
        BoxFormat::Corner => (a0, a1, b0, b1),
        BoxFormat::Center => {
            let two = R::from_f64(2.0);
            let (aw, bw) = (a1 / two, b1 / two);
            (a0 - aw, a0 + aw, b0 - bw, b0 + bw)
        }
    };
    let left = if al > bl { al } else { bl };
    let right = if ar < br { ar } else { br };
    let w = right - left;
    if w > R::ZERO {
        w
    } else {
        R::ZERO
    }
}

/// Area of a box; zero when its width or height is negative (MXNet's `BoxArea`).
fn area<R: Real>(b: &[R], f: BoxFormat) -> R {
    let (w, h) = match f {
        BoxFormat::Corner => (b[2] - b[0], b[3] - b[1]),
        BoxFormat::Center => (b[2], b[3]),
    };
    if w < R::ZERO || h < R::ZERO {
        R::ZERO
    } else {
        w * h
    }
}

/// Intersection area of two boxes.
fn intersection<R: Real>(a: &[R], b: &[R], f: BoxFormat) -> R {
    intersect(a[0], a[2], b[0], b[2], f) * intersect(a[1], a[3], b[1], b[3], f)
}

/// `out[l * nr + r]` = IoU of box `l` of `lhs` and box `r` of `rhs` (rows of 4); zero
/// where the boxes do not intersect.
pub fn box_iou<R: Real>(lhs: &[R], rhs: &[R], f: BoxFormat, out: &mut [R]) {
    let nr = rhs.len() / 4;
    for (l, a) in lhs.chunks_exact(4).enumerate() {
        for (r, b) in rhs.chunks_exact(4).enumerate() {
            let i = intersection(a, b, f);
            out[l * nr + r] = if i <= R::ZERO { R::ZERO } else { i / (area(a, f) + area(b, f) - i) };
        }
    }
}

/// Parameters of [`box_nms`] (MXNet's `BoxNMSParam`, indices already checked against the
/// box width; thresholds already rounded to the data type as MXNet's `float` fields are).
#[derive(Clone, Copy, Debug)]
pub struct NmsParams<R> {
    pub overlap_thresh: R,
    pub valid_thresh: R,
    /// Boxes considered per batch after sorting (`None`: all).
    pub topk: Option<usize>,
    pub coord_start: usize,
    pub score_index: usize,
    pub id_index: Option<usize>,
    pub background_id: R,
    pub force_suppress: bool,
    pub in_format: BoxFormat,
    pub out_format: BoxFormat,
}

/// Non-maximum suppression over `data` = (batch, n, width) rows. Per batch, boxes with
/// score > `valid_thresh` (and, with an id column, id != `background_id`) are sorted by
/// descending score (stable), the first `topk` are kept, and each kept box suppresses the
/// later ones of its class (any class with `force_suppress`) whose IoU exceeds
/// `overlap_thresh`. Survivors fill `out`'s first rows in score order, the rest is -1;
/// `record` gets each output row's flat input row index (-1 for none), for the gradient.
pub fn box_nms<R: Real>(
    data: &[R],
    (batch, n, width): (usize, usize, usize),
    p: &NmsParams<R>,
    out: &mut [R],
    record: &mut [R],
) {
    let topk = p.topk.map_or(n, |k| k.min(n));
    let neg = R::from_f64(-1.0);
    if topk == 0 {
        out.copy_from_slice(data);
        for (i, r) in record.iter_mut().enumerate() {
            *r = R::from_f64(i as f64);
        }
        return;
    }
    out.fill(neg);
    record.fill(neg);
    let row = |i: usize| &data[i * width..(i + 1) * width];
    let class = |i: usize| p.id_index.map(|c| row(i)[c].to_f64() as i64);
    let c0 = p.coord_start;
    let mut sorted: Vec<usize> = Vec::with_capacity(n);
    let mut kept: Vec<bool> = Vec::with_capacity(n);
    let mut areas: Vec<R> = Vec::with_capacity(n);
    for b in 0..batch {
        sorted.clear();
        sorted.extend((b * n..(b + 1) * n).filter(|&i| {
            let r = row(i);
            r[p.score_index] > p.valid_thresh && p.id_index.is_none_or(|c| r[c] != p.background_id)
        }));
        // Descending score; `sort_by` is stable, as MXNet's `std::stable_sort`.
        sorted.sort_by(|&i, &j| {
            let (si, sj) = (row(i)[p.score_index], row(j)[p.score_index]);
            if si > sj {
                std::cmp::Ordering::Less
            } else if sj > si {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        sorted.truncate(topk);
        kept.clear();
        kept.resize(sorted.len(), true);
        areas.clear();
        areas.extend(sorted.iter().map(|&i| area(&row(i)[c0..c0 + 4], p.in_format)));
        for r in 0..sorted.len() {
            if !kept[r] {
                continue;
            }
            let rb = &row(sorted[r])[c0..c0 + 4];
            for q in r + 1..sorted.len() {
                if !kept[q] || (!p.force_suppress && class(sorted[r]) != class(sorted[q])) {
                    continue;
                }
                let inter = intersection(rb, &row(sorted[q])[c0..c0 + 4], p.in_format);
                let iou = inter / (areas[r] + areas[q] - inter);
                if iou > p.overlap_thresh {
                    kept[q] = false;
                }
            }
        }
        for (k, &i) in sorted.iter().zip(&kept).filter(|(_, &k)| k).map(|(i, _)| i).enumerate() {
            let o = b * n + k;
            out[o * width..(o + 1) * width].copy_from_slice(row(i));
            record[o] = R::from_f64(i as f64);
        }
    }
    if p.in_format != p.out_format {
        for r in out.chunks_exact_mut(width) {
            convert(&mut r[c0..c0 + 4], p.out_format);
        }
    }
}

/// Re-encode one box into `to` (from the other format), skipping boxes whose first
/// coordinate is negative as MXNet does (its -1 filler rows, but also real boxes there).
fn convert<R: Real>(b: &mut [R], to: BoxFormat) {
    if b[0] < R::ZERO {
        return;
    }
    let two = R::from_f64(2.0);
    match to {
        BoxFormat::Center => {
            let (l, t, r, d) = (b[0], b[1], b[2], b[3]);
            b.copy_from_slice(&[(l + r) / two, (t + d) / two, r - l, d - t]);
        }
        BoxFormat::Corner => {
            let (x, y, w, h) = (b[0], b[1], b[2] / two, b[3] / two);
            b.copy_from_slice(&[x - w, y - h, x + w, y + h]);
        }
    }
}

/// Gradient of [`box_nms`]: `dx` row `record[o]` gets `dy` row `o`; suppressed input rows
/// get zero.
pub fn box_nms_backward<R: Real>(dy: &[R], record: &[R], width: usize, dx: &mut [R]) {
    dx.fill(R::ZERO);
    for (o, &r) in record.iter().enumerate() {
        let i = r.to_f64() as i64;
        if i >= 0 && (i as usize + 1) * width <= dx.len() {
            let i = i as usize;
            dx[i * width..(i + 1) * width].copy_from_slice(&dy[o * width..(o + 1) * width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        let x = [0.5f64, 0.5, 1.0, 1.0, 0.0, 0.0, 0.5, 0.5];
        let y = [0.25f64, 0.25, 0.75, 0.75];
        let mut out = [0.0; 2];
        box_iou(&x, &y, BoxFormat::Corner, &mut out);
        assert!((out[0] - 1.0 / 7.0).abs() < 1e-12 && (out[1] - 1.0 / 7.0).abs() < 1e-12, "{out:?}");
    }
}
