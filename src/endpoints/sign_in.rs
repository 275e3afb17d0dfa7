//! `GET/POST /auth/sign_in`: the browser sign-in page (SPEC §10). 404 while `[browser]`
//! is off (dispatch decides that).
//!
//! `GET` (and `HEAD`) shows the form: labelled username and password fields with
//! `autocomplete="username"` / `"current-password"`, the "remember me" box unless
//! `remember_me` is `0s`, and hidden `csrf` and `rd` fields. `rd` is validated at once
//! ([`redirect`](super::browser::redirect)) and the form carries the re-serialized URL, so
//! the page's `form-action` can name its origin. The form's `csrf` token is bound to the
//! pre-session cookie (`csrf_cookie_name()`, 256 random bits), set here when the browser
//! has none of the right shape (OWASP CSRF Prevention cheat sheet: synchronizer token /
//! signed double submit, "login CSRF").
//!
//! `POST` (form `username`, `password`, `remember_me`, `csrf`, `rd`; 16 KiB at most, read
//! by [`body`](super::body)) checks, in this order, before any password is looked at:
//! the same-origin rule, then the form's token against the pre-session cookie — either
//! failing is 403 `forbidden` (JSON, SPEC §5). Then it signs in through the same use case
//! as `/auth/login` (lockout shared with it, dummy-hash timing, one generic message), and
//! answers:
//!
//! * success: 303 to the validated `rd`, a new session cookie (`cookie_name()`; a new
//!   random id at every sign-in, whatever cookie the browser came with — no session
//!   fixation, OWASP Session Management cheat sheet) and the pre-session cookie cleared;
//! * wrong username or password: 401 with the form again and "Invalid username or
//!   password." (the username is shown back, HTML-escaped by the template engine), and
//!   `WWW-Authenticate: Bearer realm="gatehouse"` as on `/auth/login` (a 401 must name a
//!   scheme, RFC 9110 §15.5.2; browsers show no prompt for Bearer);
//! * disabled account (only after a correct password): 403 page; throttled: 429 page with
//!   `Retry-After`;
//! * store unreachable: 503 `unavailable` (JSON) with `Retry-After`.
//!
//! Every attempt is counted in `gatehouse_logins_total` like `/auth/login`.

use askama::Template;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use super::body::{self, Accepts};
use super::browser::redirect::redirect_target;
use super::browser::{self, STYLE};
use super::{account_error, login_outcome, EndpointContext};
use crate::access::Verdict;
use crate::accounts::browser::{
    csrf_matches, csrf_token, new_cookie_value, well_formed_cookie_value,
};
use crate::accounts::AccountError;
use crate::config::BrowserSettings;
use crate::error::GatewayError;
use crate::http::Body;
use crate::telemetry::metrics::LoginOutcome;

const EXPECTED: &str =
    "send the sign-in form's fields (username, password, remember_me, csrf, rd) as a form";

/// The one message for a wrong username or password: never says which.
pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";
const DISABLED: &str = "This account is disabled.";
const THROTTLED: &str = "Too many failed attempts. Please try again later.";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    style: &'static str,
    action: &'a str,
    csrf: &'a str,
    rd: &'a str,
    username: &'a str,
    message: Option<&'a str>,
    remember_me: bool,
}

#[derive(Deserialize)]
struct SignInQuery {
    rd: Option<String>,
}

#[derive(Deserialize)]
struct SignInForm {
    username: Option<String>,
    password: Option<Zeroizing<String>>,
    remember_me: Option<String>,
    csrf: Option<String>,
    rd: Option<String>,
}

