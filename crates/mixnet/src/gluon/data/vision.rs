//! Vision datasets and transforms (MXNet's `gluon.data.vision`): MNIST and FashionMNIST
//! from IDX files (gzipped or not), and `transforms` ToTensor, Normalize, Resize,
//! RandomFlipLeftRight, Cast, Compose.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Dataset, Sample};
use crate::gluon::op;
use crate::{DType, Error, NDArray, Result, Shape};

/// An IDX array as read from a file: dimensions, element type, raw big-endian bytes
/// converted to the native (little-endian) order.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

impl IdxArray {
    /// As an NDArray on cpu(0).
    pub fn to_ndarray(&self) -> Result<NDArray> {
        NDArray::from_bytes(&self.data, Shape::from(self.dims.clone()), self.dtype, crate::cpu(0))
    }
}

/// Largest IDX payload accepted (the biggest public IDX sets are well below).
const MAX_IDX_BYTES: usize = 1 << 32;

/// Parse IDX bytes (already decompressed). Truncated, oversized or malformed input is an
/// error naming `what`.
pub fn parse_idx(reader: &mut dyn Read, what: &str) -> Result<IdxArray> {
    let bad = |msg: String| Error::format(what.to_string(), msg);
    let mut head = [0u8; 4];
    reader.read_exact(&mut head).map_err(|_| bad("truncated: no IDX header (4 bytes)".into()))?;
    if head[0] != 0 || head[1] != 0 {
        return Err(bad(format!(
            "not an IDX file (magic bytes {:02x} {:02x}, expected 00 00)",
            head[0], head[1]
        )));
    }
    let (dtype, elem) = match head[2] {
        0x08 => (DType::U8, 1),
        0x09 => (DType::I8, 1),
        0x0B => (DType::I32, 2), // int16: widened below
        0x0C => (DType::I32, 4),
        0x0D => (DType::F32, 4),
        0x0E => (DType::F64, 8),
        t => return Err(bad(format!("unknown IDX element type 0x{t:02x}"))),
    };
    let ndim = head[3] as usize;
    if ndim == 0 {
        return Err(bad("IDX file with 0 dimensions".into()));
    }
    let mut dims_raw = vec![0u8; 4 * ndim];
    reader
        .read_exact(&mut dims_raw)
        .map_err(|_| bad(format!("truncated: header promises {ndim} dimensions")))?;
    let dims: Vec<usize> =
        dims_raw.chunks(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let bytes = dims
        .iter()
        .try_fold(elem, |acc: usize, &d| acc.checked_mul(d))
        .filter(|&b| b <= MAX_IDX_BYTES)
        .ok_or_else(|| bad(format!("dimensions {dims:?} are too large")))?;
    // Read what is there (no allocation from the header's promise), one byte more to see
    // trailing garbage.
    let mut raw = Vec::with_capacity(bytes.min(64 << 20));
    reader.take(bytes as u64 + 1).read_to_end(&mut raw).map_err(|e| bad(format!("read failed: {e}")))?;
    if raw.len() < bytes {
        return Err(bad(format!(
            "truncated: dimensions {dims:?} need {bytes} data bytes, found {}",
            raw.len()
        )));
    }
    if raw.len() > bytes {
        return Err(bad(format!("trailing bytes after the {bytes} data bytes of dimensions {dims:?}")));
    }
    let data = match head[2] {
        0x08 | 0x09 => raw,
        0x0B => raw.chunks(2).flat_map(|c| (i16::from_be_bytes([c[0], c[1]]) as i32).to_le_bytes()).collect(),
        _ => raw.chunks(elem).flat_map(|c| c.iter().rev().copied().collect::<Vec<_>>()).collect(),
    };
    Ok(IdxArray { dims, dtype, data })
}

/// Read an IDX file; gzip is recognized by its magic bytes, whatever the name.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let what = path.display().to_string();
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {what}"), e))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| Error::io(format!("reading {what}"), e))?;
    let prefix = std::io::Cursor::new(magic[..n].to_vec());
    let mut chained = prefix.chain(file);
    if n == 2 && magic == [0x1f, 0x8b] {
        let mut gz = flate2::read::GzDecoder::new(chained);
        parse_idx(&mut gz, &what)
    } else {
        parse_idx(&mut chained, &what)
    }
}

