//! An access token and its lifetime rules. A leaf module: IMDS, Entra and the registry build
//! tokens, the cache stores them, services spend them.

/// Refresh when this little lifetime is left (Azure.Identity and MSAL use 300 s).
pub(crate) const REFRESH_MARGIN: u64 = 300;
/// No token is trusted for longer than this, whatever the service claims: a bogus
/// `expires_on` must not pin a token (or a refusal) in the cache forever.
pub(crate) const MAX_LIFETIME: u64 = 24 * 3600 + 600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub secret: String,
    /// Unix seconds.
    pub expires_on: u64,
    /// When to fetch a new one while this one still works.
    pub refresh_at: u64,
}

impl Token {
    /// Refresh time: `refresh_in` when the service gives one; half-life for long-lived tokens
    /// (MSAL's rule for managed identity tokens over 2 h); otherwise 300 s before expiry. Both
    /// are capped by [`MAX_LIFETIME`].
    pub(crate) fn new(secret: String, now: u64, expires_on: u64, refresh_in: Option<u64>) -> Token {
        let expires_on = expires_on.min(now.saturating_add(MAX_LIFETIME));
        let lifetime = expires_on.saturating_sub(now);
        let refresh_at = match refresh_in {
            Some(r) => now.saturating_add(r),
            None if lifetime > 2 * 3600 => now + lifetime / 2,
            None => expires_on.saturating_sub(REFRESH_MARGIN),
        };
        Token {
            secret,
            expires_on,
            refresh_at: refresh_at.min(expires_on.saturating_sub(REFRESH_MARGIN)),
        }
    }

    /// Good enough to send: more than the margin left.
    pub(crate) fn usable(&self, now: u64) -> bool {
        self.expires_on > now.saturating_add(REFRESH_MARGIN)
    }

    /// Usable and not yet due for a refresh.
    pub(crate) fn fresh(&self, now: u64) -> bool {
        self.usable(now) && now < self.refresh_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_time_follows_msal_rules() {
        let t = |exp, r| Token::new("x".into(), 1000, exp, r).refresh_at;
        assert_eq!(t(1000 + 86400, None), 1000 + 43200);
        assert_eq!(t(1000 + 3600, None), 1000 + 3300);
        assert_eq!(t(1000 + 3600, Some(1800)), 2800);
        assert_eq!(t(1000 + 100, None), 800);
    }

    #[test]
    fn absurd_lifetimes_are_capped() {
        let now = 1_800_000_000;
        let t = Token::new("x".into(), now, 99_999_999_999, None);
        assert_eq!(t.expires_on, now + MAX_LIFETIME);
        assert!(t.refresh_at <= now + MAX_LIFETIME / 2 + 1);
        let t = Token::new("x".into(), now, now + 3600, Some(u64::MAX));
        assert!(t.refresh_at <= t.expires_on);
    }

    #[test]
    fn usable_and_fresh() {
        let t = Token {
            secret: "x".into(),
            expires_on: 10_000,
            refresh_at: 5_000,
        };
        assert!(t.fresh(4_999) && !t.fresh(5_000) && t.usable(9_699) && !t.usable(9_700));
    }
}
