//! A text buffer for decrypted output that never leaves a copy behind.
//!
//! A `String` that grows reallocates and frees its old buffer without
//! clearing it; wrapping it in `Zeroizing` clears only the last one. Here
//! each growth moves the text into a new, larger `Zeroizing` buffer and the
//! old one is cleared as it drops.

use std::fmt;

use zeroize::Zeroizing;

#[derive(Default)]
pub(crate) struct SecretText(Zeroizing<String>);

impl SecretText {
    pub(crate) fn new() -> Self {
        SecretText(Zeroizing::new(String::with_capacity(256)))
    }

    fn reserve(&mut self, more: usize) {
        let needed = self.0.len() + more;
        if needed > self.0.capacity() {
            let mut grown =
                Zeroizing::new(String::with_capacity(needed.max(self.0.capacity() * 2)));
            grown.push_str(&self.0);
            // The old buffer is cleared as `self.0` is replaced and dropped.
            self.0 = grown;
        }
    }

    pub(crate) fn push_str(&mut self, text: &str) {
        self.reserve(text.len());
        self.0.push_str(text);
    }

    pub(crate) fn push(&mut self, c: char) {
        self.reserve(c.len_utf8());
        self.0.push(c);
    }

    pub(crate) fn extend(&mut self, chars: impl IntoIterator<Item = char>) {
        for c in chars {
            self.push(c);
        }
    }

    pub(crate) fn into_inner(self) -> Zeroizing<String> {
        self.0
    }
}

impl fmt::Write for SecretText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_keeps_the_text_and_never_reallocates_in_place() {
        let mut text = SecretText::new();
        let mut capacities = Vec::new();
        for i in 0..2000 {
            text.push_str("line of secret text ");
            text.push(char::from(b'a' + u8::try_from(i % 26).expect("small")));
            capacities.push(text.0.capacity());
        }
        // Every growth was ours (a new buffer at least double the old one),
        // not `String`'s own reallocation.
        for pair in capacities.windows(2) {
            assert!(pair[1] == pair[0] || pair[1] >= pair[0] * 2, "{pair:?}");
        }
        let inner = text.into_inner();
        assert_eq!(inner.len(), 2000 * 21);
        assert!(inner.starts_with("line of secret text a"));
    }
}
