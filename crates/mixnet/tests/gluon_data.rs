//! gluon::data: IDX reading (plain, gzipped, corrupt), datasets, samplers, DataLoader
//! ordering and determinism, transforms.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use mixnet::gluon::data::vision::{self, transforms::Transform, transforms::*};
use mixnet::gluon::data::*;
use mixnet::{DType, NDArray};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mixnet-gluon-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A small MNIST-like directory: `n` images of 4x3, labels `i % 10`; gzipped or not.
fn make_mnist(dir_name: &str, n: usize, gz: bool) -> PathBuf {
    let dir = tmp(dir_name);
    std::fs::create_dir_all(&dir).unwrap();
    for split in ["train", "t10k"] {
        let images: Vec<u8> = (0..n * 12).map(|i| (i % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let img = idx_bytes(8, &[n as u32, 4, 3], &images);
        let lab = idx_bytes(8, &[n as u32], &labels);
        let (img, lab, ext) = if gz { (gzip(&img), gzip(&lab), ".gz") } else { (img, lab, "") };
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte{ext}")), img).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte{ext}")), lab).unwrap();
    }
    dir
}

#[test]
fn idx_reads_plain_and_gzip_with_all_types() {
    let data: Vec<u8> = (0..24).collect();
    let plain = tmp("a.idx");
    std::fs::write(&plain, idx_bytes(8, &[2, 3, 4], &data)).unwrap();
    let a = vision::read_idx(&plain).unwrap();
    assert_eq!(a.dims, vec![2, 3, 4]);
    assert_eq!(a.dtype, DType::U8);
    assert_eq!(a.data, data);
    // gzip recognized by content, not by name
    let gz = tmp("b.idx");
    std::fs::write(&gz, gzip(&idx_bytes(8, &[2, 3, 4], &data))).unwrap();
    assert_eq!(vision::read_idx(&gz).unwrap(), a);
    // big-endian int32 and float32 come out native
    let be: Vec<u8> = [1i32, -2].iter().flat_map(|v| v.to_be_bytes()).collect();
    let p = tmp("i32.idx");
    std::fs::write(&p, idx_bytes(0x0C, &[2], &be)).unwrap();
    let x = vision::read_idx(&p).unwrap().to_ndarray().unwrap();
    assert_eq!(x.to_vec::<i32>().unwrap(), vec![1, -2]);
    let be: Vec<u8> = [1.5f32, -0.25].iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(&p, idx_bytes(0x0D, &[1, 2], &be)).unwrap();
    let x = vision::read_idx(&p).unwrap().to_ndarray().unwrap();
    assert_eq!(x.shape().to_vec(), vec![1, 2]);
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![1.5, -0.25]);
    let be: Vec<u8> = [-3i16, 7].iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(&p, idx_bytes(0x0B, &[2], &be)).unwrap();
    assert_eq!(vision::read_idx(&p).unwrap().to_ndarray().unwrap().to_vec::<i32>().unwrap(), vec![-3, 7]);
}

#[test]
fn idx_rejects_corrupt_and_truncated_input() {
    let good = idx_bytes(8, &[2, 3], &[0; 6]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "truncated"),
        ("short header", vec![0, 0], "truncated"),
        (
            "bad magic",
            {
                let mut b = good.clone();
                b[0] = 1;
                b
            },
            "not an IDX",
        ),
        (
            "bad type",
            {
                let mut b = good.clone();
                b[2] = 0x42;
                b
            },
            "element type",
        ),
        ("zero dims", vec![0, 0, 8, 0], "0 dimensions"),
        ("dims cut", good[..6].to_vec(), "truncated"),
        ("data cut", good[..good.len() - 1].to_vec(), "truncated"),
        ("trailing", [good.clone(), vec![9]].concat(), "trailing"),
        ("huge dims", idx_bytes(8, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]), "too large"),
        ("huge but small file", idx_bytes(8, &[1 << 30], &[1, 2, 3]), "truncated"),
    ];
    for (what, bytes, want) in cases {
        let p = tmp("bad.idx");
        std::fs::write(&p, &bytes).unwrap();
        let e = vision::read_idx(&p).expect_err(what).to_string();
        assert!(e.contains(want), "{what}: {e}");
        // the same through gzip
        std::fs::write(&p, gzip(&bytes)).unwrap();
        let e = vision::read_idx(&p).expect_err(what).to_string();
        assert!(e.contains(want), "{what} (gz): {e}");
    }
    // a corrupt gzip stream
    let p = tmp("bad.gz");
    let mut z = gzip(&good);
    let n = z.len();
    z[n / 2] ^= 0xff;
    z.truncate(n - 4);
    std::fs::write(&p, &z).unwrap();
    assert!(vision::read_idx(&p).is_err());
    assert!(vision::read_idx(&tmp("does-not-exist")).is_err());
}

