//! Values as the file writes them, parsed into what a run uses: durations
//! (`"120s"`), memory sizes (`"2GiB"`), octal modes and owners (`root`, `#0`).

use serde::{Deserialize, Serialize};

/// A duration, written `"120s"`, `"15m"` or `"2h"` (a bare integer is read
/// as seconds, for configurations written before the units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl From<Seconds> for String {
    fn from(s: Seconds) -> String {
        s.to_string()
    }
}

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl std::str::FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Seconds, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let bad = || format!("`{text}` is not a duration: write it as \"120s\", \"15m\" or \"2h\"");
        let n: u64 = number.parse().map_err(|_| bad())?;
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        n.checked_mul(factor).map(Seconds).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bare(u64),
            Text(String),
        }
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("a duration is written \"120s\", \"15m\" or \"2h\"")
        })? {
            Written::Bare(n) => Ok(Seconds(n)),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// An owner or group: a name, or `#<numeric id>`.
pub fn parse_owner(text: &str) -> Result<Owner, String> {
    if let Some(id) = text.strip_prefix('#') {
        return id
            .parse()
            .map(Owner::Id)
            .map_err(|_| format!("`{text}` is neither a name nor `#<numeric id>`"));
    }
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !text.starts_with('-');
    if valid {
        Ok(Owner::Name(text.to_owned()))
    } else {
        Err(format!("`{text}` is neither a name nor `#<numeric id>`"))
    }
}

/// A user or group as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Name(String),
    Id(u32),
}

/// Parses an Incus memory size (`512MiB`, `2GiB`, `1GB`, `1073741824`) into bytes.
/// Percentages are refused: they cannot be added up against a budget.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.ends_with('%') {
        return Err(format!("`{t}` is a percentage, which cannot be budgeted"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{t}` is not a memory size"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => return Err(format!("`{t}`: unknown unit `{other}`")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{t}` is too large"))
}

/// Parses an octal mode string (`"0600"`, `"600"`) into its bits.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(text.trim(), 8)
        .map_err(|_| format!("`{text}` is not an octal mode"))?;
    if m > 0o7777 {
        return Err(format!("`{text}` is not a file mode"));
    }
    Ok(m)
}

/// Renders bytes the way Incus writes them, for messages and evidence.
pub fn human_size(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes == 0 {
        "0B".to_owned()
    } else if bytes.is_multiple_of(GIB) {
        format!("{}GiB", bytes / GIB)
    } else if bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("50%").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1XB").is_err());
        assert_eq!(human_size(3 << 30), "3GiB");
        assert_eq!(human_size(1536 << 20), "1536MiB");
    }

    #[test]
    fn durations_in_one_notation() {
        assert_eq!("120s".parse(), Ok(Seconds(120)));
        assert_eq!("15m".parse(), Ok(Seconds(900)));
        assert_eq!("2h".parse(), Ok(Seconds(7200)));
        assert!("120".parse::<Seconds>().is_err());
        assert!("2 min".parse::<Seconds>().is_err());
        assert_eq!(Seconds(90).to_string(), "90s");
    }

    #[test]
    fn owners() {
        assert_eq!(parse_owner("nginx"), Ok(Owner::Name("nginx".to_owned())));
        assert_eq!(parse_owner("#0"), Ok(Owner::Id(0)));
        assert!(parse_owner("#x").is_err());
        assert!(parse_owner("a b").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("77777").is_err());
    }
}
