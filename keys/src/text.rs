//! How a value from outside may appear in an error message.
//!
//! Errors travel far: into gRPC `grpc-message` headers (where a long value
//! breaks the response), into back offices' logs and into terminals. So a
//! message never repeats a raw value at length, never a control character,
//! and never anything that could be a BSN. Every message in the node and the
//! tools that names an outside value goes through [`excerpt`]. Calls nothing.

/// At most this many characters of an outside value appear in a message.
pub const EXCERPT_CHARS: usize = 24;

/// A run of this many digits or more could be a BSN (9 digits) or hide one,
/// so a value holding one is never shown.
const DIGIT_RUN: usize = 9;

/// A short, safe rendering of `value` for a message: quoted, with control and
/// non-ASCII characters escaped, cut after [`EXCERPT_CHARS`] characters with
/// the full length named. A value with a run of nine or more digits is not
/// shown at all, only its length, because it may be a BSN.
pub fn excerpt(value: &str) -> String {
    let chars = value.chars().count();
    if has_digit_run(value) {
        return format!("a value of {chars} characters (not shown: it holds a long number)");
    }
    let mut shown = String::with_capacity(EXCERPT_CHARS + 8);
    shown.push('"');
    for c in value.chars().take(EXCERPT_CHARS) {
        if c.is_ascii_graphic() || c == ' ' {
            if c == '"' || c == '\\' {
                shown.push('\\');
            }
            shown.push(c);
        } else {
            shown.extend(c.escape_unicode());
        }
    }
    shown.push('"');
    if chars > EXCERPT_CHARS {
        shown.push_str(&format!("… ({chars} characters)"));
    }
    shown
}

/// At most this many characters of a decoder's message are shown.
pub const MESSAGE_CHARS: usize = 300;

/// A message that a decoder wrote about outside data (serde's "invalid type:
/// string \"…\"", "unknown field `…`"), made safe to show: every quoted or
/// back-quoted value in it is shown as [`excerpt`] shows it, other control
/// characters are escaped, and the whole is cut after [`MESSAGE_CHARS`]
/// characters. Messages this crate writes itself already pass values through
/// [`excerpt`] and come through unchanged.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_CHARS + 8));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                let mut value = String::new();
                let mut escaped = false;
                for inner in chars.by_ref() {
                    if inner == c && !escaped {
                        break;
                    }
                    escaped = c == '"' && inner == '\\' && !escaped;
                    value.push(inner);
                }
                out.push_str(&excerpt(&value));
            }
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
        if out.chars().count() > MESSAGE_CHARS {
            let cut: String = out.chars().take(MESSAGE_CHARS).collect();
            return format!("{cut}…");
        }
    }
    out
}

fn has_digit_run(value: &str) -> bool {
    let mut run = 0;
    for b in value.bytes() {
        if b.is_ascii_digit() {
            run += 1;
            if run >= DIGIT_RUN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted() {
        assert_eq!(excerpt("jeugd"), "\"jeugd\"");
        assert_eq!(excerpt("a\"b"), "\"a\\\"b\"");
        assert_eq!(excerpt(""), "\"\"");
    }

    #[test]
    fn long_values_are_cut_and_measured() {
        let long = "x".repeat(1 << 20);
        let shown = excerpt(&long);
        assert!(shown.len() < 60, "{shown}");
        assert!(shown.contains("1048576 characters"), "{shown}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let shown = excerpt("a\nb\u{1b}[31m");
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
    }

    #[test]
    fn decoder_messages_show_values_as_excerpts() {
        let long = "y".repeat(100_000);
        let shown = redact(&format!(
            "invalid type: string {long:?}, expected a byte string"
        ));
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.starts_with("invalid type: string \"yyyy"), "{shown}");
        assert!(shown.ends_with("expected a byte string"), "{shown}");
        let shown = redact("unknown field `bsn 111222333`, expected one of `name`, `roles`");
        assert!(!shown.contains("111222333"), "{shown}");
        assert!(shown.contains("\"name\""), "{shown}");
        // A quote inside a quoted value, as serde escapes it, does not end it.
        let shown = redact(r#"string "a\"111222333", expected"#);
        assert!(!shown.contains("111222333"), "{shown}");
        // An unterminated quote takes the rest as the value.
        assert!(!redact("string \"111222333").contains("111222333"));
        // Our own messages come through as they are.
        let own = "public key 8a88e3dd is a weak (small-order) ed25519 key; it cannot be used";
        assert_eq!(redact(own), own);
        assert!(redact(&"z".repeat(5000)).chars().count() <= MESSAGE_CHARS + 1);
        assert!(!redact("a\nb").contains('\n'));
    }

    #[test]
    fn numbers_that_may_be_a_bsn_are_never_shown() {
        for secret in ["111222333", "bsn:111222333", "00000001001234567000"] {
            let shown = excerpt(secret);
            assert!(!shown.contains("111222333"), "{shown}");
            assert!(!shown.contains("1234567"), "{shown}");
        }
        assert_eq!(excerpt("12345678"), "\"12345678\"");
    }
}
