//! The browser pages at the HTTP level (SPEC §10): a `[browser]` section for a test
//! gateway, fetching the sign-in form (its pre-session cookie and hidden fields), posting
//! it as a same-origin browser would, and reading `Set-Cookie` answers. A browser is
//! imitated by the headers it sends; `public_url` need not be the listener's address,
//! since nothing here follows a redirect.

use super::accounts::form_value;
use super::{Response, TestGateway};

/// The `public_url` of [`section`].
pub const PUBLIC_URL: &str = "https://app.example.com";

/// What a same-origin form submission from a current browser carries.
pub const SAME_ORIGIN: &[&str] = &[
    "Sec-Fetch-Site: same-origin",
    "Origin: https://app.example.com",
];

/// `[browser]` enabled at [`PUBLIC_URL`], with `extra` keys.
pub fn section(extra: &str) -> String {
    format!("[browser]\nenabled = true\npublic_url = \"{PUBLIC_URL}\"\n{extra}\n")
}

/// Every `Set-Cookie` of a response.
pub fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.clone())
        .collect()
}

/// The `Set-Cookie` for cookie `name`, if any.
pub fn set_cookie(response: &Response, name: &str) -> Option<String> {
    set_cookies(response)
        .into_iter()
        .find(|cookie| cookie.starts_with(&format!("{name}=")))
}

/// The value a `Set-Cookie` sets.
pub fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    pair.split_once('=')
        .map(|(_, value)| value.to_string())
        .unwrap_or_default()
}

/// The body as text.
pub fn body(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).to_string()
}

/// The `value` of the form input called `name` in a page, HTML entities decoded.
pub fn input_value(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\""))?;
    let tag_start = page[..at].rfind('<')?;
    let tag_end = at + page[at..].find('>')?;
    let tag = &page[tag_start..tag_end];
    let value_at = tag.find("value=\"")? + "value=\"".len();
    let value = &tag[value_at..];
    let value = &value[..value.find('"')?];
    Some(unescape(value))
}

/// Decodes the HTML character references a template engine writes (`&#NN;`, `&#xNN;`
/// and the named `&quot; &apos; &lt; &gt; &amp;`).
pub fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A sign-in form as a browser holds it: its pre-session cookie and hidden fields.
#[derive(Debug, Clone)]
pub struct SignInForm {
    /// `name=value` of the pre-session cookie.
    pub cookie: String,
    pub csrf: String,
    pub rd: String,
    pub page: Response,
}

/// `GET /auth/sign_in{query}` with extra header lines; the form it shows. Without a
/// pre-session cookie among `headers`, the answer must set one.
pub async fn sign_in_form(gateway: &TestGateway, query: &str, headers: &[&str]) -> SignInForm {
    let page = gateway.get(&format!("/auth/sign_in{query}"), headers).await;
    page.assert_status(200);
    let text = body(&page);
    let cookie = match set_cookie(&page, "__Host-gatehouse_csrf")
        .or_else(|| set_cookie(&page, "__Secure-gatehouse_csrf"))
    {
        Some(set) => set.split(';').next().unwrap_or_default().to_string(),
        None => headers
            .iter()
            .find_map(|line| line.strip_prefix("Cookie: "))
            .expect("a pre-session cookie was sent or set")
            .to_string(),
    };
    SignInForm {
        cookie,
        csrf: input_value(&text, "csrf").expect("csrf field"),
        rd: input_value(&text, "rd").expect("rd field"),
        page,
    }
}

/// A form body of `(name, value)` pairs, percent-encoded.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", form_value(name), form_value(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `POST path` with a form body and header lines, as given (no headers added but
/// Content-Type).
pub async fn post(gateway: &TestGateway, path: &str, body: &str, headers: &[&str]) -> Response {
    let mut all = vec!["Content-Type: application/x-www-form-urlencoded"];
    all.extend_from_slice(headers);
    gateway.request("POST", path, &all, body.as_bytes()).await
}

/// Submits `form` same-origin with its cookie and `fields` after `csrf` and `rd`.
pub async fn submit(gateway: &TestGateway, form: &SignInForm, fields: &[(&str, &str)]) -> Response {
    let mut all = vec![("csrf", form.csrf.as_str()), ("rd", form.rd.as_str())];
    all.extend_from_slice(fields);
    let cookie = format!("Cookie: {}", form.cookie);
    let mut headers = SAME_ORIGIN.to_vec();
    headers.push(&cookie);
    post(gateway, "/auth/sign_in", &form_body(&all), &headers).await
}

/// Signs `username` in through the form (optionally with remember-me); the 303 answer.
pub async fn sign_in(
    gateway: &TestGateway,
    username: &str,
    password: &str,
    remember_me: bool,
) -> Response {
    let form = sign_in_form(gateway, "", &[]).await;
    let mut fields = vec![("username", username), ("password", password)];
    if remember_me {
        fields.push(("remember_me", "on"));
    }
    submit(gateway, &form, &fields).await
}

/// `name=value` of the session cookie a sign-in answer sets.
pub fn session_cookie(response: &Response) -> String {
    set_cookie(response, "__Host-gatehouse_session")
        .or_else(|| set_cookie(response, "__Secure-gatehouse_session"))
        .map(|set| set.split(';').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no session cookie in {:?}", response.headers))
}

/// Whether the sign-out page sees a live session for `cookie` (a `Cookie:` header line).
pub async fn signed_in(gateway: &TestGateway, cookie: &str) -> bool {
    let page = gateway.get("/auth/sign_out", &[cookie]).await;
    page.assert_status(200);
    let text = body(&page);
    assert!(
        set_cookie(&page, "__Host-gatehouse_session").is_none(),
        "a GET never signs out"
    );
    text.contains("Do you want to sign out?")
}

/// Polls [`signed_in`] until it is `expected` (the view may learn of a change from the
/// store's feed), within [`super::DEADLINE`]; the last answer.
pub async fn await_signed_in(gateway: &TestGateway, cookie: &str, expected: bool) -> bool {
    let deadline = std::time::Instant::now() + super::DEADLINE;
    loop {
        let now = signed_in(gateway, cookie).await;
        if now == expected || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
