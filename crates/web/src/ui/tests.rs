//! The pages and assets answer with the right types and headers, and the JavaScript never
//! turns data into markup.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;

use super::{PAGE_CSP, assets, shell};

async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_shell_has_a_strict_policy_and_loads_the_app() {
    let response = shell().await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-security-policy"], PAGE_CSP);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let body = text(response).await;
    assert!(body.contains(r#"<script type="module" src="/assets/js/main.js"></script>"#));
    assert!(body.contains(r#"<link rel="stylesheet" href="/assets/app.css">"#));
    // No inline script or style: the policy would block them.
    assert_eq!(body.matches("<script").count(), 1);
    assert!(!body.contains("style="));
}

#[tokio::test]
async fn assets_are_served_with_their_types() {
    for path in assets::paths() {
        let response = assets::serve(Path(path.to_string())).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        if path.ends_with(".js") {
            assert!(kind.starts_with("text/javascript"), "{path}: {kind}");
        }
        assert!(!text(response).await.is_empty(), "{path}");
    }
    for missing in ["nope.js", "../Cargo.toml", "js/../app.css"] {
        let response = assets::serve(Path(missing.to_string())).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

/// A reviewable rule rather than a hope: data reaches the DOM only through `textContent`,
/// attributes and SVG, and no script runs from a string.
#[tokio::test]
async fn scripts_never_build_markup_from_strings() {
    for path in assets::paths().filter(|p| p.ends_with(".js")) {
        let body = text(assets::serve(Path(path.to_string())).await).await;
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('on",
            "setAttribute(\"on",
        ] {
            assert!(!body.contains(banned), "{path} uses {banned}");
        }
    }
}