/// `name.gz` or `name` under `root`.
fn find(root: &Path, stem: &str, dataset: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = root.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Invalid(format!(
        "{dataset}: {stem}(.gz) not found under {}. {}",
        root.display(),
        if dataset == "FashionMNIST" {
            "Install the dataset with `apt-get install dataset-fashion-mnist` (it lands in /usr/share/datasets/fashion-mnist) \
             or download the four IDX files from https://github.com/zalandoresearch/fashion-mnist into that directory"
        } else {
            "Download the four IDX files (train-images-idx3-ubyte.gz, ...) into that directory"
        }
    )))
}

/// Images `(N, 28, 28, 1)` uint8 and labels `(N,)` int32 (MXNet's `MNIST` /
/// `FashionMNIST`): sample `i` is `[image (28, 28, 1) uint8, label () int32]`.
pub struct MNIST {
    data: NDArray,
    label: NDArray,
}

/// Fashion-MNIST has MNIST's file layout.
pub type FashionMNIST = MNIST;

impl MNIST {
    /// Load the `train` (60,000) or test (`t10k`, 10,000) split from `root`.
    pub fn new(root: impl AsRef<Path>, train: bool) -> Result<Self> {
        Self::load(root.as_ref(), train, "MNIST")
    }
    /// [`MNIST::new`] with Fashion-MNIST's messages.
    pub fn fashion(root: impl AsRef<Path>, train: bool) -> Result<Self> {
        Self::load(root.as_ref(), train, "FashionMNIST")
    }

    fn load(root: &Path, train: bool, name: &str) -> Result<Self> {
        let split = if train { "train" } else { "t10k" };
        let images = read_idx(&find(root, &format!("{split}-images-idx3-ubyte"), name)?)?;
        let labels = read_idx(&find(root, &format!("{split}-labels-idx1-ubyte"), name)?)?;
        if images.dims.len() != 3 || images.dtype != DType::U8 {
            return Err(Error::format(
                format!("{}/{split}-images", root.display()),
                format!("expected uint8 images (N, H, W), got {:?} {}", images.dims, images.dtype),
            ));
        }
        if labels.dims.len() != 1 || labels.dtype != DType::U8 || labels.dims[0] != images.dims[0] {
            return Err(Error::format(
                format!("{}/{split}-labels", root.display()),
                format!("expected {} uint8 labels, got {:?} {}", images.dims[0], labels.dims, labels.dtype),
            ));
        }
        let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
        let data = NDArray::from_bytes(&images.data, [n, h, w, 1], DType::U8, crate::cpu(0))?;
        let label_i32: Vec<i32> = labels.data.iter().map(|&b| b as i32).collect();
        let label = NDArray::from_slice(&label_i32, [n])?;
        Ok(MNIST { data, label })
    }

    /// All images `(N, H, W, 1)` uint8.
    pub fn images(&self) -> &NDArray {
        &self.data
    }
    /// All labels `(N,)` int32.
    pub fn labels(&self) -> &NDArray {
        &self.label
    }
}

impl Dataset for MNIST {
    fn len(&self) -> usize {
        self.data.shape()[0]
    }
    fn get(&self, idx: usize) -> Result<Sample> {
        if idx >= self.len() {
            return Err(Error::Invalid(format!(
                "MNIST: index {idx} out of range for {} samples",
                self.len()
            )));
        }
        Ok(vec![self.data.at(idx)?, self.label.at(idx)?])
    }
}