/// Serves `GET`, `HEAD` and `POST /auth/sign_in`; see the module docs.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
    verdict: &mut Verdict,
) -> Result<Response<Body>, GatewayError> {
    let browser = context.browser;
    let form_origins = browser::form_origins(&browser.public_url, None);
    if request.method() == Method::POST {
        let result = submit(context, request, verdict).await;
        browser::with_page_headers(result, &form_origins)
    } else {
        let rd = request
            .uri()
            .query()
            .and_then(|query| serde_urlencoded::from_str::<SignInQuery>(query).ok())
            .and_then(|query| query.rd)
            .unwrap_or_default();
        let target = target(context, &rd);
        let (pre_session, set) =
            match browser::cookie(request.headers(), browser.csrf_cookie_name()) {
                Some(value) if well_formed_cookie_value(value) => (value.to_string(), false),
                _ => (new_cookie_value(), true),
            };
        let mut response = form_page(context, StatusCode::OK, &pre_session, &target, "", None)?;
        if set {
            if let Some(cookie) =
                browser::set_cookie(browser.csrf_cookie_name(), &pre_session, None, None)
            {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
        Ok(response)
    }
}

/// The validated redirect target for a raw `rd`.
fn target(context: &EndpointContext<'_>, rd: &str) -> Url {
    let browser = context.browser;
    redirect_target(
        rd,
        &browser.public_url,
        &browser.allowed_redirect_hosts,
        context.auth_prefix,
    )
}

/// The sign-in form page, its token bound to `pre_session`.
fn form_page(
    context: &EndpointContext<'_>,
    status: StatusCode,
    pre_session: &str,
    target: &Url,
    username: &str,
    message: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let browser: &BrowserSettings = context.browser;
    let action = format!("{}/sign_in", context.auth_prefix);
    let csrf = csrf_token(pre_session);
    let html = SignInPage {
        style: STYLE,
        action: &action,
        csrf: &csrf,
        rd: target.as_str(),
        username,
        message,
        remember_me: !browser.remember_me.is_zero(),
    }
    .render()
    .map_err(|err| GatewayError::Internal(format!("sign-in page: {err}")))?;
    Ok(browser::page(
        status,
        html,
        &browser::form_origins(&browser.public_url, Some(target)),
    ))
}

/// `POST /auth/sign_in`.
async fn submit(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
    verdict: &mut Verdict,
) -> Result<Response<Body>, GatewayError> {
    let browser = context.browser;
    let (parts, body) = request.into_parts();
    if !browser::same_origin(&parts.headers, &browser.public_url) {
        return Err(GatewayError::CrossSiteForm);
    }
    let form: SignInForm =
        match body::parse(&parts.headers, body, Accepts::JsonOrForm, EXPECTED).await {
            Ok(form) => form,
            Err(err) => {
                context.metrics.login(LoginOutcome::InvalidRequest);
                return Err(err);
            }
        };
    let pre_session = browser::cookie(&parts.headers, browser.csrf_cookie_name())
        .filter(|value| well_formed_cookie_value(value));
    let token_ok = match (pre_session, form.csrf.as_deref()) {
        (Some(pre_session), Some(presented)) => csrf_matches(pre_session, presented),
        _ => false,
    };
    let Some(pre_session) = pre_session.filter(|_| token_ok) else {
        return Err(GatewayError::CrossSiteForm);
    };
    let target = target(context, form.rd.as_deref().unwrap_or_default());
    let username = form.username.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let remember_me =
        form.remember_me.is_some_and(|value| !value.is_empty()) && !browser.remember_me.is_zero();
    let result = context
        .accounts
        .sign_in(&username, password, remember_me, context.client_ip, browser)
        .await;
    context.metrics.login(login_outcome(&result));
    let (status, message) = match result {
        Ok(signed_in) => {
            if let Ok(identity) = context
                .accounts
                .authenticate_session(&signed_in.cookie_value, browser)
            {
                verdict.user = Some(identity.user.clone());
            }
            let origins = browser::form_origins(&browser.public_url, Some(&target));
            let mut response = browser::see_other(&target, &origins);
            let headers = response.headers_mut();
            let session = browser::set_cookie(
                browser.cookie_name(),
                &signed_in.cookie_value,
                browser.cookie_domain.as_deref(),
                signed_in.max_age.map(|age| age.as_secs()),
            );
            let cleared = browser::set_cookie(browser.csrf_cookie_name(), "", None, Some(0));
            for cookie in [session, cleared].into_iter().flatten() {
                headers.append(header::SET_COOKIE, cookie);
            }
            return Ok(response);
        }
        Err(
            AccountError::InvalidCredentials
            | AccountError::NoSuchUser(_)
            | AccountError::Policy(_),
        ) => (StatusCode::UNAUTHORIZED, INVALID_CREDENTIALS),
        Err(AccountError::AccountDisabled) => (StatusCode::FORBIDDEN, DISABLED),
        Err(AccountError::TooManyAttempts { retry_after_secs }) => {
            let mut response = form_page(
                context,
                StatusCode::TOO_MANY_REQUESTS,
                pre_session,
                &target,
                &username,
                Some(THROTTLED),
            )?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return Ok(response);
        }
        Err(err) => return Err(account_error(err)),
    };
    let mut response = form_page(
        context,
        status,
        pre_session,
        &target,
        &username,
        Some(message),
    )?;
    if status == StatusCode::UNAUTHORIZED {
        // RFC 9110 §15.5.2: a 401 names a scheme; browsers prompt for none of Bearer.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="gatehouse""#),
        );
    }
    Ok(response)
}
