//! The `mixnet` command.

mod fashion_mnist;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mixnet", version, about = "mixnet: Apache MXNet's design in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a small CNN on Fashion-MNIST with Gluon and report test accuracy.
    TrainFashionMnist(fashion_mnist::Args),
    /// List every registered operator (aliases, gradient, dtypes) and MXNet 1.9.1's legacy
    /// operators still missing.
    Ops {
        /// Print only the missing MXNet legacy operators.
        #[arg(long)]
        missing: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::TrainFashionMnist(args)) => fashion_mnist::run(args),
        Some(Command::Ops { missing }) => {
            print!("{}", mixnet::op::coverage::report(missing));
            Ok(())
        }
        None => {
            println!("mixnet {} (try `mixnet --help`)", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    if let Err(e) = result {
        // The message (with its causes), not a backtrace: these are user-facing errors.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
