//! `cargo multiarch` for `cargo install`: the multiarch engine's command line.

fn main() {
    multiarch::main()
}