/// Image transforms (MXNet's `gluon.data.vision.transforms`). Each is a function on one
/// array; combine with [`transforms::Compose`] and attach with
/// [`super::transform_first`].
pub mod transforms {
    use super::*;

    /// A transform on one array.
    pub trait Transform: Send + Sync {
        fn apply(&self, x: &NDArray) -> Result<NDArray>;
    }

    impl<F: Fn(&NDArray) -> Result<NDArray> + Send + Sync> Transform for F {
        fn apply(&self, x: &NDArray) -> Result<NDArray> {
            self(x)
        }
    }

    /// `(H, W, C)` (or `(N, H, W, C)`) uint8 in [0, 255] → `(C, H, W)` float32 in [0, 1]
    /// (MXNet's `ToTensor`).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct ToTensor;
    impl Transform for ToTensor {
        fn apply(&self, x: &NDArray) -> Result<NDArray> {
            let axes = match x.ndim() {
                3 => "(2, 0, 1)",
                4 => "(0, 3, 1, 2)",
                _ => {
                    return Err(Error::Invalid(format!(
                        "ToTensor: expects (H, W, C) or (N, H, W, C) input, got shape {}",
                        x.shape()
                    )))
                }
            };
            let f = op("Cast", &[x.clone()], &[("dtype", "float32")])?;
            let f = op("_div_scalar", &[f], &[("scalar", "255")])?;
            op("transpose", &[f], &[("axes", axes)])
        }
    }

    /// `(x − mean) / std` per channel of a `(C, H, W)` or `(N, C, H, W)` float array
    /// (MXNet's `Normalize(mean=0.0, std=1.0)`; one value applies to every channel).
    #[derive(Clone, Debug)]
    pub struct Normalize {
        mean: Vec<f32>,
        std: Vec<f32>,
    }
    impl Normalize {
        pub fn new(mean: &[f32], std: &[f32]) -> Self {
            Normalize { mean: mean.to_vec(), std: std.to_vec() }
        }
    }
    impl Transform for Normalize {
        fn apply(&self, x: &NDArray) -> Result<NDArray> {
            let caxis = match x.ndim() {
                3 => 0,
                4 => 1,
                _ => {
                    return Err(Error::Invalid(format!(
                        "Normalize: expects (C, H, W) or (N, C, H, W) input, got shape {}",
                        x.shape()
                    )))
                }
            };
            let c = x.shape()[caxis];
            let per_channel = |v: &[f32], what: &str| -> Result<Vec<f32>> {
                match v.len() {
                    1 => Ok(vec![v[0]; c]),
                    n if n == c => Ok(v.to_vec()),
                    n => Err(Error::Invalid(format!("Normalize: {n} {what} values for {c} channels"))),
                }
            };
            let mean = per_channel(&self.mean, "mean")?;
            let std = per_channel(&self.std, "std")?;
            let mut shape = vec![1usize; x.ndim()];
            shape[caxis] = c;
            let m = NDArray::from_slice(&mean, shape.clone())?.astype(x.dtype())?;
            let s = NDArray::from_slice(&std, shape)?.astype(x.dtype())?;
            let y = op("broadcast_sub", &[x.clone(), m], &[])?;
            op("broadcast_div", &[y, s], &[])
        }
    }

