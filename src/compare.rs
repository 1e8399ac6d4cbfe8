//! How a run's output is compared with the output it must print: the
//! comparison modes a job (or one test case) chooses, and where the first
//! difference is when there is one.
//!
//! - `exact`: byte for byte;
//! - `lines` (the default): trailing white space of each line and trailing
//!   empty lines ignored;
//! - `tokens`: the white-space separated tokens are equal;
//! - `float`: tokens, where both are numbers they are equal within
//!   `abs_error` or `rel_error` (testlib's rule: either suffices), other
//!   tokens compared as tokens;
//! - `case_insensitive` with `lines`, `tokens` or `float`: letters compared
//!   regardless of case.

use serde::{Deserialize, Serialize};

/// A comparison mode.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    Exact,
    #[default]
    Lines,
    Tokens,
    Float,
}

/// How output is compared, as a job (or one test case) asks.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Compare {
    #[serde(default)]
    pub mode: CompareMode,
    /// Letters compared regardless of case (not with `exact`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_insensitive: bool,
    /// `float`: the largest absolute difference of two numbers still equal
    /// (default [`DEFAULT_ERROR`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs_error: Option<f64>,
    /// `float`: the largest difference relative to the expected number
    /// still equal (default [`DEFAULT_ERROR`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_error: Option<f64>,
}

/// `float`'s tolerance when a job gives none.
pub const DEFAULT_ERROR: f64 = 1e-6;
/// The largest tolerance a job may give.
pub const MAX_ERROR: f64 = 1e6;
/// Characters of each side quoted in a difference.
const QUOTE: usize = 40;

impl Compare {
    /// Whether the settings make sense together; the field at fault and
    /// why otherwise (relative to `compare`).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.case_insensitive && self.mode == CompareMode::Exact {
            return Err((
                "case_insensitive",
                "case_insensitive goes with lines, tokens or float, not exact".into(),
            ));
        }
        for (field, value) in [("abs_error", self.abs_error), ("rel_error", self.rel_error)] {
            let Some(value) = value else { continue };
            if self.mode != CompareMode::Float {
                return Err((field, format!("{field} goes with the float mode")));
            }
            if !(0.0..=MAX_ERROR).contains(&value) {
                return Err((field, format!("{field} must be between 0 and {MAX_ERROR}")));
            }
        }
        Ok(())
    }

    /// `Ok` when `actual` is `expected` under this comparison; else where
    /// they first differ, in words.
    pub fn matches(&self, actual: &[u8], expected: &[u8]) -> Result<(), String> {
        match self.mode {
            CompareMode::Exact => exact(actual, expected),
            CompareMode::Lines => lines(actual, expected, self.case_insensitive),
            CompareMode::Tokens | CompareMode::Float => tokens(actual, expected, self),
        }
    }
}

/// Both outputs, and how to read them: as UTF-8 text when both are, else
/// as bytes (so that no two invalid bytes are ever read as the same
/// replacement character).
#[derive(Clone, Copy)]
struct Texts<'a> {
    actual: &'a [u8],
    expected: &'a [u8],
    utf8: bool,
}

impl<'a> Texts<'a> {
    fn new(actual: &'a [u8], expected: &'a [u8]) -> Self {
        let utf8 = std::str::from_utf8(actual).is_ok() && std::str::from_utf8(expected).is_ok();
        Texts {
            actual,
            expected,
            utf8,
        }
    }

    /// A line without its trailing white space (Unicode's for text,
    /// ASCII's for bytes).
    fn trim_end(self, line: &[u8]) -> &[u8] {
        match std::str::from_utf8(line) {
            Ok(text) if self.utf8 => text.trim_end().as_bytes(),
            _ => line.trim_ascii_end(),
        }
    }

