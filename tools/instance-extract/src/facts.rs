//! Instance facts beyond the domain: IP addresses and e-mail addresses.
//!
//! They identify the instance as much as its domain does, so `apply` moves
//! each into `instance.nix` under a neutral name (`addresses.a1`,
//! `emails.e1`) and the base reads them through options. Private and
//! special-purpose ranges identify nothing and are left, with that reason.

use std::net::IpAddr;

static IPV4: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b").ok()
});

static IPV6: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}").ok()
});

static EMAIL: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"(?i)\b[a-z0-9._%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,}\b").ok()
});

/// An address found in a string, and why it is left when it is.
pub struct Address {
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// `Some` for ranges that identify nothing (private, link-local, …).
    pub left_because: Option<&'static str>,
}

/// IPv4 and IPv6 literals in `text`, loopback and unspecified excepted.
pub fn addresses(text: &str) -> Vec<Address> {
    let mut out = Vec::new();
    let v4 = IPV4.as_ref().map(|r| r.find_iter(text).collect::<Vec<_>>());
    let v6 = IPV6.as_ref().map(|r| r.find_iter(text).collect::<Vec<_>>());
    for m in v4.into_iter().flatten().chain(v6.into_iter().flatten()) {
        // Version strings like `1.2.3.4-beta` are not addresses.
        if text[m.end()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            || text[..m.start()].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.')
        {
            continue;
        }
        let Ok(address) = m.as_str().parse::<IpAddr>() else {
            continue;
        };
        if address.is_loopback() || address.is_unspecified() {
            continue;
        }
        if out
            .iter()
            .any(|a: &Address| a.start < m.end() && m.start() < a.end)
        {
            continue;
        }
        out.push(Address {
            start: m.start(),
            end: m.end(),
            text: m.as_str().to_owned(),
            left_because: special_range(address),
        });
    }
    out.sort_by_key(|a| a.start);
    out
}

/// Public DNS resolvers every host may name: Cloudflare, Google, Quad9,
/// OpenDNS. They say which resolver the operator likes, not which host this is.
const PUBLIC_RESOLVERS: [&str; 16] = [
    "1.1.1.1",
    "1.0.0.1",
    "8.8.8.8",
    "8.8.4.4",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2620:fe::fe",
    "2620:fe::9",
    "2620:119:35::35",
    "2620:119:53::53",
];

fn special_range(address: IpAddr) -> Option<&'static str> {
    if PUBLIC_RESOLVERS
        .iter()
        .any(|resolver| resolver.parse::<IpAddr>().ok() == Some(address))
    {
        return Some("a well-known public DNS resolver: identifies no instance");
    }
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_private() {
                Some("a private (RFC 1918) address: identifies no instance")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (CGNAT) address: identifies no instance")
            } else if v4.is_link_local() || v4.is_broadcast() || v4.is_multicast() {
                Some("a link-local, broadcast or multicast address: identifies no instance")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if first & 0xfe00 == 0xfc00 {
                Some("a unique-local IPv6 address: identifies no instance")
            } else if first & 0xffc0 == 0xfe80 || v6.is_multicast() {
                Some("a link-local or multicast IPv6 address: identifies no instance")
            } else {
                None
            }
        }
    }
}

/// E-mail addresses in `text` that are not under `domain` (those are
/// rewritten with the domain).
pub fn foreign_emails(text: &str, domain: &str) -> Vec<(usize, usize, String)> {
    let Some(email) = EMAIL.as_ref() else {
        return Vec::new();
    };
    email
        .find_iter(text)
        .filter(|m| {
            let host = m
                .as_str()
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            host != domain && !host.ends_with(&format!(".{domain}"))
        })
        .map(|m| (m.start(), m.end(), m.as_str().to_owned()))
        .collect()
}

/// The facts' names: the operator's, from `instance-extract.toml`
/// (`[[fact]]`, keyed on the value's SHA-256), else neutral ones in order
/// of first appearance: `a1`, `a2` for addresses, `e1` for e-mail addresses.
#[derive(Debug, Default)]
pub struct Facts {
    /// `(value, name)` of each address.
    pub addresses: Vec<(String, String)>,
    /// `(value, name)` of each e-mail address.
    pub emails: Vec<(String, String)>,
    /// `(sha256:<hex> key, name)` given by the operator.
    pub chosen: Vec<(String, String)>,
}

impl Facts {
    pub fn with_names(chosen: Vec<(String, String)>) -> Self {
        Facts {
            chosen,
            ..Facts::default()
        }
    }

    /// The attribute path under the instance option for `value`, adding it.
    pub fn name(&mut self, group: Group, value: &str) -> String {
        let key = crate::accept::accept_key(value);
        let chosen = self
            .chosen
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, name)| name.clone());
        let (list, prefix, attr) = match group {
            Group::Address => (&mut self.addresses, 'a', "addresses"),
            Group::Email => (&mut self.emails, 'e', "emails"),
        };
        if let Some((_, name)) = list.iter().find(|(v, _)| v == value) {
            return format!("{attr}.{name}");
        }
        let mut index = list.len() + 1;
        let name = chosen.unwrap_or_else(|| loop {
            let candidate = format!("{prefix}{index}");
            if !list.iter().any(|(_, n)| *n == candidate) {
                break candidate;
            }
            index += 1;
        });
        list.push((value.to_owned(), name.clone()));
        format!("{attr}.{name}")
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Group {
    Address,
    Email,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_facts_private_ones_are_left() {
        let text = "203.0.113.7 10.0.0.0/8 2001:db8::10 fd00::1 127.0.0.1 1.2.3.4-beta [2a01:4f8::2]:51820 100.64.0.1 9.9.9.9 2606:4700:4700::1111";
        let found: Vec<(&str, bool)> = addresses(text)
            .iter()
            .map(|a| (&text[a.start..a.end], a.left_because.is_none()))
            .collect();
        assert_eq!(
            found,
            [
                ("203.0.113.7", true),
                ("10.0.0.0", false),
                ("2001:db8::10", true),
                ("fd00::1", false),
                ("2a01:4f8::2", true),
                ("100.64.0.1", false),
                ("9.9.9.9", false),
                ("2606:4700:4700::1111", false),
            ]
        );
        assert!(addresses("port 8080:80 and 12:30:45").is_empty());
    }

    #[test]
    fn facts_get_stable_neutral_names() {
        let mut facts = Facts::with_names(vec![(
            crate::accept::accept_key("198.51.100.1"),
            "gateway".to_owned(),
        )]);
        assert_eq!(facts.name(Group::Address, "203.0.113.7"), "addresses.a1");
        assert_eq!(facts.name(Group::Email, "me@mail.test"), "emails.e1");
        assert_eq!(
            facts.name(Group::Address, "198.51.100.1"),
            "addresses.gateway"
        );
        assert_eq!(facts.name(Group::Address, "2001:db8::10"), "addresses.a3");
        assert_eq!(facts.name(Group::Address, "203.0.113.7"), "addresses.a1");
        assert_eq!(
            foreign_emails("a@lab.example.org b@Mail.Test", "example.org"),
            [(18, 29, "b@Mail.Test".to_owned())]
        );
    }
}
