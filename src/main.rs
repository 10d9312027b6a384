fn main() {
    std::process::exit(slapstore_frontend::cli::main());
}
