//! Nix's own base-32 ("Nix32"): a 32-character alphabet without `e o u t`,
//! emitted from the last 5-bit group to the first. It is not RFC 4648.

use thiserror::Error;

/// The Nix32 alphabet.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Why a Nix32 string does not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Nix32Error {
    /// A character outside the alphabet.
    #[error("invalid Nix32 character `{0}`")]
    InvalidChar(char),
    /// Bits above the decoded length are set (Nix rejects these too).
    #[error("Nix32 string has non-zero padding bits")]
    NonZeroPadding,
}

/// The length of the Nix32 encoding of `bytes` bytes.
pub const fn encoded_len(bytes: usize) -> usize {
    (bytes * 8).div_ceil(5)
}

/// Encodes bytes in Nix32.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let low = u16::from(bytes[i]) >> j;
        let high = bytes.get(i + 1).map_or(0, |&x| u16::from(x) << (8 - j));
        out.push(char::from(ALPHABET[usize::from((low | high) & 31)]));
    }
    out
}

/// Character → digit value, 0xff for characters outside the alphabet.
const DIGITS: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i: u8 = 0;
    while i < 32 {
        table[ALPHABET[i as usize] as usize] = i;
        i += 1;
    }
    table
};

fn digit(c: u8) -> Option<u8> {
    let d = DIGITS[usize::from(c)];
    (d != 0xff).then_some(d)
}

/// Decodes a Nix32 string; the result has `len * 5 / 8` bytes.
pub fn decode(text: &str) -> Result<Vec<u8>, Nix32Error> {
    let bytes = text.as_bytes();
    let size = bytes.len() * 5 / 8;
    let mut out = vec![0u8; size];
    for (n, &c) in bytes.iter().rev().enumerate() {
        let d = digit(c).ok_or(Nix32Error::InvalidChar(char::from(c)))?;
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let wide = u16::from(d) << j;
        if i < size {
            out[i] |= (wide & 0xff) as u8;
        } else if wide != 0 {
            return Err(Nix32Error::NonZeroPadding);
        }
        let carry = wide >> 8;
        if i + 1 < size {
            out[i + 1] |= (carry & 0xff) as u8;
        } else if carry != 0 {
            return Err(Nix32Error::NonZeroPadding);
        }
    }
    Ok(out)
}

/// Whether `s` consists only of Nix32 characters.
pub fn is_nix32(s: &str) -> bool {
    s.bytes().all(|c| digit(c).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_from_nix_2_8() {
        let cases = [
            (
                "faff3005b947c9d41204e314ed55ec97654b85ae1b77a58b2f49862798e3500a",
                "02jhwfc2g1j95y5saxqvms2lnrcpxiays5730h9d9ja7p42k1zzs",
            ),
            (
                "a50a5ab6d992f5598edd92105059fae9acfc192981e08bd88534c2167e92526a",
                "0sjjj9z1dhilhpc8pq4154czrb79z9cm044jvn75kxcjv6v5l2m5",
            ),
            (
                "1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13",
                "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
            ),
        ];
        for (hexs, nix32) in cases {
            let bytes = hex::decode(hexs).unwrap();
            assert_eq!(encode(&bytes), nix32);
            assert_eq!(decode(nix32).unwrap(), bytes);
        }
    }

    #[test]
    fn lengths_and_rejections() {
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
        assert_eq!(decode("e"), Err(Nix32Error::InvalidChar('e')));
        // 52 chars hold 260 bits: a leading `z` sets bits beyond 256.
        let bad = format!("z{}", "0".repeat(51));
        assert_eq!(decode(&bad), Err(Nix32Error::NonZeroPadding));
        for len in [0usize, 1, 5, 20, 32] {
            let bytes: Vec<u8> = (0..len)
                .map(|i| u8::try_from((i * 37 + 11) % 256).unwrap())
                .collect();
            assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
    }
}
