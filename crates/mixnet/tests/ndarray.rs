//! The array layer beyond the goldens: views, mutation through the engine, asynchronous
//! failures, storage statistics, and errors that name the operator.

use std::sync::Arc;

use mixnet::op::{Blob, OpContext, Operator, Resource, TensorInfo};
use mixnet::{imperative, storage, Context, DType, Error, NDArray, Result};

/// A test operator: adds 1 to its input in place (MXNet's `FMutateInputs`), or fails.
struct Bump {
    fail: bool,
    resources: Vec<Resource>,
}

impl Operator for Bump {
    fn name(&self) -> &'static str {
        "test_bump"
    }
    fn num_inputs(&self) -> usize {
        2
    }
    fn num_outputs(&self) -> usize {
        1
    }
    fn mutate_inputs(&self) -> &[usize] {
        &[0]
    }
    fn resources(&self) -> &[Resource] {
        &self.resources
    }
    fn infer(&self, inputs: &[TensorInfo]) -> Result<Vec<TensorInfo>> {
        Ok(vec![inputs[1].clone()])
    }
    fn compute(&self, _: &OpContext, inputs: &mut [Blob<'_>], outputs: &mut [Blob<'_>]) -> Result<()> {
        if self.fail {
            return Err(Error::op("test_bump", "kernel failed on purpose"));
        }
        let src: Vec<f32> = inputs[1].slice::<f32>()?.to_vec();
        for x in inputs[0].slice_mut::<f32>()? {
            *x += 1.0;
        }
        outputs[0].slice_mut::<f32>()?.copy_from_slice(&src);
        Ok(())
    }
}

fn bump(fail: bool) -> Arc<dyn Operator> {
    Arc::new(Bump { fail, resources: vec![Resource::Random] })
}

fn arange(n: usize, shape: &[usize]) -> NDArray {
    NDArray::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), shape.to_vec()).unwrap()
}

#[test]
fn views_share_memory_and_see_mutation() {
    let x = arange(12, &[4, 3]);
    let rows = x.slice(1, 3).unwrap();
    let row = x.at(2).unwrap();
    let flat = x.reshape(&[-1]).unwrap();
    assert_eq!(rows.shape().to_vec(), [2, 3]);
    assert_eq!(rows.to_vec::<f32>().unwrap(), [3., 4., 5., 6., 7., 8.]);
    assert_eq!(row.to_vec::<f32>().unwrap(), [6., 7., 8.]);
    assert_eq!(flat.shape().to_vec(), [12]);
    assert!(rows.shares_memory_with(&x) && flat.shares_memory_with(&x));

    // Mutating a view (an op that writes its input) is seen through the parent and the
    // other views, and moves the shared version.
    let v0 = x.version();
    let other = arange(3, &[3]);
    imperative::invoke_operator(&bump(false), &[row.clone(), other]).unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap()[6..9], [7., 8., 9.]);
    assert_eq!(flat.to_vec::<f32>().unwrap()[6], 7.0);
    assert_eq!(x.to_vec::<f32>().unwrap()[0], 0.0, "rows outside the view are untouched");
    assert!(x.version() > v0);

    assert!(x.slice(3, 5).is_err());
    assert!(x.reshape(&[5, -1]).is_err());
    assert!(x.at(4).is_err());
}

#[test]
fn a_written_input_may_not_alias_another_argument() {
    let x = arange(6, &[6]);
    let err = imperative::invoke_operator(&bump(false), &[x.clone(), x.clone()]).unwrap_err().to_string();
    assert!(err.contains("test_bump") && err.contains("input 0 is written"), "{err}");
    // Disjoint views of one array are fine.
    let (a, b) = (x.slice(0, 3).unwrap(), x.slice(3, 6).unwrap());
    imperative::invoke_operator(&bump(false), &[a, b]).unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap(), [1., 2., 3., 3., 4., 5.]);
}

#[test]
fn kernel_failure_surfaces_at_wait_with_the_operator_name() {
    let x = arange(4, &[4]);
    let y = imperative::invoke_operator(&bump(true), &[x.clone(), arange(4, &[4])]).unwrap().remove(0);
    let err = y.wait_to_read().unwrap_err().to_string();
    assert_eq!(err, "operator 'test_bump' failed: kernel failed on purpose");
    // Dependants of the failed result fail the same way, and reading it is an error too.
    let z = (&y + 1.0).unwrap();
    assert!(z.to_f64_vec().unwrap_err().to_string().contains("test_bump"));
    assert!(y.to_vec::<f32>().is_err());
    // The mutated input was written by the failed op, so it is poisoned as well ...
    assert!(x.wait_to_read().is_err());
    // ... until overwritten; unrelated work goes on.
    let w = arange(4, &[4]);
    assert_eq!((&w * 2.0).unwrap().to_vec::<f32>().unwrap(), [0., 2., 4., 6.]);
}

