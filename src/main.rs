use clap::Parser;

fn main() {
    let cli = mfa_bulk::cli::Cli::parse();
    let code = match mfa_bulk::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            mfa_bulk::run::exit_code_for(&err)
        }
    };
    std::process::exit(code.code());
}
