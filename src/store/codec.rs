//! Versioned record encoding: one version byte, then serde_json. A reader that meets a
//! version it does not know reports the record as corrupt rather than guessing, and a
//! later format adds a version and a migration here without touching the trees.

use serde::{Deserialize, Serialize};

use super::StoreError;

/// The version every record is written with today.
pub const CURRENT: u8 = 1;

/// Encodes a record as `[CURRENT] ++ json`.
pub fn encode(value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![CURRENT];
    serde_json::to_writer(&mut out, value).map_err(|err| StoreError::Corrupt {
        tree: "encode",
        detail: err.to_string(),
    })?;
    Ok(out)
}

/// Decodes a record written by [`encode`] (any version this build knows); `T` may
/// borrow from `bytes`.
pub fn decode<'a, T: Deserialize<'a>>(
    tree: &'static str,
    bytes: &'a [u8],
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&CURRENT, json)) => serde_json::from_slice(json).map_err(|err| StoreError::Corrupt {
            tree,
            detail: err.to_string(),
        }),
        Some((version, _)) => Err(StoreError::Corrupt {
            tree,
            detail: format!("record version {version} is newer than this build knows"),
        }),
        None => Err(StoreError::Corrupt {
            tree,
            detail: "empty record".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_a_version_byte() {
        let bytes = encode(&vec!["a", "b"]).expect("encode");
        assert_eq!(bytes[0], CURRENT);
        let back: Vec<String> = decode("t", &bytes).expect("decode");
        assert_eq!(back, vec!["a", "b"]);
    }

    #[test]
    fn unknown_versions_are_refused() {
        let mut bytes = encode(&1u8).expect("encode");
        bytes[0] = 9;
        assert!(matches!(
            decode::<u8>("t", &bytes),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(decode::<u8>("t", &[]).is_err());
    }
}
