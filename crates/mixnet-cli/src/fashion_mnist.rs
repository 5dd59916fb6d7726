//! `mixnet train-fashion-mnist`: the main job. A LeNet-style CNN trained with Gluon on
//! Fashion-MNIST (read from IDX files), SGD with momentum, softmax cross-entropy; a
//! progress bar per epoch, a summary line per epoch, parameters saved in MXNet's format
//! after every epoch, resumable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mixnet::autograd;
use mixnet::gluon::data::vision::{transforms::ToTensor, transforms::Transform, FashionMNIST};
use mixnet::gluon::data::{transform_first, DataLoader, Dataset, LastBatch, LoaderOptions};
use mixnet::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mixnet::gluon::nn::{Activation, BatchNorm, Conv2D, Dense, Flatten, MaxPool2D};
use mixnet::gluon::{Block, HybridSequential, LoadOptions, Trainer};
use mixnet::initializer::Xavier;
use mixnet::lr_scheduler::CosineScheduler;
use mixnet::metric::{Accuracy, EvalMetric};
use mixnet::{DType, NDArray};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory with the four Fashion-MNIST IDX files (gzipped or not).
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    data: PathBuf,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    #[arg(long, default_value_t = 1e-4)]
    wd: f64,
    /// Learning-rate schedule over the whole run: `cosine` (decay to 0) or `constant`.
    #[arg(long, default_value = "cosine")]
    lr_schedule: String,
    /// `lenet` (the classic 20/50/500 LeNet, default) or `lenet-bn` (32/64 filters with
    /// BatchNorm; needs the BatchNorm operator).
    #[arg(long, default_value = "lenet")]
    model: String,
    /// Seed for initialization and shuffling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where parameters (MXNet format), trainer states and progress go.
    #[arg(long, default_value = "fashion-mnist-run")]
    out: PathBuf,
    /// Continue from the last finished epoch saved under --out.
    #[arg(long)]
    resume: bool,
    /// Threads preparing batches ahead of training.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Stop each epoch after this many batches (0: all); for quick checks.
    #[arg(long, default_value_t = 0)]
    max_batches: usize,
}

/// The network: `lenet` is the peers' LeNet (benches/peers/fashion_mnist_train.py);
/// `lenet-bn` adds BatchNorm after each convolution and uses 32/64 filters.
pub fn build(model: &str) -> Result<HybridSequential> {
    let mut net = HybridSequential::new();
    {
        let _scope = net.name_scope();
        match model {
            "lenet" => {
                net.add(Conv2D::new(20, 5).activation("relu"));
                net.add(MaxPool2D::new(2).strides(2));
                net.add(Conv2D::new(50, 5).activation("relu"));
                net.add(MaxPool2D::new(2).strides(2));
                net.add(Flatten::new());
                net.add(Dense::new(500).activation("relu"));
                net.add(Dense::new(10));
            }
            "lenet-bn" => {
                net.add(Conv2D::new(32, 5).padding(2));
                net.add(BatchNorm::new());
                net.add(Activation::new("relu"));
                net.add(MaxPool2D::new(2).strides(2));
                net.add(Conv2D::new(64, 5));
                net.add(BatchNorm::new());
                net.add(Activation::new("relu"));
                net.add(MaxPool2D::new(2).strides(2));
                net.add(Flatten::new());
                net.add(Dense::new(256).activation("relu"));
                net.add(Dense::new(10));
            }
            other => bail!("unknown --model '{other}' (lenet-bn or lenet)"),
        }
    }
    Ok(net)
}

fn state_path(out: &Path) -> PathBuf {
    out.join("progress.txt")
}

/// `epoch=N` and the run's settings, so a resumed run can check it continues the same run.
fn write_progress(out: &Path, epoch: usize, args: &Args) -> Result<()> {
    let text =
        format!("epoch={epoch}\nmodel={}\nbatch_size={}\nseed={}\n", args.model, args.batch_size, args.seed);
    std::fs::write(state_path(out), text).with_context(|| format!("writing {}", state_path(out).display()))
}

fn read_progress(out: &Path, args: &Args) -> Result<usize> {
    let path = state_path(out);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("--resume: no finished epoch recorded in {}", path.display()))?;
    let mut epoch = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        match k {
            "epoch" => epoch = v.parse::<usize>().ok(),
            "model" if v != args.model => {
                bail!("--resume: the saved run trained --model {v}, not {}", args.model)
            }
            _ => {}
        }
    }
    epoch.with_context(|| format!("--resume: {} has no epoch=N line", path.display()))
}

/// Cast labels to float32 for the loss and metric.
fn labels_f32(y: &NDArray) -> Result<NDArray> {
    Ok(y.astype(DType::F32)?)
}

fn evaluate(net: &dyn Block, test: &Arc<dyn Dataset>) -> Result<f64> {
    let _predict = autograd::predict_mode();
    let mut loader =
        DataLoader::new(test.clone(), 1000, LoaderOptions { num_workers: 1, ..Default::default() })?;
    let mut acc = Accuracy::new();
    for batch in loader.iter() {
        let batch = batch?;
        let out = net.call(&batch[0])?;
        acc.update(&[labels_f32(&batch[1])?], &[out])?;
    }
    Ok(acc.get().1)
}

