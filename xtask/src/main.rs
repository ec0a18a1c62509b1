//! `cargo xtask`: this workspace's tasks, all of them the multiarch engine's (`image`,
//! `init`, `doctor`, ...); a thin binary, so the engine stays a library.

fn main() {
    multiarch::main()
}