#[test]
fn mnist_dataset_from_generated_files() {
    for gz in [false, true] {
        let dir = make_mnist(if gz { "mnist-gz" } else { "mnist-raw" }, 7, gz);
        let ds = vision::MNIST::new(&dir, true).unwrap();
        assert_eq!(ds.len(), 7);
        let s = ds.get(3).unwrap();
        assert_eq!(s[0].shape().to_vec(), vec![4, 3, 1]);
        assert_eq!(s[0].dtype(), DType::U8);
        assert_eq!(s[0].to_vec::<u8>().unwrap(), (36..48).map(|i| i as u8).collect::<Vec<_>>());
        assert_eq!(s[1].dtype(), DType::I32);
        assert_eq!(s[1].to_vec::<i32>().unwrap(), vec![3]);
        assert!(ds.get(7).is_err());
        assert_eq!(vision::MNIST::new(&dir, false).unwrap().len(), 7);
    }
    // A missing directory explains how to get the data.
    let e = vision::MNIST::fashion(tmp("nowhere"), true).err().unwrap().to_string();
    assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
    // Image and label counts must agree.
    let dir = make_mnist("mnist-mismatch", 5, false);
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_bytes(8, &[4], &[0; 4])).unwrap();
    assert!(vision::MNIST::new(&dir, true).is_err());
}

#[test]
fn to_tensor_normalize_compose() {
    let x = NDArray::from_slice(&[0u8, 255, 51, 102, 0, 0], [1, 3, 2]).unwrap(); // H=1, W=3, C=2
    let t = ToTensor.apply(&x).unwrap();
    assert_eq!(t.shape().to_vec(), vec![2, 1, 3]);
    assert_eq!(t.dtype(), DType::F32);
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 0.2, 0.0, 1.0, 0.4, 0.0]);
    let pipeline = Compose(vec![Arc::new(ToTensor), Arc::new(Normalize::new(&[0.5, 0.0], &[0.5, 2.0]))]);
    let y = pipeline.apply(&x).unwrap();
    let want = [-1.0f32, -0.6, -1.0, 0.5, 0.2, 0.0];
    for (a, b) in y.to_vec::<f32>().unwrap().iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    assert!(Normalize::new(&[0.1, 0.2, 0.3], &[1.0]).apply(&t).is_err());
    assert_eq!(Cast(DType::F64).apply(&x).unwrap().dtype(), DType::F64);
}

fn index_dataset(n: usize) -> Arc<dyn Dataset> {
    let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let label: Vec<i32> = (0..n).map(|i| (i * 10) as i32).collect();
    let x = NDArray::from_slice(&data, [n, 1]).unwrap();
    let y = NDArray::from_slice(&label, [n]).unwrap();
    Arc::new(ArrayDataset::new(vec![x, y]).unwrap())
}

fn pass(loader: &mut DataLoader) -> Vec<Vec<f32>> {
    loader
        .iter()
        .map(|b| {
            let b = b.unwrap();
            let x = b[0].to_vec::<f32>().unwrap();
            let y = b[1].to_vec::<i32>().unwrap();
            assert_eq!(b[0].shape().to_vec(), vec![x.len(), 1]);
            assert_eq!(y, x.iter().map(|v| (*v as i32) * 10).collect::<Vec<_>>());
            x
        })
        .collect()
}

