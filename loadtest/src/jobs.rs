//! What the load test submits: a hello world per language printing a value
//! of its own (so every output is checked against its job), hostile jobs
//! that run into a limit, and the mix that picks between them.

use serde_json::{Value, json};

/// One kind of job in the mix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A hello world in this language, printing its job's tag.
    Hello(String),
    /// A program that runs into a limit (CPU, memory, output in turn).
    Hostile,
}

impl Kind {
    pub fn name(&self) -> &str {
        match self {
            Kind::Hello(language) => language,
            Kind::Hostile => "hostile",
        }
    }
}

/// Languages the load test has a hello world for.
pub const LANGUAGES: &[&str] = &[
    "python",
    "javascript",
    "bash",
    "c",
    "cpp",
    "go",
    "rust",
    "java",
];

/// What a job's result must be for the job to count as right.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Accepted, with exactly this stdout.
    Stdout(String),
    /// One of these verdicts (a hostile job stopped by its limit).
    Verdicts(&'static [&'static str]),
}

/// The request body of job `n` of this kind, and what it must give. With
/// `cases`, a hello world is a job of that many test cases (case `k`'s
/// input is `k`, its expected output the tag and `k`).
pub fn job(kind: &Kind, tag: &str, n: u64, cases: Option<u64>) -> (Value, Expect) {
    match (kind, cases) {
        (Kind::Hello(language), Some(cases)) => {
            let test_cases: Vec<Value> = (0..cases)
                .map(|k| json!({ "stdin": format!("{k}\n"), "expected_output": format!("{tag} {k}\n") }))
                .collect();
            (
                json!({ "language": language, "code": echo(language, tag), "test_cases": test_cases }),
                Expect::Stdout(format!("{tag} {}\n", cases - 1)),
            )
        }
        (Kind::Hello(language), None) => {
            let code = hello(language, tag);
            (
                json!({ "language": language, "code": code }),
                Expect::Stdout(format!("{tag}\n")),
            )
        }
        (Kind::Hostile, _) => hostile(n),
    }
}

fn hello(language: &str, tag: &str) -> String {
    match language {
        "python" => format!("print('{tag}')"),
        "javascript" => format!("console.log('{tag}')"),
        "bash" => format!("echo {tag}"),
        "c" => format!("#include <stdio.h>\nint main(void) {{ puts(\"{tag}\"); return 0; }}\n"),
        "cpp" => {
            format!("#include <iostream>\nint main() {{ std::cout << \"{tag}\" << std::endl; }}\n")
        }
        "go" => format!("package main\nimport \"fmt\"\nfunc main() {{ fmt.Println(\"{tag}\") }}\n"),
        "rust" => format!("fn main() {{ println!(\"{tag}\"); }}\n"),
        "java" => format!(
            "public class Main {{ public static void main(String[] a) {{ System.out.println(\"{tag}\"); }} }}\n"
        ),
        other => unreachable!("no hello world for {other}; checked by parse_mix"),
    }
}

/// A program that prints its tag and the word it reads.
fn echo(language: &str, tag: &str) -> String {
    match language {
        "python" => format!("print('{tag}', input())"),
        "javascript" => {
            format!("console.log('{tag} ' + require('fs').readFileSync(0, 'utf8').trim())")
        }
        "bash" => format!("read word; echo \"{tag} $word\""),
        "c" => format!(
            "#include <stdio.h>\nint main(void) {{ char w[64]; if (scanf(\"%63s\", w) != 1) return 1; printf(\"{tag} %s\\n\", w); return 0; }}\n"
        ),
        "cpp" => format!(
            "#include <iostream>\n#include <string>\nint main() {{ std::string w; std::cin >> w; std::cout << \"{tag} \" << w << std::endl; }}\n"
        ),
        "go" => format!(
            "package main\nimport \"fmt\"\nfunc main() {{ var w string; fmt.Scan(&w); fmt.Println(\"{tag}\", w) }}\n"
        ),
        "rust" => format!(
            "fn main() {{ let mut w = String::new(); std::io::stdin().read_line(&mut w).unwrap(); println!(\"{tag} {{}}\", w.trim()); }}\n"
        ),
        "java" => format!(
            "import java.util.Scanner;\npublic class Main {{ public static void main(String[] a) {{ System.out.println(\"{tag} \" + new Scanner(System.in).next()); }} }}\n"
        ),
        other => unreachable!("no program for {other}; checked by parse_mix"),
    }
}

