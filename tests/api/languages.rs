//! Every language of the table runs, from its own image; stdin and
//! arguments reach programs; `/v1/languages` lists them.

use serde_json::json;

use crate::helpers::TestService;

/// A hello world per language id; the table must have no other language.
const HELLO: &[(&str, &str)] = &[
    ("python", "print('Hello, World!')"),
    (
        "c",
        "#include <stdio.h>\nint main(void) { puts(\"Hello, World!\"); return 0; }",
    ),
    (
        "cpp",
        "#include <iostream>\nint main() { std::cout << \"Hello, World!\" << std::endl; }",
    ),
    ("javascript", "console.log('Hello, World!');"),
    ("bash", "echo 'Hello, World!'"),
    (
        "go",
        "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"Hello, World!\") }",
    ),
    ("rust", "fn main() { println!(\"Hello, World!\"); }"),
    (
        "java",
        "public class Main { public static void main(String[] args) { System.out.println(\"Hello, World!\"); } }",
    ),
];

#[tokio::test]
async fn hello_world_runs_in_every_language() {
    let service = TestService::start_with(|c| c.wall_time_limit_ms = 10_000).await;
    let table = code_runner::language::LanguageTable::built_in();
    assert_eq!(
        table.all().len(),
        HELLO.len(),
        "a language of the table has no hello-world test"
    );
    let runs = HELLO.iter().map(|(language, code)| {
        let service = &service;
        async move {
            let view = service
                .run_v1(json!({ "language": language, "code": code }))
                .await;
            (language, view)
        }
    });
    for (language, view) in futures_util::future::join_all(runs).await {
        let result = &view["result"];
        assert_eq!(view["state"], "completed", "{language}: {view}");
        assert_eq!(result["verdict"], "accepted", "{language}: {view}");
        assert_eq!(result["stdout"], "Hello, World!\n", "{language}: {view}");
        assert_eq!(result["exit_code"], 0);
        assert!(
            result["memory_peak_bytes"].as_u64().unwrap() > 0,
            "{language}: {view}"
        );
        let compiled = table.find(language).unwrap().compile.is_some();
        assert_eq!(
            result["compile"].is_object(),
            compiled,
            "{language}: {view}"
        );
    }
    service.stop().await;
}

#[tokio::test]
async fn stdin_is_echoed_and_args_are_passed() {
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "python",
            "code": "import sys\nprint(sys.argv[1:])\nprint(sys.stdin.read(), end='')",
            "stdin": "line one\nline two\n",
            "args": ["first", "second arg", "--flag"],
        }))
        .await;
    assert_eq!(
        view["result"]["stdout"], "['first', 'second arg', '--flag']\nline one\nline two\n",
        "{view}"
    );
    let view = service
        .run_v1(json!({
            "language": "c",
            "code": "#include <stdio.h>\nint main(int argc, char **argv) {\n  char line[100];\n  printf(\"%d %s\\n\", argc, argv[1]);\n  while (fgets(line, sizeof line, stdin)) fputs(line, stdout);\n  return 0;\n}",
            "stdin": "echo me\n",
            "args": ["arg1"],
        }))
        .await;
    assert_eq!(view["result"]["stdout"], "2 arg1\necho me\n", "{view}");
    service.stop().await;
}

#[tokio::test]
async fn several_files_compile_together() {
    let service = TestService::start().await;
    let view = service
        .run_v1(json!({
            "language": "c",
            "files": [
                { "name": "main.c", "content": "#include \"greet.h\"\nint main(void) { greet(); return 0; }" },
                { "name": "greet.h", "content": "void greet(void);" },
                { "name": "greet.c", "content": "#include <stdio.h>\nvoid greet(void) { puts(\"from greet.c\"); }" },
            ],
        }))
        .await;
    assert_eq!(view["result"]["stdout"], "from greet.c\n", "{view}");
    let view = service
        .run_v1(json!({
            "language": "python",
            "files": [
                { "name": "app.py", "content": "import helper\nhelper.hello()" },
                { "name": "helper.py", "content": "def hello():\n    print('from helper')" },
            ],
        }))
        .await;
    assert_eq!(view["result"]["stdout"], "from helper\n", "{view}");
    service.stop().await;
}

#[tokio::test]
async fn languages_are_listed_with_versions() {
    let service = TestService::start().await;
    let (status, body) = service.get("/v1/languages").await;
    assert_eq!(status, 200);
    let list = body["languages"].as_array().unwrap();
    for (id, _) in HELLO {
        let entry = list
            .iter()
            .find(|l| l["id"] == *id)
            .unwrap_or_else(|| panic!("{id} not listed: {body}"));
        assert!(entry["version"].is_string());
        // This worker's image reported its real version.
        assert!(
            !entry["versions"].as_array().unwrap().is_empty(),
            "{id}: no version reported: {entry}"
        );
    }
    let python = list.iter().find(|l| l["id"] == "python").unwrap();
    assert!(
        python["aliases"]
            .as_array()
            .unwrap()
            .contains(&json!("python3"))
    );
    service.stop().await;
}
