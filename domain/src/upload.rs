//! Recognising file uploads at a level that forbids them, by what the vendor sends rather than
//! by the command that receives it.
//!
//! Recognising uploads by the command line (`scp -t`, `rsync --server`) is a deny-list and
//! cannot win: `sh -c "scp -t F"`, `exec scp -t F`, `SCP=1 scp -t F`, `true; scp -t F`,
//! `sftp -s /usr/lib/openssh/sftp-server` and `cat > F` all write files. So the gateway looks
//! at the vendor→target bytes of every channel (whatever it runs), with three layers:
//!
//! 1. **Protocols by their bytes.** An SFTP session begins with `SSH_FXP_INIT`
//!    (`00 00 00 05 01 00 00 00 0v`); the scp sink protocol sends a header line per file
//!    (`C0644 SIZE NAME\n`, `D0755 0 NAME\n`, `T... 0 ... 0\n`). When the channel's very first
//!    bytes are an SFTP INIT, the channel is an SFTP session (`sftp -s PROGRAM`): the gateway
//!    puts its read-only SFTP guard on it, as on the `sftp` subsystem. Such bytes anywhere
//!    else, or an scp header anywhere, end the channel.
//! 2. **A bound on what a vendor may send** into the channels of a session at a level without
//!    uploads: non-terminal channels (`ssh host 'cat > F'`, piped `tar`) together at most
//!    [`InputLimits::stream`] bytes; terminals at most [`InputLimits::terminal`] (no one
//!    types a megabyte).
//! 3. **Large pastes are flagged** in a terminal's recording for the reviewer
//!    ([`InputLimits::paste`]).
//!
//! The remaining limit, stated honestly: a shell can always *type* a file (a script, a
//! base64 blob within the bound). A reference level must therefore map to a target account
//! without write rights; the gateway's controls make bulk transfer impossible and small ones
//! visible, not typing.
//!
//! Everything here is pure: the gateway feeds bytes and acts on the verdicts.

/// The first bytes of an SFTP session, up to the version byte: length 5, `SSH_FXP_INIT`.
const SFTP_INIT: [u8; 8] = [0, 0, 0, 5, 1, 0, 0, 0];
/// Longest scp header considered (`C0644 <20 digits> <255-byte name>\n` and some slack).
const SCP_HEADER_MAX: usize = 320;

/// How much a vendor may send at a level without uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLimits {
    /// Bytes into non-terminal channels (exec, shell without a PTY), per session.
    pub stream: u64,
    /// Bytes typed or pasted into terminals, per session.
    pub terminal: u64,
    /// One input message into a terminal at least this large is flagged as a paste.
    pub paste: u64,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            stream: 64 * 1024,
            terminal: 1024 * 1024,
            paste: 1024,
        }
    }
}

/// What the gateway must do with a chunk of vendor input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the bytes returned with the verdict.
    Pass,
    /// Forward nothing yet: the first bytes may be the start of an SFTP INIT.
    Hold,
    /// The channel speaks SFTP from its first byte: guard it as an SFTP session from here on,
    /// starting with the bytes returned.
    Sftp,
    /// Forward the bytes returned, and flag a paste of this many bytes in the recording.
    Paste(u64),
    /// Refuse: end the channel, audit, tell the vendor.
    Refuse(Upload),
}

/// Why input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Upload {
    #[error("an sftp session inside a command (file transfer is not allowed at this level)")]
    SftpInCommand,
    #[error("an scp upload ({0})")]
    Scp(String),
    #[error(
        "more than {limit} bytes of input to {what} in this session (file upload is not allowed at this level; input is limited)"
    )]
    TooMuchInput { what: &'static str, limit: u64 },
}

impl Upload {
    /// A stable code for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Upload::SftpInCommand => "sftp_in_command",
            Upload::Scp(_) => "scp_upload",
            Upload::TooMuchInput { .. } => "input_limit",
        }
    }
}

/// What one channel's input looked like so far.
#[derive(Clone, Debug, Default)]
pub struct ChannelWatch {
    /// Whether the first bytes were decided to be (or not to be) an SFTP INIT.
    decided: bool,
    /// The first bytes, held while they could still be an SFTP INIT (at most eight).
    held: Vec<u8>,
    /// The tail of the input so far, so signatures split across chunks are found.
    carry: Vec<u8>,
    /// Only tell whether the channel speaks SFTP (at a level whose uploads go straight to
    /// the target: nothing is refused or counted, but an SFTP session is still logged).
    sftp_only: bool,
}