    /// Resize `(H, W, C)` (or `(N, H, W, C)`) images bilinearly to `(height, width)`
    /// (MXNet's `Resize(size, keep_ratio=False, interpolation=1)`; MXNet gives the size as
    /// `(width, height)`). With `keep_ratio` and one size, the shorter side becomes `size`.
    /// Integer images are rounded and saturated as OpenCV does.
    #[derive(Clone, Copy, Debug)]
    pub struct Resize {
        width: usize,
        height: usize,
        keep_ratio: bool,
    }
    impl Resize {
        /// Square output `size × size`.
        pub fn new(size: usize) -> Self {
            Resize { width: size, height: size, keep_ratio: false }
        }
        /// MXNet's `size=(width, height)`.
        pub fn with_size(width: usize, height: usize) -> Self {
            Resize { width, height, keep_ratio: false }
        }
        /// With a square size: scale the shorter side to it, keeping the aspect ratio.
        pub fn keep_ratio(mut self, keep: bool) -> Self {
            self.keep_ratio = keep;
            self
        }
        fn target(&self, h: usize, w: usize) -> (usize, usize) {
            if !self.keep_ratio || self.width != self.height {
                return (self.height, self.width);
            }
            let s = self.width;
            if h < w {
                (s, (s as f64 * w as f64 / h as f64) as usize)
            } else {
                ((s as f64 * h as f64 / w as f64) as usize, s)
            }
        }
    }
    impl Transform for Resize {
        fn apply(&self, x: &NDArray) -> Result<NDArray> {
            let dims = x.shape().to_vec();
            let (n, h, w, c) = match dims[..] {
                [h, w, c] => (None, h, w, c),
                [n, h, w, c] => (Some(n), h, w, c),
                _ => {
                    return Err(Error::Invalid(format!(
                        "Resize: expects (H, W, C) or (N, H, W, C) input, got shape {}",
                        x.shape()
                    )))
                }
            };
            let (oh, ow) = self.target(h, w);
            if oh == 0 || ow == 0 {
                return Err(Error::Invalid(format!("Resize: output size {ow}x{oh} for input {}", x.shape())));
            }
            let v = x.to_f64_vec()?;
            let (plane, images) = (h * w * c, n.unwrap_or(1));
            let mut out = Vec::with_capacity(images * oh * ow * c);
            for i in 0..images {
                let r = mixnet_kernels::image::resize_bilinear_hwc(
                    &v[i * plane..(i + 1) * plane],
                    (h, w, c),
                    (oh, ow),
                );
                out.extend(r);
            }
            if !x.dtype().is_float() {
                out.iter_mut().for_each(|v| *v = v.round());
            }
            let mut shape = vec![oh, ow, c];
            if let Some(n) = n {
                shape.insert(0, n);
            }
            NDArray::from_vec(out, shape)?.astype(x.dtype())
        }
    }

    /// Mirror `(H, W, C)` (or `(N, H, W, C)`) images left-right with probability 1/2
    /// (MXNet's `RandomFlipLeftRight()`), drawing from the seeded engine generator.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct RandomFlipLeftRight;
    impl Transform for RandomFlipLeftRight {
        fn apply(&self, x: &NDArray) -> Result<NDArray> {
            let axis = match x.ndim() {
                3 => "1",
                4 => "2",
                _ => {
                    return Err(Error::Invalid(format!(
                        "RandomFlipLeftRight: expects (H, W, C) or (N, H, W, C) input, got shape {}",
                        x.shape()
                    )))
                }
            };
            let coin = op("_random_uniform", &[], &[("shape", "(1,)")])?.as_scalar::<f32>()?;
            if coin < 0.5 {
                op("reverse", &[x.clone()], &[("axis", axis)])
            } else {
                Ok(x.clone())
            }
        }
    }

    /// Convert the element type (MXNet's `Cast(dtype='float32')`).
    #[derive(Clone, Copy, Debug)]
    pub struct Cast(pub DType);
    impl Transform for Cast {
        fn apply(&self, x: &NDArray) -> Result<NDArray> {
            op("Cast", &[x.clone()], &[("dtype", self.0.name())])
        }
    }

    /// Transforms applied in order (MXNet's `Compose`).
    #[derive(Clone, Default)]
    pub struct Compose(pub Vec<Arc<dyn Transform>>);
    impl Transform for Compose {
        fn apply(&self, x: &NDArray) -> Result<NDArray> {
            let mut x = x.clone();
            for t in &self.0 {
                x = t.apply(&x)?;
            }
            Ok(x)
        }
    }
}
