//! The plan catalog, as data (EVENTS.md, "Plans").

use crate::amounts::{Cents, Credits};
use crate::error::DomainError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub id: &'static str,
    pub seats_min: u32,
    pub seats_max: u32,
    pub price_per_seat_month: Cents,
    /// Credits granted at each period start (source `plan`, expiring at period end).
    pub credits_per_period: Credits,
}

pub const FREE: Plan = Plan {
    id: "free",
    seats_min: 5,
    seats_max: 5,
    price_per_seat_month: Cents(0),
    credits_per_period: Credits(0),
};

pub const PLANS: &[Plan] = &[
    FREE,
    Plan {
        id: "team",
        seats_min: 1,
        seats_max: 50,
        price_per_seat_month: Cents(1_500),
        credits_per_period: Credits(10_000),
    },
    Plan {
        id: "business",
        seats_min: 1,
        seats_max: 500,
        price_per_seat_month: Cents(4_000),
        credits_per_period: Credits(100_000),
    },
    Plan {
        id: "enterprise",
        seats_min: 1,
        seats_max: 100_000,
        price_per_seat_month: Cents(6_000),
        credits_per_period: Credits(1_000_000),
    },
];

/// Buying credits costs 1 cent per 10 credits.
pub const CREDITS_PER_CENT: u64 = 10;

/// Currency of every price.
pub const CURRENCY: &str = "USD";

pub fn plan(id: &str) -> Result<&'static Plan, DomainError> {
    PLANS
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| DomainError::invalid("plan", format!("unknown plan {id:?}")))
}

impl Plan {
    pub fn is_paid(&self) -> bool {
        self.price_per_seat_month.0 > 0
    }

    pub fn check_seats(&self, seats: u32) -> Result<(), DomainError> {
        if (self.seats_min..=self.seats_max).contains(&seats) {
            Ok(())
        } else {
            Err(DomainError::invalid(
                "seats",
                format!(
                    "plan {} takes {} to {} seats",
                    self.id, self.seats_min, self.seats_max
                ),
            ))
        }
    }
}
