//! `openapi.yaml` is tested against the server: every documented path answers,
//! the error codes are the server's, and real responses validate against the
//! documented schemas.

use crate::common::fake_model::{FakeModel, reply};
use crate::common::*;
use querygate::error::ErrorCode;
use serde_json::{Value, json};

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.yaml", None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ct")
            .contains("yaml")
    );
    let text = response.text().await.expect("body");
    serde_norway::from_str(&text).expect("openapi.yaml parses")
}

/// Asserts that `instance` validates against `components.schemas.<name>`.
fn assert_conforms(doc: &Value, name: &str, instance: &Value) {
    assert!(
        doc["components"]["schemas"][name].is_object(),
        "no schema {name} in openapi.yaml"
    );
    // The document's components as the root, so that `$ref`s between schemas resolve.
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("schema {name} is invalid: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not describe {instance}:\n{}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn documented_paths_are_exactly_the_served_ones() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item
            .as_object()
            .expect("item")
            .keys()
            .filter(|k| ["get", "post"].contains(&k.as_str()))
        {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut served = vec![
        "GET /",
        "GET /console.js",
        "GET /console.css",
        "GET /api/health",
        "GET /api/ready",
        "GET /health",
        "POST /api/database/connect",
        "GET /api/database/status",
        "GET /api/database/schema",
        "POST /api/database/execute",
        "POST /api/database/batch",
        "POST /api/database/cancel",
        "POST /api/database/refresh",
        "POST /api/database/disconnect",
        "POST /api/generate-sql",
        "GET /api/demo/schema",
        "POST /api/demo/query",
        "GET /.well-known/jwks.json",
        "GET /openapi.yaml",
    ];
    served.sort_unstable();
    assert_eq!(documented, served);
    for route in &served {
        let (method, path) = route.split_once(' ').expect("route");
        let request = if method == "GET" {
            app.client.get(app.url(path))
        } else {
            app.client.post(app.url(path))
        };
        let status = request.send().await.expect("request").status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{route} is documented but not served ({status})"
        );
    }
}

#[tokio::test]
async fn documented_error_codes_are_the_servers() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let documented: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .expect("code enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let served: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(documented, served);
}

#[tokio::test]
async fn real_responses_conform_to_the_documented_schemas() {
    let model = FakeModel::start(vec![
        reply("SELECT 1 AS one"),
        reply("SELECT city FROM offices LIMIT 1"),
    ])
    .await;
    let base_url = model.base_url.clone();
    let app = TestApp::spawn_with(move |config| config.openai_base_url = Some(base_url)).await;
    let doc = document(&app).await;

    let (_, health) = read(app.get("/api/health", None).await).await;
    assert_conforms(&doc, "Health", &health);
    let (_, jwks) = read(app.get("/.well-known/jwks.json", None).await).await;
    assert_conforms(&doc, "Jwks", &jwks);

    for body in [pg_body("test"), mysql_body("test"), sqlite_body("demo")] {
        let (status, connected) = read(app.connect(&body).await).await;
        assert_eq!(status, 200, "{connected}");
        assert_conforms(&doc, "TokenResponse", &connected);
        let token = connected["token"].as_str().expect("token").to_owned();
        let (_, status_body) = read(app.status(Some(&token), true).await).await;
        assert_conforms(&doc, "StatusResponse", &status_body);
        let (_, schema) = read(app.schema(&token, "").await).await;
        assert_conforms(&doc, "SchemaResponse", &schema);
        let (_, executed) = app.sql(&token, "SELECT 1 AS a, 'x' AS b, NULL AS c").await;
        assert_conforms(&doc, "ExecuteResponse", &executed);
        let arrays = app
            .client
            .post(app.url("/api/database/execute?format=arrays"))
            .bearer_auth(&token)
            .json(&json!({"sql": "SELECT 1 AS a"}))
            .send()
            .await
            .expect("request");
        let (_, arrays) = read(arrays).await;
        assert_conforms(&doc, "ExecuteResponse", &arrays);
        let batch =
            json!({"statements": [{"sql": "SELECT 1 AS a"}, {"sql": "SELECT * FROM nowhere"}]});
        let (status, batched) = read(
            app.post_json("/api/database/batch", &batch, Some(&token))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{batched}");
        assert_conforms(&doc, "BatchResponse", &batched);
        let (_, refreshed) = read(app.refresh(&token).await).await;
        assert_conforms(&doc, "TokenResponse", &refreshed);
        let (_, gone) = read(app.disconnect(&token).await).await;
        assert_conforms(&doc, "DisconnectResponse", &gone);
    }
    let (_, not_connected) = read(app.status(None, false).await).await;
    assert_conforms(&doc, "StatusResponse", &not_connected);

    let token = app.token_for(&sqlite_body("demo")).await;
    let (status, generated) = read(
        app.post_json(
            "/api/generate-sql",
            &json!({"userQuery": "one", "execute": true}),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{generated}");
    assert_conforms(&doc, "GenerateResponse", &generated);
    let (status, demo) = read(
        app.post_json("/api/demo/query", &json!({"query": "a city"}), None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{demo}");
    assert_conforms(&doc, "DemoQueryResponse", &demo);
    let (_, demo_schema) = read(app.get("/api/demo/schema", None).await).await;
    assert_conforms(&doc, "SchemaResponse", &demo_schema);

    let errors = [
        read(app.get("/nope", None).await).await.1,
        read(app.status(Some("garbage"), false).await).await.1,
        read(app.connect(&json!({"dbType": "oracle"})).await)
            .await
            .1,
        app.sql(&token, "DELETE FROM customers").await.1,
        app.sql(&token, "SELECT * FROM nowhere").await.1,
        read(
            app.post_json(
                "/api/database/cancel",
                &json!({"queryId": "none"}),
                Some(&token),
            )
            .await,
        )
        .await
        .1,
    ];
    for error in &errors {
        assert_conforms(&doc, "Error", error);
    }
}