    /// An item with its letters folded to lower case when asked (Unicode's
    /// for text, ASCII's for bytes).
    fn fold(self, item: &'a [u8], case_insensitive: bool) -> std::borrow::Cow<'a, [u8]> {
        use std::borrow::Cow;
        if !case_insensitive {
            return Cow::Borrowed(item);
        }
        match std::str::from_utf8(item) {
            Ok(text) if self.utf8 => Cow::Owned(text.to_lowercase().into_bytes()),
            _ => Cow::Owned(item.to_ascii_lowercase()),
        }
    }
}

/// `bytes`, shortened to [`QUOTE`] characters, quoted: as text when it is
/// UTF-8, else with every byte that is not printable ASCII escaped
/// (`"\xff\xfe"`).
fn quote(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let mut chars = text.chars();
            let head: String = chars.by_ref().take(QUOTE).collect();
            if chars.next().is_some() {
                format!("{head:?}…")
            } else {
                format!("{head:?}")
            }
        }
        Err(_) => {
            let head = &bytes[..bytes.len().min(QUOTE)];
            let more = if bytes.len() > QUOTE { "…" } else { "" };
            format!("\"{}\"{more}", head.escape_ascii())
        }
    }
}

fn exact(actual: &[u8], expected: &[u8]) -> Result<(), String> {
    if actual == expected {
        return Ok(());
    }
    let at = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    let from = |bytes: &[u8]| {
        // Back to the start of the character the difference is in, so the
        // quote stays text when the output is.
        let mut start = at.min(bytes.len());
        while start > 0 && start > at.saturating_sub(3) && (bytes[start] & 0xC0) == 0x80 {
            start -= 1;
        }
        quote(&bytes[start..])
    };
    let (line, column) = position(expected, at);
    Err(format!(
        "byte {} (line {line}, column {column}) differs: expected {}, got {}",
        at + 1,
        if at < expected.len() {
            from(expected)
        } else {
            "the end of the output".into()
        },
        if at < actual.len() {
            from(actual)
        } else {
            "the end of the output".into()
        },
    ))
}

