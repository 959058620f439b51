//! Running one runbook block: its output printed live and redacted as it
//! streams in, and only its tail kept for the evidence.

use std::time::{Duration, Instant};

use super::secret::Secret;
use crate::evidence::BlockRecord;
use crate::incus::{Client, IncusError, Stream};
use crate::runbook::Block;

pub(super) fn stderr_line(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Splits a block's output into lines as it streams in, prints each one
/// (redacted) the moment it is complete, and keeps the last ones for the
/// evidence (a rebuild prints a lot; only the tail is kept).
struct LiveOutput<'a> {
    block: &'a str,
    secret: &'a Secret,
    partial: [Vec<u8>; 2],
    tail: std::collections::VecDeque<String>,
    keep: usize,
}

impl LiveOutput<'_> {
    fn push(&mut self, stream: Stream, chunk: &[u8]) {
        let i = usize::from(stream == Stream::Stderr);
        self.partial[i].extend_from_slice(chunk);
        while let Some(end) = self.partial[i].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[i].drain(..=end).collect();
            self.line(&line[..end]);
        }
    }

    fn line(&mut self, bytes: &[u8]) {
        let text = self.secret.redact(&String::from_utf8_lossy(bytes));
        stderr_line(&format!("[{}] {text}", self.block));
        if self.tail.len() == self.keep {
            self.tail.pop_front();
        }
        if self.keep > 0 {
            self.tail.push_back(text);
        }
    }

    /// The last lines, once the block has ended.
    fn finish(mut self) -> String {
        for i in 0..2 {
            let rest = std::mem::take(&mut self.partial[i]);
            if !rest.is_empty() {
                self.line(&rest);
            }
        }
        Vec::from(self.tail).join("\n")
    }
}

pub(super) async fn run_block(
    client: &Client,
    name: &str,
    block: &Block,
    script: &str,
    secret: &Secret,
    tail_lines: usize,
) -> BlockRecord {
    let start = Instant::now();
    let timeout = block.timeout.to_string();
    let command = [
        "timeout", "-k", "10", &timeout, "bash", "-euo", "pipefail", "-c", script,
    ];
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let mut live = LiveOutput {
        block: &block.name,
        secret,
        partial: [Vec::new(), Vec::new()],
        tail: std::collections::VecDeque::with_capacity(tail_lines),
        keep: tail_lines,
    };
    let what = format!("block `{}`", block.name);
    let exec = async {
        let result = client
            .exec_attached(
                name,
                &command,
                Duration::from_secs(block.timeout + 60),
                &what,
                None,
                &sender,
            )
            .await;
        drop(sender);
        result
    };
    let print = async {
        while let Some((stream, chunk)) = receiver.recv().await {
            live.push(stream, &chunk);
        }
    };
    let (result, ()) = tokio::join!(exec, print);
    let output_tail = live.finish();
    let duration = start.elapsed().as_secs_f64();
    let mut record = BlockRecord {
        name: block.name.clone(),
        line: block.line,
        source_sha256: block.source_sha256(),
        timeout_seconds: block.timeout,
        exit: None,
        timed_out: false,
        duration_seconds: (duration * 1000.0).round() / 1000.0,
        output_tail,
        error: None,
        not_run: None,
    };
    match result {
        Ok(exit) => {
            record.exit = Some(exit);
            record.timed_out = exit == 124 || exit == 137;
        }
        Err(IncusError::Timeout { .. }) => record.timed_out = true,
        Err(e) => record.error = Some(e.to_string()),
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_output_splits_lines_redacts_and_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let file = dir.path().join("k.txt");
        fs_err::write(&file, format!("{key}\n")).unwrap();
        let secret = Secret::load(&file).unwrap();
        let mut live = LiveOutput {
            block: "b",
            secret: &secret,
            partial: [Vec::new(), Vec::new()],
            tail: std::collections::VecDeque::new(),
            keep: 2,
        };
        live.push(Stream::Stdout, b"one\ntw");
        live.push(Stream::Stderr, b"warn: ");
        live.push(Stream::Stdout, format!("o {key}\nthree").as_bytes());
        live.push(Stream::Stderr, b"late\n");
        // Chunks of one stream join across pushes; the streams never mix.
        assert_eq!(live.tail, ["two [redacted secret]", "warn: late"]);
        assert_eq!(live.finish(), "warn: late\nthree");
    }
}
