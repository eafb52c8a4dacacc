//! Money and credits: unsigned integers of the smallest unit, never floats.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Credits in the smallest unit. Arithmetic is checked: an overflow or a negative
/// result is an error, never a wrap.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Credits(pub u64);

/// Money in minor units (cents) of USD.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub u64);

/// Longest decimal string accepted for an amount (`u64::MAX` has 20 digits).
const AMOUNT_DIGITS_MAX: usize = 20;

/// Parses an unsigned decimal amount strictly: ASCII digits only — no sign, no
/// decimal point, no exponent, no spaces — and no overflow.
pub fn parse_amount(field: &'static str, s: &str) -> Result<u64, DomainError> {
    if s.is_empty() || s.len() > AMOUNT_DIGITS_MAX || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(
            field,
            format!("{s:?} is not an unsigned whole number of the smallest unit"),
        ));
    }
    s.parse::<u64>()
        .map_err(|_| DomainError::invalid(field, format!("{s} is too large")))
}

macro_rules! amount_ops {
    ($t:ident) => {
        impl $t {
            pub const ZERO: $t = $t(0);

            pub fn parse(field: &'static str, s: &str) -> Result<$t, DomainError> {
                parse_amount(field, s).map($t)
            }
            pub fn checked_add(self, other: $t) -> Result<$t, DomainError> {
                self.0
                    .checked_add(other.0)
                    .map($t)
                    .ok_or(DomainError::Overflow)
            }
            pub fn checked_sub(self, other: $t) -> Option<$t> {
                self.0.checked_sub(other.0).map($t)
            }
            pub fn saturating_sub(self, other: $t) -> $t {
                $t(self.0.saturating_sub(other.0))
            }
            pub fn is_zero(self) -> bool {
                self.0 == 0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

amount_ops!(Credits);
amount_ops!(Cents);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_strictly() {
        assert_eq!(Credits::parse("amount", "0"), Ok(Credits(0)));
        assert_eq!(
            Credits::parse("amount", "18446744073709551615"),
            Ok(Credits(u64::MAX))
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "1e3",
            " 1",
            "1 ",
            "0x10",
            "18446744073709551616",
            "½",
            "１",
        ] {
            assert!(
                Credits::parse("amount", bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn arithmetic_never_wraps() {
        assert_eq!(
            Credits(u64::MAX).checked_add(Credits(1)),
            Err(DomainError::Overflow)
        );
        assert_eq!(Credits(1).checked_sub(Credits(2)), None);
        assert_eq!(Credits(5).saturating_sub(Credits(7)), Credits(0));
    }
}