/// The 1-based line and column of byte `at`.
fn position(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

fn lines(actual: &[u8], expected: &[u8], case_insensitive: bool) -> Result<(), String> {
    fn normalize<'t>(texts: Texts<'_>, text: &'t [u8]) -> Vec<&'t [u8]> {
        let mut lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .map(|l| texts.trim_end(l))
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
    let texts = Texts::new(actual, expected);
    let (a, e) = (
        normalize(texts, texts.actual),
        normalize(texts, texts.expected),
    );
    for (i, (got, want)) in a.iter().zip(&e).enumerate() {
        if texts.fold(got, case_insensitive) != texts.fold(want, case_insensitive) {
            return Err(format!(
                "line {} differs: expected {}, got {}",
                i + 1,
                quote(want),
                quote(got)
            ));
        }
    }
    same_count("line", &a, &e)
}

/// `Ok` when `actual` has as many `unit`s (lines, tokens) as `expected`,
/// else which one is missing or extra (the items before it are equal).
fn same_count(unit: &str, actual: &[&[u8]], expected: &[&[u8]]) -> Result<(), String> {
    let (got, want) = (actual.len(), expected.len());
    let (at, item, what) = match got.cmp(&want) {
        std::cmp::Ordering::Equal => return Ok(()),
        std::cmp::Ordering::Less => (got, expected[got], "missing"),
        std::cmp::Ordering::Greater => (want, actual[want], "extra"),
    };
    Err(format!(
        "expected {want} {unit}s, got {got}: {unit} {} ({}) is {what}",
        at + 1,
        quote(item)
    ))
}

/// Tokens (split on ASCII white space) with the line each is on.
fn tokenize(text: &[u8]) -> Vec<(usize, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .flat_map(|(line, l)| {
            l.split(u8::is_ascii_whitespace)
                .filter(|t| !t.is_empty())
                .map(move |t| (line + 1, t))
        })
        .collect()
}

/// A token as a number, when it is one.
fn number(token: &[u8]) -> Option<f64> {
    std::str::from_utf8(token).ok()?.parse().ok()
}

fn tokens(actual: &[u8], expected: &[u8], how: &Compare) -> Result<(), String> {
    let texts = Texts::new(actual, expected);
    let (a, e) = (tokenize(texts.actual), tokenize(texts.expected));
    let float = how.mode == CompareMode::Float;
    let abs_error = how.abs_error.unwrap_or(DEFAULT_ERROR);
    let rel_error = how.rel_error.unwrap_or(DEFAULT_ERROR);
    for (i, ((line, got), (_, want))) in a.iter().zip(&e).enumerate() {
        let numbers = if float {
            number(got).zip(number(want))
        } else {
            None
        };
        let same = match numbers {
            Some((g, w)) => close(g, w, abs_error, rel_error),
            None => texts.fold(got, how.case_insensitive) == texts.fold(want, how.case_insensitive),
        };
        if !same {
            let why = match numbers {
                Some((g, w)) if g.is_finite() && w.is_finite() => format!(
                    " (difference {:.3e}, more than {abs_error:e} absolute and {rel_error:e} relative)",
                    (g - w).abs()
                ),
                _ => String::new(),
            };
            return Err(format!(
                "token {} (line {line}) differs: expected {}, got {}{why}",
                i + 1,
                quote(want),
                quote(got),
            ));
        }
    }
    let a: Vec<&[u8]> = a.iter().map(|&(_, token)| token).collect();
    let e: Vec<&[u8]> = e.iter().map(|&(_, token)| token).collect();
    same_count("token", &a, &e)
}

/// testlib's `doubleCompare`: equal within the absolute error, or within
/// the relative error of the expected value; NaN only equals NaN, an
/// infinity only itself.
fn close(got: f64, want: f64, abs_error: f64, rel_error: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return want == got;
    }
    let difference = (got - want).abs();
    difference <= abs_error + 1e-15 || difference <= rel_error * want.abs() + 1e-15
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(mode: CompareMode) -> Compare {
        Compare {
            mode,
            ..Compare::default()
        }
    }

    #[test]
    fn lines_ignore_trailing_white_space_only() {
        let lines = Compare::default();
        assert!(lines.matches(b"1 2  \r\n3\n\n\n", b"1 2\n3\n").is_ok());
        assert!(lines.matches(b"", b"\n").is_ok());
        assert!(lines.matches(b"1 2\n3\n", b"1 2\n3").is_ok());
        assert!(lines.matches(b"1\n\n2", b"1\n2").is_err());
        let e = lines.matches(b" 1 2\n3", b"1 2\n3").unwrap_err();
        assert_eq!(e, r#"line 1 differs: expected "1 2", got " 1 2""#);
        let e = lines.matches(b"1\n", b"1\n2\n").unwrap_err();
        assert_eq!(e, r#"expected 2 lines, got 1: line 2 ("2") is missing"#);
        assert!(lines.matches(b"abc", b"ABC").is_err());
        let folded = Compare {
            case_insensitive: true,
            ..lines
        };
        assert!(folded.matches(b"Yes\nNO", b"yes\nno").is_ok());
    }

    #[test]
    fn exact_is_byte_for_byte_and_says_where() {
        let exact = mode(CompareMode::Exact);
        assert!(exact.matches(b"a\nb", b"a\nb").is_ok());
        let e = exact.matches(b"a\nbx", b"a\nby").unwrap_err();
        assert_eq!(
            e,
            r#"byte 4 (line 2, column 2) differs: expected "y", got "x""#
        );
        let e = exact.matches(b"a\n", b"a").unwrap_err();
        assert!(e.contains("expected the end of the output"), "{e}");
        assert!(exact.matches(b"a ", b"a").is_err());
    }

    #[test]
    fn tokens_ignore_how_white_space_is_laid_out() {
        let tokens = mode(CompareMode::Tokens);
        assert!(tokens.matches(b"1  2\n\n3 ", b"1 2 3").is_ok());
        let e = tokens.matches(b"1 2\n4", b"1 2\n3").unwrap_err();
        assert_eq!(e, r#"token 3 (line 2) differs: expected "3", got "4""#);
        let e = tokens.matches(b"1 2 3 4", b"1 2 3").unwrap_err();
        assert_eq!(e, r#"expected 3 tokens, got 4: token 4 ("4") is extra"#);
        assert!(
            tokens.matches(b"1.0", b"1").is_err(),
            "tokens are not numbers"
        );
    }

    #[test]
    fn floats_are_equal_within_either_error_and_other_tokens_as_tokens() {
        let float = mode(CompareMode::Float);
        assert!(float.matches(b"3.1415926", b"3.14159265358").is_ok());
        assert!(
            float.matches(b"1e9 answer", b"1000000000.5 answer").is_ok(),
            "relative"
        );
        assert!(float.matches(b"0.0000001", b"0").is_ok(), "absolute");
        let e = float.matches(b"3.15", b"3.14159").unwrap_err();
        assert!(
            e.starts_with(
                r#"token 1 (line 1) differs: expected "3.14159", got "3.15" (difference 8.410e-3"#
            ),
            "{e}"
        );
        assert!(float.matches(b"nan inf", b"NaN inf").is_ok());
        assert!(float.matches(b"inf", b"-inf").is_err());
        assert!(float.matches(b"YES 1.0", b"yes 1").is_err());
        let folded = Compare {
            case_insensitive: true,
            abs_error: Some(0.1),
            rel_error: Some(0.0),
            ..float
        };
        assert!(folded.matches(b"YES 1.05", b"yes 1").is_ok());
        assert!(folded.matches(b"YES 1.2", b"yes 1").is_err());
    }

    #[test]
    fn output_that_is_not_utf8_is_compared_as_bytes() {
        // Every invalid byte used to read as the same replacement character.
        for how in [
            mode(CompareMode::Exact),
            mode(CompareMode::Lines),
            mode(CompareMode::Tokens),
            mode(CompareMode::Float),
            Compare {
                case_insensitive: true,
                ..mode(CompareMode::Lines)
            },
        ] {
            let e = how.matches(b"\xff\xfe\n", b"\x80\x80\n").unwrap_err();
            assert!(e.contains(r#""\x80\x80"#), "{how:?}: {e}");
            assert!(e.contains(r#""\xff\xfe"#), "{how:?}: {e}");
            assert!(how.matches(b"\x80\x80\n", b"\x80\x80\n").is_ok(), "{how:?}");
        }
        let lines = Compare::default();
        assert!(lines.matches(b"a\xff  \r\n\n", b"a\xff").is_ok());
        assert!(lines.matches(b"a\xff\nb", b"a\xfe\nb").is_err());
        let e = lines.matches(b"ok\n\xff", b"ok\n\xfe").unwrap_err();
        assert_eq!(e, r#"line 2 differs: expected "\xfe", got "\xff""#);
        let tokens = mode(CompareMode::Tokens);
        assert!(tokens.matches(b"\xff 1\n2", b"\xff  1 2").is_ok());
        let e = tokens.matches(b"1 \xc3\x28", b"1 \xc3\x29").unwrap_err();
        assert!(e.starts_with("token 2 (line 1) differs"), "{e}");
        let folded = Compare {
            case_insensitive: true,
            ..tokens
        };
        assert!(folded.matches(b"YES\xff", b"yes\xff").is_ok());
        assert!(
            mode(CompareMode::Float)
                .matches(b"1.0 \xff", b"1 \xff")
                .is_ok()
        );
        // Text beside invalid bytes keeps Unicode's white space and case
        // rules only while both sides are text.
        assert!(
            lines
                .matches("é\u{3000}".as_bytes(), "é".as_bytes())
                .is_ok()
        );
    }

    #[test]
    fn long_tokens_are_shortened_in_messages() {
        let long = "x".repeat(100);
        let e = mode(CompareMode::Tokens)
            .matches(long.as_bytes(), b"y")
            .unwrap_err();
        assert!(e.contains(&format!("{:?}…", "x".repeat(40))), "{e}");
        assert!(e.len() < 120, "{e}");
    }

    #[test]
    fn settings_that_do_not_go_together_are_refused() {
        let bad = [
            Compare {
                mode: CompareMode::Exact,
                case_insensitive: true,
                ..Compare::default()
            },
            Compare {
                abs_error: Some(0.1),
                ..Compare::default()
            },
            Compare {
                mode: CompareMode::Float,
                rel_error: Some(-1.0),
                ..Compare::default()
            },
            Compare {
                mode: CompareMode::Float,
                abs_error: Some(f64::NAN),
                ..Compare::default()
            },
        ];
        for compare in bad {
            assert!(compare.check().is_err(), "{compare:?}");
        }
        assert!(mode(CompareMode::Float).check().is_ok());
    }
}
