//! What the base gains: the options module that declares the instance's
//! facts and secrets, its import in the entry module, and the flake wired to
//! the instance input (and sops-nix).

use std::fmt::Write as _;

use fromgit_nix::literal::string as nix_string;
use rnix::SyntaxKind;

use super::{ExtractError, Request, OPTIONS_MODULE};
use crate::hosts::{self, Hosts};
use crate::inline::InlineSecret;
use crate::nixsrc::NixFile;
use crate::rewrite::{self, Edit};

/// Adds the options module to the entry module's `imports`, as a path that
/// resolves from the entry module's own directory.
pub(super) fn import_options_module(file: &NixFile) -> Result<Vec<Edit>, ExtractError> {
    let element = hosts::path_literal(&file.relative, OPTIONS_MODULE);
    if file.text.contains(&element) {
        return Ok(Vec::new());
    }
    let unrewritable = |reason: &str| ExtractError::Unrewritable {
        file: file.relative.clone(),
        line: 1,
        reason: reason.to_owned(),
    };
    let body = rewrite::top_expression(&file.root)
        .and_then(|lambda| {
            if lambda.kind() == SyntaxKind::NODE_LAMBDA {
                lambda.children().last()
            } else {
                Some(lambda)
            }
        })
        // `let … in { … }`: the set is the body after `in`.
        .and_then(|body| {
            if body.kind() == SyntaxKind::NODE_LET_IN {
                body.children().last()
            } else {
                Some(body)
            }
        })
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTR_SET)
        .ok_or_else(|| unrewritable("the entry module does not return an attribute set; add `imports = [ ./instance-options.nix ];` by hand"))?;
    if let Some(imports) = rewrite::bindings(&body).find(|b| rewrite::binding_path(b) == "imports")
    {
        let list = rewrite::binding_value(&imports)
            .filter(|v| v.kind() == SyntaxKind::NODE_LIST)
            .ok_or_else(|| unrewritable("`imports` is not a list literal"))?;
        return Ok(rewrite::append_to_list(&list, &element)
            .into_iter()
            .collect());
    }
    Ok(
        rewrite::add_binding(&file.text, &body, &format!("imports = [ {element} ];"))
            .into_iter()
            .collect(),
    )
}

