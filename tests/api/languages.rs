//! Stdin and arguments reach programs, several files compile together, and
//! `/v1/languages` lists every language (each language's own programs are
//! in `tests/languages/`).

use serde_json::json;

use crate::helpers::TestService;

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
    let table = code_runner::language::LanguageTable::built_in();
    assert_eq!(list.len(), table.all().len(), "{body}");
    for language in table.all() {
        let id = &language.id;
        let entry = list
            .iter()
            .find(|l| l["id"] == *id)
            .unwrap_or_else(|| panic!("{id} not listed: {body}"));
        assert!(entry["version"].is_string());
        // This worker has its image.
        assert_eq!(entry["ready"], true, "{id}: {entry}");
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

/// On a fresh machine the images build one after another. A language whose
/// image is not built yet is listed as not ready, its jobs get 503 naming it
/// while a worker is up, and a job accepted before any worker was up waits
/// (delayed, not failed) until the image appears, then runs.
#[tokio::test]
async fn a_language_whose_image_is_not_built_yet_is_refused_then_served_when_it_appears() {
    let queue = crate::helpers::unique_queue();
    let suffix = queue
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let (id, image) = (format!("later-{suffix}"), format!("later-{suffix}"));
    let table = std::env::temp_dir().join(format!("languages-{suffix}.toml"));
    std::fs::write(
        &table,
        format!(
            "{}\n[[language]]\nid = \"{id}\"\nname = \"Bash, later\"\nversion = \"1\"\n\
             image = \"{image}\"\nsource_file = \"main.sh\"\nrun = [\"bash\", \"{{source}}\"]\n",
            include_str!("../../docker/languages.toml")
        ),
    )
    .unwrap();
    let adjust = |c: &mut code_runner::config::Config| {
        c.languages_file = Some(table.clone());
        c.queue_name = queue.clone();
    };
    // No worker is up: the job is accepted and waits.
    let api = TestService::start_role(code_runner::app::Role::Api, adjust).await;
    let early = api
        .submit_v1(json!({ "language": id, "code": "echo early" }))
        .await;
    let worker = TestService::start_with(adjust).await;
    let ready = |body: &serde_json::Value, which: &str| {
        body["languages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == which)
            .unwrap()["ready"]
            .clone()
    };
    let (_, listed) = worker.get("/v1/languages").await;
    assert_eq!(ready(&listed, &id), false, "{listed}");
    assert_eq!(ready(&listed, "python"), true, "{listed}");
    // A worker is up and has no image for it: refused, naming it.
    let (status, body) = worker
        .send(
            reqwest::Method::POST,
            "/v1/jobs",
            Some(json!({ "language": id, "code": "echo refused" })),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["field"], "language", "{body}");
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");
    let (status, body) = worker
        .send(
            reqwest::Method::POST,
            "/v1/jobs/batch",
            Some(json!({ "jobs": [
                { "language": "python", "code": "print(1)" },
                { "language": id, "code": "echo refused" },
            ] })),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["field"], "jobs[1].language", "{body}");
    // The job accepted before waits for the image rather than failing.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let (_, view) = worker.get(&format!("/v1/jobs/{early}")).await;
    assert_eq!(view["state"], "waiting", "{view}");
    // The image appears: the worker serves the language from then on.
    let tag = format!("{}/{image}:latest", worker.config.image_prefix);
    let tagged = std::process::Command::new("docker")
        .args([
            "tag",
            &format!("{}/bash:latest", worker.config.image_prefix),
            &tag,
        ])
        .status()
        .unwrap();
    assert!(tagged.success());
    let view = worker
        .wait_v1(
            &early,
            &["completed", "failed"],
            std::time::Duration::from_secs(60),
        )
        .await;
    assert_eq!(view["result"]["stdout"], "early\n", "{view}");
    // The listing says so from the worker's next heartbeat (written 200 ms
    // after its registry changes, or every few seconds), which may come
    // just after the job's end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, listed) = worker.get("/v1/languages").await;
        if ready(&listed, &id) == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let view = worker
        .run_v1(json!({ "language": id, "code": "echo now" }))
        .await;
    assert_eq!(view["result"]["stdout"], "now\n", "{view}");
    let _ = std::process::Command::new("docker")
        .args(["rmi", &tag])
        .output();
    let _ = std::fs::remove_file(&table);
    worker.stop().await;
    api.stop().await;
}
