//! Registering jurisdictions: the nation first, then provinces, cities and
//! counties, each directly below the division its code names (GB/T 2260).

use ledger_core::domain::error::LedgerError;
use ledger_core::{Jurisdiction, JurisdictionCode, Store};

use crate::app::AppResult;

/// A jurisdiction to register. Without a parent, the code's structural
/// parent is meant (`410922` → `410900`); the nation has none.
#[derive(Debug, Clone)]
pub struct NewJurisdiction {
    pub code: JurisdictionCode,
    pub name: String,
    pub parent: Option<JurisdictionCode>,
}

/// Checks what can be checked without the store: the code is a division,
/// the parent is the one directly above it, the name is a name.
pub fn checked(new: NewJurisdiction) -> Result<Jurisdiction, LedgerError> {
    new.code.check_division()?;
    let structural = new.code.structural_parent();
    let parent = match (new.parent, &structural) {
        (None, _) => structural.clone(),
        (Some(p), Some(s)) if &p == s => Some(p),
        (Some(p), Some(s)) => {
            return Err(LedgerError::InvalidField {
                field: "parent",
                reason: format!("{} lies directly below {s}, not below {p}", new.code),
            })
        }
        (Some(p), None) => {
            return Err(LedgerError::InvalidField {
                field: "parent",
                reason: format!(
                    "{} is the nation and lies below nothing, not below {p}",
                    new.code
                ),
            })
        }
    };
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(LedgerError::InvalidField {
            field: "name",
            reason: "the name must be 1 to 100 characters, no control characters".into(),
        });
    }
    Ok(Jurisdiction {
        code: new.code,
        name,
        parent,
    })
}

/// Registers a jurisdiction below one that exists (idempotent: the same
/// jurisdiction again is a no-op; a different one under its code is
/// refused).
pub async fn register(store: &Store, new: NewJurisdiction) -> AppResult<Jurisdiction> {
    let j = checked(new)?;
    if let Some(parent) = &j.parent {
        let known = store.jurisdictions().await?;
        if !known.iter().any(|k| &k.code == parent) {
            return Err(LedgerError::UnknownJurisdiction {
                code: parent.to_string(),
            }
            .into());
        }
    }
    store.create_jurisdiction(&j).await?;
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(code: &str, parent: Option<&str>, name: &str, expect: Result<Option<&str>, &str>) {
        let new = NewJurisdiction {
            code: JurisdictionCode::parse(code).unwrap(),
            name: name.into(),
            parent: parent.map(|p| JurisdictionCode::parse(p).unwrap()),
        };
        match (checked(new), expect) {
            (Ok(j), Ok(p)) => assert_eq!(j.parent.as_ref().map(|p| p.as_str()), p),
            (Err(e), Err(says)) => assert!(e.to_string().contains(says), "{e}"),
            (got, want) => panic!("{code}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn a_jurisdiction_lies_directly_below_the_division_its_code_names() {
        check("000000", None, "中华人民共和国", Ok(None));
        check(
            "000000",
            Some("410000"),
            "Nation",
            Err("lies below nothing"),
        );
        check("410000", None, "河南省", Ok(Some("000000")));
        check("410000", Some("000000"), "河南省", Ok(Some("000000")));
        check("410922", None, "清丰县", Ok(Some("410900")));
        check(
            "410922",
            Some("410000"),
            "清丰县",
            Err("directly below 410900"),
        );
        check("990000", None, "Nowhere", Err("no province"));
        check("410900", None, "  ", Err("1 to 100 characters"));
    }
}

/// Jurisdictions as read once. A jurisdiction is registered and never
/// changed or removed (no statement updates or deletes a row of
/// `jurisdictions`: `jurisdictions_and_institutions_are_never_changed_once_registered`
/// holds the migrations and the store to that), so a row read once stays
/// true; a code not known yet is read each time it is asked, so a new
/// registration is seen at once. Every request about a jurisdiction asks
/// (the guard, the overview).
#[derive(Debug, Default)]
pub struct KnownJurisdictions {
    known: std::sync::RwLock<std::collections::HashMap<JurisdictionCode, Jurisdiction>>,
}

impl KnownJurisdictions {
    pub async fn get(
        &self,
        store: &Store,
        code: &JurisdictionCode,
    ) -> AppResult<Option<Jurisdiction>> {
        let cached = self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(code)
            .cloned();
        if let Some(j) = cached {
            return Ok(Some(j));
        }
        let read = store.jurisdiction(code).await?;
        if let Some(j) = &read {
            self.known
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(code.clone(), j.clone());
        }
        Ok(read)
    }
}
