//! `instance-extract secrets …`: encrypt, decrypt, set, updatekeys, rotate,
//! recipient. Plaintext goes to stdout only (`decrypt`), never to a file,
//! a log line or an error message; every write is checked before it
//! replaces a file.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use fromgit_cli::{ExitStatus, GlobalArgs, Printer};
use fromgit_sops::config::{self, CreationRule};
use fromgit_sops::keys::{self, Identities, Recipient};
use fromgit_sops::{EncryptedFile, Format, KeyPath, Kind, RecipientChanges, Value, Written};
use zeroize::Zeroizing;

use crate::cli::{
    ConfigArgs, DecryptArgs, EncryptArgs, FileFormat, IdentityArgs, InputTypeArgs, KeygenArgs,
    RecipientArgs, RecipientSourceArgs, RotateArgs, SecretsCommand, SetArgs, UpdatekeysArgs,
};

pub fn run(command: &SecretsCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    match command {
        SecretsCommand::Encrypt(args) => {
            fromgit_cli::refuse_json(
                global,
                "instance-extract secrets encrypt",
                "prints the encrypted file, not a report",
                Some("the encrypted file is sops JSON when the file's name or `--input-type` says JSON"),
            )?;
            encrypt(args)
        }
        SecretsCommand::Decrypt(args) => {
            fromgit_cli::refuse_json(
                global,
                "instance-extract secrets decrypt",
                "prints the plaintext, not a report",
                Some("`--output-type json` prints the plaintext as JSON"),
            )?;
            decrypt(args)
        }
        SecretsCommand::Set(args) => {
            fromgit_cli::refuse_json(
                global,
                "instance-extract secrets set",
                "prints nothing on stdout",
                None,
            )?;
            set(args)
        }
        SecretsCommand::Updatekeys(args) => {
            updatekeys(args, &Printer::to_stdout(global, &args.report)?)
        }
        SecretsCommand::Rotate(args) => rotate(args, &Printer::to_stdout(global, &args.report)?),
        SecretsCommand::Recipient(args) => recipient(args, &Printer::new(global, &args.report)?),
        SecretsCommand::Keygen(args) => keygen(args, &Printer::to_stdout(global, &args.report)?),
    }
}

/// Refuses a directory where a file is expected, before anything tries to
/// guess its format from its name.
fn ensure_not_directory(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("`{}` is a directory, not a file", path.display());
    }
    Ok(())
}

fn format_of(path: &Path, args: &InputTypeArgs) -> anyhow::Result<Format> {
    ensure_not_directory(path)?;
    match args.input_type {
        Some(FileFormat::Yaml) => Ok(Format::Yaml),
        Some(FileFormat::Json) => Ok(Format::Json),
        None => Format::from_path(path).ok_or_else(|| {
            anyhow!(
                "cannot tell the format of `{}` from its extension\nhint: pass `--input-type yaml` or `--input-type json`",
                path.display()
            )
        }),
    }
}

fn read_encrypted(path: &Path, format: &InputTypeArgs) -> anyhow::Result<EncryptedFile> {
    ensure_not_directory(path)?;
    let format = format_of(path, format)?;
    let text = fs_err::read_to_string(path)?;
    EncryptedFile::parse(&text, format)
        .with_context(|| format!("Failed to read sops file `{}`", path.display()))
}

pub(crate) fn load_identities(args: &IdentityArgs) -> anyhow::Result<Identities> {
    let identities =
        Identities::from_files_or_env(&args.identities).context("Failed to load the identities")?;
    tracing::info!("identities from {}", identities.sources().join(", "));
    Ok(identities)
}

fn decrypt_file(
    path: &Path,
    format: &InputTypeArgs,
    identity: &IdentityArgs,
) -> anyhow::Result<fromgit_sops::DecryptedFile> {
    let file = read_encrypted(path, format)?;
    let identities = load_identities(identity)?;
    file.decrypt(&identities)
        .with_context(|| format!("Failed to decrypt `{}`", path.display()))
}

pub(crate) fn explicit_recipients(args: &RecipientSourceArgs) -> anyhow::Result<Vec<Recipient>> {
    let mut recipients = Vec::new();
    for text in &args.recipients {
        recipients.push(Recipient::parse(text).context("Invalid `--recipient`")?);
    }
    for path in &args.recipient_ssh {
        let line = fs_err::read_to_string(path)?;
        recipients.push(
            keys::ssh_public_key_to_recipient(&line)
                .with_context(|| format!("Invalid `--recipient-ssh` key `{}`", path.display()))?,
        );
    }
    Ok(recipients)
}

