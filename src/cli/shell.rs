//! What a shell and `man` need: completions for each shell, and the manual
//! pages, generated from the same definition the parser uses.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

/// Completions for `shell`, on stdout (see the README for where they go).
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Args::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "milink", &mut out);
    emit(&out)
}

/// To stdout; a reader that stops early (`| head`) is not an error.
fn emit(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// milink.1 on stdout; with `dir`, it and one page per command
/// (milink-link-failover.1, …) written there.
pub fn man(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cmd = super::Args::command();
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out).context("rendering the man page")?;
            return emit(&out);
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir).with_context(|| format!("writing man pages to {}", dir.display()))?;
            eprintln!("man pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
