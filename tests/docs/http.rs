//! The README's HTTP claims against a running producer and consumer: the endpoints each
//! serves, and the example 400 answer.

use super::exposition::Loaded;
use super::{read, root};
use crate::support::{client, post, Producer};
use redline_testkit::RedisServer;

/// The `.route("/path"` paths of a source file.
fn routes(file: &str) -> Vec<String> {
    let source = read(&root().join(file));
    let mut found = Vec::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + 7..];
        let path = rest.trim_start().trim_start_matches('"');
        found.push(path[..path.find('"').unwrap_or(0)].to_owned());
    }
    assert!(found.len() >= 3, "{file}: only {found:?}");
    found
}

/// `METHOD|METHOD /path` code spans of `text`.
fn endpoints(text: &str) -> Vec<(Vec<String>, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| {
            let (methods, path) = span.split_once(' ')?;
            let methods: Vec<String> = methods.split('|').map(str::to_owned).collect();
            let http = methods
                .iter()
                .all(|m| ["GET", "POST", "HEAD"].contains(&m.as_str()));
            (http && path.starts_with('/')).then(|| (methods, path.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_the_readme_lists_is_served_and_every_route_is_listed() {
    let readme = read(&root().join("README.md"));
    let producer_row = readme
        .lines()
        .find(|l| l.starts_with("| `redline producer`"))
        .expect("the producer's row");
    let listed = endpoints(producer_row.split("serves").nth(1).unwrap_or_default());
    let monitoring = readme
        .split("\n## Monitoring\n")
        .nth(1)
        .and_then(|s| s.split("\n| metric |").next())
        .expect("a Monitoring section")
        .replace('\n', " ");
    let consumer_listed: Vec<&str> = ["/metrics", "/health", "/ready"]
        .into_iter()
        .filter(|p| monitoring.contains(&format!("`{p}`")))
        .collect();
    assert!(
        monitoring.contains("a consumer serves them on `--metrics-listen`"),
        "the README's consumer endpoints changed: change this test with it"
    );

    let mut wrong = Vec::new();
    for path in routes("crates/producer/src/http.rs") {
        if !listed.iter().any(|(_, p)| *p == path) {
            wrong.push(format!(
                "the producer serves {path}; its README row does not list it"
            ));
        }
    }
    for path in routes("crates/consumer/src/http.rs") {
        if !consumer_listed.contains(&path.as_str()) {
            wrong.push(format!(
                "the consumer serves {path}; the Monitoring section does not list it"
            ));
        }
    }

    let stack = Loaded::start().await;
    let http = client();
    let mut asked = Vec::new();
    for (methods, path) in &listed {
        for method in methods {
            asked.push((stack.producer.url.clone(), method.clone(), path.clone()));
        }
    }
    for path in &consumer_listed {
        asked.push((
            stack.consumer_url.clone(),
            "GET".to_owned(),
            (*path).to_owned(),
        ));
    }
    for (base, method, path) in asked {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let status = http
            .request(
                method.clone(),
                format!("{base}{path}?db=db0&bucket=db0&q=SHOW+DATABASES"),
            )
            .body("m v=1i 1600000000000000000")
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if !(200..300).contains(&status) {
            wrong.push(format!("{method} {base}{path}: {status}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        stack.consumer.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_example_400_is_what_the_producer_answers() {
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("\n## HTTP answers\n")
        .nth(1)
        .expect("an HTTP answers section");
    let example = section
        .split("```json\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("a ```json example in HTTP answers");
    assert!(
        section.contains("103 lines of which lines 11 (`m,host=x`), 51 and 81 do not parse"),
        "the README's example request changed: change this test with it"
    );
    let body: Vec<String> = (1..=103)
        .map(|n| match n {
            11 => "m,host=x".to_owned(),
            51 => "m,host=x v=".to_owned(),
            81 => "not line protocol".to_owned(),
            n => format!("m,host=x v={n}i {}", 1_600_000_000_000_000_000_i64 + n),
        })
        .collect();
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let answer = post(&format!("{}/write?db=db0", producer.url), body.join("\n")).await;
    assert_eq!(answer.status(), 400);
    assert_eq!(answer.text().await.unwrap(), example.trim());
}