/// Bad neighbours, in turn: a CPU burner, a memory hog, an output flood.
/// Each is stopped by its limit; short time limits keep a burner from
/// holding a slot for the default limit.
fn hostile(n: u64) -> (Value, Expect) {
    let limits = json!({ "wall_time_ms": 1000, "cpu_time_ms": 500 });
    match n % 3 {
        0 => (
            json!({ "language": "python", "code": "while True:\n    pass", "limits": limits }),
            Expect::Verdicts(&["time_limit_exceeded"]),
        ),
        // Its time limits leave room to reach the memory limit even on a
        // loaded machine (zeroing 256 MiB costs CPU in the kernel): memory
        // is the limit this one is about.
        1 => (
            json!({
                "language": "python",
                "code": "hog = []\nwhile True:\n    hog.append(bytearray(16 << 20))",
                "limits": { "wall_time_ms": 5000, "cpu_time_ms": 3000 },
            }),
            Expect::Verdicts(&["memory_limit_exceeded", "runtime_error"]),
        ),
        _ => (
            json!({
                "language": "python",
                "code": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
                "limits": limits,
            }),
            Expect::Verdicts(&["output_limit_exceeded"]),
        ),
    }
}

/// Parses `python=60%,c=30%,hostile=10%`. What the entries leave of 100%
/// goes to `default` (`--mix hostile=10%` is 90% `--language`).
pub fn parse_mix(mix: Option<&str>, default: &str) -> Result<Vec<(Kind, u32)>, String> {
    let kind_of = |name: &str| -> Result<Kind, String> {
        match name {
            "hostile" => Ok(Kind::Hostile),
            l if LANGUAGES.contains(&l) => Ok(Kind::Hello(l.to_string())),
            other => Err(format!(
                "no jobs for {other:?}; one of hostile, {}",
                LANGUAGES.join(", ")
            )),
        }
    };
    let mut weights: Vec<(Kind, u32)> = Vec::new();
    for part in mix.unwrap_or("").split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let (name, percent) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not name=percent"))?;
        let percent: u32 = percent
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("{part:?}: the share is not a whole percent"))?;
        let kind = kind_of(name.trim())?;
        if weights.iter().any(|(k, _)| *k == kind) {
            return Err(format!("{name} appears twice"));
        }
        weights.push((kind, percent));
    }
    let total: u32 = weights.iter().map(|(_, p)| p).sum();
    if total > 100 {
        return Err(format!("the shares add up to {total}%, over 100%"));
    }
    if total < 100 {
        let kind = kind_of(default)?;
        match weights.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, p)) => *p += 100 - total,
            None => weights.push((kind, 100 - total)),
        }
    }
    weights.retain(|(_, p)| *p > 0);
    Ok(weights)
}

/// Picks kinds in proportion to their weights, spread evenly (smooth
/// weighted round-robin): 10% hostile is every tenth job, not a run of
/// them at the end.
pub struct Picker {
    weights: Vec<(Kind, i64)>,
    credit: Vec<i64>,
}

impl Picker {
    pub fn new(weights: &[(Kind, u32)]) -> Picker {
        Picker {
            weights: weights
                .iter()
                .map(|(k, w)| (k.clone(), i64::from(*w)))
                .collect(),
            credit: vec![0; weights.len()],
        }
    }

    pub fn next(&mut self) -> Kind {
        let total: i64 = self.weights.iter().map(|(_, w)| w).sum();
        for (credit, (_, weight)) in self.credit.iter_mut().zip(&self.weights) {
            *credit += weight;
        }
        let best = (0..self.credit.len())
            .max_by_key(|&i| (self.credit[i], std::cmp::Reverse(i)))
            .expect("at least one kind");
        self.credit[best] -= total;
        self.weights[best].0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_fills_up_with_the_default_language() {
        let mix = parse_mix(Some("hostile=10%"), "python").unwrap();
        assert_eq!(
            mix,
            vec![(Kind::Hostile, 10), (Kind::Hello("python".into()), 90)]
        );
        assert!(parse_mix(Some("python=80%,c=30%"), "python").is_err());
        assert!(parse_mix(Some("cobol=10%"), "python").is_err());
        assert!(parse_mix(Some("python"), "python").is_err());
        assert_eq!(
            parse_mix(None, "c").unwrap(),
            vec![(Kind::Hello("c".into()), 100)]
        );
    }

    #[test]
    fn the_picker_spreads_kinds_in_proportion() {
        let mut picker = Picker::new(&parse_mix(Some("hostile=10%"), "python").unwrap());
        let picked: Vec<Kind> = (0..100).map(|_| picker.next()).collect();
        let hostile: Vec<usize> = (0..100).filter(|&i| picked[i] == Kind::Hostile).collect();
        assert_eq!(hostile.len(), 10);
        // Evenly spread: one in each run of ten.
        for pair in hostile.windows(2) {
            assert_eq!(pair[1] - pair[0], 10, "{hostile:?}");
        }
    }
}