/// Wires the base flake: an `instance` input (and sops-nix when the base does
/// not use it yet), the formal arguments of `outputs`, and the modules of
/// each `nixosConfigurations` entry.
pub(super) fn wire_flake(
    file: &NixFile,
    hosts: &Hosts,
    instance_url: &str,
    manual: &mut Vec<String>,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    let Some(top) =
        rewrite::top_expression(&file.root).filter(|n| n.kind() == SyntaxKind::NODE_ATTR_SET)
    else {
        manual.push(
            "flake.nix: the top level is not an attribute set; add the `instance` input by hand"
                .to_owned(),
        );
        return edits;
    };
    let needs_sops = !file.text.contains("sops-nix");
    let mut inputs: Vec<(&str, String)> = Vec::new();
    if !file.text.contains("instance.url") && !file.text.contains("inputs.instance") {
        inputs.push(("instance", instance_url.to_owned()));
    }
    if needs_sops {
        inputs.push(("sops-nix", "github:Mic92/sops-nix".to_owned()));
    }
    let input_set = rewrite::bindings(&top)
        .find(|b| rewrite::binding_path(b) == "inputs")
        .and_then(|b| rewrite::binding_value(&b))
        .filter(|v| v.kind() == SyntaxKind::NODE_ATTR_SET);
    for (name, url) in &inputs {
        let line = format!("{name}.url = {};", nix_string(url));
        let edit = if let Some(set) = &input_set {
            rewrite::add_binding(&file.text, set, &line)
        } else if let Some(last) = rewrite::bindings(&top)
            .filter(|b| rewrite::binding_path(b).starts_with("inputs."))
            .last()
        {
            Some(Edit::insert(
                last.text_range().end(),
                format!("\n{}inputs.{line}", rewrite::indentation(&file.text, &last)),
            ))
        } else {
            rewrite::add_binding(&file.text, &top, &format!("inputs.{line}"))
        };
        edits.extend(edit);
    }
    let outputs = rewrite::bindings(&top)
        .find(|b| rewrite::binding_path(b) == "outputs")
        .and_then(|b| rewrite::binding_value(&b))
        .filter(|v| v.kind() == SyntaxKind::NODE_LAMBDA);
    let Some(outputs) = outputs else {
        manual.push(
            "flake.nix: `outputs` is not a function literal; pass `instance` to it by hand"
                .to_owned(),
        );
        return edits;
    };
    let formals: Vec<&str> = if needs_sops {
        vec!["instance", "sops-nix"]
    } else {
        vec!["instance"]
    };
    for formal in formals {
        if let Some(pattern) = outputs
            .children()
            .find(|n| n.kind() == SyntaxKind::NODE_PATTERN)
        {
            if !rewrite::has_formal(&pattern, formal) {
                edits.extend(rewrite::add_formal_last(&pattern, formal));
            }
        } else {
            manual.push(format!("flake.nix: `outputs` takes no attribute pattern; make `{formal}` available to it by hand"));
        }
    }
    let mut wired = 0;
    for node in outputs
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NODE_ATTRPATH_VALUE)
    {
        if rewrite::binding_path(&node) != "modules" {
            continue;
        }
        let in_configurations = node.ancestors().any(|a| {
            a.kind() == SyntaxKind::NODE_ATTRPATH_VALUE
                && rewrite::binding_path(&a).contains("nixosConfigurations")
        });
        let Some(list) =
            rewrite::binding_value(&node).filter(|v| v.kind() == SyntaxKind::NODE_LIST)
        else {
            continue;
        };
        let other_host = hosts
            .lists
            .iter()
            .any(|l| !l.chosen && l.list.text_range() == list.text_range());
        if !in_configurations || other_host {
            continue;
        }
        let text = list.text().to_string();
        if !text.contains("instance.nixosModules.instance") {
            edits.extend(rewrite::append_to_list(
                &list,
                "instance.nixosModules.instance",
            ));
        }
        if needs_sops {
            edits.extend(rewrite::append_to_list(&list, "sops-nix.nixosModules.sops"));
        }
        wired += 1;
    }
    if wired == 0 && !file.text.contains("instance.nixosModules.instance") {
        manual.push("flake.nix: no `nixosConfigurations.<host>.modules` list found; add `instance.nixosModules.instance` to it by hand".to_owned());
    }
    edits
}

pub(super) fn options_module(
    request: &Request<'_>,
    settings: &[crate::wiring::SecretSettings],
    inline: &[InlineSecret],
) -> String {
    let name = rewrite::attr_name(request.name);
    let mut text = format!(
        "# Generated by `instance-extract apply`: the instance's facts, declared once.\n\
         # The private instance repo sets them through its `nixosModules.instance`.\n\
         {{ lib, ... }}:\n{{\n  options.{name}.instance.domain = lib.mkOption {{\n    \
         type = lib.types.str;\n    description = \"The instance's domain, set by the private instance repo.\";\n  }};\n  \
         options.{name}.instance.addresses = lib.mkOption {{\n    type = lib.types.attrsOf lib.types.str;\n    default = {{ }};\n    \
         description = \"The instance's IP addresses, by neutral name.\";\n  }};\n  \
         options.{name}.instance.emails = lib.mkOption {{\n    type = lib.types.attrsOf lib.types.str;\n    default = {{ }};\n    \
         description = \"The instance's e-mail addresses outside its domain, by neutral name.\";\n  }};\n"
    );
    if !request.secrets.is_empty() {
        text.push_str("\n  # Secrets that used to be placed on the host by hand, now decrypted by\n  # sops-nix from the instance repo to the same paths.\n");
        text.push_str("  config.sops.secrets = {\n");
        for (secret, path) in request.secrets {
            let found = settings.iter().find(|s| &s.name == secret);
            let _ = writeln!(text, "{}", crate::wiring::secret_entry(secret, path, found));
        }
        text.push_str("  };\n");
    }
    if !inline.is_empty() {
        text.push_str("\n  # Secrets that were written into the Nix source, now in the instance's\n  # sops file; a user's password hash is needed before users exist.\n");
        for secret in inline {
            let needed = if secret.needed_for_users {
                " neededForUsers = true; "
            } else {
                " "
            };
            let _ = writeln!(
                text,
                "  config.sops.secrets.{} = {{{needed}}};",
                nix_string(&secret.name)
            );
        }
    }
    text.push_str("}\n");
    text
}
