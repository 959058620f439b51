//! The `nix` and `ssh` command lines the tools run, built as argument lists
//! so that unit tests check them without Nix. Values (paths, hosts) always
//! follow `--`, and an `ssh` host that could read as an option is refused.

use std::ffi::{OsStr, OsString};
use std::process::Command;

use thiserror::Error;

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    program: OsString,
    args: Vec<OsString>,
}

impl Argv {
    /// A program without arguments.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    #[must_use]
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The program.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments after the program.
    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }

    /// The program then its arguments.
    pub fn to_vec(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// The program then its arguments as strings; `None` when one is not UTF-8.
    pub fn to_strs(&self) -> Option<Vec<&str>> {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_str())
            .collect()
    }

    /// A [`Command`] that runs this argument list (no shell involved).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd
    }

    /// The list as one POSIX shell command line, each word quoted when needed.
    pub fn to_shell(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Shown as the words joined by spaces, for messages.
impl std::fmt::Display for Argv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.program.to_string_lossy())?;
        for a in &self.args {
            write!(f, " {}", a.to_string_lossy())?;
        }
        Ok(())
    }
}

/// Quotes a word for a POSIX shell: unchanged when it holds only characters
/// no shell treats specially, otherwise in single quotes. `=` and `~` are
/// quoted because zsh and every shell expand them at the start of a word.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `nix` invocations (the new CLI, with `nix-command` enabled explicitly).
#[derive(Debug, Clone, Default)]
pub struct Nix {
    store: Option<OsString>,
    no_substituters: bool,
}

impl Nix {
    /// `nix` on the default store, with the configured substituters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Query the store at `store` (`--store`: a chroot root or store URL).
    #[must_use]
    pub fn store(mut self, store: impl Into<OsString>) -> Self {
        self.store = Some(store.into());
        self
    }

    /// Never ask a substituter (`--option substituters ''`).
    #[must_use]
    pub fn without_substituters(mut self) -> Self {
        self.no_substituters = true;
        self
    }

    fn command<I, P>(&self, subcommand: &[&str], paths: I) -> Argv
    where
        I: IntoIterator<Item = P>,
        P: AsRef<OsStr>,
    {
        let mut argv = Argv::new("nix").args(["--extra-experimental-features", "nix-command"]);
        if self.no_substituters {
            argv = argv.args(["--option", "substituters", ""]);
        }
        argv = argv.args(subcommand.iter().copied());
        if let Some(store) = &self.store {
            argv = argv.arg("--store").arg(store);
        }
        argv.arg("--")
            .args(paths.into_iter().map(|p| p.as_ref().to_owned()))
    }

    /// `nix path-info --recursive --json -- PATHS…`: the closure's metadata.
    pub fn path_info_closure<I, P>(&self, paths: I) -> Argv
    where
        I: IntoIterator<Item = P>,
        P: AsRef<OsStr>,
    {
        self.command(&["path-info", "--recursive", "--json"], paths)
    }

    /// `nix show-derivation --recursive -- PATHS…`: every derivation of the
    /// closure, as JSON.
    pub fn show_derivation_closure<I, P>(&self, paths: I) -> Argv
    where
        I: IntoIterator<Item = P>,
        P: AsRef<OsStr>,
    {
        self.command(&["show-derivation", "--recursive"], paths)
    }
}