#[test]
fn shape_errors_come_back_at_once_naming_op_shapes_and_dtypes() {
    let a = arange(6, &[2, 3]);
    let b = arange(4, &[4]);
    let err = imperative::invoke("elemwise_add", &[a.clone(), b], &[]).unwrap_err().to_string();
    assert!(
        err.contains("elemwise_add") && err.contains("(2, 3) float32") && err.contains("(4,) float32"),
        "{err}"
    );
    let err = imperative::invoke("elemwise_add", &[a.clone()], &[]).unwrap_err().to_string();
    assert!(err.contains("expects 2 input(s) (lhs, rhs), got 1"), "{err}");
    let err = imperative::invoke("no_such_op", &[a.clone()], &[]).unwrap_err().to_string();
    assert!(err.contains("no_such_op"), "{err}");
    let err = imperative::invoke("_plus_scalar", &[a.clone()], &[("scalar", "x")]).unwrap_err().to_string();
    assert!(err.contains("_plus_scalar") && err.contains("scalar='x'"), "{err}");
    let err = imperative::invoke("_plus_scalar", &[a.clone()], &[("scalr", "1")]).unwrap_err().to_string();
    assert!(err.contains("unknown attribute") && err.contains("scalr"), "{err}");
    let i = NDArray::from_vec(vec![1i32, 2, 3, 4, 5, 6], [2, 3]).unwrap();
    let err = imperative::invoke("broadcast_add", &[a, i], &[]).unwrap_err().to_string();
    assert!(err.contains("float32") && err.contains("int32"), "{err}");
}

#[test]
fn aliases_and_typed_reads() {
    let a = arange(4, &[4]);
    let b = imperative::invoke("_PlusScalar", &[a.clone()], &[("scalar", "0.5")]).unwrap().remove(0);
    assert_eq!(b.to_vec::<f32>().unwrap(), [0.5, 1.5, 2.5, 3.5]);
    assert!(b.to_vec::<f64>().is_err(), "typed reads check the dtype");
    assert_eq!(b.to_f64_vec().unwrap(), [0.5, 1.5, 2.5, 3.5]);
    assert_eq!(b.slice(1, 2).unwrap().as_scalar::<f32>().unwrap(), 1.5);
    assert!(b.as_scalar::<f32>().is_err());
    let z = NDArray::zeros([2, 2], DType::I64, Context::cpu(0)).unwrap();
    assert_eq!(z.to_vec::<i64>().unwrap(), [0, 0, 0, 0]);
    assert_eq!(z.dtype().to_string(), "int64");
    assert_eq!(z.context().to_string(), "cpu(0)");
    assert!(NDArray::zeros([2], DType::F32, Context::gpu(0)).is_err());
    // Waits on this test's own arrays: `waitall` reports the engine's first unreported
    // failure from any thread, and a test beside this one fails an operator on purpose.
    b.wait_to_read().unwrap();
    z.wait_to_read().unwrap();
}

#[test]
fn pooled_storage_is_reused_across_iterations() {
    // Warm up one iteration, then many more must not grow the pool's footprint.
    let a = arange(4096, &[64, 64]);
    let step = || {
        let c = (&a * 2.0).unwrap();
        let d = (&c + &a).unwrap();
        d.wait_to_read().unwrap();
    };
    step();
    let before = storage::stats(Context::cpu(0));
    for _ in 0..200 {
        step();
    }
    let after = storage::stats(Context::cpu(0));
    assert!(
        after.bytes_in_use + after.bytes_pooled <= before.bytes_in_use + before.bytes_pooled + (1 << 20),
        "pool grew: {before:?} -> {after:?}"
    );
    assert!(after.peak_bytes_in_use >= 2 * 64 * 64 * 4);
}

#[test]
fn zero_size_arrays_have_aligned_typed_views() {
    let e = NDArray::from_vec(Vec::<f64>::new(), [0, 3]).unwrap();
    assert_eq!(e.to_vec::<f64>().unwrap(), Vec::<f64>::new());
    let s = (&e + 1.0).unwrap();
    assert_eq!(s.shape().to_vec(), [0, 3]);
    assert!(s.to_f64_vec().unwrap().is_empty());
}
