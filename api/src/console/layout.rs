//! The frame every console page shares: header, breadcrumb, main, and links to the same data
//! in `/v1` and `/docs`; plus the small pieces forms and lists repeat.

use maud::{DOCTYPE, Markup, html};

use super::client::Problem;

/// Who is signed in, as the header and the forms need it.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The token's subject.
    pub subject: String,
    /// The token's role, as `/v1` names it.
    pub role: String,
    /// The token's tenant; `None` for platform-admins.
    pub tenant: Option<String>,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Viewer {
    /// Whether the fleet pages are for this viewer.
    pub fn is_platform_admin(&self) -> bool {
        self.role == "platform-admin"
    }
}

/// A page's frame.
pub struct Frame<'a> {
    /// The `<title>` and heading.
    pub title: String,
    /// Breadcrumb, outermost first: a name and, except for the current page, a link.
    pub crumbs: Vec<(String, Option<String>)>,
    /// The `/v1` paths this page reads, linked at its foot.
    pub api: Vec<String>,
    /// Who is signed in.
    pub viewer: Option<&'a Viewer>,
}

/// The asset paths carry the version so browsers may cache them for good.
pub const CSS: &str = concat!("/console/assets/console-", env!("CARGO_PKG_VERSION"), ".css");

/// A whole page.
pub fn page(frame: Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (frame.title) " · Lakeplane" }
                link rel="stylesheet" href=(CSS);
            }
            body {
                header.top {
                    a.brand href="/console" { "Lakeplane" }
                    nav aria-label="Sections" {
                        @if let Some(viewer) = frame.viewer {
                            @if viewer.is_platform_admin() {
                                a href="/console/fleet" { "Fleet" }
                            }
                            @if let Some(tenant) = &viewer.tenant {
                                a href={"/console/tenants/" (tenant)} { "Tenant " span.mono { (tenant) } }
                            }
                        }
                        a href="/docs" { "API docs" }
                    }
                    @if let Some(viewer) = frame.viewer {
                        span.who { "Signed in as " strong { (viewer.subject) } " (" (viewer.role) ")" }
                        form.inline method="post" action="/console/sign-out" {
                            (csrf(&viewer.csrf))
                            button.quiet type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    @if !frame.crumbs.is_empty() {
                        nav.crumbs aria-label="Breadcrumb" {
                            ol {
                                @for (name, link) in &frame.crumbs {
                                    li {
                                        @match link {
                                            Some(href) => a href=(href) { (name) },
                                            None => span aria-current="page" { (name) },
                                        }
                                    }
                                }
                            }
                        }
                    }
                    h1 { (frame.title) }
                    (body)
                    @if !frame.api.is_empty() {
                        footer.links {
                            "The same data in the API: "
                            @for (i, path) in frame.api.iter().enumerate() {
                                @if i > 0 { ", " }
                                code { (path) }
                            }
                            " · " a href="/docs" { "API reference" }
                        }
                    }
                }
            }
        }
    }
}

/// The breadcrumb's first step: the fleet, linked for those who may see it.
pub fn fleet_crumb(viewer: &Viewer) -> (String, Option<String>) {
    (
        "Fleet".into(),
        viewer.is_platform_admin().then(|| "/console/fleet".to_owned()),
    )
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// The problem's messages for `field`, beside it, linked to the input by `id`.
pub fn field_errors(problem: Option<&Problem>, field: &str, id: &str) -> Markup {
    let messages = problem.map(|p| p.for_field(field)).unwrap_or_default();
    html! {
        @if !messages.is_empty() {
            p.field-error id={(id) "-error"} {
                @for (i, m) in messages.iter().enumerate() {
                    @if i > 0 { "; " }
                    (m)
                }
            }
        }
    }
}

/// Whether `field` has an error, for `aria-invalid`.
pub fn invalid(problem: Option<&Problem>, field: &str) -> &'static str {
    if problem.is_some_and(|p| !p.for_field(field).is_empty()) {
        "true"
    } else {
        "false"
    }
}

/// A problem's summary above a form: its detail, and errors no field shows.
pub fn problem_notice(problem: Option<&Problem>, shown_fields: &[&str]) -> Markup {
    html! {
        @if let Some(p) = problem {
            div.notice.error role="alert" {
                strong { "Not changed: " } (p.detail)
                @let rest: Vec<_> = p.errors.iter().filter(|e| !shown_fields.iter().any(|f| under(&e.field, f))).collect();
                @if !rest.is_empty() {
                    ul { @for e in rest { li { code { (e.field) } ": " (e.message) } } }
                }
            }
        }
    }
}

/// Whether `field` is `shown` or a field inside it.
fn under(field: &str, shown: &str) -> bool {
    field
        .strip_prefix(shown)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// A "next page" link to `href` when the list has more.
pub fn pager(href: &str, more: bool) -> Markup {
    html! {
        @if more {
            div.pager {
                a href=(href) rel="next" { "Next page →" }
            }
        }
    }
}

/// A notice.
pub fn notice(text: &str) -> Markup {
    html! { div.notice role="status" { (text) } }
}
