//! Gluon's recurrent and normalization layers against the operators they wrap: same
//! weights, same outputs; MXNet's parameter names and flat parameter order.

use std::sync::Arc;

use mixnet::gluon::nn::{GroupNorm, InstanceNorm};
use mixnet::gluon::rnn::{GRU, LSTM};
use mixnet::gluon::Block;
use mixnet::imperative::invoke;
use mixnet::initializer::Uniform;
use mixnet::NDArray;

fn data(shape: &[usize], k: usize) -> NDArray {
    let n: usize = shape.iter().product();
    NDArray::from_vec((0..n).map(|i| ((i * k) % 13) as f32 / 6.5 - 1.0).collect::<Vec<_>>(), shape.to_vec())
        .unwrap()
}

fn close(a: &NDArray, b: &NDArray) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().unwrap().iter().zip(b.to_f64_vec().unwrap()) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
}

#[test]
fn lstm_layer_is_the_fused_op_on_its_flat_parameters() {
    let layer = LSTM::new(3).num_layers(2).bidirectional(true);
    layer.initialize(Some(Arc::new(Uniform::new(0.3))), mixnet::cpu(0), false).unwrap();
    let x = data(&[4, 2, 5], 7);
    let states = layer.begin_state(2).unwrap();
    let (out, new_states) = layer.forward_with_states(&x, &states).unwrap();
    assert_eq!(out.shape().dims(), [4, 2, 6]);
    assert_eq!(new_states.len(), 2);
    // MXNet's names, in the operator's order: all weights (layer, direction, i2h/h2h),
    // then all biases.
    let names: Vec<String> = layer.params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(&names[..4], ["l0_i2h_weight", "l0_h2h_weight", "r0_i2h_weight", "r0_h2h_weight"]);
    assert_eq!(names[8], "l0_i2h_bias");
    assert_eq!(layer.params()[0].1.shape(), [12, 5]);
    let flat: Vec<f64> =
        layer.params().iter().flat_map(|(_, p)| p.data().unwrap().to_f64_vec().unwrap()).collect();
    let flat = NDArray::from_vec(flat.iter().map(|&v| v as f32).collect::<Vec<_>>(), [flat.len()]).unwrap();
    let attrs = [
        ("mode", "lstm"),
        ("state_size", "3"),
        ("num_layers", "2"),
        ("bidirectional", "True"),
        ("state_outputs", "True"),
    ];
    let direct = invoke("RNN", &[x.clone(), flat, states[0].clone(), states[1].clone()], &attrs).unwrap();
    close(&out, &direct[0]);
    close(&new_states[0], &direct[1]);
    close(&new_states[1], &direct[2]);
}

#[test]
fn gru_layer_ntc_layout() {
    let tnc = GRU::new(4);
    tnc.initialize(Some(Arc::new(Uniform::new(0.3))), mixnet::cpu(0), false).unwrap();
    let x = data(&[3, 2, 5], 5);
    let y = tnc.call(&x).unwrap();
    let ntc = GRU::new(4).layout("NTC").unwrap();
    ntc.initialize(Some(Arc::new(Uniform::new(0.3))), mixnet::cpu(0), false).unwrap();
    let xt = invoke("SwapAxis", &[x], &[("dim1", "0"), ("dim2", "1")]).unwrap().remove(0);
    ntc.call(&xt).unwrap();
    for ((_, a), (_, b)) in ntc.params().iter().zip(tnc.params()) {
        a.set_data(&b.data().unwrap()).unwrap();
    }
    let yt = ntc.call(&xt).unwrap();
    let back = invoke("SwapAxis", &[yt], &[("dim1", "0"), ("dim2", "1")]).unwrap().remove(0);
    close(&back, &y);
}

#[test]
fn group_and_instance_norm_layers() {
    let x = data(&[2, 4, 3, 3], 3);
    let gn = GroupNorm::new(2);
    gn.initialize(None, mixnet::cpu(0), false).unwrap();
    let ones = NDArray::from_vec(vec![1f32; 2], [2]).unwrap();
    let zeros = NDArray::from_vec(vec![0f32; 2], [2]).unwrap();
    let want = invoke("GroupNorm", &[x.clone(), ones, zeros], &[("num_groups", "2")]).unwrap().remove(0);
    close(&gn.call(&x).unwrap(), &want);
    let inorm = InstanceNorm::new();
    inorm.initialize(None, mixnet::cpu(0), false).unwrap();
    let ones = NDArray::from_vec(vec![1f32; 4], [4]).unwrap();
    let zeros = NDArray::from_vec(vec![0f32; 4], [4]).unwrap();
    let want = invoke("InstanceNorm", &[x.clone(), ones, zeros], &[("eps", "1e-5")]).unwrap().remove(0);
    close(&inorm.call(&x).unwrap(), &want);
}