#[test]
fn dataloader_sequential_and_last_batch() {
    let ds = index_dataset(10);
    let mut keep = DataLoader::new(ds.clone(), 4, LoaderOptions::default()).unwrap();
    assert_eq!(keep.len(), 3);
    assert_eq!(pass(&mut keep), vec![vec![0., 1., 2., 3.], vec![4., 5., 6., 7.], vec![8., 9.]]);
    let opts = LoaderOptions { last_batch: LastBatch::Discard, ..Default::default() };
    let mut discard = DataLoader::new(ds.clone(), 4, opts).unwrap();
    assert_eq!(discard.len(), 2);
    assert_eq!(pass(&mut discard).len(), 2);
    let opts = LoaderOptions { last_batch: LastBatch::Rollover, ..Default::default() };
    let mut roll = DataLoader::new(ds.clone(), 4, opts).unwrap();
    assert_eq!(pass(&mut roll), vec![vec![0., 1., 2., 3.], vec![4., 5., 6., 7.]]);
    // the two left over start the next pass
    assert_eq!(pass(&mut roll), vec![vec![8., 9., 0., 1.], vec![2., 3., 4., 5.], vec![6., 7., 8., 9.]]);
    assert!(DataLoader::new(ds, 0, LoaderOptions::default()).is_err());
    assert!(LastBatch::parse("pad").is_err());
}

#[test]
fn dataloader_shuffle_is_seeded_and_workers_keep_order() {
    let ds = index_dataset(103);
    let opts = LoaderOptions { shuffle: true, seed: 7, ..Default::default() };
    let mut a = DataLoader::new(ds.clone(), 16, opts).unwrap();
    let a1 = pass(&mut a);
    let a2 = pass(&mut a);
    // every sample once per pass
    let mut seen: Vec<f32> = a1.concat();
    seen.sort_by(f32::total_cmp);
    assert_eq!(seen, (0..103).map(|i| i as f32).collect::<Vec<_>>());
    assert_ne!(a1, a2, "each pass draws a new permutation");
    assert_ne!(a1.concat(), (0..103).map(|i| i as f32).collect::<Vec<_>>());
    // same seed, same stream of permutations; threads and prefetch do not change it
    for workers in [1, 2, 3] {
        let opts = LoaderOptions {
            shuffle: true,
            seed: 7,
            num_workers: workers,
            prefetch: Some(workers),
            ..Default::default()
        };
        let mut b = DataLoader::new(ds.clone(), 16, opts).unwrap();
        assert_eq!(pass(&mut b), a1);
        assert_eq!(pass(&mut b), a2);
    }
    let other = LoaderOptions { shuffle: true, seed: 8, ..Default::default() };
    assert_ne!(pass(&mut DataLoader::new(ds.clone(), 16, other).unwrap()), a1);
    // A pass can be abandoned early; the worker threads stop.
    let opts = LoaderOptions { num_workers: 2, ..Default::default() };
    let mut c = DataLoader::new(ds, 16, opts).unwrap();
    let first = c.iter().next().unwrap().unwrap();
    assert_eq!(first[0].to_vec::<f32>().unwrap()[0], 0.0);
}

