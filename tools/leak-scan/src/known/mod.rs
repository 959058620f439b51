//! Instance rules without plaintext. `enroll` turns the instance's secret
//! values, domains, addresses and e-mail addresses into salted keyed hashes
//! (HMAC-SHA-256 keyed by a random salt kept in the file, truncated to 128
//! bits) of every form a leak may take: the raw value, each significant line
//! of a multi-line value (a PEM body line), its base64, base64url and hex
//! forms and their 64- and 76-column lines. The file records each form's
//! length and tokenizer, so that a scan hashes only the tokens whose shape
//! and length can match, and reports a hit without ever knowing the value.
//!
//! Anyone holding the file can test guesses at HMAC speed: that is harmless
//! for random secrets and not for short passwords or names, hence the
//! warnings at enrollment.

mod enroller;
mod format;
mod matcher;
#[cfg(test)]
mod tests;
mod tokens;

pub use enroller::{estimated_bits, Enroller, LOW_ENTROPY_BITS, MIN_LINE_LEN, MIN_SECRET_LEN};
pub use format::{EntryRecord, FingerprintFile, Kind, ALGORITHM, FORMAT};
pub use matcher::{Entry, KnownError, KnownMatch, KnownSet};
pub use tokens::Tokenizer;