/// The input budget of one session (shared by its channels).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionInput {
    pub stream: u64,
    pub terminal: u64,
}

impl ChannelWatch {
    /// The channel is known not to speak SFTP (its command is legacy scp, whose receiving side
    /// begins with a lone zero byte that must not be held back as a possible SFTP start).
    pub fn rule_out_sftp(&mut self) {
        self.decided = true;
    }

    /// A watch that only finds an SFTP session from the channel's first bytes.
    pub fn sftp_only() -> Self {
        Self {
            sftp_only: true,
            ..Self::default()
        }
    }

    /// Looks at `data`, the next vendor bytes of this channel (`terminal`: it has a PTY), and
    /// counts them against `budget`. Call only at levels without uploads. Returns the verdict
    /// and the bytes it applies to: `data`, preceded by any bytes held back before.
    pub fn feed(
        &mut self,
        data: &[u8],
        terminal: bool,
        budget: &mut SessionInput,
        limits: &InputLimits,
    ) -> (Verdict, Vec<u8>) {
        let mut bytes = std::mem::take(&mut self.held);
        bytes.extend_from_slice(data);
        if !self.decided {
            if bytes.len() >= 9 {
                self.decided = true;
                if is_sftp_init(&bytes[..9]) {
                    return (Verdict::Sftp, bytes);
                }
            } else if SFTP_INIT.starts_with(&bytes) {
                self.held = bytes;
                return (Verdict::Hold, vec![]);
            } else {
                self.decided = true;
            }
        }
        if self.sftp_only {
            return (Verdict::Pass, bytes);
        }
        let verdict = self.judge(&bytes, terminal, budget, limits);
        (verdict, bytes)
    }

    fn judge(
        &mut self,
        bytes: &[u8],
        terminal: bool,
        budget: &mut SessionInput,
        limits: &InputLimits,
    ) -> Verdict {
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(bytes);
        if let Some(found) = find_upload(&window) {
            return Verdict::Refuse(found);
        }
        let keep = window.len().min(SCP_HEADER_MAX);
        self.carry = window[window.len() - keep..].to_vec();
        let n = bytes.len() as u64;
        if terminal {
            budget.terminal += n;
            if budget.terminal > limits.terminal {
                return Verdict::Refuse(Upload::TooMuchInput {
                    what: "terminals",
                    limit: limits.terminal,
                });
            }
            if n >= limits.paste {
                return Verdict::Paste(n);
            }
        } else {
            budget.stream += n;
            if budget.stream > limits.stream {
                return Verdict::Refuse(Upload::TooMuchInput {
                    what: "commands",
                    limit: limits.stream,
                });
            }
        }
        Verdict::Pass
    }
}

fn is_sftp_init(b: &[u8]) -> bool {
    b.len() >= 9 && b[..8] == SFTP_INIT && (1..=6).contains(&b[8])
}

/// An SFTP INIT or an scp sink header anywhere in `bytes`.
fn find_upload(bytes: &[u8]) -> Option<Upload> {
    if bytes.windows(9).any(is_sftp_init) {
        return Some(Upload::SftpInCommand);
    }
    // scp headers: `C`/`D` + 4 octal digits + ' ' + digits + ' ' + name + '\n', or
    // `T` + 4 space-separated numbers + '\n'. Searched anywhere: a program reading a few
    // bytes first (`head -c 3; scp -t F`) must not hide one.
    for (i, b) in bytes.iter().enumerate() {
        let rest = &bytes[i..];
        let found = match b {
            b'C' | b'D' => scp_file_header(rest),
            b'T' => scp_time_header(rest),
            _ => None,
        };
        if let Some(h) = found {
            return Some(Upload::Scp(h));
        }
    }
    None
}

