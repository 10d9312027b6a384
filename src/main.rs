//! The `slapstore` binary: hands over to the command line in `slapstore-frontend`.

// evaluation allocates many small strings; mimalloc is markedly faster at that than glibc's
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(slapstore_frontend::cli::main());
}
