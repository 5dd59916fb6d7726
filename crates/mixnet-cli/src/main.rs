//! The `mixnet` command. Subcommands arrive with the issues that build them.

fn main() {
    println!("mixnet {}", env!("CARGO_PKG_VERSION"));
}