/// Why a string is not an `ssh` destination.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{host}` is not an SSH host: {why}")]
pub struct SshHostError {
    /// The offending host.
    pub host: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// An `ssh` destination, `[USER@]HOST`, that `ssh` cannot read as an option.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SshHost(String);

impl SshHost {
    /// Checks `host`.
    pub fn new(host: &str) -> Result<Self, SshHostError> {
        let bad = |why| SshHostError {
            host: host.to_owned(),
            why,
        };
        let name = host.rsplit_once('@').map_or(host, |(_, h)| h);
        if name.is_empty() {
            return Err(bad("no host name"));
        }
        if host.starts_with('-') || name.starts_with('-') {
            return Err(bad("it may not start with `-`"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it may not hold whitespace or control characters"));
        }
        Ok(Self(host.to_owned()))
    }

    /// The destination as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SshHost {
    type Err = SshHostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for SshHost {
    type Error = SshHostError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

/// `ssh` invocations that never prompt (`BatchMode=yes`).
#[derive(Debug, Clone)]
pub struct Ssh {
    host: SshHost,
    port: Option<u16>,
    options: Vec<OsString>,
}

impl Ssh {
    /// `ssh` to `host`.
    pub fn new(host: SshHost) -> Self {
        Self {
            host,
            port: None,
            options: Vec::new(),
        }
    }

    /// Connect to `port` (`-p`).
    #[must_use]
    pub fn port(mut self, port: Option<u16>) -> Self {
        self.port = port;
        self
    }

    /// Extra options given as one whitespace-separated string, the way Nix
    /// reads `NIX_SSHOPTS`; they come first.
    #[must_use]
    pub fn options_from(mut self, opts: &str) -> Self {
        self.options
            .extend(opts.split_whitespace().map(OsString::from));
        self
    }

    /// `ssh [OPTIONS] -o BatchMode=yes [-p PORT] -- HOST COMMAND`.
    pub fn remote(&self, command: &str) -> Argv {
        let mut argv = Argv::new("ssh")
            .args(self.options.iter().cloned())
            .args(["-o", "BatchMode=yes"]);
        if let Some(port) = self.port {
            argv = argv.arg("-p").arg(port.to_string());
        }
        argv.arg("--").arg(self.host.as_str()).arg(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_path_info_closure() {
        let argv = Nix::new()
            .store("/tmp/st")
            .path_info_closure(["/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t"]);
        assert_eq!(
            argv.to_strs().unwrap(),
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "path-info",
                "--recursive",
                "--json",
                "--store",
                "/tmp/st",
                "--",
                "/nix/store/hbzqcq91kds495bgrlq6rpyp54q2y0xw-t"
            ]
        );
        assert_eq!(argv.program(), "nix");
        assert_eq!(argv.arguments().len(), 9);
        assert_eq!(argv.to_vec().len(), 10);
        assert_eq!(
            Nix::new().path_info_closure(["-x"]).to_strs().unwrap(),
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "path-info",
                "--recursive",
                "--json",
                "--",
                "-x"
            ],
            "a path that looks like an option still follows `--`"
        );
    }

    #[test]
    fn remote_queries_without_substituters() {
        let nix = Nix::new().without_substituters().store("/tmp/it's");
        assert_eq!(
            nix.show_derivation_closure(["/run/current-system"])
                .to_strs()
                .unwrap(),
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "--option",
                "substituters",
                "",
                "show-derivation",
                "--recursive",
                "--store",
                "/tmp/it's",
                "--",
                "/run/current-system"
            ]
        );
        assert_eq!(
            nix.path_info_closure(["/nix/store/abc-x y"]).to_shell(),
            "nix --extra-experimental-features nix-command --option substituters '' \
             path-info --recursive --json --store '/tmp/it'\\''s' -- '/nix/store/abc-x y'"
        );
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/nix/store/abc-x"), "/nix/store/abc-x");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a;rm -rf /"), "'a;rm -rf /'");
        assert_eq!(shell_quote("$(x)`y`"), "'$(x)`y`'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("=ls"), "'=ls'");
        assert_eq!(shell_quote("~root"), "'~root'");
    }

    #[test]
    fn ssh_argv_puts_the_host_after_the_options() {
        let host = SshHost::new("me@h").unwrap();
        let argv = Ssh::new(host)
            .port(Some(2222))
            .options_from(" -i key  -o StrictHostKeyChecking=yes ")
            .remote("true");
        assert_eq!(
            argv.to_strs().unwrap(),
            [
                "ssh",
                "-i",
                "key",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-p",
                "2222",
                "--",
                "me@h",
                "true"
            ]
        );
        assert_eq!(
            Ssh::new("h".parse().unwrap())
                .remote("x y")
                .to_strs()
                .unwrap(),
            ["ssh", "-o", "BatchMode=yes", "--", "h", "x y"]
        );
        assert_eq!(
            argv.to_string(),
            "ssh -i key -o StrictHostKeyChecking=yes -o BatchMode=yes -p 2222 -- me@h true"
        );
    }

    #[test]
    fn hostile_ssh_hosts_are_refused() {
        for bad in [
            "-oProxyCommand=touch /tmp/pwned",
            "-oProxyCommand=x",
            "me@-oProxyCommand=x",
            "",
            "me@",
            "h\nx",
            "h x",
        ] {
            let err = SshHost::new(bad).expect_err(bad);
            assert_eq!(err.host, bad);
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        for ok in ["h", "root@127.0.0.1", "[::1]", "host-1.example"] {
            assert_eq!(SshHost::try_from(ok).unwrap().as_str(), ok);
        }
    }
}
