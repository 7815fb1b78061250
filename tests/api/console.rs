//! The console at `/` (its files, their types and the page's policy) and CORS for
//! a console or single page app served from another origin, including clients
//! that still send credentials. The browser flows are in tests/e2e.

use reqwest::Method;

use crate::common::*;

const LISTED: &str = "http://127.0.0.1:5173";

#[tokio::test]
async fn the_console_is_served_at_the_root_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    for (path, content_type, marker) in [
        (
            "/",
            "text/html",
            "<script type=\"module\" src=\"console.js\">",
        ),
        ("/console.js", "text/javascript", "sessionStorage"),
        ("/console.css", "text/css", "{"),
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with(content_type),
            "{path}: {:?}",
            headers["content-type"]
        );
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.contains_key("x-served-by"));
        let body = response.text().await.expect("body");
        assert!(body.contains(marker), "{path}");
    }
    // No inline script in the page.
    let page = app.get("/", None).await.text().await.expect("page");
    assert!(!page.contains("<script>"), "inline script");
    assert!(!page.contains("onclick="), "inline handler");
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/database/connect"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn listed_origins_may_send_credentials_and_unlisted_ones_get_no_cors_grant() {
    let app = TestApp::spawn_with(|config| {
        config.cors_allowed_origins = vec![LISTED.to_owned()];
    })
    .await;
    let listed = preflight(&app, LISTED).await;
    assert_eq!(listed.headers()["access-control-allow-origin"], LISTED);
    assert_eq!(listed.headers()["access-control-allow-credentials"], "true");

    let response = app
        .client
        .get(app.url("/api/health"))
        .header("origin", LISTED)
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["access-control-allow-origin"], LISTED);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );

    let unlisted = preflight(&app, "http://127.0.0.1:9999").await;
    assert!(
        !unlisted
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(
        !unlisted
            .headers()
            .contains_key("access-control-allow-credentials")
    );
}

#[tokio::test]
async fn any_origin_never_comes_with_credentials() {
    let app =
        TestApp::spawn_with(|config| config.cors_allowed_origins = vec!["*".to_owned()]).await;
    let response = preflight(&app, "http://127.0.0.1:9999").await;
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-credentials")
    );
}