#[test]
fn dataset_errors_and_transforms() {
    let x = NDArray::from_slice(&[1.0f32, 2.0, 3.0], [3]).unwrap();
    let y = NDArray::from_slice(&[1.0f32, 2.0], [2]).unwrap();
    assert!(ArrayDataset::new(vec![x.clone(), y]).is_err());
    let ds: Arc<dyn Dataset> = Arc::new(ArrayDataset::new(vec![x.clone()]).unwrap());
    let doubled = transform_first(ds.clone(), |a| a * 2.0);
    assert_eq!(doubled.get(2).unwrap()[0].to_vec::<f32>().unwrap(), vec![6.0]);
    assert!(doubled.get(3).is_err());
    // a failing sample surfaces as the batch's error, also from a worker
    let failing = transform(ds, |s| {
        if s[0].to_vec::<f32>()?[0] == 2.0 {
            Err(mixnet::Error::Invalid("bad sample".into()))
        } else {
            Ok(s)
        }
    });
    let opts = LoaderOptions { num_workers: 2, ..Default::default() };
    let mut l = DataLoader::new(failing, 1, opts).unwrap();
    let results: Vec<bool> = l.iter().map(|b| b.is_ok()).collect();
    assert_eq!(results, vec![true, false, true]);
    let simple =
        SimpleDataset::new(vec![vec![x.clone()], vec![NDArray::from_slice(&[1.0f32], [1]).unwrap()]]);
    assert_eq!(simple.len(), 2);
    // batchify refuses samples of different shapes
    let mut l = DataLoader::new(Arc::new(simple), 2, LoaderOptions::default()).unwrap();
    assert!(l.iter().next().unwrap().is_err());
}

#[test]
fn fashion_mnist_when_installed() {
    let root = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    if !root.join("t10k-images-idx3-ubyte.gz").exists() {
        eprintln!("skipped: Fashion-MNIST not installed");
        return;
    }
    let test = vision::MNIST::fashion(root, false).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.images().shape().to_vec(), vec![10_000, 28, 28, 1]);
    let labels = test.labels().to_vec::<i32>().unwrap();
    assert_eq!(labels[..5], [9, 2, 1, 1, 6]);
    for k in 0..10 {
        assert_eq!(labels.iter().filter(|&&l| l == k).count(), 1000);
    }
}

#[test]
fn resize_matches_mxnet_opencv_within_rounding() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/generated/transforms.params"
    ));
    let (arrays, names) = mixnet::ndarray::load(&path).unwrap();
    let g: std::collections::HashMap<String, NDArray> = names.into_iter().zip(arrays).collect();
    let cases: [(&str, Resize, f64); 4] = [
        ("u8_down", Resize::with_size(4, 3), 1.0),
        ("u8_up", Resize::new(9), 1.0),
        ("u8_keep", Resize::new(4).keep_ratio(true), 1.0),
        ("f32_mixed", Resize::with_size(7, 3), 1e-5),
    ];
    for (case, t, tol) in cases {
        let want = &g[&format!("{case}/out")];
        let got = t.apply(&g[&format!("{case}/in")]).unwrap();
        assert_eq!(got.shape(), want.shape(), "{case}");
        assert_eq!(got.dtype(), want.dtype(), "{case}");
        // OpenCV computes 8-bit resizes in 11-bit fixed point: allow one level of rounding.
        for (a, b) in got.to_f64_vec().unwrap().iter().zip(want.to_f64_vec().unwrap()) {
            assert!((a - b).abs() <= tol, "{case}: {a} vs MXNet {b}");
        }
    }
    assert!(Resize::new(3).apply(&NDArray::from_slice(&[0u8; 4], [4]).unwrap()).is_err());
}

#[test]
fn random_flip_left_right_flips_about_half_the_time_reproducibly() {
    let img = NDArray::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 3, 2]).unwrap();
    let flipped = vec![5.0f32, 6.0, 3.0, 4.0, 1.0, 2.0];
    let run = || {
        mixnet::random::seed(11).unwrap();
        (0..200)
            .map(|_| RandomFlipLeftRight.apply(&img).unwrap().to_vec::<f32>().unwrap() == flipped)
            .collect::<Vec<bool>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b, "same seed, same flips");
    let n = a.iter().filter(|&&f| f).count();
    assert!((70..130).contains(&n), "{n} of 200 flipped");
    let out = RandomFlipLeftRight.apply(&img).unwrap().to_vec::<f32>().unwrap();
    assert!(out == flipped || out == img.to_vec::<f32>().unwrap());
}
