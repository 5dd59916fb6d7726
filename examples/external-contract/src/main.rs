//! `external-contract IN.params OUT.params`: prints the sum of the first two arrays.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: external-contract IN.params OUT.params");
        std::process::exit(2);
    }
    match external_contract::add_first_two(args[1].as_ref(), args[2].as_ref()) {
        Ok((shape, dtype, values)) => println!("shape {shape:?} {dtype} {values:?}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
