//! Units as `gateway.toml` writes them: durations (`"500ms"`, `"30s"`, `"15m"`, `"7d"`).

use std::time::Duration;

/// Parses a duration such as `500ms`, `30s`, `15m`, `7d` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("expected a duration such as \"500ms\", \"30s\", \"15m\" or \"7d\"".into());
    }
    humantime::parse_duration(trimmed).map_err(|_| {
        format!("`{text}` is not a duration; write e.g. \"500ms\", \"30s\", \"15m\" or \"7d\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn garbage_is_refused_with_a_hint() {
        let err = parse_duration("fifteen").unwrap_err();
        assert!(err.contains("15m"), "{err}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("15").is_err());
    }
}
