//! LSTM language-model training step, the workload of `shared/peers/lstm_train.py`: vocab
//! 10000, Embedding 256, 2-layer LSTM 256 (TNC), Dense decoder to the vocabulary, softmax
//! cross-entropy averaged over the 35×20 tokens, global-norm clipping 0.25, SGD lr 20, the
//! hidden state carried across windows and detached. Prints one JSON line with the median
//! (and min) milliseconds per BPTT window. `benches/peers/lstm.sh` runs it beside PyTorch
//! and MXNet.
//!
//! `cargo bench -p mixnet --bench lstm_train [-- --iters N --warmup N]`

#[path = "common/args.rs"]
mod args;
use args::arg;

use std::sync::Arc;

use mixnet::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mixnet::gluon::nn::{Dense, Embedding};
use mixnet::gluon::rnn::LSTM;
use mixnet::gluon::{clip_global_norm, Block, Trainer};
use mixnet::initializer::Xavier;
use mixnet::{autograd, NDArray};

const V: usize = 10000;
const E: usize = 256;
const H: usize = 256;
const L: usize = 2;
const T: usize = 35;
const B: usize = 20;

fn main() -> mixnet::Result<()> {
    let (warmup, iters) = (arg("--warmup", 3), arg("--iters", 20));
    mixnet::random::seed(0)?;
    let encoder = Embedding::new(V, E);
    let rnn = LSTM::new(H).num_layers(L).layout("TNC")?;
    let decoder = Dense::new(V).flatten(false).in_units(H);
    let init = Some(Arc::new(Xavier::default()) as Arc<dyn mixnet::initializer::Initializer>);
    for b in [&encoder as &dyn Block, &rnn, &decoder] {
        b.initialize(init.clone(), mixnet::cpu(0), false)?;
    }
    let windows = warmup + iters;
    // Synthetic token stream, (time, batch) windows as the peer's batchify().
    let tokens: Vec<f32> = (0..(windows * T + 1) * B).map(|i| ((i * 7919 + 13) % V) as f32).collect();
    let window = |w: usize, shift: usize| -> mixnet::Result<NDArray> {
        let v: Vec<f32> = (0..T * B).map(|k| tokens[(w * T + k / B + shift) * B + k % B]).collect();
        NDArray::from_vec(v, vec![T, B])
    };
    let mut state = rnn.begin_state(B)?;
    // Run once so deferred shapes are known before collecting parameters.
    rnn.forward_with_states(&encoder.call(&window(0, 0)?)?, &state)?;
    let mut params = encoder.collect_params()?;
    params.update(&rnn.collect_params()?)?;
    params.update(&decoder.collect_params()?)?;
    let mut trainer = Trainer::with_optimizer(&params, "sgd", &[("learning_rate", 20.0)])?;
    let grads: Vec<NDArray> = params.values().map(|p| p.grad()).collect::<mixnet::Result<_>>()?;
    let loss_fn = SoftmaxCrossEntropyLoss::new();
    let mut losses = Vec::new();
    let mut times = Vec::with_capacity(iters);
    for w in 0..windows {
        let (x, y) = (window(w, 0)?, window(w, 1)?);
        let t0 = std::time::Instant::now();
        let detached: Vec<NDArray> = state.iter().map(|s| s.detach()).collect();
        let (loss, new_state) = {
            let _rec = autograd::record(true);
            let (out, new_state) = rnn.forward_with_states(&encoder.call(&x)?, &detached)?;
            let logits = decoder.call(&out)?.reshape(&[-1, V as i64])?;
            let loss = loss_fn.call(&logits, &y.reshape(&[-1])?)?.mean(None, false)?;
            (loss, new_state)
        };
        autograd::backward(&[loss.clone()], &[])?;
        clip_global_norm(&grads, 0.25)?;
        trainer.step(1, false)?;
        state = new_state;
        mixnet::waitall()?;
        if w >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        losses.push(loss);
    }
    let first = losses[0].as_scalar::<f32>()?;
    let last = losses[losses.len() - 1].as_scalar::<f32>()?;
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"workload\": \"lstm_train\", \"framework\": \"mixnet\", \"mode\": \"eager\", \"iters\": {iters}, \"median_ms\": {:.3}, \"min_ms\": {:.3}, \"first_loss\": {first:.4}, \"last_loss\": {last:.4}}}",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
