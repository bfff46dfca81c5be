//! One module per page; what the `/v1` answers they read look like, in [`views`].

pub mod audit;
pub mod fleet;
pub mod governance;
pub mod oidc;
pub mod signin;
pub mod table;
pub mod tenant;
pub mod tokens;
pub mod views;

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;

use super::{Failure, Signed};

/// An HTML answer.
pub fn html(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page, answered 422 when it shows a form sent back with the problem `/v1` found in it.
pub fn page(rejected: bool, frame: super::layout::Frame<'_>, body: Markup) -> Response {
    let status = if rejected {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    (status, html(super::layout::page(frame, body))).into_response()
}

/// `/console`: the fleet for platform-admins, the tenant for everyone else.
pub async fn home(signed: Option<Signed>) -> Response {
    match signed {
        None => Redirect::to("/console/sign-in").into_response(),
        Some(s) if s.viewer.is_platform_admin() => Redirect::to("/console/fleet").into_response(),
        Some(s) => match &s.viewer.tenant {
            Some(t) => Redirect::to(&format!("/console/tenants/{}", super::client::seg(t))).into_response(),
            None => Redirect::to("/console/sign-in").into_response(),
        },
    }
}

/// No console page here.
pub async fn not_found() -> Response {
    Failure::Problem(super::client::Problem {
        status: 404,
        detail: "There is no console page here.".into(),
        errors: Vec::new(),
    })
    .into_response()
}

/// The tabs of a tenant's pages.
pub fn tenant_tabs(tenant: &str, current: &str) -> Markup {
    let base = format!("/console/tenants/{}", super::client::seg(tenant));
    let tabs = [
        ("Overview", base.clone()),
        ("Tokens", format!("{base}/tokens")),
        ("Audit log", format!("{base}/audit")),
        ("Sharing and governance", format!("{base}/governance")),
    ];
    maud::html! {
        nav.pager aria-label="Tenant pages" {
            @for (name, href) in tabs {
                @if name == current {
                    strong aria-current="page" { (name) }
                } @else {
                    a href=(href) { (name) }
                }
            }
        }
    }
}