fn creation_rule(config: &ConfigArgs, file: &Path) -> anyhow::Result<CreationRule> {
    Ok(config::rule_for(config.config.as_deref(), file)?)
}

/// Writes a checked file: re-reads what reached the disk and decrypts it
/// again before it replaces `target`.
fn write_checked(target: &Path, written: &Written) -> anyhow::Result<()> {
    written.write_to(target)?;
    Ok(())
}

fn encrypt(args: &EncryptArgs) -> anyhow::Result<ExitStatus> {
    let name = args.filename_override.as_deref().unwrap_or(&args.file);
    ensure_not_directory(&args.file)?;
    let format = format_of(name, &args.format)?;
    let plaintext = Zeroizing::new(fs_err::read_to_string(&args.file)?);
    let tree = format
        .parse(&plaintext)
        .with_context(|| format!("Failed to read `{}`", args.file.display()))?;
    if format == Format::Yaml {
        let comments = fromgit_sops::yaml::comment_lines(&plaintext);
        if comments > 0 {
            fromgit_cli::warn(&format!(
                "`{}`: {comments} comment line(s) are not carried into the encrypted file",
                args.file.display()
            ));
        }
    }
    let mut recipients = explicit_recipients(&args.recipients)?;
    let mut selection = None;
    if recipients.is_empty() {
        let rule = creation_rule(&args.config, name)?;
        recipients = rule.recipients;
        selection = rule.selection;
    }
    let written =
        fromgit_sops::encrypt_new(format, &tree, &recipients, selection.unwrap_or_default())
            .with_context(|| format!("Failed to encrypt `{}`", args.file.display()))?;
    if args.in_place {
        write_checked(&args.file, &written)?;
    } else if let Some(output) = &args.output {
        write_checked(output, &written)?;
    } else {
        written
            .verify(written.text.as_bytes())
            .context("Self-check of the encrypted output failed")?;
        fromgit_cli::write_stdout(written.text.as_bytes())?;
    }
    Ok(ExitStatus::Success)
}

fn decrypt(args: &DecryptArgs) -> anyhow::Result<ExitStatus> {
    let decrypted = decrypt_file(&args.file, &args.format, &args.identity)?;
    let output_format = match args.output_type {
        Some(FileFormat::Yaml) => Format::Yaml,
        Some(FileFormat::Json) => Format::Json,
        None => decrypted.format(),
    };
    let text = match &args.extract {
        None => output_format.emit(&decrypted.tree),
        Some(path_text) => {
            let path = KeyPath::parse_extract(path_text)
                .with_context(|| format!("Invalid `--extract` path `{path_text}`"))?;
            let root = Value::Map(decrypted.tree.clone());
            match root.get(&path) {
                None => bail!("`{}` has no value at `{path}`", args.file.display()),
                Some(Value::Map(map)) => output_format.emit(map),
                Some(Value::Scalar(scalar)) => match scalar.kind {
                    Kind::Bool => {
                        Zeroizing::new(if scalar.as_bool() { "true" } else { "false" }.to_owned())
                    }
                    _ => scalar.text.clone(),
                },
                Some(Value::Null) => Zeroizing::new("null".to_owned()),
                Some(Value::List(items)) => output_format.emit_list(items),
            }
        }
    };
    fromgit_cli::write_stdout(text.as_bytes())?;
    Ok(ExitStatus::Success)
}

fn set(args: &SetArgs) -> anyhow::Result<ExitStatus> {
    let path = KeyPath::parse_extract(&args.path)
        .with_context(|| format!("Invalid key path `{}`", args.path))?;
    let decrypted = decrypt_file(&args.file, &args.format, &args.identity)?;
    let mut value = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut value)
        .context("Failed to read the value from stdin")?;
    if value.is_empty() && !args.allow_empty {
        bail!(
            "standard input is empty: `{path}` in `{}` was left unchanged\nhint: pipe the value in, or pass `--allow-empty` to set the empty string",
            args.file.display()
        );
    }
    let mut root = Value::Map(decrypted.tree.clone());
    if !root.set(
        &path,
        Value::Scalar(fromgit_sops::Scalar {
            kind: Kind::Str,
            text: value,
        }),
    ) {
        bail!(
            "`{}`: cannot set `{path}` (it crosses a value that is not a map)",
            args.file.display()
        );
    }
    let Value::Map(tree) = root else {
        bail!("the document root must stay a map");
    };
    let written = decrypted
        .reencrypt(&tree)
        .with_context(|| format!("Failed to re-encrypt `{}`", args.file.display()))?;
    write_checked(&args.file, &written)?;
    tracing::info!("set `{path}` in `{}`", args.file.display());
    Ok(ExitStatus::Success)
}