pub fn run(args: Args) -> Result<()> {
    if args.batch_size == 0 || args.epochs == 0 {
        bail!("--batch-size and --epochs must be positive");
    }
    let load = |train: bool| -> Result<Arc<dyn Dataset>> {
        let ds = FashionMNIST::fashion(&args.data, train).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(transform_first(Arc::new(ds), |x| ToTensor.apply(x)))
    };
    let train = load(true)?;
    let test = load(false)?;
    println!(
        "Fashion-MNIST from {}: {} training, {} test images; model {}, batch {}, SGD lr {} ({}) momentum {} wd {}, seed {}",
        args.data.display(),
        train.len(),
        test.len(),
        args.model,
        args.batch_size,
        args.lr,
        args.lr_schedule,
        args.momentum,
        args.wd,
        args.seed
    );

    mixnet::random::seed(args.seed)?;
    let net = build(&args.model)?;
    net.initialize(Some(Arc::new(Xavier::default())), mixnet::cpu(0), false)?;
    // Complete the deferred shapes with one sample so parameters exist before loading.
    {
        let _predict = autograd::predict_mode();
        let probe = train.get(0)?[0].reshape(&[1, 1, 28, 28])?;
        net.call(&probe)?;
    }
    let params = net.collect_params()?;
    let mut trainer = Trainer::with_optimizer(
        &params,
        "sgd",
        &[("learning_rate", args.lr), ("momentum", args.momentum), ("wd", args.wd)],
    )?;
    let steps_per_epoch = {
        let n = train.len() / args.batch_size;
        if args.max_batches > 0 {
            n.min(args.max_batches)
        } else {
            n
        }
    };
    match args.lr_schedule.as_str() {
        "constant" => {}
        "cosine" => {
            // The schedule is a function of the update count, which --resume restores.
            let total = (steps_per_epoch * args.epochs).max(1) as u64;
            trainer.optimizer_mut().set_lr_scheduler(Box::new(CosineScheduler::new(total, 0.0)?));
        }
        other => bail!("unknown --lr-schedule '{other}' (cosine or constant)"),
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let params_file = args.out.join("fashion_mnist.params");
    let states_file = args.out.join("trainer.states");
    let mut start = 0;
    if args.resume {
        start = read_progress(&args.out, &args)?;
        net.load_parameters(&params_file, LoadOptions::default())?;
        trainer.load_states(&states_file)?;
        println!("resumed after epoch {start} from {}", args.out.display());
        if start >= args.epochs {
            println!("already trained {start} epochs; test accuracy {:.4}", evaluate(&net, &test)?);
            return Ok(());
        }
    }

    let loss_fn = SoftmaxCrossEntropyLoss::new();
    let mut last_acc = 0.0;
    for epoch in start..args.epochs {
        // One seed per epoch: the shuffle of epoch e is the same whether or not the run resumed.
        let opts = LoaderOptions {
            shuffle: true,
            seed: args.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
            last_batch: LastBatch::Discard,
            num_workers: args.workers,
            prefetch: None,
        };
        let mut loader = DataLoader::new(train.clone(), args.batch_size, opts)?;
        let total = if args.max_batches > 0 { loader.len().min(args.max_batches) } else { loader.len() };
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )?
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, args.epochs));
        let mut acc = Accuracy::new();
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let t0 = Instant::now();
        for (i, batch) in loader.iter().enumerate() {
            if i >= total {
                break;
            }
            let batch = batch?;
            let (x, y) = (&batch[0], labels_f32(&batch[1])?);
            let (out, loss) = {
                let _record = autograd::record(true);
                let out = net.call(x)?;
                let loss = loss_fn.call(&out, &y)?;
                (out, loss)
            };
            autograd::backward(&[loss.clone()], &[])?;
            trainer.step(args.batch_size, false)?;
            loss_sum += loss.to_f64_vec()?.iter().sum::<f64>();
            seen += x.shape()[0];
            acc.update(&[y], &[out])?;
            bar.inc(1);
            if i % 10 == 0 || i + 1 == total {
                let rate = seen as f64 / t0.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {:.4} acc {:.4} {rate:.0} samples/s",
                    loss_sum / seen as f64,
                    acc.get().1
                ));
            }
        }
        mixnet::waitall()?;
        let secs = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let test_acc = evaluate(&net, &test)?;
        last_acc = test_acc;
        println!(
            "epoch {}/{}: train loss {:.4} acc {:.4} | test acc {:.4} | {:.1} s ({:.0} samples/s)",
            epoch + 1,
            args.epochs,
            loss_sum / seen.max(1) as f64,
            acc.get().1,
            test_acc,
            secs,
            seen as f64 / secs
        );
        net.save_parameters(&params_file)?;
        trainer.save_states(&states_file)?;
        write_progress(&args.out, epoch + 1, &args)?;
    }
    println!(
        "final test accuracy {last_acc:.4}; parameters saved to {} (MXNet format)",
        params_file.display()
    );
    Ok(())
}
