//! `GET/POST /auth/sign_out`: ending a browser session (SPEC §10). 404 while `[browser]`
//! is off (dispatch decides that).
//!
//! A `GET` never signs out (a link, an `<img>` or a prefetch must not end a session,
//! OWASP CSRF Prevention cheat sheet): it shows a confirmation form whose `csrf` token is
//! bound to the session cookie — or, without one, to the pre-session cookie, set here
//! when missing. `POST` requires the same-origin rule and that token (else 403
//! `forbidden`, JSON, SPEC §5), ends the session on the server (`Accounts::sign_out`: the
//! store's change feed tells every replica), clears the cookie (the same attributes with
//! `Max-Age=0`) and answers 303 to the sign-in page. A session that was already gone signs
//! out all the same; a store out of reach is 503 `unavailable`, and then the cookie is
//! kept, since the session could not be ended.

use askama::Template;
use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::body::{self, Accepts};
use super::browser::{self, STYLE};
use super::{account_error, EndpointContext};
use crate::accounts::browser::{
    csrf_matches, csrf_token, new_cookie_value, well_formed_cookie_value,
};
use crate::error::GatewayError;
use crate::http::Body;

const EXPECTED: &str = "send the sign-out form's csrf field as a form";

#[derive(Template)]
#[template(path = "sign_out.html")]
struct SignOutPage<'a> {
    style: &'static str,
    action: &'a str,
    csrf: &'a str,
    signed_in: bool,
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf: Option<String>,
}

/// Serves `GET`, `HEAD` and `POST /auth/sign_out`; see the module docs.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let form_origins = browser::form_origins(&context.browser.public_url, None);
    if request.method() == Method::POST {
        browser::with_page_headers(submit(context, request).await, &form_origins)
    } else {
        show(context, &request, &form_origins)
    }
}

/// The confirmation page.
fn show(
    context: &EndpointContext<'_>,
    request: &Request<Incoming>,
    form_origins: &[String],
) -> Result<Response<Body>, GatewayError> {
    let settings = context.browser;
    let headers = request.headers();
    let session = browser::cookie(headers, settings.cookie_name()).filter(|v| !v.is_empty());
    let mut new_pre_session = None;
    let (binding, signed_in) = match session {
        Some(session) => (
            session.to_string(),
            context
                .accounts
                .authenticate_session(session, settings)
                .is_ok(),
        ),
        None => match browser::cookie(headers, settings.csrf_cookie_name()) {
            Some(value) if well_formed_cookie_value(value) => (value.to_string(), false),
            _ => {
                let fresh = new_cookie_value();
                new_pre_session = Some(fresh.clone());
                (fresh, false)
            }
        },
    };
    let action = format!("{}/sign_out", context.auth_prefix);
    let csrf = csrf_token(&binding);
    let html = SignOutPage {
        style: STYLE,
        action: &action,
        csrf: &csrf,
        signed_in,
    }
    .render()
    .map_err(|err| GatewayError::Internal(format!("sign-out page: {err}")))?;
    let mut response = browser::page(StatusCode::OK, html, form_origins);
    if let Some(value) = new_pre_session {
        if let Some(cookie) = browser::set_cookie(settings.csrf_cookie_name(), &value, None, None) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    Ok(response)
}

/// `POST /auth/sign_out`.
async fn submit(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let settings = context.browser;
    let (parts, body) = request.into_parts();
    if !browser::same_origin(&parts.headers, &settings.public_url) {
        return Err(GatewayError::CrossSiteForm);
    }
    let form: SignOutForm =
        body::parse(&parts.headers, body, Accepts::JsonOrForm, EXPECTED).await?;
    let session = browser::cookie(&parts.headers, settings.cookie_name()).filter(|v| !v.is_empty());
    let binding = session.or_else(|| {
        browser::cookie(&parts.headers, settings.csrf_cookie_name())
            .filter(|value| well_formed_cookie_value(value))
    });
    let token_ok = match (binding, form.csrf.as_deref()) {
        (Some(binding), Some(presented)) => csrf_matches(binding, presented),
        _ => false,
    };
    if !token_ok {
        return Err(GatewayError::CrossSiteForm);
    }
    if let Some(session) = session {
        context
            .accounts
            .sign_out(session)
            .await
            .map_err(account_error)?;
    }
    let sign_in = settings
        .public_url
        .join(&format!("{}/sign_in", context.auth_prefix))
        .map_err(|err| GatewayError::Internal(format!("sign-in URL: {err}")))?;
    let origins = browser::form_origins(&settings.public_url, None);
    let mut response = browser::see_other(&sign_in, &origins);
    if let Some(cleared) = browser::set_cookie(
        settings.cookie_name(),
        "",
        settings.cookie_domain.as_deref(),
        Some(0),
    ) {
        response.headers_mut().append(header::SET_COOKIE, cleared);
    }
    Ok(response)
}
