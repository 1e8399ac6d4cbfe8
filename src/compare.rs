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

/// `text`, shortened to [`QUOTE`] characters, quoted.
fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE).collect();
    if chars.next().is_some() {
        format!("{:?}…", head)
    } else {
        format!("{head:?}")
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
    let from = |bytes: &[u8]| String::from_utf8_lossy(&bytes[at.min(bytes.len())..]).into_owned();
    let (line, column) = position(expected, at);
    Err(format!(
        "byte {} (line {line}, column {column}) differs: expected {}, got {}",
        at + 1,
        if at < expected.len() {
            quote(&from(expected))
        } else {
            "the end of the output".into()
        },
        if at < actual.len() {
            quote(&from(actual))
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

fn fold(text: &str, case_insensitive: bool) -> std::borrow::Cow<'_, str> {
    if case_insensitive {
        std::borrow::Cow::Owned(text.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn lines(actual: &[u8], expected: &[u8], case_insensitive: bool) -> Result<(), String> {
    fn normalize(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.split('\n').map(str::trim_end).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
    let (actual, expected) = (
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(expected),
    );
    let (a, e) = (normalize(&actual), normalize(&expected));
    for (i, (got, want)) in a.iter().zip(&e).enumerate() {
        if fold(got, case_insensitive) != fold(want, case_insensitive) {
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
fn same_count(unit: &str, actual: &[&str], expected: &[&str]) -> Result<(), String> {
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

/// Tokens with the line each is on.
fn tokenize(text: &str) -> Vec<(usize, &str)> {
    text.split('\n')
        .enumerate()
        .flat_map(|(line, l)| l.split_ascii_whitespace().map(move |t| (line + 1, t)))
        .collect()
}

fn tokens(actual: &[u8], expected: &[u8], how: &Compare) -> Result<(), String> {
    let (actual, expected) = (
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(expected),
    );
    let (a, e) = (tokenize(&actual), tokenize(&expected));
    let float = how.mode == CompareMode::Float;
    let abs_error = how.abs_error.unwrap_or(DEFAULT_ERROR);
    let rel_error = how.rel_error.unwrap_or(DEFAULT_ERROR);
    for (i, ((line, got), (_, want))) in a.iter().zip(&e).enumerate() {
        let numbers = if float {
            got.parse::<f64>().ok().zip(want.parse::<f64>().ok())
        } else {
            None
        };
        let same = match numbers {
            Some((g, w)) => close(g, w, abs_error, rel_error),
            None => fold(got, how.case_insensitive) == fold(want, how.case_insensitive),
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
    let a: Vec<&str> = a.iter().map(|&(_, token)| token).collect();
    let e: Vec<&str> = e.iter().map(|&(_, token)| token).collect();
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