/// `C0644 12 name\n` → a description, if `b` starts with one.
fn scp_file_header(b: &[u8]) -> Option<String> {
    let line_end = b.iter().take(SCP_HEADER_MAX).position(|c| *c == b'\n')?;
    let line = std::str::from_utf8(&b[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let mode = parts.next()?;
    let size = parts.next()?;
    let name = parts.next()?;
    let ok = mode.len() == 5
        && mode[1..].bytes().all(|c| (b'0'..=b'7').contains(&c))
        && !size.is_empty()
        && size.bytes().all(|c| c.is_ascii_digit())
        && !name.is_empty()
        && !name.contains('/');
    ok.then(|| {
        let what = if mode.starts_with('D') {
            "directory"
        } else {
            "file"
        };
        format!("{what} {name}")
    })
}

/// `T1700000000 0 1700000000 0\n`, if `b` starts with one.
fn scp_time_header(b: &[u8]) -> Option<String> {
    let line_end = b.iter().take(64).position(|c| *c == b'\n')?;
    let line = std::str::from_utf8(&b[1..line_end]).ok()?;
    let numbers: Vec<&str> = line.split(' ').collect();
    let ok = numbers.len() == 4
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    ok.then(|| "file times".to_owned())
}

/// Whether an exec command, read as a shell would split it, runs a file-transfer program in
/// sink mode: `scp` with `-t`, or `rsync --server` without `--sender`, anywhere in it (after
/// `sh -c`, `exec`, `VAR=1`, `;`, `&&`, quotes...). This is only the first, friendliest layer
/// (it refuses before anything runs, with a clear message); [`ChannelWatch`] is the one that
/// counts.
pub fn is_upload_command(cmd: &str) -> bool {
    let words = shell_words(cmd);
    words.iter().enumerate().any(|(i, w)| {
        let rest = &words[i + 1..];
        match program(w) {
            "scp" => rest
                .iter()
                .take_while(|a| a.starts_with('-'))
                .any(|a| !a.starts_with("--") && a.contains('t')),
            "rsync" => rest.contains(&"--server") && !rest.contains(&"--sender"),
            _ => false,
        }
    })
}

/// A command's words as a shell would split them, roughly (separators and quotes dropped).
pub(crate) fn shell_words(cmd: &str) -> Vec<&str> {
    cmd.split(|c: char| c.is_whitespace() || ";&|()'\"`$<>{}".contains(c))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A program's name without its directory.
pub(crate) fn program(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(chunks: &[&[u8]], terminal: bool) -> Vec<Verdict> {
        let mut w = ChannelWatch::default();
        let mut budget = SessionInput::default();
        chunks
            .iter()
            .map(|c| w.feed(c, terminal, &mut budget, &InputLimits::default()).0)
            .collect()
    }

    const INIT: &[u8] = &[0, 0, 0, 5, 1, 0, 0, 0, 3];

    #[test]
    fn a_channel_ruled_out_as_sftp_passes_a_lone_zero_byte() {
        let mut budget = SessionInput::default();
        let limits = InputLimits::default();
        let mut w = ChannelWatch::sftp_only();
        assert_eq!(w.feed(&[0], false, &mut budget, &limits).0, Verdict::Hold);
        let mut w = ChannelWatch::sftp_only();
        w.rule_out_sftp();
        assert_eq!(
            w.feed(&[0], false, &mut budget, &limits),
            (Verdict::Pass, vec![0])
        );
    }

    #[test]
    fn an_sftp_only_watch_finds_sftp_and_refuses_nothing() {
        let mut w = ChannelWatch::sftp_only();
        let mut budget = SessionInput::default();
        let limits = InputLimits::default();
        assert_eq!(w.feed(INIT, false, &mut budget, &limits).0, Verdict::Sftp);
        let mut w = ChannelWatch::sftp_only();
        let scp = b"C0644 5 x\nhello\0".to_vec();
        let big = vec![b'x'; 1 << 20];
        assert_eq!(w.feed(&scp, false, &mut budget, &limits).0, Verdict::Pass);
        assert_eq!(w.feed(&big, false, &mut budget, &limits).0, Verdict::Pass);
        assert_eq!(budget, SessionInput::default());
    }

    #[test]
    fn an_sftp_session_from_the_first_byte_is_guarded_not_refused() {
        assert_eq!(feed_all(&[INIT], false), [Verdict::Sftp]);
        // In pieces: held back until decided, then handed over whole.
        let mut w = ChannelWatch::default();
        let mut budget = SessionInput::default();
        let limits = InputLimits::default();
        assert_eq!(
            w.feed(&INIT[..3], false, &mut budget, &limits),
            (Verdict::Hold, vec![])
        );
        assert_eq!(
            w.feed(&INIT[3..7], false, &mut budget, &limits),
            (Verdict::Hold, vec![])
        );
        let mut more = INIT[7..].to_vec();
        more.extend_from_slice(b"next packet");
        let (verdict, bytes) = w.feed(&more, false, &mut budget, &limits);
        assert_eq!(verdict, Verdict::Sftp);
        assert_eq!(bytes, [INIT, b"next packet"].concat());
        // Something else that starts with a zero byte is released as soon as it differs.
        let mut w = ChannelWatch::default();
        assert_eq!(
            w.feed(&[0, 0], false, &mut budget, &limits).0,
            Verdict::Hold
        );
        assert_eq!(
            w.feed(b"x", false, &mut budget, &limits),
            (Verdict::Pass, vec![0, 0, b'x'])
        );
    }

    #[test]
    fn sftp_or_scp_later_in_the_stream_is_refused() {
        let late = feed_all(&[b"abc", INIT], false);
        assert_eq!(late[1], Verdict::Refuse(Upload::SftpInCommand));
        // Split across chunks, after junk that some program on the target eats first.
        let split = feed_all(&[b"xyzC0644 5 ev", b"il.sh\nhello"], false);
        assert_eq!(
            split[1],
            Verdict::Refuse(Upload::Scp("file evil.sh".into()))
        );
        assert_eq!(
            feed_all(&[b"D0755 0 dir\n"], false)[0],
            Verdict::Refuse(Upload::Scp("directory dir".into()))
        );
        assert_eq!(
            feed_all(&[b"T1700000000 0 1700000000 0\n"], false)[0],
            Verdict::Refuse(Upload::Scp("file times".into()))
        );
        // Ordinary text is not mistaken for either.
        assert_eq!(
            feed_all(
                &[b"Copy 644 files to C:\\ now\n", b"Total 12 13 14\n"],
                false
            ),
            [Verdict::Pass, Verdict::Pass]
        );
    }

    #[test]
    fn input_is_bounded_per_session_and_pastes_are_flagged() {
        let limits = InputLimits {
            stream: 10,
            terminal: 20,
            paste: 8,
        };
        let mut budget = SessionInput::default();
        let (mut a, mut b) = (ChannelWatch::default(), ChannelWatch::default());
        assert_eq!(
            a.feed(b"12345", false, &mut budget, &limits).0,
            Verdict::Pass
        );
        // Another channel of the same session shares the budget.
        assert_eq!(
            b.feed(b"123456", false, &mut budget, &limits).0,
            Verdict::Refuse(Upload::TooMuchInput {
                what: "commands",
                limit: 10
            })
        );
        let mut t = ChannelWatch::default();
        assert_eq!(t.feed(b"ls\r", true, &mut budget, &limits).0, Verdict::Pass);
        assert_eq!(
            t.feed(b"a long paste", true, &mut budget, &limits).0,
            Verdict::Paste(12)
        );
        assert!(matches!(
            t.feed(b"more than enough", true, &mut budget, &limits).0,
            Verdict::Refuse(Upload::TooMuchInput {
                what: "terminals",
                ..
            })
        ));
    }

    #[test]
    fn upload_commands_are_recognised_wherever_they_hide() {
        for cmd in [
            "scp -t /tmp/x",
            "/usr/bin/scp -r -d -t -- /tmp",
            "sh -c \"scp -t F\"",
            "exec scp -t F",
            "SCP=1 scp -t F",
            "true; scp -t F",
            "true&&scp -f x; scp -t y",
            "rsync --server -vlogDtpre.iLsfxC . /tmp/",
            "sh -c 'rsync --server . /tmp'",
        ] {
            assert!(is_upload_command(cmd), "{cmd}");
        }
        for cmd in [
            "scp -f /etc/hosts",
            "rsync --server --sender -vlogDtpre.iLsfxC . /etc/",
            "whoami; echo ok",
            "tail -f /var/log/syslog",
            "echo scp",
        ] {
            assert!(!is_upload_command(cmd), "{cmd}");
        }
    }
}