fn updatekeys(args: &UpdatekeysArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let rule = creation_rule(&args.config, &args.file)?;
    let decrypted = decrypt_file(&args.file, &args.format, &args.identity)?;
    let (written, changes) = decrypted
        .updatekeys(&rule.recipients)
        .with_context(|| format!("Failed to update the keys of `{}`", args.file.display()))?;
    if !args.dry_run && !changes.is_empty() {
        write_checked(&args.file, &written)?;
    }
    report(
        printer,
        "updatekeys",
        &args.file,
        &changes,
        args.dry_run,
        !changes.is_empty(),
    )?;
    Ok(ExitStatus::Success)
}

fn rotate(args: &RotateArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let file = read_encrypted(&args.file, &args.format)?;
    let mut recipients: Vec<Recipient> = if args.sync_rules {
        creation_rule(&args.config, &args.file)?.recipients
    } else {
        file.recipients()
            .iter()
            .map(|r| Recipient::parse(r))
            .collect::<Result<_, _>>()
            .context("The file lists a recipient fromgit cannot write")?
    };
    for text in &args.add {
        let recipient = Recipient::parse(text).context("Invalid `--add-recipient`")?;
        if !recipients.iter().any(|r| r.as_str() == recipient.as_str()) {
            recipients.push(recipient);
        }
    }
    for text in &args.remove {
        let before = recipients.len();
        recipients.retain(|r| r.as_str() != text.trim());
        if recipients.len() == before {
            bail!(
                "`--rm-recipient {text}`: `{}` has no such recipient",
                args.file.display()
            );
        }
    }
    let identities = load_identities(&args.identity)?;
    let decrypted = file
        .decrypt(&identities)
        .with_context(|| format!("Failed to decrypt `{}`", args.file.display()))?;
    let (written, changes) = decrypted
        .rotate(&recipients)
        .with_context(|| format!("Failed to rotate `{}`", args.file.display()))?;
    if !args.dry_run {
        write_checked(&args.file, &written)?;
    }
    report(printer, "rotate", &args.file, &changes, args.dry_run, true)?;
    Ok(ExitStatus::Success)
}

fn report(
    printer: &Printer,
    operation: &str,
    file: &Path,
    changes: &RecipientChanges,
    dry_run: bool,
    file_changed: bool,
) -> anyhow::Result<()> {
    if printer.json() {
        printer.print_json(&serde_json::json!({
            "schema_version": 1,
            "operation": operation,
            "file": file.display().to_string(),
            "dry_run": dry_run,
            "changed": file_changed,
            "added": changes.added,
            "removed": changes.removed,
            "kept": changes.kept,
        }))?;
        return Ok(());
    }
    let verb = match (dry_run, file_changed) {
        (_, false) => "unchanged",
        (true, true) => "would update",
        (false, true) => "updated",
    };
    let mut text = format!("{verb} `{}` ({operation})\n", file.display());
    for recipient in &changes.added {
        let _ = writeln!(text, "  + {recipient}");
    }
    for recipient in &changes.removed {
        let _ = writeln!(text, "  - {recipient}");
    }
    printer.print_text(&text)?;
    Ok(())
}

fn keygen(args: &KeygenArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let recipient = keys::generate_identity_file(&args.output)
        .with_context(|| format!("Failed to create the key file `{}`", args.output.display()))?;
    if printer.json() {
        printer.print_json(&serde_json::json!({
            "schema_version": 1,
            "identity_file": args.output.display().to_string(),
            "recipient": recipient,
        }))?;
    } else {
        printer.print_text(&format!("{recipient}\n"))?;
    }
    Ok(ExitStatus::Success)
}

fn recipient(args: &RecipientArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let line = if args.ssh == Path::new("-") {
        let mut line = String::new();
        std::io::stdin().read_to_string(&mut line)?;
        line
    } else {
        fs_err::read_to_string(&args.ssh)?
    };
    let recipient = keys::ssh_public_key_to_recipient(&line)
        .with_context(|| format!("Failed to convert `{}`", args.ssh.display()))?;
    if printer.json() {
        printer.print_json(&serde_json::json!({
            "schema_version": 1,
            "recipient": recipient.to_string(),
        }))?;
    } else {
        printer.print_text(&format!("{recipient}\n"))?;
    }
    Ok(ExitStatus::Success)
}
